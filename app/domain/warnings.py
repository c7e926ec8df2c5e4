"""Data-quality warnings as values, so nobody reads an incomplete number as a complete one.

Warnings are derived from facts (plus the staff and work item lists), so passing only the facts
of a report window gives the warnings that matter for that window. Warnings about records
(an unattributed invoice, time on a work item deleted in Karbon) also carry the client and
the date they concern, so a report can show only those of the clients and window in view.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from app.domain.attribution import Directory
from app.domain.facts import Fact, FactSource
from app.domain.money import ZERO
from app.domain.values import CompensationPeriod, FeeType, StaffMember


class WarningKind(StrEnum):
    MISSING_COMPENSATION = "missing_compensation"
    MISSING_CAPACITY = "missing_capacity"
    UNKNOWN_FEE_TYPE = "unknown_fee_type"
    UNKNOWN_CLIENT_TIME = "unknown_client_time"
    UNKNOWN_CLIENT_INVOICE = "unknown_client_invoice"
    UNATTRIBUTED_INVOICE = "unattributed_invoice"
    """An invoice without a client whose lines do not say whose it is either."""
    DELETED_WORK_ITEM = "deleted_work_item"
    """Time on a work item Karbon no longer lists (kept with its last known fee type)."""
    UNREADABLE_FIELD = "unreadable_field"
    """A record kept with a field that could not be read (named when it was synced)."""
    SET_ASIDE_RECORD = "set_aside_record"
    """A record, entry or line that could not be read at all (named when it was synced)."""


@dataclass(frozen=True, slots=True)
class DataWarning:
    kind: WarningKind
    subject_key: str
    """Staff, work item, client or invoice key; empty for time with no client at all."""
    subject_name: str
    """The staff member's name, the client's name for work items and clients, the invoice's
    number for invoices."""
    minutes: int = 0
    """Minutes affected, where the warning is about time."""
    amount: Decimal = ZERO
    """Money affected (before tax), where the warning is about an invoice."""
    client_key: str | None = None
    """The client it concerns, when it concerns one."""
    on: date | None = None
    """The date it concerns (the entry's or the invoice's), when it is dated."""


def collect_warnings(directory: Directory, facts: Iterable[Fact]) -> list[DataWarning]:
    facts = list(facts)
    warnings = [
        *_staff_warnings(directory, facts),
        *_fee_type_warnings(directory, facts),
        *_client_warnings(directory, facts),
        *_unattributed_invoices(directory),
        *_deleted_work_items(directory, facts),
    ]
    return sorted(warnings, key=_order)


def _order(warning: DataWarning) -> tuple[str, str, date, str]:
    return (warning.kind, warning.subject_key, warning.on or date.min, warning.client_key or "")


def _staff_warnings(directory: Directory, facts: list[Fact]) -> list[DataWarning]:
    uncosted: dict[str, int] = defaultdict(int)
    defaulted: dict[str, int] = defaultdict(int)
    for fact in facts:
        if fact.staff_key is not None:
            uncosted[fact.staff_key] += fact.measures.uncosted_minutes
            defaulted[fact.staff_key] += fact.measures.defaulted_capacity_minutes
    records = directory.records
    return staff_warnings(records.staff, records.compensation, uncosted, defaulted)


def staff_warnings(
    staff: Iterable[StaffMember],
    compensation: Iterable[CompensationPeriod],
    uncosted: Mapping[str, int],
    defaulted: Mapping[str, int],
) -> list[DataWarning]:
    """Staff without pay or capacity, with the minutes of all their time that was left
    uncosted (`uncosted`) or costed at the default capacity (`defaulted`), per staff key."""
    staff = tuple(staff)
    names = {member.key: member.name for member in staff}
    with_pay = {period.staff_key for period in compensation}
    no_pay = {m.key for m in staff if m.key not in with_pay}
    no_capacity = {m.key for m in staff if not m.capacity_minutes_per_week}
    no_pay |= {key for key, minutes in uncosted.items() if minutes}
    no_capacity |= {key for key, minutes in defaulted.items() if minutes}
    return [
        *(
            DataWarning(
                WarningKind.MISSING_COMPENSATION, key, names.get(key, ""), uncosted.get(key, 0)
            )
            for key in no_pay
        ),
        *(
            DataWarning(
                WarningKind.MISSING_CAPACITY, key, names.get(key, ""), defaulted.get(key, 0)
            )
            for key in no_capacity
        ),
    ]


def _fee_type_warnings(directory: Directory, facts: list[Fact]) -> list[DataWarning]:
    minutes: dict[str, int] = {
        work_item.key: 0
        for work_item in directory.records.work_items
        if work_item.fee_type is FeeType.UNKNOWN
    }
    for fact in facts:
        if fact.fee_type is FeeType.UNKNOWN and fact.work_item_key is not None:
            minutes[fact.work_item_key] = minutes.get(fact.work_item_key, 0) + fact.measures.minutes
    return [
        DataWarning(WarningKind.UNKNOWN_FEE_TYPE, key, _work_item_name(directory, key), spent)
        for key, spent in minutes.items()
    ]


def _work_item_name(directory: Directory, key: str) -> str:
    work_item = directory.work_items.get(key)
    return work_item.client_name if work_item else ""


def _client_warnings(directory: Directory, facts: list[Fact]) -> list[DataWarning]:
    time: dict[str, int] = defaultdict(int)
    invoiced: set[str] = set()
    for fact in facts:
        if fact.client_known or _unattributed(fact):
            continue
        key = fact.client_key or ""
        if fact.source is FactSource.TIME_ENTRY:
            time[key] += fact.measures.minutes
        elif fact.source in (FactSource.INVOICE_LINE, FactSource.INVOICE):
            invoiced.add(key)
    return [
        *(DataWarning(WarningKind.UNKNOWN_CLIENT_TIME, k, "", m) for k, m in time.items()),
        *(DataWarning(WarningKind.UNKNOWN_CLIENT_INVOICE, k, "") for k in invoiced),
    ]


def _unattributed(fact: Fact) -> bool:
    return fact.client_key is None and fact.source is not FactSource.TIME_ENTRY


def _unattributed_invoices(directory: Directory) -> list[DataWarning]:
    """Rule 2 for an invoice without a client: what its lines cannot attribute, with the
    amount (before tax) left unattributed."""
    amounts: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for line in directory.attributed_lines:
        if line.client_key is None:
            amounts[line.invoice.key] += line.line.amount
    for invoice in directory.records.invoices:
        lineless = not invoice.lines and not invoice.data_lines
        if invoice.client_key is None and lineless and not invoice.is_voided:
            amounts[invoice.key] += invoice.invoice_sub_total
    invoices = {invoice.key: invoice for invoice in directory.records.invoices}
    return [
        DataWarning(
            WarningKind.UNATTRIBUTED_INVOICE,
            key,
            invoices[key].number,
            amount=amount,
            on=invoices[key].invoice_date,
        )
        for key, amount in amounts.items()
    ]


def _deleted_work_items(directory: Directory, facts: list[Fact]) -> list[DataWarning]:
    """Time on each work item deleted in Karbon, per client and day."""
    deleted = {w.key: w for w in directory.records.work_items if w.deleted_in_karbon}
    minutes: dict[tuple[str, date], int] = defaultdict(int)
    for fact in facts:
        if fact.source is FactSource.TIME_ENTRY and fact.work_item_key in deleted:
            minutes[(fact.work_item_key, fact.fact_date)] += fact.measures.minutes
    shown = {key for key, _ in minutes}
    undated = [(key, None) for key in deleted if key not in shown]
    return [
        DataWarning(
            WarningKind.DELETED_WORK_ITEM,
            key,
            deleted[key].client_name,
            minutes.get((key, on), 0) if on else 0,
            client_key=deleted[key].client_key,
            on=on,
        )
        for key, on in [*minutes, *undated]
    ]
