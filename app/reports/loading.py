"""A tenant's live synced rows and entered compensation, as the domain's plain values.

Columns are selected explicitly (no ORM objects, no raw JSON) because a large firm has
hundreds of thousands of time entries and this runs after every sync.
"""

from collections import defaultdict
from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, select, union, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.costs import repository as costs_repository
from app.costs.service import to_domain_periods
from app.domain import (
    BilledStatus,
    Client,
    ClientType,
    CompensationPeriod,
    DataEntityType,
    DataWarning,
    FeeType,
    Invoice,
    InvoiceDataLine,
    InvoiceLine,
    InvoiceStatus,
    LineType,
    StaffMember,
    TenantRecords,
    TimeEntry,
    WarningKind,
    WorkItem,
)
from app.domain.money import ZERO
from app.models import Client as ClientRow
from app.models import DataQualityIssue, Staff
from app.models import Invoice as InvoiceRow
from app.models import InvoiceLine as InvoiceLineRow
from app.models import TimeEntry as TimeEntryRow
from app.models import WorkItem as WorkItemRow
from app.reports import changes
from app.reports.keys import keys_select


async def load_data_issues(session: AsyncSession, tenant_id: UUID) -> list[DataWarning]:
    """What the sync could not read, as warnings about each client it concerns (firm-wide
    when the record names none), dated when the record is, named by entity and field."""
    query = select(
        DataQualityIssue.entity,
        DataQualityIssue.field,
        DataQualityIssue.set_aside,
        DataQualityIssue.client_keys,
        DataQualityIssue.record_date,
    ).where(DataQualityIssue.tenant_id == tenant_id)
    warnings = []
    for entity, field, set_aside, client_keys, on in await session.execute(query):
        kind = (
            WarningKind.UNREADABLE_FIELD if set_aside == "field" else WarningKind.SET_ASIDE_RECORD
        )
        subject = f"{entity}.{field}"
        concerned: list[str | None] = [*client_keys] or [None]
        for client_key in concerned:
            warnings.append(DataWarning(kind, subject, "", client_key=client_key, on=on))
    return warnings


async def load_records(session: AsyncSession, tenant_id: UUID) -> TenantRecords:
    return TenantRecords(
        staff=await load_staff(session, tenant_id),
        compensation=await load_compensation(session, tenant_id),
        clients=await _clients(session, tenant_id),
        work_items=await _work_items(session, tenant_id),
        time_entries=await _time_entries(session, tenant_id),
        invoices=await _invoices(session, tenant_id),
    )


async def load_client_records(
    session: AsyncSession, tenant_id: UUID, clients: Collection[str], invoices: Collection[str]
) -> TenantRecords:
    """What the figures of `clients` are evaluated from: every staff member, compensation
    period and synced client; the clients' work items and the time on them or naming the
    clients; every invoice of the clients or naming one of their keys, work items or time
    entries, and `invoices`; and the work items and time entries those invoices and entries
    name, so each line and entry is attributed as in a full evaluation.

    Keys are found first and rows then read by key (a list of keys is joined by hash, never
    searched row by row)."""
    client_keys = keys_select(clients)
    own_work = select(WorkItemRow.work_item_key).where(
        WorkItemRow.tenant_id == tenant_id, WorkItemRow.client_key.in_(client_keys)
    )
    own_time = union(
        select(TimeEntryRow.time_entry_key).where(
            *_live_time(tenant_id), TimeEntryRow.work_item_key.in_(own_work)
        ),
        select(TimeEntryRow.time_entry_key).where(
            *_live_time(tenant_id), TimeEntryRow.client_key.in_(client_keys)
        ),
    )
    entry_keys = set((await session.execute(own_time)).scalars())
    named = union_all(client_keys, own_work, keys_select(entry_keys)).subquery()
    invoice_keys = union(
        select(InvoiceRow.invoice_key).where(
            InvoiceRow.tenant_id == tenant_id, InvoiceRow.client_key.in_(client_keys)
        ),
        changes.naming_invoices(tenant_id, select(named.c[0])),
        keys_select(invoices),
    )
    found = await _invoices(
        session, tenant_id, InvoiceRow.invoice_key.in_(invoice_keys.scalar_subquery())
    )
    referenced = {key for invoice in found for key in _named_keys(invoice)}
    time_entries = await _time_entries(
        session,
        tenant_id,
        TimeEntryRow.time_entry_key.in_(keys_select(entry_keys | referenced)),
    )
    work_keys = {e.work_item_key for e in time_entries if e.work_item_key} | referenced
    work_item_keys = union(own_work, keys_select(work_keys)).scalar_subquery()
    return TenantRecords(
        staff=await load_staff(session, tenant_id),
        compensation=await load_compensation(session, tenant_id),
        clients=await _clients(session, tenant_id),
        work_items=await _work_items(
            session, tenant_id, WorkItemRow.work_item_key.in_(work_item_keys)
        ),
        time_entries=time_entries,
        invoices=found,
    )


