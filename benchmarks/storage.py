"""Storage benchmark: raw rows and bytes a firm's syncs keep, before and after quiet and
changed incrementals, as stored now against what storing every response (the earlier
behaviour) would have kept.

    uv run python benchmarks/storage.py [--size tiny] [--seed 3] [--page-size 100] [--days 0]

A sandbox firm is synced for real (the worker's own job code, a real database and Redis),
then incrementally with nothing changed in Karbon. With `--days N`, N simulated days follow:
each day the sandbox makes its usual daily changes, then 12 incrementals (every 2 hours) and
one nightly full run; the bytes each day added are printed against the first sync's bytes.

"Before" is computed from the same responses: every read stored a copy (rows = reads, bytes =
each kept body times the times it was read), and each timesheet's raw JSON held its time
entries again. Bytes are PostgreSQL's stored sizes (`pg_column_size`).

Last measured. Tiny firm, seed 3, pages of 7 (the tests' sandbox), `--days 3`:

                                    raw rows              raw KB   timesheets raw KB
    after                       before   now      before     now      before     now
    first sync                      71    71        96.5    96.5        61.6     8.9
    quiet incremental               91    82       123.5   112.6        61.6     8.9
    second quiet incremental       111    82       150.4   112.6        61.6     8.9
    day 1                          429   109       586.3   159.9        64.0     9.4
    day 2                          746   118      1024.5   177.9        64.4     9.4
    day 3                         1065   131      1463.5   203.5        64.9     9.4

A day added 452-455% of the first sync's raw bytes before, 19-49% now (this tiny firm's
daily changes touch most of its few pages). Medium firm, seed 0, pages of 100, `--days 1`:

    first sync                   10989 10989     19721.5 19721.5     12420.4  1015.5
    quiet incremental            11205 11151     21452.2 20491.2     12420.4  1015.5
    second quiet incremental     11421 11151     23183.0 20491.2     12420.4  1015.5
    day 1                        25049 11349     63837.8 25203.5     12453.3  1021.1

The first quiet incremental stores the pages of requests the first sync never made (its
windowed reads) once; later quiet runs add nothing. A changed day adds 24% (was 206%): a
page of 100 is stored again when any one of its records changed, so a normal day still adds
more than what changed in Karbon.

Uses DATABASE_URL/REDIS_URL when set, embedded servers otherwise; runs in a scratch database
that is dropped afterwards.
"""

import argparse
import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, create_sessionmaker
from app.embedded import resolve_service_urls
from app.models import SyncKind
from app.redis_pool import create_redis
from app.secrets import resolve_secrets
from app.settings import Settings
from app.sync.access import KarbonAccess
from app.sync.karbon.budget import BudgetRegistry
from app.sync.karbon.retry import RetryPolicy
from app.worker import WorkerContext
from sandbox.generator import SIZES
from sandbox.server import serve_sandbox_in_thread
from sandbox.state import Sandbox, SandboxConfig
from tests.services import scratch_database
from tests.sync.conftest import connect_tenant, sync_now

FIRM = "Bench firm"
_FIGURES = text(
    """
SELECT count(*), coalesce(sum(fetch_count), 0),
       coalesce(sum(pg_column_size(body)), 0),
       coalesce(sum(pg_column_size(body)::bigint * fetch_count), 0)
FROM raw_responses WHERE tenant_id = :tenant
"""
)
_RECORD_VERSIONS = text(
    """
SELECT md5(raw::text) AS digest, pg_column_size(raw) AS size FROM (
    SELECT raw FROM staff WHERE tenant_id = :tenant
    UNION ALL SELECT raw FROM clients WHERE tenant_id = :tenant
    UNION ALL SELECT raw FROM work_items WHERE tenant_id = :tenant
    UNION ALL SELECT raw FROM timesheets WHERE tenant_id = :tenant
    UNION ALL SELECT raw FROM time_entries WHERE tenant_id = :tenant
    UNION ALL SELECT raw FROM invoices WHERE tenant_id = :tenant
) AS records
"""
)
_TIMESHEETS = text(
    """
SELECT (SELECT coalesce(sum(pg_column_size(raw)), 0) FROM timesheets WHERE tenant_id = :tenant),
       (SELECT coalesce(sum(pg_column_size(raw)), 0) FROM time_entries WHERE tenant_id = :tenant)
"""
)


@dataclass(frozen=True)
class Figures:
    rows_before: int
    rows_now: int
    bytes_before: int
    bytes_now: int
    timesheets_before: int
    timesheets_now: int


async def figures(sessions: async_sessionmaker[AsyncSession], tenant_id: UUID) -> Figures:
    async with sessions() as session:
        rows, reads, size, size_per_read = (
            await session.execute(_FIGURES, {"tenant": tenant_id})
        ).one()
        timesheets, entries = (await session.execute(_TIMESHEETS, {"tenant": tenant_id})).one()
    # Before, each timesheet's raw JSON also held its entries' JSON.
    return Figures(
        int(reads),
        int(rows),
        int(size_per_read),
        int(size),
        int(timesheets) + int(entries),
        int(timesheets),
    )


def show(label: str, numbers: Figures) -> None:
    print(
        f"{label:26}{numbers.rows_before:8}{numbers.rows_now:6}"
        f"{numbers.bytes_before / 1000:12.1f}{numbers.bytes_now / 1000:8.1f}"
        f"{numbers.timesheets_before / 1000:12.1f}{numbers.timesheets_now / 1000:8.1f}"
    )


