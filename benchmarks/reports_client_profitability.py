"""Client profitability on the large sandbox firm: refresh time, latency and throughput.

    uv run python benchmarks/reports_client_profitability.py [options]

Options:
    --size SIZE         sandbox firm: tiny, small, medium or large (default large)
    --database NAME     dedicated database on the `DATABASE_URL` server
                        (default `reckonry_bench_<size>`); it is kept between runs
    --reload            drop the dedicated database and load the firm again
    --drop              drop the dedicated database at the end
    --calls N           sequential in-process calls per measurement (default 300)
    --seconds S         length of each HTTP load run (default 10; 0 skips HTTP)
    --connections C     concurrent HTTP connections of the load generator (default 8)

Uses `DATABASE_URL` / `REDIS_URL` when set, the embedded servers otherwise. The first run
generates the firm and stores it through the sync's own parsers and `RecordStore` (rendered
exactly as the sandbox's Karbon API serves it, without the 1.8 req/s budget): minutes for the
large firm. Later runs reuse the loaded database (migrated to head first). Every run then:

1. refreshes the report tables (timed): this is what lands after each sync;
2. in-process over the ASGI transport, one request at a time: the first call of several
   distinct full-year queries; full-year queries each different from the last (calendar
   years and the trailing year, every sort and order, by client, owner or manager, later
   pages), so none is served from the response cache; other 365-day windows (read from
   the monthly sums and the facts, not from the per-client sums kept for the full years);
   and the same full-year report repeated (response cache hits);
3. `GET /healthz` of the same app, same middleware, measured the same way;
4. over real HTTP: uvicorn on 127.0.0.1 in a subprocess and a concurrent httpx load
   generator in this process (the same 2 cores serve both: the generator's own cost caps both
   rates), for the repeated full-year report and for `/healthz`;
5. the targets: uncached full-year p95 under 100 ms; the report's req/s at least half of
   `/healthz`'s.
"""

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.app import create_app
from app.db import unit_of_work
from app.embedded import ServiceUrls, resolve_service_urls
from app.migrations import upgrade_to_head
from app.models import CompensationPeriod, SyncKind, SyncRun, SyncState, SyncTrigger
from app.reports.ordering import SORT_FIELDS
from app.reports.refresh import refresh_reports
from app.secrets import resolve_secrets
from app.settings import Settings, get_settings
from app.sync.records import Record
from app.sync.store import RecordStore
from app.sync.streams import (
    CONTACTS_STREAM,
    INVOICES_STREAM,
    ORGANIZATIONS_STREAM,
    TIMESHEETS_STREAM,
    USERS_STREAM,
    WORK_ITEMS_STREAM,
    Stream,
)
from app.tenancy.security import issue_token
from sandbox import render
from sandbox.generator import generate_firm
from sandbox.model import Firm

BASE = "https://api.karbonhq.com"
BATCH = 500
TODAY = date(2026, 11, 2)
YEAR = {"from": "2025-01-01", "to": "2025-12-31"}
PATH = "/api/v1/reports/client-profitability"
EMAIL = "bench@example.com"
PASSWORD = "benchmark passphrase"
P95_TARGET_MS = 100.0
RATIO_TARGET = 0.5
DISTINCT_QUERIES: list[dict[str, str]] = [
    {},
    {"sort": "margin", "order": "asc"},
    {"sort": "name", "order": "asc"},
    {"sort": "effective_rate"},
    {"sort": "unbilled_work", "offset": "100"},
    {"group_by": "owner"},
    {"group_by": "work_type", "sort": "realization"},
    {"fee_type": "FixedFee", "sort": "profit"},
    {"interval": "month", "sort": "month", "order": "asc"},
]


# -- the dedicated database --------------------------------------------------------------