def _live_time(tenant_id: UUID) -> list[ColumnElement[bool]]:
    return [TimeEntryRow.tenant_id == tenant_id, TimeEntryRow.deleted_at.is_(None)]


def _named_keys(invoice: Invoice) -> Iterable[str]:
    for line in invoice.lines:
        if line.entity_key:
            yield line.entity_key
    for data_line in invoice.data_lines or ():
        if data_line.entity_key:
            yield data_line.entity_key


async def load_compensation(
    session: AsyncSession, tenant_id: UUID
) -> tuple[CompensationPeriod, ...]:
    return to_domain_periods(await costs_repository.compensation_periods(session, tenant_id))


def _client_type(value: str | None) -> ClientType:
    try:
        return ClientType(value or "")
    except ValueError:
        return ClientType.CONTACT


async def load_staff(session: AsyncSession, tenant_id: UUID) -> tuple[StaffMember, ...]:
    query = select(Staff.user_key, Staff.name, Staff.capacity_minutes_per_week).where(
        Staff.tenant_id == tenant_id, Staff.deleted_at.is_(None)
    )
    return tuple(StaffMember(*row) for row in await session.execute(query))


async def _clients(session: AsyncSession, tenant_id: UUID) -> tuple[Client, ...]:
    query = select(
        ClientRow.client_key,
        ClientRow.client_type,
        ClientRow.name,
        ClientRow.owner_email,
        ClientRow.manager_email,
    ).where(ClientRow.tenant_id == tenant_id, ClientRow.deleted_at.is_(None))
    return tuple(
        Client(key, _client_type(kind), name, owner, manager)
        for key, kind, name, owner, manager in await session.execute(query)
    )


async def _work_items(
    session: AsyncSession, tenant_id: UUID, *only: ColumnElement[bool]
) -> tuple[WorkItem, ...]:
    """Work items deleted in Karbon included: their time and invoices keep the client and
    fee type they last had."""
    query = select(
        WorkItemRow.work_item_key,
        WorkItemRow.client_key,
        WorkItemRow.client_type,
        WorkItemRow.client_name,
        WorkItemRow.fee_type,
        WorkItemRow.fee_value,
        WorkItemRow.primary_status,
        WorkItemRow.completed_date,
        WorkItemRow.work_type,
        WorkItemRow.deleted_at,
    ).where(WorkItemRow.tenant_id == tenant_id, WorkItemRow.client_key.is_not(None), *only)
    return tuple(
        WorkItem(
            key=row.work_item_key,
            client_key=row.client_key,
            client_type=_client_type(row.client_type),
            client_name=row.client_name or "",
            fee_type=FeeType(row.fee_type) if row.fee_type else FeeType.UNKNOWN,
            fee_value=row.fee_value,
            primary_status=row.primary_status or "",
            completed_date=row.completed_date,
            work_type=row.work_type,
            deleted_in_karbon=row.deleted_at is not None,
        )
        for row in await session.execute(query)
    )


async def load_work_item_statuses(
    session: AsyncSession, tenant_id: UUID, keys: Collection[str]
) -> dict[str, str]:
    """The Karbon `PrimaryStatus` of those of `keys` synced ('' for none), deleted work items
    included: what the report rows keep of their work item's status."""
    status = func.coalesce(WorkItemRow.primary_status, "")
    query = select(WorkItemRow.work_item_key, status).where(
        WorkItemRow.tenant_id == tenant_id, WorkItemRow.work_item_key.in_(keys_select(keys))
    )
    return {key: value for key, value in await session.execute(query)}


async def _time_entries(
    session: AsyncSession, tenant_id: UUID, *only: ColumnElement[bool]
) -> tuple[TimeEntry, ...]:
    query = select(
        TimeEntryRow.time_entry_key,
        TimeEntryRow.user_key,
        TimeEntryRow.entry_date,
        TimeEntryRow.minutes,
        TimeEntryRow.hourly_rate,
        TimeEntryRow.billed_status,
        TimeEntryRow.work_item_key,
        TimeEntryRow.client_key,
        TimeEntryRow.client_type,
    ).where(TimeEntryRow.tenant_id == tenant_id, TimeEntryRow.deleted_at.is_(None), *only)
    statuses = {status.value: status for status in BilledStatus}
    return tuple(
        TimeEntry(
            key=row.time_entry_key,
            user_key=row.user_key,
            entry_date=row.entry_date,
            minutes=row.minutes,
            hourly_rate=row.hourly_rate if row.hourly_rate is not None else ZERO,
            billed_status=statuses.get(row.billed_status or ""),
            work_item_key=row.work_item_key,
            client_key=row.client_key,
            client_type=_client_type(row.client_type) if row.client_type else None,
        )
        for row in await session.execute(query)
    )


