"""Client profitability on the large sandbox firm: refresh time, latency and throughput.

    uv run python benchmarks/reports_client_profitability.py [--size large] [--calls 300]

Uses `DATABASE_URL` / `REDIS_URL` when set, the embedded servers otherwise; works in a scratch
database that is dropped at the end. Steps:

1. generate the sandbox firm and store it through the sync's own parsers and `RecordStore`
   (rendered exactly as the sandbox's Karbon API serves it, without the 1.8 req/s budget);
2. enter compensation for every staff member and refresh the report facts (timed);
3. time `GET /api/v1/reports/client-profitability` for the last full year in-process over the
   ASGI transport: first uncached (each call a new window, so every call is computed in SQL),
   then as clients usually ask (the same report again, served from the refresh's cache);
4. time a trivial FastAPI endpoint in the same run and print both request rates and the ratio.
"""

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.app import create_app
from app.db import unit_of_work
from app.embedded import ServiceUrls, resolve_service_urls
from app.migrations import upgrade_to_head
from app.models import CompensationPeriod, SyncKind, SyncRun, SyncState, SyncTrigger
from app.reports.refresh import refresh_reports
from app.sandbox import render
from app.sandbox.generator import generate_firm
from app.sandbox.model import Firm
from app.settings import Settings, get_settings
from app.sync.records import (
    Record,
    parse_contact,
    parse_invoice,
    parse_organization,
    parse_timesheet,
    parse_user,
    parse_work_item,
)
from app.sync.store import RecordStore

BASE = "https://api.karbonhq.com"
BATCH = 500
TODAY = date(2026, 11, 2)
PASSWORD = "benchmark passphrase"


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    name = f"reckonry_bench_{uuid.uuid4().hex[:10]}"
    admin_dsn = make_url(server_url).set(drivername="postgresql", database="postgres")
    admin_url = admin_dsn.render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(upgrade_to_head, url)
        yield url
    finally:
        admin = await asyncpg.connect(admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _json(obj: Any) -> Any:
    """What the sync's client gets: the sandbox's JSON, parsed back."""
    return json.loads(render.dumps(obj))


def karbon_records(firm: Firm) -> Iterator[Record]:
    for user in firm.users.values():
        yield parse_user(_json(render.user_summary(user)), _json(render.user_detail(user, BASE)))
    for contact in firm.contacts.values():
        yield parse_contact(_json(render.contact_summary(firm, contact)))
    for org in firm.organizations.values():
        detail = render.organization_detail(firm, org, BASE, [])
        yield parse_organization(_json(render.organization_summary(org)), _json(detail))
    for item in firm.work_items.values():
        summary = render.work_item_summary(firm, item)
        yield parse_work_item(_json(summary), _json(render.work_item_detail(firm, item, BASE)))
    for sheet in firm.timesheets.values():
        yield parse_timesheet(_json(render.timesheet(sheet, with_entries=True)))
    for invoice in firm.visible_invoices():
        detail = render.invoice_detail(invoice, BASE, ["LineItems", "Data"])
        yield parse_invoice(_json(render.invoice_summary(invoice)), _json(detail))


def _batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for record in records:
        if (batch and type(record) is not type(batch[0])) or len(batch) == BATCH:
            yield batch
            batch = []
        batch.append(record)
    if batch:
        yield batch


async def load_firm(
    sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID, firm: Firm
) -> None:
    for batch in _batches(karbon_records(firm)):
        async with unit_of_work(sessions) as session:
            await RecordStore(session, tenant_id, None).save(batch, {})
    async with unit_of_work(sessions) as session:
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
        for index, user in enumerate(firm.users.values()):
            session.add(
                CompensationPeriod(
                    tenant_id=tenant_id,
                    staff_key=user.key,
                    effective_from=firm.history_start,
                    annual_amount=Decimal(60_000 + 1_000 * (index % 40)),
                )
            )


async def timed(call: Callable[[], Awaitable[Any]], times: int) -> list[float]:
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - started)
    return durations


