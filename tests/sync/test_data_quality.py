"""What Karbon sends that cannot be read is kept where it can be, and named until it is fixed."""

from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import DataQualityIssue, TimeEntry
from app.sync.store import RecordStore
from app.sync.streams import TIMESHEETS_STREAM
from tests.factories import create_tenant


def _timesheet(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "TimesheetKey": "ts-1",
        "UserKey": "user-1",
        "StartDate": "2026-10-05T00:00:00Z",
        "EndDate": "2026-10-11T00:00:00Z",
        "Status": "Approved",
        "TimeEntries": list(entries),
    }


def _entry(key: str, status: Any) -> dict[str, Any]:
    return {"TimeEntryKey": key, "Minutes": 45, "BilledStatus": status, "ClientKey": "C1"}


async def _write(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, raw: dict[str, Any]
) -> None:
    tokens = TIMESHEETS_STREAM.tokens([raw])
    async with unit_of_work(sessions) as session:
        store = RecordStore(session, tenant_id, uuid4())
        await TIMESHEETS_STREAM.write(store, [raw], {}, tokens)


async def _issues(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> list[DataQualityIssue]:
    async with sessions() as session:
        query = select(DataQualityIssue).where(DataQualityIssue.tenant_id == tenant_id)
        return list((await session.execute(query)).scalars())


async def test_an_unknown_billed_status_keeps_the_timesheet_and_is_named_until_fixed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant_id = await create_tenant(sessions)
    messy = _timesheet(_entry("e1", "Unbilled"), _entry("e2", "WrittenOff"), _entry("e3", None))

    await _write(sessions, tenant_id, messy)
    await _write(sessions, tenant_id, messy)

    async with sessions() as session:
        stored = dict(
            (await session.execute(select(TimeEntry.time_entry_key, TimeEntry.billed_status))).all()
        )
    assert stored == {"e1": "Unbilled", "e2": "WrittenOff", "e3": None}
    first = {
        (i.subject_key, i.field, i.value, i.set_aside) for i in await _issues(sessions, tenant_id)
    }
    assert first == {
        ("e2", "BilledStatus", "WrittenOff", "field"),
        ("e3", "BilledStatus", None, "field"),
    }
    (named,) = [i for i in await _issues(sessions, tenant_id) if i.subject_key == "e2"]
    assert named.client_keys == ["C1"] and named.record_key == "ts-1"
    assert named.first_seen_at < named.last_seen_at

    await _write(sessions, tenant_id, _timesheet(_entry("e1", "Unbilled"), _entry("e2", "Billed")))

    assert await _issues(sessions, tenant_id) == []