def _admin_url(server_url: str) -> str:
    url = make_url(server_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


def _database_url(server_url: str, name: str) -> str:
    url = make_url(_admin_url(server_url)).set(database=name)
    return url.render_as_string(hide_password=False)


async def _admin(server_url: str, statement: str) -> Any:
    admin = await asyncpg.connect(_admin_url(server_url))
    try:
        return await admin.fetchval(statement)
    finally:
        await admin.close()


async def database_exists(server_url: str, name: str) -> bool:
    found = await _admin(server_url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    return found is not None


async def drop_database(server_url: str, name: str) -> None:
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def create_database(server_url: str, name: str) -> None:
    await _admin(server_url, f'CREATE DATABASE "{name}"')


async def loaded_tenant(database_url: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The benchmark firm's tenant and user, once its data has been stored completely."""
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT u.tenant_id, u.id FROM users u JOIN sync_runs r ON r.tenant_id = u.tenant_id"
            " WHERE u.email = $1 AND r.state = 'succeeded' LIMIT 1",
            EMAIL,
        )
    finally:
        await connection.close()
    return (row[0], row[1]) if row else None


# -- loading the firm through the sync's parsers -----------------------------------------


def _json(obj: Any) -> Any:
    """What the sync's client gets: the sandbox's JSON, parsed back."""
    return json.loads(render.dumps(obj))


def karbon_records(firm: Firm) -> Iterator[tuple[Stream, Record]]:
    for user in firm.users.values():
        summary, detail = render.user_summary(user), render.user_detail(user, BASE)
        yield USERS_STREAM, USERS_STREAM.parse(_json(summary), _json(detail))
    for contact in firm.contacts.values():
        yield CONTACTS_STREAM, CONTACTS_STREAM.parse(_json(render.contact_summary(firm, contact)))
    for org in firm.organizations.values():
        summary, detail = (
            render.organization_summary(org),
            render.organization_detail(firm, org, BASE, []),
        )
        yield ORGANIZATIONS_STREAM, ORGANIZATIONS_STREAM.parse(_json(summary), _json(detail))
    for item in firm.work_items.values():
        summary = render.work_item_summary(firm, item)
        detail = render.work_item_detail(firm, item, BASE)
        yield WORK_ITEMS_STREAM, WORK_ITEMS_STREAM.parse(_json(summary), _json(detail))
    for sheet in firm.timesheets.values():
        raw = _json(render.timesheet(sheet, with_entries=True))
        yield TIMESHEETS_STREAM, TIMESHEETS_STREAM.parse(raw)
    for invoice in firm.visible_invoices():
        detail = render.invoice_detail(invoice, BASE, ["LineItems", "Data"])
        parsed = INVOICES_STREAM.parse(_json(render.invoice_summary(invoice)), _json(detail))
        yield INVOICES_STREAM, parsed


def _batches(
    records: Iterable[tuple[Stream, Record]],
) -> Iterator[tuple[Stream, list[Record]]]:
    """Records of one stream at a time, at most BATCH of them."""
    for stream, pairs in itertools.groupby(records, key=lambda pair: pair[0]):
        stream_records = [record for _, record in pairs]
        for start in range(0, len(stream_records), BATCH):
            yield stream, stream_records[start : start + BATCH]


async def load_firm(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, firm: Firm
) -> None:
    for stream, batch in _batches(karbon_records(firm)):
        async with unit_of_work(sessions) as session:
            await RecordStore(session, tenant_id, None).save(stream.storage, batch, {})
    async with unit_of_work(sessions) as session:
        for index, user in enumerate(firm.users.values()):
            session.add(
                CompensationPeriod(
                    tenant_id=tenant_id,
                    staff_key=user.key,
                    effective_from=firm.history_start,
                    annual_amount=Decimal(60_000 + 1_000 * (index % 40)),
                )
            )
        # Written last: a database with a succeeded sync is known to be loaded completely.
        now = datetime.now(UTC)
        session.add(
            SyncRun(
                tenant_id=tenant_id,
                kind=SyncKind.FULL,
                trigger=SyncTrigger.MANUAL,
                state=SyncState.SUCCEEDED,
                requested_at=now,
                started_at=now,
                finished_at=now,
                progress={},
                checkpoint={},
            )
        )


async def sign_up(client: AsyncClient) -> tuple[uuid.UUID, uuid.UUID]:
    response = await client.post(
        "/api/v1/signup", json={"firm_name": "Benchmark LLP", "email": EMAIL, "password": PASSWORD}
    )
    response.raise_for_status()
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    me = (await client.get("/api/v1/me", headers=headers)).json()
    return uuid.UUID(me["tenant"]["id"]), uuid.UUID(me["user_id"])


async def load_into(settings: Settings, urls: ServiceUrls, size: str) -> None:
    started = time.perf_counter()
    firm = generate_firm(size, 0, today=TODAY)
    print(f"sandbox firm {size!r} generated in {time.perf_counter() - started:.1f} s")
    app = create_app(settings, urls)
    async with app.router.lifespan_context(app):
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://b") as client:
            tenant_id, _ = await sign_up(client)
        started = time.perf_counter()
        await load_firm(app.state.sessions, tenant_id, firm)
    print(f"stored through the sync's parsers in {time.perf_counter() - started:.1f} s")


async def prepare(
    settings: Settings, server: ServiceUrls, name: str, size: str, reload: bool
) -> tuple[ServiceUrls, uuid.UUID, uuid.UUID]:
    urls = ServiceUrls(_database_url(server.database_url, name), server.redis_url)
    if reload:
        await drop_database(server.database_url, name)
    if not await database_exists(server.database_url, name):
        await create_database(server.database_url, name)
    await asyncio.to_thread(upgrade_to_head, urls.database_url)
    found = await loaded_tenant(urls.database_url)
    if found is None:
        await drop_database(server.database_url, name)  # a partial load starts again
        await create_database(server.database_url, name)
        await asyncio.to_thread(upgrade_to_head, urls.database_url)
        await load_into(settings, urls, size)
        found = await loaded_tenant(urls.database_url)
        assert found is not None
    else:
        print(f"reusing the firm loaded in database {name!r}")
    return urls, *found


# -- measuring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    durations: list[float]
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.durations) / self.seconds

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.durations)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    def line(self, name: str) -> str:
        return (
            f"{name:<58} p50 {statistics.median(self.durations) * 1000:8.2f} ms   "
            f"p95 {self.percentile_ms(0.95):8.2f} ms   {self.rate:8.1f} req/s"
        )


