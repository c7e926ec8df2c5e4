"""Writing a page of records: repeated keys, and a write cancelled half-way."""

import asyncio
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import TimeEntry, Timesheet
from app.sync.records import TimesheetRecord, parse_timesheet
from app.sync.store import RecordStore
from app.sync.streams import TIMESHEETS_STREAM
from tests.factories import create_tenant


def _timesheet(key: str, entries: int, *, minutes: int = 60) -> TimesheetRecord:
    return parse_timesheet(
        {
            "TimesheetKey": key,
            "UserKey": "user-1",
            "StartDate": "2026-10-05T00:00:00Z",
            "EndDate": "2026-10-11T00:00:00Z",
            "Status": "Approved",
            "TimeEntries": [
                {
                    "TimeEntryKey": f"{key}-{n}",
                    "Minutes": minutes,
                    "BilledStatus": "Unbilled",
                    "Descriptions": ["x" * 400],
                }
                for n in range(entries)
            ],
        }
    )


async def _save(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, records: list[Any]
) -> None:
    async with unit_of_work(sessions) as session:
        await RecordStore(session, tenant_id, uuid4()).save(TIMESHEETS_STREAM.storage, records, {})


async def _count(sessions: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_key_repeated_within_a_page_is_written_once_with_its_last_values(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant_id = await create_tenant(sessions)
    first, last = _timesheet("ts-1", 2, minutes=30), _timesheet("ts-1", 2, minutes=45)

    await _save(sessions, tenant_id, [first, last])

    async with sessions() as session:
        minutes = (await session.execute(select(TimeEntry.minutes))).scalars().all()
    assert sorted(minutes) == [45, 45]
    assert await _count(sessions, Timesheet) == 1


async def _wait_until_writing(engine: AsyncEngine, task: "asyncio.Task[None]") -> None:
    """Until PostgreSQL runs (or is being sent) the page's INSERT into time_entries."""
    while not task.done():
        async with engine.connect() as connection:
            running = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE state = 'active' AND query LIKE 'INSERT INTO time_entries%'"
                )
            )
        if running:
            return
        await asyncio.sleep(0.005)


async def _end_stuck_writes(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'INSERT INTO time_entries%' AND pid <> pg_backend_pid()"
            )
        )


async def test_a_page_write_cancelled_mid_statement_ends_promptly_and_keeps_what_was_stored(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """An arq timeout or a worker shutdown can cancel a sync in the middle of a page's write;
    the task must end, its connection come back usable, and the page be rolled back."""
    tenant_id = await create_tenant(sessions)
    await _save(sessions, tenant_id, [_timesheet("kept", 3)])
    page = [_timesheet(f"ts-{n}", 500) for n in range(100)]  # 50,000 entries

    write = asyncio.create_task(_save(sessions, tenant_id, page))
    await _wait_until_writing(engine, write)
    assert not write.done(), "the write finished before it could be cancelled"
    write.cancel()
    done, _ = await asyncio.wait([write], timeout=15)
    if not done:
        await _end_stuck_writes(engine)  # so that the tests after this one are not blocked

    assert done, "the cancelled write never ended"
    assert write.cancelled()
    assert await _count(sessions, TimeEntry) == 3
    assert await _count(sessions, Timesheet) == 1


async def test_keys_of_any_length_are_stored_whole(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Karbon sets no length for its keys; time entry keys are long composites. Two keys that
    # share a long prefix must stay two records.
    tenant_id = await create_tenant(sessions)
    prefix = "k" * 600
    await _save(sessions, tenant_id, [_timesheet(f"{prefix}-a", 2), _timesheet(f"{prefix}-b", 1)])

    async with sessions() as session:
        sheets = (await session.execute(select(Timesheet.timesheet_key))).scalars().all()
        entries = (await session.execute(select(TimeEntry.time_entry_key))).scalars().all()
    assert sorted(sheets) == [f"{prefix}-a", f"{prefix}-b"]
    assert sorted(entries) == [f"{prefix}-a-0", f"{prefix}-a-1", f"{prefix}-b-0"]


async def test_money_and_raw_json_are_stored_exactly(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Rows go to PostgreSQL as one JSON document: money must not pass through a float, and a
    # raw body with an integer beyond 64 bits (which orjson declines) must still be written.
    tenant_id = await create_tenant(sessions)
    raw = {
        "TimesheetKey": "ts-1",
        "UserKey": "user-1",
        "StartDate": "2026-10-05T00:00:00Z",
        "EndDate": "2026-10-11T00:00:00Z",
        "Status": "Approved",
        "Huge": 2**70,
        "TimeEntries": [
            {
                "TimeEntryKey": "e-1",
                "Minutes": 90,
                "BilledStatus": "Unbilled",
                "HourlyRate": "1234567890123.4567",
            },
        ],
    }
    await _save(sessions, tenant_id, [parse_timesheet(raw)])

    async with sessions() as session:
        entry = (await session.execute(select(TimeEntry.hourly_rate, TimeEntry.raw))).one()
        sheet_raw = (await session.execute(select(Timesheet.raw))).scalar_one()
    assert entry.hourly_rate == Decimal("1234567890123.4567")
    assert entry.raw["HourlyRate"] == "1234567890123.4567"
    assert sheet_raw["Huge"] == 2**70


async def _synced_at(sessions: async_sessionmaker[AsyncSession], model: Any) -> dict[str, Any]:
    table = model.__table__
    key = next(c for c in table.primary_key.columns if c.name != "tenant_id")
    async with sessions() as session:
        rows = await session.execute(select(key, table.c.synced_at))
        return {str(row[0]): row[1] for row in rows}


async def test_a_timesheet_read_again_unchanged_keeps_its_entries_synced_at(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """What changed since a report refresh is told by `synced_at`: an entry re-read as it was
    (every incremental re-reads weeks of timesheets) is no change."""
    tenant_id = await create_tenant(sessions)
    await _save(sessions, tenant_id, [_timesheet("ts-1", 3)])
    entries, sheets = await _synced_at(sessions, TimeEntry), await _synced_at(sessions, Timesheet)

    await _save(sessions, tenant_id, [_timesheet("ts-1", 3)])  # a later run, same content

    assert await _synced_at(sessions, TimeEntry) == entries
    assert await _synced_at(sessions, Timesheet) == sheets
    await _save(sessions, tenant_id, [_timesheet("ts-1", 3, minutes=75)])
    assert all(
        moved > entries[key] for key, moved in (await _synced_at(sessions, TimeEntry)).items()
    )
