"""Reports on the large sandbox firm: refresh times and p50/p95 of every endpoint, uncached.

    uv run python benchmarks/reports.py [options]

Options:
    --size SIZE         sandbox firm: tiny, small, medium or large (default large)
    --database NAME     dedicated database on the `DATABASE_URL` server
                        (default `reckonry_bench_<size>`); it is kept between runs
    --reload            drop the dedicated database and load the firm again
    --drop              drop the dedicated database at the end
    --calls N           sequential in-process calls per endpoint (default 60)
    --changes N         synced records changed before the incremental refresh (default 300)
    --seconds S         length of each HTTP load run (default 10; 0 skips HTTP)
    --connections C     concurrent HTTP connections of the load generator (default 8)

Uses `DATABASE_URL` / `REDIS_URL` when set, the embedded servers otherwise. The first run
generates the firm and stores it through the sync's own parsers and `RecordStore` (rendered
exactly as the sandbox's Karbon API serves it, without the 1.8 req/s budget): minutes for the
large firm. Later runs reuse the loaded database (migrated to head first). Every run then:

1. refreshes the report tables in full (timed), then again with nothing changed, then after
   `--changes` synced records changed as an incremental sync writes them (time entries
   re-timed, work items re-priced, invoices paid; different ones each run), both timed: the
   incremental refresh against the full one, in the same run; then the report tables are
   vacuumed and analyzed, as autovacuum leaves them (a server may run without it);
2. in-process over the ASGI transport, one request at a time, with the response cache
   emptied before each call: every report endpoint (client profitability by client, owner,
   manager and work type, each also as a monthly series; one client's breakdown; unbilled
   work; staff utilization; the summary) over several windows (the trailing year, calendar
   years, a 365-day window of neither kind, a quarter, days at both edges) with typical
   filters and sorts; p50 and p95 per endpoint against the 100 ms target;
3. the same full-year report repeated (cache hits) and `GET /healthz`, for scale;
4. over real HTTP (unless `--seconds 0`): uvicorn on 127.0.0.1 in a subprocess and a
   concurrent httpx load generator in this process, for the repeated full-year report and for
   `/healthz`: the report's req/s should be at least half of `/healthz`'s.

What the endpoints read (`app.reports.repository`): a window whose per-client sums the refresh
kept reads one row per client; any other window reads the monthly sums for its whole months
and the facts for its edge days. By client, the page is ranked from the sums its sort needs
alone, with the count and the report's totals in the same statement, and only its clients are
summed in full (their monthly sums read by client); by work type, and every report's totals,
read the firm's monthly sums per fee type and work type; by owner or manager, the firm's
monthly sums per owner or per manager. A page past the end still gets its count and totals
from that one statement. Unbilled work is ordered, paged and summed in the database. A
`work_status` filter reads the same monthly sums (they carry the work item's status:
completed, open, or none for work without a synced work item) and the facts of its edge
days, filtered by the status each fact keeps; the kept per-client sums hold every status, so
over a kept window it reads months and edges too. A `primary_status` filter sums the window's
facts by the status each keeps.

Last measured, the firm loaded at migration 0023 into a database that autovacuum never
analyzed (this server runs without it), 2 cores, the default 60 calls. Two runs with nothing
else running (load average 0.9 to 1.3); refresh: full 27.1 and 28.4 s, nothing changed 2.1 s,
after 300 changes 9.2 and 9.3 s (32% to 34% of the full refresh). Endpoints (p50 / p95 ms):

    endpoint                                      run 1 p50 / p95      run 2 p50 / p95
    client profitability by client                  33.3 /  70.6         30.3 /  73.1
    client profitability by owner                   19.3 /  39.5         19.3 /  40.8
    client profitability by manager                 19.9 /  39.7         20.5 /  42.8
    client profitability by work_type               22.9 /  36.3         25.4 /  40.4
    client profitability by client, monthly         44.5 /  80.6         53.7 /  84.7
    client profitability by owner, monthly          28.7 /  43.3         34.8 /  48.4
    client profitability by manager, monthly        30.9 /  47.2         43.6 /  64.0
    client profitability by work_type, monthly      22.6 /  39.0         29.9 /  50.1
    one client (/reports/clients/{key})             16.3 /  20.4         20.7 /  25.9
    unbilled work                                   10.3 /  13.5         13.6 /  18.0
    staff utilization                               34.4 /  41.8         40.8 /  53.8
    summary                                         52.4 /  61.1         60.0 /  68.9

Three earlier runs, beside a storage benchmark at the lowest CPU priority (load average 2.4 to
2.8): full refresh 28.5 to 35.3 s, after 300 changes 10.5 to 11.7 s; worst p95 88.8 ms,
100.6 ms (by client monthly) and 85.7 ms. The 60 calls include the `work_status=completed`
variant, which summed the window's facts one by one before migration 0023 (120 to 400 ms a
call; the worst p95 of the same benchmark was 99 to 169 ms then, on a quiet machine). By
client monthly stays the closest to the target: its statement ranks every client's months of
the window to page and count them (60 to 80 ms of SQL for a 365-day window on a busy machine);
the rest is building the response.

The incremental refresh after 300 changes ran for over nine minutes on a freshly loaded firm
before each refresh analyzed the tables written past autovacuum's threshold (see
`app.db.analyze_stale`): without statistics the planner looked up the changed clients' time
entries as a nested loop over the whole firm.
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
from datetime import UTC, date, datetime
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
from app.reports import service as report_service
from app.reports.kept_sums import REPORT_TABLES
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


# -- the endpoints, uncached -------------------------------------------------------------

WINDOWS: list[dict[str, str]] = [
    {},  # the trailing year up to the last sync, what a report opens on
    YEAR,
    {"from": "2024-01-01", "to": "2024-12-31"},
    {"from": "2025-03-15", "to": "2026-03-14"},  # 365 days, neither calendar year nor trailing
    {"from": "2025-07-01", "to": "2025-09-30"},  # a quarter
    {"from": "2026-02-10", "to": "2026-05-20"},  # days at both edges
]
QueryAt = Callable[[int], tuple[str, dict[str, str]]]
"""The path and parameters of a suite's n-th call."""
PROFITABILITY_VARIANTS: list[dict[str, str]] = [
    {},
    {"sort": "margin", "order": "asc"},
    {"sort": "name", "order": "asc"},
    {"sort": "unbilled_work", "offset": "100"},
    {"fee_type": "FixedFee", "sort": "profit"},
    {"work_status": "completed", "sort": "realization"},
]