def percentile(durations: list[float], share: float) -> float:
    ordered = sorted(durations)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def describe(name: str, durations: list[float]) -> float:
    rate = len(durations) / sum(durations)
    print(
        f"{name:<44} p50 {statistics.median(durations) * 1000:7.2f} ms   "
        f"p95 {percentile(durations, 0.95) * 1000:7.2f} ms   {rate:8.1f} req/s"
    )
    return rate


def add_trivial_endpoint(app: FastAPI) -> None:
    @app.get("/trivial", include_in_schema=False)
    async def trivial() -> dict[str, str]:
        return {"status": "ok"}


async def sign_up_with_tenant(client: AsyncClient) -> tuple[dict[str, str], uuid.UUID]:
    response = await client.post(
        "/api/v1/signup",
        json={"firm_name": "Benchmark LLP", "email": "bench@example.com", "password": PASSWORD},
    )
    response.raise_for_status()
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    me = (await client.get("/api/v1/me", headers=headers)).json()
    return headers, uuid.UUID(me["tenant"]["id"])


async def run(size: str, calls: int) -> None:
    settings: Settings = get_settings()
    urls = resolve_service_urls(settings)
    started = time.perf_counter()
    firm = generate_firm(size, 0, today=TODAY)
    counts = firm.counts()
    print(f"sandbox firm {size!r} generated in {time.perf_counter() - started:.1f} s: {counts}")
    async with scratch_database(urls.database_url) as database_url:
        service_urls = ServiceUrls(database_url=database_url, redis_url=urls.redis_url)
        app = create_app(settings, service_urls)
        add_trivial_endpoint(app)
        async with app.router.lifespan_context(app):
            transport = ASGITransport(app=app)
            async with AsyncClient(transport=transport, base_url="http://bench") as client:
                headers, tenant_id = await sign_up_with_tenant(client)
                await measure(app, client, headers, tenant_id, firm, calls)


async def measure(
    app: FastAPI,
    client: AsyncClient,
    headers: dict[str, str],
    tenant_id: uuid.UUID,
    firm: Firm,
    calls: int,
) -> None:
    sessions = app.state.sessions
    started = time.perf_counter()
    await load_firm(sessions, tenant_id, firm)
    print(f"stored through the sync's parsers and store in {time.perf_counter() - started:.1f} s")
    outcome = await refresh_reports(sessions, tenant_id)
    print(f"refresh_reports: {outcome.facts} facts in {outcome.seconds:.2f} s")

    year_end = date(TODAY.year - 1, 12, 31)
    path = "/api/v1/reports/client-profitability"
    first = await client.get(path, headers=headers, params={"from": "2025-01-01", "to": year_end})
    first.raise_for_status()
    print(f"groups in the full-year report: {first.json()['total']}")

    windows = iter(range(10_000))

    async def uncached() -> None:
        # A different window each call (ending one day later), so nothing is served from cache.
        end = year_end - timedelta(days=next(windows) % 300)
        start = end - timedelta(days=364)
        response = await client.get(path, headers=headers, params={"from": start, "to": end})
        response.raise_for_status()

    async def cached() -> None:
        params = {"from": "2025-01-01", "to": year_end.isoformat()}
        (await client.get(path, headers=headers, params=params)).raise_for_status()

    async def trivial() -> None:
        (await client.get("/trivial")).raise_for_status()

    print()
    describe("client profitability, full year, computed", await timed(uncached, min(calls, 100)))
    report_rate = describe("client profitability, full year, as served", await timed(cached, calls))
    trivial_rate = describe("trivial FastAPI endpoint", await timed(trivial, calls))
    print(f"\nreport req/s / trivial req/s = {report_rate / trivial_rate:.2f} (target >= 0.50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=["tiny", "small", "medium", "large"])
    parser.add_argument("--calls", type=int, default=300)
    arguments = parser.parse_args()
    asyncio.run(run(arguments.size, arguments.calls))


if __name__ == "__main__":
    main()
