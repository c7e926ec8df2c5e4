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
    tenant_id = await connect_tenant(sessions, settings, sandbox, FIRM)
    print(f"{'':26}{'raw rows':>14}{'raw KB':>20}{'timesheets raw KB':>20}")
    print(f"{'after':26}{'before':>8}{'now':>6}{'before':>12}{'now':>8}{'before':>12}{'now':>8}")
    await sync_now(context, tenant_id)
    first = await figures(sessions, tenant_id)
    show("first sync", first)
    await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
    show("quiet incremental", await figures(sessions, tenant_id))
    await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
    show("second quiet incremental", await figures(sessions, tenant_id))
    previous = await figures(sessions, tenant_id)
    for day in range(1, days + 1):
        sandbox.advance(FIRM, 1)
        for _ in range(12):
            await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
        await sync_now(context, tenant_id, SyncKind.FULL)
        now = await figures(sessions, tenant_id)
        added_before = now.bytes_before - previous.bytes_before
        added_now = now.bytes_now - previous.bytes_now
        show(f"day {day}", now)
        print(
            f"{'':26}added: before {100 * added_before / first.bytes_now:.1f}%, "
            f"now {100 * added_now / first.bytes_now:.2f}% of the first sync's raw bytes"
        )
        previous = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--days", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(bench(args.size, args.seed, args.page_size, args.days))


if __name__ == "__main__":
    main()
