"""What changed since a firm's last report refresh, so a refresh recomputes only those clients.

Every write of a synced row sets its `synced_at` to the writing transaction's start
(`now()`), deletions included (they set `deleted_at`). A refresh records `changes_since`: the
start of the oldest transaction running when it began, its own included. A row the refresh did
not see was written by a transaction still running then or begun later, so its `synced_at` is
at or after `changes_since`; the next refresh reads every row written since then (some it may
have seen already, which costs only their clients' recomputation). This relies on the sync and
the refresh using one database role: `pg_stat_activity` shows another role's transactions only
to a privileged one.

A changed record changes the figures of the clients it counted for at the last refresh (read
from the report rows it left: its facts, WIP, fixed-fee position and warnings) and of the clients
it counts for now; an invoice whose lines name a changed record may be attributed anew, so its
clients are recomputed too. Anything wider falls back to a full refresh: a change of staff, cost
settings or compensation (they price every entry), a new `as_of` day (every WIP item ages),
figures without a client, or work on work items that are not synced.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import CompensationPeriod, CostSettings, WarningKind
from app.models import (
    Client,
    Invoice,
    InvoiceLine,
    ReportFact,
    ReportFixedFee,
    ReportRefresh,
    ReportWarning,
    ReportWipItem,
    Staff,
    TimeEntry,
    WorkItem,
)
from app.reports.keys import keys_select

FULL_REFRESH_SHARE = 0.25
"""Recomputing more than this share of a firm's clients is done as a full refresh."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What an incremental refresh recomputes: every report row of `clients`, from their
    records and every invoice that counts for them, and the invoices changed since the last
    refresh (which may count for other clients now)."""

    clients: frozenset[str]
    invoices: frozenset[str]


async def oldest_transaction_start(session: AsyncSession) -> datetime:
    """The start of the oldest transaction of a client running in this database, this one
    included (a long vacuum writes no synced row and would hold the mark back)."""
    query = text(
        "SELECT min(xact_start) FROM pg_stat_activity"
        " WHERE datname = current_database() AND backend_type = 'client backend'"
        " AND xact_start IS NOT NULL"
    )
    started: datetime = (await session.execute(query)).scalar_one()
    return started


def inputs_digest(settings: CostSettings, compensation: Iterable[CompensationPeriod]) -> str:
    """A digest of what prices every time entry: the cost settings and compensation (staff
    rows are synced: their changes are found by `synced_at`)."""
    priced = (
        settings.overhead_rate,
        settings.working_weeks_per_year,
        settings.default_capacity_hours_per_week,
        settings.recognition.name,
        sorted((p.staff_key, p.effective_from, p.annual_amount) for p in compensation),
    )
    return hashlib.sha256(repr(priced).encode()).hexdigest()


async def incremental_scope(
    session: AsyncSession,
    tenant_id: UUID,
    previous: ReportRefresh | None,
    as_of: datetime | None,
    digest: str,
) -> Scope | None:
    """The clients to recompute since `previous`, or None when only a full refresh is sure."""
    if previous is None or previous.changes_since is None or previous.inputs_digest != digest:
        return None
    if as_of is None or previous.as_of is None or as_of.date() != previous.as_of.date():
        return None
    since = previous.changes_since
    if await _any_changed(session, tenant_id, Staff, since):
        return None
    if await _has_unscoped_work(session, tenant_id):
        return None
    work_items = await _changed(session, tenant_id, WorkItem.work_item_key, since)
    entries = await _changed(session, tenant_id, TimeEntry.time_entry_key, since)
    invoices = await _changed(session, tenant_id, Invoice.invoice_key, since)
    clients = await _changed(session, tenant_id, Client.client_key, since)
    named = work_items | entries | clients
    invoices |= await _invoices_naming(session, tenant_id, named)
    touched = clients | await _clients_before(session, tenant_id, work_items, entries | invoices)
    touched |= await _clients_now(session, tenant_id, work_items, entries, invoices)
    if None in touched:
        return None
    scope = Scope(frozenset(k for k in touched if k is not None), invoices)
    if len(scope.clients) > FULL_REFRESH_SHARE * await _client_count(session, tenant_id):
        return None
    return scope


def _live(model: Any, tenant_id: UUID) -> list[ColumnElement[bool]]:
    return [model.tenant_id == tenant_id, model.deleted_at.is_(None)]


async def _any_changed(session: AsyncSession, tenant_id: UUID, model: Any, since: datetime) -> bool:
    query = select(model.tenant_id).where(model.tenant_id == tenant_id, model.synced_at >= since)
    return (await session.execute(query.limit(1))).first() is not None


async def _has_unscoped_work(session: AsyncSession, tenant_id: UUID) -> bool:
    """Time on work items that are not synced: its fee-type warning sums several clients."""
    query = select(ReportWarning.id).where(
        ReportWarning.tenant_id == tenant_id,
        ReportWarning.kind == WarningKind.UNKNOWN_FEE_TYPE.value,
        ReportWarning.scope_key.is_(None),
    )
    return (await session.execute(query.limit(1))).first() is not None


async def _changed(
    session: AsyncSession, tenant_id: UUID, key: Any, since: datetime
) -> frozenset[str]:
    model = key.class_
    query = select(key).where(model.tenant_id == tenant_id, model.synced_at >= since)
    return frozenset((await session.execute(query)).scalars())


async def _invoices_naming(
    session: AsyncSession, tenant_id: UUID, keys: frozenset[str]
) -> frozenset[str]:
    """Live invoices with a line or a Data line that names one of `keys`."""
    if not keys:
        return frozenset()
    query = naming_invoices(tenant_id, keys_select(keys))
    return frozenset((await session.execute(query)).scalars())


def naming_invoices(tenant_id: UUID, keys: Select[Any]) -> CompoundSelect[Any]:
    """Keys of the live invoices whose presentation lines or Data lines name one of `keys`
    (a one-column select: joined by hash, never searched per line)."""
    by_line = (
        select(InvoiceLine.invoice_key)
        .join(
            Invoice,
            (Invoice.tenant_id == InvoiceLine.tenant_id)
            & (Invoice.invoice_key == InvoiceLine.invoice_key),
        )
        .where(
            InvoiceLine.tenant_id == tenant_id,
            Invoice.deleted_at.is_(None),
            InvoiceLine.billable_item_entity_key.in_(keys),
        )
    )
    lines = case(
        (func.jsonb_typeof(Invoice.data_lines) == "array", Invoice.data_lines),
        else_=literal_column("'[]'::jsonb"),
    )
    data_line = func.jsonb_array_elements(lines).table_valued("value").lateral("d")
    named = data_line.c.value.op("->>")(literal_column("'EntityKey'"))
    by_data_line = (
        select(Invoice.invoice_key)
        .join(data_line, true())
        .where(*_live(Invoice, tenant_id), named.in_(keys))
    )
    return union(by_line, by_data_line)


async def _clients_before(
    session: AsyncSession, tenant_id: UUID, work_items: frozenset[str], records: frozenset[str]
) -> set[str | None]:
    """The clients the last refresh counted these work items and records (time entries,
    invoices) for."""
    if not work_items and not records:
        return set()
    wi, rk = keys_select(work_items), keys_select(records)
    queries = [
        select(ReportFact.client_key).where(
            ReportFact.tenant_id == tenant_id,
            or_(ReportFact.record_key.in_(rk), ReportFact.work_item_key.in_(wi)),
        ),
        select(ReportWipItem.client_key).where(
            ReportWipItem.tenant_id == tenant_id, ReportWipItem.work_item_key.in_(wi)
        ),
        select(ReportFixedFee.client_key).where(
            ReportFixedFee.tenant_id == tenant_id, ReportFixedFee.work_item_key.in_(wi)
        ),
        select(ReportWarning.scope_key).where(
            ReportWarning.tenant_id == tenant_id,
            ReportWarning.subject_key.in_(wi),
            ReportWarning.scope_key.is_not(None),
        ),
    ]
    return set((await session.execute(union(*queries))).scalars())


async def _clients_now(
    session: AsyncSession,
    tenant_id: UUID,
    work_items: frozenset[str],
    entries: frozenset[str],
    invoices: frozenset[str],
) -> set[str | None]:
    """The clients these records count for now: a work item's; a time entry's (its work
    item's, else its own) and the client it names; the same for the time on a changed work
    item; an invoice's."""
    wi, te, inv = keys_select(work_items), keys_select(entries), keys_select(invoices)
    known_work_item = (
        (WorkItem.tenant_id == TimeEntry.tenant_id)
        & (WorkItem.work_item_key == TimeEntry.work_item_key)
        & WorkItem.client_key.is_not(None)
    )
    entries_query = (
        select(func.coalesce(WorkItem.client_key, TimeEntry.client_key), TimeEntry.client_key)
        .outerjoin(WorkItem, known_work_item)
        .where(
            *_live(TimeEntry, tenant_id),
            or_(TimeEntry.time_entry_key.in_(te), TimeEntry.work_item_key.in_(wi)),
        )
    )
    found: set[str | None] = set()
    for counted_for, named in await session.execute(entries_query):
        found |= {counted_for, *([named] if named else [])}
    queries = [
        select(WorkItem.client_key).where(
            WorkItem.tenant_id == tenant_id,
            WorkItem.work_item_key.in_(wi),
            WorkItem.client_key.is_not(None),
        ),
        select(Invoice.client_key).where(*_live(Invoice, tenant_id), Invoice.invoice_key.in_(inv)),
    ]
    return found | set((await session.execute(union(*queries))).scalars())


async def _client_count(session: AsyncSession, tenant_id: UUID) -> int:
    query = select(func.count()).select_from(Client).where(Client.tenant_id == tenant_id)
    count: int = (await session.execute(query)).scalar_one()
    return count