async def _invoices(
    session: AsyncSession, tenant_id: UUID, *only: ColumnElement[bool]
) -> tuple[Invoice, ...]:
    query = select(
        InvoiceRow.invoice_key,
        InvoiceRow.invoice_number,
        InvoiceRow.status,
        InvoiceRow.invoice_date,
        InvoiceRow.karbon_updated_at,
        InvoiceRow.client_key,
        InvoiceRow.client_type,
        InvoiceRow.client_name,
        InvoiceRow.currency_code,
        InvoiceRow.total,
        InvoiceRow.subtotal,
        InvoiceRow.amount_due,
        InvoiceRow.data_lines,
    ).where(InvoiceRow.tenant_id == tenant_id, InvoiceRow.deleted_at.is_(None), *only)
    rows = (await session.execute(query)).all()
    keys = None if not only else [row.invoice_key for row in rows]
    lines = await _invoice_lines(session, tenant_id, keys)
    statuses = {status.value: status for status in InvoiceStatus}
    return tuple(
        Invoice(
            key=row.invoice_key,
            number=row.invoice_number or "",
            status=statuses.get(row.status or ""),
            invoice_date=row.invoice_date or row.karbon_updated_at.date(),
            client_key=row.client_key,
            client_type=_client_type(row.client_type) if row.client_key else None,
            client_name=row.client_name or "",
            currency=row.currency_code or "",
            invoice_total=row.total or ZERO,
            invoice_sub_total=row.subtotal or ZERO,
            total_amount_due=row.amount_due or ZERO,
            lines=tuple(lines.get(row.invoice_key, ())),
            data_lines=None if row.data_lines is None else _data_lines(row.data_lines),
        )
        for row in rows
    )


async def _invoice_lines(
    session: AsyncSession, tenant_id: UUID, invoice_keys: list[str] | None
) -> dict[str, list[InvoiceLine]]:
    """The lines of `invoice_keys` (None: of every invoice), by invoice."""
    query = (
        select(
            InvoiceLineRow.invoice_key,
            InvoiceLineRow.position,
            InvoiceLineRow.line_item_key,
            InvoiceLineRow.billable_item_type,
            InvoiceLineRow.billable_item_entity_key,
            InvoiceLineRow.amount,
        )
        .where(InvoiceLineRow.tenant_id == tenant_id)
        .order_by(InvoiceLineRow.invoice_key, InvoiceLineRow.position)
    )
    if invoice_keys is not None:
        query = query.where(InvoiceLineRow.invoice_key.in_(keys_select(invoice_keys)))
    types = {kind.value: kind for kind in LineType}
    by_invoice: dict[str, list[InvoiceLine]] = defaultdict(list)
    for invoice_key, position, key, kind, entity_key, amount in await session.execute(query):
        by_invoice[invoice_key].append(
            InvoiceLine(
                key=key or f"{invoice_key}:{position}",
                item_type=LineType.ENTITY if kind is None else types.get(kind),
                entity_key=entity_key,
                amount=amount,
            )
        )
    return by_invoice


def _data_lines(raw_lines: Iterable[dict[str, Any]]) -> tuple[InvoiceDataLine, ...]:
    """The Data tab as Karbon sends it: `Work`, `Service` and `Expenses` each with `Billed`."""
    entity_types = {kind.value: kind for kind in DataEntityType}
    return tuple(
        InvoiceDataLine(
            entity_key=str(raw.get("EntityKey") or ""),
            entity_type=entity_types.get(str(raw.get("EntityType")), DataEntityType.CLIENT),
            billed=_amount(raw.get("Billed")) or ZERO,
            work_billed=_part_billed(raw, "Work"),
            expenses_billed=_part_billed(raw, "Expenses"),
            service_billed=_part_billed(raw, "Service"),
            service_work_type=(raw.get("Service") or {}).get("WorkType"),
        )
        for raw in raw_lines
    )


def _part_billed(raw: dict[str, Any], part: str) -> Decimal | None:
    section = raw.get(part)
    return _amount(section.get("Billed")) if isinstance(section, dict) else None


def _amount(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None
