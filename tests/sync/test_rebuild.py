from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import (
    Client,
    Invoice,
    InvoiceLine,
    Staff,
    SyncKind,
    TimeEntry,
    Timesheet,
    WorkItem,
)
from app.sync.footprints import NORMALIZED
from app.sync.rebuild import rebuild_from_raw
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, sync_now
from tests.sync.test_engine import assert_same, expected_from, stored

Tables = dict[str, list[dict[str, Any]]]


async def normalized_tables(sessions: async_sessionmaker[AsyncSession], tenant_id: UUID) -> Tables:
    """Every column of every normalized row, but when it was written."""
    tables: Tables = {}
    async with sessions() as session:
        for model in NORMALIZED:  # quarantined records included
            table = model.__table__
            keys = list(table.primary_key.columns)
            columns = [c for c in table.columns if c.name != "synced_at"]
            query = select(*columns).where(table.c.tenant_id == tenant_id).order_by(*keys)
            tables[table.name] = [dict(row._mapping) for row in await session.execute(query)]
    return tables


async def scramble_derived_columns(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> None:
    """What a rebuild must restore: every column derived from the raw JSON, wrong."""
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(Staff)
            .where(Staff.tenant_id == tenant_id)
            .values(name="?", capacity_minutes_per_week=None)
        )
        await session.execute(
            update(Client).where(Client.tenant_id == tenant_id).values(owner_email=None, name="?")
        )
        await session.execute(
            update(WorkItem)
            .where(WorkItem.tenant_id == tenant_id)
            .values(title="?", fee_value=None, client_key=None)
        )
        await session.execute(
            update(TimeEntry).where(TimeEntry.tenant_id == tenant_id).values(minutes=0)
        )
        await session.execute(
            update(Invoice).where(Invoice.tenant_id == tenant_id).values(total=None, status="?")
        )
        await session.execute(
            update(InvoiceLine).where(InvoiceLine.tenant_id == tenant_id).values(amount=0)
        )


async def test_a_rebuild_gives_back_every_normalized_table_exactly_without_karbon(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await sync_now(job_context, tenant_id)
    sandbox.advance("Demo firm", 60)
    await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)
    await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)  # a quiet one
    synced = await normalized_tables(sessions, tenant_id)
    await scramble_derived_columns(sessions, tenant_id)
    assert await normalized_tables(sessions, tenant_id) != synced
    requests_before = sandbox.counters("Demo firm")["requests"]

    summary = await rebuild_from_raw(sessions, tenant_id)

    assert sandbox.counters("Demo firm")["requests"] == requests_before, "no network"
    assert summary.records > 0 and summary.rejected == 0
    assert await normalized_tables(sessions, tenant_id) == synced
    assert_same(await stored(sessions, tenant_id), expected_from(sandbox.tenant("Demo firm").firm))


async def test_each_time_entry_is_kept_once_not_inside_its_timesheet_too(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await sync_now(job_context, tenant_id)
    async with sessions() as session:
        timesheets = (await session.execute(select(Timesheet.raw))).scalars().all()
        entries = (await session.execute(select(TimeEntry.raw))).scalars().all()
    assert timesheets and entries
    assert all("TimeEntries" not in raw for raw in timesheets)
    assert all("TimeEntryKey" in raw for raw in entries)


def _objects_with(value: Any, key: str) -> int:
    """How many JSON objects inside `value` carry `key`."""
    if isinstance(value, dict):
        return int(key in value) + sum(_objects_with(v, key) for v in value.values())
    if isinstance(value, list):
        return sum(_objects_with(v, key) for v in value)
    return 0


async def _kept_json(sessions: async_sessionmaker[AsyncSession], *models: Any) -> list[Any]:
    """Every JSON value the tables of `models` hold."""
    values: list[Any] = []
    async with sessions() as session:
        for model in models:
            columns = [c for c in model.__table__.columns if isinstance(c.type, JSONB)]
            for row in await session.execute(select(*columns)) if columns else []:
                values.extend(row)
    return values


async def test_each_invoice_line_is_kept_once_and_rebuilt_exactly(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A line comes in the invoice's list record (when the list expands them) and again in
    its detail; its row is derived from them."""
    sandbox.config.update({"invoice_list_includes_line_items": True})
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await sync_now(job_context, tenant_id)
    sandbox.advance("Demo firm", 20)
    await sync_now(job_context, tenant_id, SyncKind.FULL)
    synced = await normalized_tables(sessions, tenant_id)
    async with sessions() as session:
        lines = await session.scalar(select(func.count()).select_from(InvoiceLine))
        with_detail = await session.scalar(
            select(func.count()).where(Invoice.raw_detail.is_not(None))
        )

    kept = await _kept_json(sessions, Invoice, InvoiceLine)

    assert lines and with_detail, "lines from lists and from details"
    assert sum(_objects_with(value, "LineItemKey") for value in kept) == lines
    await scramble_derived_columns(sessions, tenant_id)
    await rebuild_from_raw(sessions, tenant_id)
    assert await normalized_tables(sessions, tenant_id) == synced
