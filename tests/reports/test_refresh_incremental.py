"""An incremental refresh writes exactly the report tables a full refresh writes.

A synced sandbox firm is edited at random the way syncs change it (entries re-timed, re-billed,
moved or deleted; work items re-priced, completed, moved to another client or deleted;
invoices paid, voided or re-attributed; clients renamed; new entries), and after each round of
edits the incremental refresh's tables are compared row for row with a full refresh's.
"""

import random
from collections.abc import Callable, Coroutine
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import (
    Client,
    CompensationPeriod,
    Invoice,
    InvoiceLine,
    ReportRefresh,
    SyncKind,
    TimeEntry,
    WorkItem,
)
from app.reports import changes
from app.reports.kept_sums import REPORT_TABLES
from app.reports.refresh import RefreshOutcome, refresh_reports
from tests.reports.conftest import SyncedFirm
from tests.sync.conftest import sync_now

Edit = Callable[[AsyncSession, UUID, random.Random], Coroutine[Any, Any, None]]
Table = list[tuple[Any, ...]]


async def report_tables(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> dict[str, Table]:
    """Every report table's rows of the firm (row ids aside), in a stable order; and the
    refresh's currency and fact count."""
    tables: dict[str, Table] = {}
    async with sessions() as session:
        for model in REPORT_TABLES:
            columns = [c for c in model.__table__.columns if c.name != "id"]
            query = select(*columns).where(model.tenant_id == tenant_id)
            rows = [tuple(row) for row in await session.execute(query)]
            tables[model.__tablename__] = sorted(rows, key=repr)
        state = await session.get(ReportRefresh, tenant_id)
        assert state is not None
        tables["report_refreshes"] = [(state.currency, state.facts, state.as_of)]
    return tables


async def _pick(session: AsyncSession, key: Any, rng: random.Random, *where: Any) -> Any:
    model = key.class_
    query = select(key).where(*where).order_by(key)
    keys = list((await session.execute(query)).scalars())
    assert keys, f"no {model.__tablename__} to edit"
    return rng.choice(keys)


def _live(model: Any, tenant_id: UUID) -> list[Any]:
    return [model.tenant_id == tenant_id, model.deleted_at.is_(None)]


async def retime_entry(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    key = await _pick(session, TimeEntry.time_entry_key, rng, *_live(TimeEntry, tenant_id))
    await session.execute(
        update(TimeEntry)
        .where(TimeEntry.tenant_id == tenant_id, TimeEntry.time_entry_key == key)
        .values(
            minutes=rng.choice([0, 15, 60, 95, 480]),
            billed_status=rng.choice(["Unbilled", "Billed", "Draft", "InterimBilled", None]),
            hourly_rate=Decimal(rng.choice([0, 80, 150, 233])),
        )
    )


async def move_entry(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    """To another work item (often another client's), or straight onto a client."""
    key = await _pick(session, TimeEntry.time_entry_key, rng, *_live(TimeEntry, tenant_id))
    work_item = await _pick(session, WorkItem.work_item_key, rng, WorkItem.tenant_id == tenant_id)
    client = await _pick(session, Client.client_key, rng, Client.tenant_id == tenant_id)
    to_client = rng.random() < 0.3
    await session.execute(
        update(TimeEntry)
        .where(TimeEntry.tenant_id == tenant_id, TimeEntry.time_entry_key == key)
        .values(work_item_key=None if to_client else work_item, client_key=client)
    )


async def delete_entry(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    key = await _pick(session, TimeEntry.time_entry_key, rng, *_live(TimeEntry, tenant_id))
    await session.execute(
        update(TimeEntry)
        .where(TimeEntry.tenant_id == tenant_id, TimeEntry.time_entry_key == key)
        .values(deleted_at=func.now())
    )


async def add_entry(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    """A new entry like an existing one, a few days later."""
    key = await _pick(session, TimeEntry.time_entry_key, rng, *_live(TimeEntry, tenant_id))
    like = await session.get_one(TimeEntry, (tenant_id, key))
    session.add(
        TimeEntry(
            tenant_id=tenant_id,
            time_entry_key=f"{key}-new-{rng.randrange(10**9)}",
            timesheet_key=like.timesheet_key,
            user_key=like.user_key,
            entry_date=like.entry_date + timedelta(days=rng.randrange(1, 20)),
            period_end=like.period_end,
            work_item_key=like.work_item_key,
            client_key=like.client_key,
            client_type=like.client_type,
            minutes=rng.choice([30, 120]),
            hourly_rate=like.hourly_rate,
            billed_status="Unbilled",
            raw={},
        )
    )


async def reprice_work_item(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    key = await _pick(session, WorkItem.work_item_key, rng, WorkItem.tenant_id == tenant_id)
    completed = rng.random() < 0.5
    await session.execute(
        update(WorkItem)
        .where(WorkItem.tenant_id == tenant_id, WorkItem.work_item_key == key)
        .values(
            fee_type=rng.choice(["FixedFee", "TimeAndMaterials", "NonBillable"]),
            fee_value=Decimal(rng.choice([0, 500, 2500])),
            primary_status="Completed" if completed else "InProgress",
            completed_date=func.current_date() if completed else None,
            work_type=rng.choice(["Tax", "Bookkeeping", None]),
        )
    )


async def move_work_item(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    key = await _pick(session, WorkItem.work_item_key, rng, WorkItem.tenant_id == tenant_id)
    client = await _pick(session, Client.client_key, rng, Client.tenant_id == tenant_id)
    await session.execute(
        update(WorkItem)
        .where(WorkItem.tenant_id == tenant_id, WorkItem.work_item_key == key)
        .values(client_key=client, client_name=f"Moved {rng.randrange(100)}")
    )


async def delete_work_item(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    key = await _pick(session, WorkItem.work_item_key, rng, *_live(WorkItem, tenant_id))
    await session.execute(
        update(WorkItem)
        .where(WorkItem.tenant_id == tenant_id, WorkItem.work_item_key == key)
        .values(deleted_at=func.now())
    )


async def settle_invoice(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    key = await _pick(session, Invoice.invoice_key, rng, *_live(Invoice, tenant_id))
    status = rng.choice(["Paid", "Voided", "Approved", "AwaitingPayment"])
    values: dict[str, Any] = {"status": status}
    if status == "Paid":
        values["amount_due"] = Decimal(0)
    await session.execute(
        update(Invoice)
        .where(Invoice.tenant_id == tenant_id, Invoice.invoice_key == key)
        .values(**values)
    )


async def reattribute_line(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    """An invoice re-read with a line naming another work item (often another client's):
    its Data tab when it has one, else a presentation line."""
    invoice_key = await _pick(session, Invoice.invoice_key, rng, *_live(Invoice, tenant_id))
    work_item = await _pick(session, WorkItem.work_item_key, rng, WorkItem.tenant_id == tenant_id)
    invoice = await session.get_one(Invoice, (tenant_id, invoice_key))
    if invoice.data_lines:
        lines = [dict(line) for line in invoice.data_lines]
        lines[0] |= {"EntityKey": work_item, "EntityType": "Work Item"}
        changed: dict[str, Any] = {"data_lines": lines}
    else:
        await session.execute(
            update(InvoiceLine)
            .where(InvoiceLine.tenant_id == tenant_id, InvoiceLine.invoice_key == invoice_key)
            .values(billable_item_entity_key=work_item)
        )
        changed = {"lines_known": True}
    await session.execute(
        update(Invoice)
        .where(Invoice.tenant_id == tenant_id, Invoice.invoice_key == invoice_key)
        .values(**changed)
    )


async def delete_invoice(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    key = await _pick(session, Invoice.invoice_key, rng, *_live(Invoice, tenant_id))
    await session.execute(
        update(Invoice)
        .where(Invoice.tenant_id == tenant_id, Invoice.invoice_key == key)
        .values(deleted_at=func.now())
    )


async def rename_client(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    key = await _pick(session, Client.client_key, rng, Client.tenant_id == tenant_id)
    await session.execute(
        update(Client)
        .where(Client.tenant_id == tenant_id, Client.client_key == key)
        .values(name=f"Renamed {rng.randrange(1000)}", owner_email="someone@example.com")
    )


async def delete_client(session: AsyncSession, tenant_id: UUID, rng: random.Random) -> None:
    key = await _pick(session, Client.client_key, rng, *_live(Client, tenant_id))
    await session.execute(
        update(Client)
        .where(Client.tenant_id == tenant_id, Client.client_key == key)
        .values(deleted_at=func.now())
    )


EDITS: list[Edit] = [
    retime_entry,
    retime_entry,
    move_entry,
    delete_entry,
    add_entry,
    reprice_work_item,
    move_work_item,
    delete_work_item,
    settle_invoice,
    reattribute_line,
    delete_invoice,
    rename_client,
    delete_client,
]


async def _edit(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, rng: random.Random, count: int
) -> list[str]:
    done = []
    async with unit_of_work(sessions) as session:
        for _ in range(count):
            edit = rng.choice(EDITS)
            await edit(session, tenant_id, rng)
            done.append(edit.__name__)
    return done


@pytest.fixture
def any_share_incremental(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny firm has few clients: let an incremental refresh recompute any share of them."""
    monkeypatch.setattr(changes, "FULL_REFRESH_SHARE", 1.0)


@pytest.mark.usefixtures("any_share_incremental")
async def test_incremental_refresh_writes_what_a_full_refresh_writes(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = synced_firm.tenant_id
    first = await refresh_reports(sessions, tenant_id)
    assert first.kind == "full"
    rng = random.Random(19)
    outcomes: list[RefreshOutcome] = []
    for round_number in range(14):
        done = await _edit(sessions, tenant_id, rng, rng.randint(1, 4))
        outcome = await refresh_reports(sessions, tenant_id)
        outcomes.append(outcome)
        incremental = await report_tables(sessions, tenant_id)
        await refresh_reports(sessions, tenant_id, full=True)
        assert incremental == await report_tables(sessions, tenant_id), (round_number, done)
    recomputed = [o.clients for o in outcomes if o.kind == "incremental"]
    assert len(recomputed) >= len(outcomes) // 2, [o.kind for o in outcomes]
    async with sessions() as session:
        all_clients = (await session.execute(select(func.count()).select_from(Client))).scalar()
    assert min(c or 0 for c in recomputed) < (all_clients or 0)


async def test_nothing_changed_recomputes_no_client(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    before = await report_tables(sessions, synced_firm.tenant_id)
    outcome = await refresh_reports(sessions, synced_firm.tenant_id)
    assert (outcome.kind, outcome.clients) == ("incremental", 0)
    assert await report_tables(sessions, synced_firm.tenant_id) == before


async def test_a_change_of_compensation_refreshes_everything(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = synced_firm.tenant_id
    await refresh_reports(sessions, tenant_id)
    async with unit_of_work(sessions) as session:
        staff_key = await _pick(
            session, TimeEntry.user_key, random.Random(1), *_live(TimeEntry, tenant_id)
        )
        session.add(
            CompensationPeriod(
                tenant_id=tenant_id,
                staff_key=staff_key,
                effective_from=date(2000, 1, 1),
                annual_amount=Decimal(90_000),
            )
        )
    outcome = await refresh_reports(sessions, tenant_id)
    assert outcome.kind == "full"
    incremental = await report_tables(sessions, tenant_id)
    await refresh_reports(sessions, tenant_id, full=True)
    assert incremental == await report_tables(sessions, tenant_id)


async def test_a_sync_that_finds_nothing_new_leaves_the_next_refresh_incremental(
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
) -> None:
    """Every run re-reads some lists whole (users, work items): rows it writes back unchanged
    are not changes, or every refresh after a sync would recompute the whole firm."""
    await refresh_reports(sessions, synced_firm.tenant_id)
    _, outcome = await sync_now(job_context, synced_firm.tenant_id, SyncKind.INCREMENTAL)
    assert outcome == "succeeded"
    refreshed = await refresh_reports(sessions, synced_firm.tenant_id)
    assert (refreshed.kind, refreshed.clients) == ("incremental", 0)


async def test_a_refresh_leaves_the_tables_it_filled_analyzed(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """However far behind autovacuum is (a server may run without it), the report queries
    after a refresh plan on statistics that count the rows it wrote."""
    rows = text("SELECT reltuples FROM pg_class WHERE oid = 'report_facts'::regclass")
    async with sessions() as session:
        await session.execute(text("TRUNCATE report_facts"))  # no rows counted by its statistics
        await session.commit()

    outcome = await refresh_reports(sessions, synced_firm.tenant_id, full=True)

    async with sessions() as session:
        estimate = (await session.execute(rows)).scalar_one()
    assert outcome.facts > 50
    assert estimate == outcome.facts
