"""What saying how complete a report is costs, at the large firm's size, mid-way through its
first sync.

    uv run python benchmarks/report_completeness.py [--calls N]

Builds a scratch database on the `DATABASE_URL` server (dropped at the end) holding one firm
of the large sandbox firm's size: 31,858 work items over 5,000 clients, 150,000 time entries
by 120 people, and a first sync half-way: every work item's and invoice's detail owed
(67,387 `pending_details` rows) and every person's (capacity), the worst case for the
query of the clients that may move. Prints:

1. the completeness a refresh records before it reads (median and max of 5), with every
   person's detail owed (the first minutes) and once people's details are read;
2. a report's context read, refresh state and completeness in one statement (median and
   p95 of N), against the refresh state alone (the read before completeness), measured in
   the same run.
"""

import argparse
import asyncio
import statistics
import time
from uuid import UUID, uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, create_sessionmaker, unit_of_work
from app.reports import completeness, repository
from app.settings import Settings
from tests.services import scratch_database, test_service_urls

WORK_ITEMS = 31_858
INVOICES = 35_529
CLIENTS = 5_000
STAFF = 120
TIME_ENTRIES = 150_000


async def _load(session: AsyncSession, tenant_id: UUID) -> None:
    tenant = {"tenant": tenant_id}
    await session.execute(
        text("INSERT INTO tenants (id, name) VALUES (:tenant, 'Large firm')"), tenant
    )
    await session.execute(
        text(
            "INSERT INTO sync_runs (id, tenant_id, kind, trigger, state, requested_at, "
            "requests_made, request_rate, progress, checkpoint) VALUES (:run, :tenant, "
            "'initial', 'connect', 'running', now(), 0, 0, CAST(:progress AS jsonb), '{}')"
        ),
        {
            **tenant,
            "run": uuid4(),
            "progress": '{"users": {"state": "listed", "records": 120}, '
            '"work_items": {"state": "listed", "records": 31858}, '
            '"invoices": {"state": "running", "records": 20000}}',
        },
    )
    await session.execute(
        text(
            "INSERT INTO work_items (tenant_id, work_item_key, client_key, title, raw) "
            "SELECT :tenant, 'wi-' || g, 'c-' || (g % :clients), 'Work', '{}' "
            "FROM generate_series(1, :n) g"
        ),
        {**tenant, "clients": CLIENTS, "n": WORK_ITEMS},
    )
    await session.execute(
        text(
            "INSERT INTO time_entries (tenant_id, time_entry_key, timesheet_key, user_key, "
            "entry_date, period_end, work_item_key, client_key, minutes, raw) "
            "SELECT :tenant, 'te-' || g, 'ts-' || (g / 10), 'u-' || (g % :staff), "
            "DATE '2026-01-05', DATE '2026-01-11', 'wi-' || (g % :work_items + 1), "
            "'c-' || (g % :clients), 60, '{}' FROM generate_series(1, :n) g"
        ),
        {
            **tenant,
            "staff": STAFF,
            "work_items": WORK_ITEMS,
            "clients": CLIENTS,
            "n": TIME_ENTRIES,
        },
    )
    for stream, prefix, count, client in (
        ("work_items", "wi-", WORK_ITEMS, "'c-' || (g % 5000)"),
        ("invoices", "inv-", INVOICES, "'c-' || (g % 5000)"),
        ("users", "u-", STAFF, "NULL"),
    ):
        await session.execute(
            text(
                "INSERT INTO pending_details (tenant_id, stream, record_key, priority, "
                f"client_key, enqueued_at) SELECT :tenant, :stream, :prefix || (g - 1), 10, "
                f"{client}, now() FROM generate_series(1, :n) g"
            ),
            {**tenant, "stream": stream, "prefix": prefix, "n": count},
        )
    await session.execute(text("ANALYZE"))


async def _record_times(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> list[tuple[float, completeness.Completeness]]:
    times = []
    for _ in range(5):
        async with unit_of_work(sessions) as session:
            started = time.perf_counter()
            kept = await completeness.record(session, tenant_id)
            times.append((time.perf_counter() - started, kept))
    return times


def _s(times: list[tuple[float, completeness.Completeness]]) -> str:
    seconds = [elapsed for elapsed, _ in times]
    return f"median {statistics.median(seconds):.3f} s, max {max(seconds):.3f} s"


def _ms(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


async def main(calls: int) -> None:
    urls = test_service_urls()
    async with scratch_database(urls.database_url) as url:
        engine = create_engine(url, pool_size=2)
        sessions = create_sessionmaker(engine)
        tenant_id = uuid4()
        async with unit_of_work(sessions) as session:
            await _load(session, tenant_id)
        recorded = await _record_times(sessions, tenant_id)
        kept = recorded[-1][1]
        async with unit_of_work(sessions) as session:
            await session.execute(text("DELETE FROM pending_details WHERE stream = 'users'"))
        staff_read = await _record_times(sessions, tenant_id)
        async with unit_of_work(sessions) as session:
            await session.execute(
                text(
                    "INSERT INTO report_refreshes (tenant_id, version, refreshed_at, facts, "
                    "duration_ms) VALUES (:tenant, 1, now(), 0, 0)"
                ),
                {"tenant": tenant_id},
            )
        with_completeness, state_only = [], []
        async with sessions() as session:
            for _ in range(calls):
                started = time.perf_counter()
                await repository.refresh_state(session, tenant_id)
                state_only.append(time.perf_counter() - started)
                session.expunge_all()
                started = time.perf_counter()
                await completeness.refresh_with_completeness(session, tenant_id)
                with_completeness.append(time.perf_counter() - started)
                session.expunge_all()
        await engine.dispose()
    print(
        f"firm: {WORK_ITEMS:,} work items, {TIME_ENTRIES:,} time entries, {CLIENTS:,} clients; "
        f"{WORK_ITEMS + INVOICES + STAFF:,} details owed"
    )
    print(
        f"1. completeness recorded by a refresh, every person's detail owed: {_s(recorded)} "
        f"({len(kept.moving_clients):,} clients may move)"
    )
    print(f"   once people's details are read (they are read first): {_s(staff_read)}")
    print(f"2. report context read, with completeness: {_ms(with_completeness)}")
    print(f"   refresh state alone (baseline, same run): {_ms(state_only)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    Settings()  # fail early on a broken environment
    asyncio.run(main(parser.parse_args().calls))