async def sequential(call: Callable[[], Awaitable[Any]], times: int) -> Measured:
    durations = []
    started = time.perf_counter()
    for _ in range(times):
        begun = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - begun)
    return Measured(durations, time.perf_counter() - started)


async def concurrent(
    client: AsyncClient, path: str, params: dict[str, str], headers: dict[str, str], seconds: float
) -> Measured:
    durations: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            begun = time.perf_counter()
            response = await client.get(path, params=params, headers=headers)
            response.raise_for_status()
            durations.append(time.perf_counter() - begun)

    connections = client._transport._pool._max_connections  # type: ignore[attr-defined]
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return Measured(durations, time.perf_counter() - started)


def met(done: bool) -> str:
    return "met" if done else "NOT met"


async def in_process(
    settings: Settings, urls: ServiceUrls, headers: dict[str, str], calls: int
) -> None:
    app: FastAPI = create_app(settings, urls)
    transport = ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=transport, base_url="http://b") as client,
    ):

        async def get(params: dict[str, str]) -> httpx.Response:
            response = await client.get(PATH, headers=headers, params=params)
            response.raise_for_status()
            return response

        print("\n[in-process, ASGI transport, one request at a time]")
        print(f"groups in the full-year report: {(await get(YEAR)).json()['total']}")
        print("first call after the refresh (uncached):")
        for extra in DISTINCT_QUERIES[1:]:
            begun = time.perf_counter()
            await get({**YEAR, **extra})
            print(f"  {json.dumps(extra):<56} {(time.perf_counter() - begun) * 1000:8.2f} ms")

        full_years = iter(full_year_queries())
        other_windows = iter(range(1_000_000))

        async def full_year() -> None:
            await get(next(full_years))

        async def other_window() -> None:
            end = date(2025, 12, 30) - timedelta(days=next(other_windows) % 300)
            start = end - timedelta(days=364)
            await get({"from": start.isoformat(), "to": end.isoformat()})

        async def repeated() -> None:
            await get(YEAR)

        async def healthz() -> None:
            (await client.get("/healthz")).raise_for_status()

        uncached = await sequential(full_year, calls)
        print(uncached.line("full year, a new query each call (uncached)"))
        others = await sequential(other_window, min(calls, 100))
        print(others.line("other 365-day windows, a new one each call (uncached)"))
        served = await sequential(repeated, calls)
        print(served.line("full year, the same query (cache hits)"))
        trivial = await sequential(healthz, calls)
        print(trivial.line("GET /healthz"))
        p95 = uncached.percentile_ms(0.95)
        target = f"{P95_TARGET_MS:.0f} ms"
        print(f"uncached full year p95 {p95:.2f} ms < {target}: {met(p95 < P95_TARGET_MS)}")