async def bench(size: str, seed: int, page_size: int, days: int) -> None:
    config = SandboxConfig()
    config.update({"max_page_size": page_size, "rate_limit_enabled": False})
    sandbox = Sandbox.create((FIRM, size, seed), config=config, today=date(2026, 11, 2))
    settings = Settings(RECKONRY_ENV="test", RECKONRY_REDIS_PREFIX="reckonry-bench-storage")
    urls = resolve_service_urls(settings)
    with serve_sandbox_in_thread(sandbox) as karbon_url:
        async with scratch_database(urls.database_url) as database_url:
            settings = settings.model_copy(
                update={"karbon_base_url": karbon_url, "database_url": database_url}
            )
            engine = create_engine(database_url)
            sessions = create_sessionmaker(engine)
            redis = create_redis(urls.redis_url)
            karbon = KarbonAccess(
                base_url=karbon_url,
                budgets=BudgetRegistry(rate_per_second=400.0, max_in_flight=8),
                retry=RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=8),
                timeout=httpx.Timeout(5.0),
            )
            deps = WorkerContext(
                settings=settings,
                secrets=resolve_secrets(settings),
                karbon=karbon,
                engine=engine,
                sessions=sessions,
                redis=redis,
            )
            context: dict[str, Any] = {"deps": deps}
            try:
                await run(context, sessions, settings, sandbox, days)
            finally:
                karbon.close()
                await redis.aclose()
                await engine.dispose()


async def run(
    context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    sandbox: Sandbox,
    days: int,
) -> None:
    """First sync and quiet incrementals, with `days` simulated days when asked for."""
    tenant_id = await connect_tenant(sessions, settings, sandbox, FIRM)
    if days:
        await over_days(context, sessions, tenant_id, sandbox, days)
    else:
        await compare(context, sessions, tenant_id)


async def compare(
    context: dict[str, Any], sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> None:
    print(f"{'':26}{'raw rows':>14}{'raw KB':>20}{'timesheets raw KB':>20}")
    print(f"{'after':26}{'before':>8}{'now':>6}{'before':>12}{'now':>8}{'before':>12}{'now':>8}")
    await sync_now(context, tenant_id)
    show("first sync", await figures(sessions, tenant_id))
    await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
    show("quiet incremental", await figures(sessions, tenant_id))
    await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
    show("second quiet incremental", await figures(sessions, tenant_id))


async def record_versions(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> Counter[tuple[str, int]]:
    """Each normalized record's raw JSON, as (hash, stored size), counted."""
    async with sessions() as session:
        rows = await session.execute(_RECORD_VERSIONS, {"tenant": tenant_id})
        return Counter((row.digest, int(row.size)) for row in rows)


async def over_days(
    context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: UUID,
    sandbox: Sandbox,
    days: int,
) -> None:
    """After a first sync and one quiet incremental, each simulated day: Karbon's usual
    changes, 12 incrementals (every 2 hours) and the nightly full run."""
    await sync_now(context, tenant_id)
    first = await figures(sessions, tenant_id)
    print(f"first sync: {first.rows_now} raw rows, {first.bytes_now / 1000:.1f} KB")
    await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
    previous = await figures(sessions, tenant_id)
    versions = await record_versions(sessions, tenant_id)
    print(
        f"first quiet incremental: +{previous.rows_now - first.rows_now} rows, "
        f"+{(previous.bytes_now - first.bytes_now) / 1000:.1f} KB"
    )
    print(
        f"{'day':>4}{'Karbon changes':>16}{'changed KB':>12}{'raw rows':>10}{'raw KB':>10}"
        f"{'% first':>9}{'% before':>10}"
    )
    for day in range(1, days + 1):
        changes = sandbox.advance(FIRM, 1)
        for _ in range(12):
            await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
        await sync_now(context, tenant_id, SyncKind.FULL)
        now = await figures(sessions, tenant_id)
        later_versions = await record_versions(sessions, tenant_id)
        changed = sum(size * n for (_, size), n in (later_versions - versions).items())
        rows, added = now.rows_now - previous.rows_now, now.bytes_now - previous.bytes_now
        added_before = now.bytes_before - previous.bytes_before
        print(
            f"{day:4}{record_changes(changes):16}{changed / 1000:12.1f}{rows:10}"
            f"{added / 1000:10.1f}{100 * added / first.bytes_now:9.2f}"
            f"{100 * added_before / first.bytes_now:10.1f}"
        )
        previous, versions = now, later_versions


def record_changes(changes: dict[str, int]) -> int:
    """The records the sandbox created, edited or deleted in a day (its minutes logged are a
    sum, not a record)."""
    return sum(n for stat, n in changes.items() if stat != "minutes_logged")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare_command = commands.add_parser("compare", help="first sync and quiet incrementals")
    days_command = commands.add_parser("days", help="simulated days of syncs, per day")
    for command, size, seed in ((compare_command, "tiny", 3), (days_command, "medium", 0)):
        command.add_argument("--size", choices=sorted(SIZES), default=size)
        command.add_argument("--seed", type=int, default=seed)
        command.add_argument("--page-size", type=int, default=100)
    days_command.add_argument("--days", type=_positive, default=30)
    args = parser.parse_args()
    days = args.days if args.command == "days" else 0
    asyncio.run(bench(args.size, args.seed, args.page_size, days))


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


if __name__ == "__main__":
    main()