def profitability(group_by: str, monthly: bool) -> QueryAt:
    def query(call: int) -> tuple[str, dict[str, str]]:
        window = WINDOWS[call % len(WINDOWS)]
        variant = PROFITABILITY_VARIANTS[(call // len(WINDOWS)) % len(PROFITABILITY_VARIANTS)]
        extra = {"interval": "month", "sort": "month"} if monthly else {}
        return PATH, {**window, **variant, "group_by": group_by, **extra}

    return query


def windowed(path: str) -> QueryAt:
    def query(call: int) -> tuple[str, dict[str, str]]:
        return path, WINDOWS[call % len(WINDOWS)]

    return query


def one_client(keys: list[str]) -> QueryAt:
    def query(call: int) -> tuple[str, dict[str, str]]:
        key = keys[call % len(keys)]
        return f"/api/v1/reports/clients/{key}", WINDOWS[(call // len(keys)) % len(WINDOWS)]

    return query


UNBILLED_VARIANTS: list[dict[str, str]] = [
    {},
    {"sort": "age_days"},
    {"work_status": "completed"},
    {"fee_type": "TimeAndMaterials", "order": "asc"},
    {"offset": "200"},
]


def unbilled(call: int) -> tuple[str, dict[str, str]]:
    return "/api/v1/reports/unbilled-work", UNBILLED_VARIANTS[call % len(UNBILLED_VARIANTS)]


def endpoint_suites(client_keys: list[str]) -> dict[str, QueryAt]:
    suites = {
        f"client profitability by {group}": profitability(group, False)
        for group in ("client", "owner", "manager", "work_type")
    }
    suites |= {
        f"client profitability by {group}, monthly": profitability(group, True)
        for group in ("client", "owner", "manager", "work_type")
    }
    suites["one client (/reports/clients/{key})"] = one_client(client_keys)
    suites["unbilled work"] = unbilled
    suites["staff utilization"] = windowed("/api/v1/reports/staff-utilization")
    suites["summary"] = windowed("/api/v1/reports/summary")
    return suites


async def busiest_clients(database_url: str, tenant_id: uuid.UUID, count: int) -> list[str]:
    """Clients of every size: the busiest, and others spread down the list."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT client_key FROM report_facts WHERE tenant_id = $1 AND client_key IS NOT NULL"
            " GROUP BY client_key ORDER BY count(*) DESC, client_key",
            tenant_id,
        )
    finally:
        await connection.close()
    keys = [row[0] for row in rows]
    step = max(1, len(keys) // count)
    return keys[:3] + keys[::step][: count - 3]


async def in_process(
    settings: Settings,
    urls: ServiceUrls,
    headers: dict[str, str],
    calls: int,
    client_keys: list[str],
) -> bool:
    """Every report endpoint uncached (the response cache emptied before each call), then
    the cached report and `/healthz` for scale. True when every p95 meets the target."""
    app: FastAPI = create_app(settings, urls)
    transport = ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=transport, base_url="http://b") as client,
    ):

        async def get(path: str, params: dict[str, str]) -> None:
            response = await client.get(path, headers=headers, params=params)
            response.raise_for_status()

        print(f"\n[in-process, ASGI transport, one request at a time, {calls} calls each]")
        print("uncached (the response cache is emptied before each call):")
        worst = 0.0
        for name, query in endpoint_suites(client_keys).items():

            async def uncached(
                query: QueryAt = query, calls_made: Iterator[int] = itertools.count()
            ) -> None:
                clear_report_caches()
                await get(*query(next(calls_made)))

            await uncached()  # warm: the first call of a kind pays for imports and plans
            measured = await sequential(uncached, calls)
            worst = max(worst, measured.percentile_ms(0.95))
            print(measured.line(f"  {name}"))

        async def repeated() -> None:
            await get(PATH, YEAR)

        async def healthz() -> None:
            (await client.get("/healthz")).raise_for_status()

        print((await sequential(repeated, calls)).line("full year, the same query (cache hits)"))
        print((await sequential(healthz, calls)).line("GET /healthz"))
        target = f"{P95_TARGET_MS:.0f} ms"
        print(f"worst uncached p95 {worst:.2f} ms < {target}: {met(worst < P95_TARGET_MS)}")
        return worst < P95_TARGET_MS


def clear_report_caches() -> None:
    """Empty every per-process report cache, so a call reads the report tables."""
    report_service._served.clear()


# -- the refresh: full, then after a typical incremental sync ---------------------------

CHANGES = {
    "time_entries": (
        "UPDATE time_entries SET minutes = minutes + 15, synced_at = now()"
        " WHERE tenant_id = $1 AND time_entry_key IN"
        " (SELECT time_entry_key FROM time_entries WHERE tenant_id = $1 AND deleted_at IS NULL"
        " ORDER BY md5(time_entry_key || $2) LIMIT $3)"
    ),
    "work_items": (
        "UPDATE work_items SET fee_value = coalesce(fee_value, 0) + 10, synced_at = now()"
        " WHERE tenant_id = $1 AND work_item_key IN"
        " (SELECT work_item_key FROM work_items WHERE tenant_id = $1"
        " ORDER BY md5(work_item_key || $2) LIMIT $3)"
    ),
    "invoices": (
        "UPDATE invoices SET amount_due = 0, synced_at = now()"
        " WHERE tenant_id = $1 AND invoice_key IN"
        " (SELECT invoice_key FROM invoices WHERE tenant_id = $1 AND deleted_at IS NULL"
        " ORDER BY md5(invoice_key || $2) LIMIT $3)"
    ),
}
"""A day's changes as an incremental sync writes them: entries whose minutes changed, work
items whose fee changed, invoices paid (`synced_at` moves with each, as in the sync)."""


async def apply_changes(database_url: str, tenant_id: uuid.UUID, records: int) -> dict[str, int]:
    """Change `records` synced rows (time entries mostly), different ones each run."""
    salt = uuid.uuid4().hex
    shares = {"time_entries": records * 2 // 3, "work_items": records // 6}
    shares["invoices"] = records - sum(shares.values())
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            for table, share in shares.items():
                await connection.execute(CHANGES[table], tenant_id, salt, share)
    finally:
        await connection.close()
    return shares


async def refresh_times(
    urls: ServiceUrls, settings: Settings, tenant_id: uuid.UUID, changed: int
) -> None:
    app = create_app(settings, urls)
    async with app.router.lifespan_context(app):
        sessions = app.state.sessions
        full = await refresh_reports(sessions, tenant_id, full=True)
        print(f"\nfull refresh: {full.facts} facts in {full.seconds:.2f} s")
        quiet = await refresh_reports(sessions, tenant_id)
        print(f"refresh with nothing changed: {quiet.seconds:.2f} s ({quiet.kind})")
        shares = await apply_changes(urls.database_url, tenant_id, changed)
        after = await refresh_reports(sessions, tenant_id)
        described = ", ".join(f"{count} {table}" for table, count in shares.items())
        print(
            f"refresh after an incremental sync ({described} changed): {after.seconds:.2f} s"
            f" ({after.kind}, {after.clients} clients recomputed)"
        )
        print(f"incremental refresh / full refresh: {after.seconds / full.seconds:.1%}")


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


async def vacuum(database_url: str) -> None:
    """The report tables as autovacuum leaves them after a refresh replaced their rows: dead
    rows gone, fresh planner statistics. A server run without autovacuum (as a test server
    may be) would otherwise keep every earlier run's dead rows, each run slower than the
    last. Then a checkpoint, as the server makes within minutes of a refresh: otherwise the
    first endpoints timed share the disk with the refresh's pages being written out."""
    tables = ", ".join(model.__tablename__ for model in REPORT_TABLES)
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f"VACUUM (ANALYZE) {tables}")
        await connection.execute("ANALYZE")
        await connection.execute("CHECKPOINT")
    finally:
        await connection.close()


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
        await refresh_times(urls, settings, tenant_id, arguments.changes)
        await vacuum(urls.database_url)
        client_keys = await busiest_clients(urls.database_url, tenant_id, 20)
        await in_process(settings, urls, headers, arguments.calls, client_keys)
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
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