def full_year_queries() -> Iterator[dict[str, str]]:
    """Distinct full-year queries (so none is a cache hit): the calendar years and the
    trailing year a report opens on, by every sort and order, grouped by client, owner or
    manager, a page further on each round."""
    windows = [YEAR, {"from": "2024-01-01", "to": "2024-12-31"}, {}]
    groupings = ["client", "client", "owner", "manager"]
    for page in itertools.count():
        for sort, order, window in itertools.product(SORT_FIELDS, ("desc", "asc"), windows):
            group_by = groupings[page % len(groupings)]
            offset = str(50 * (page // len(groupings)))
            yield {**window, "sort": sort, "order": order, "group_by": group_by, "offset": offset}


@asynccontextmanager
async def uvicorn_server(urls: ServiceUrls, port: int) -> AsyncIterator[str]:
    environment = {**os.environ, "DATABASE_URL": urls.database_url, "REDIS_URL": urls.redis_url}
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "app.api.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    process = subprocess.Popen(command, env=environment)  # noqa: ASYNC220 - started once
    base = f"http://127.0.0.1:{port}"
    try:
        async with AsyncClient(base_url=base) as probe:
            for _ in range(200):
                try:
                    if (await probe.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


async def over_http(
    urls: ServiceUrls, headers: dict[str, str], seconds: float, connections: int
) -> None:
    print(f"\n[HTTP: uvicorn on 127.0.0.1, {connections} connections, {seconds:g} s each]")
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with (
        uvicorn_server(urls, 8765) as base,
        AsyncClient(base_url=base, limits=limits) as client,
    ):
        (await client.get(PATH, params=YEAR, headers=headers)).raise_for_status()  # warm
        await concurrent(client, "/healthz", {}, {}, 1)  # warm
        report = await concurrent(client, PATH, YEAR, headers, seconds)
        print(report.line("full year, the same query (cache hits)"))
        trivial = await concurrent(client, "/healthz", {}, {}, seconds)
        print(trivial.line("GET /healthz"))
        ratio = report.rate / trivial.rate
        reached = met(ratio >= RATIO_TARGET)
        print(f"report req/s {ratio:.2f} of /healthz's >= {RATIO_TARGET}: {reached}")


async def run(arguments: argparse.Namespace) -> None:
    settings = get_settings()
    server = resolve_service_urls(settings)
    name = arguments.database or f"reckonry_bench_{arguments.size}"
    urls, tenant_id, user_id = await prepare(
        settings, server, name, arguments.size, arguments.reload
    )
    try:
        token = issue_token(resolve_secrets(settings).signing_keys, user_id, 0).token
        headers = {"Authorization": f"Bearer {token}"}
        app = create_app(settings, urls)
        async with app.router.lifespan_context(app):
            outcome = await refresh_reports(app.state.sessions, tenant_id)
        print(f"refresh_reports: {outcome.facts} facts in {outcome.seconds:.2f} s")
        await in_process(settings, urls, headers, arguments.calls)
        if arguments.seconds > 0:
            await over_http(urls, headers, arguments.seconds, arguments.connections)
    finally:
        if arguments.drop:
            await drop_database(server.database_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--database")
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--drop", action="store_true")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
