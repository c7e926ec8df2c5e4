"""Data-quality warnings as values, so nobody reads an incomplete number as a complete one.

Warnings are derived from facts (plus the staff and work item lists), so passing only the facts
of a report window gives the warnings that matter for that window.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from app.domain.attribution import Directory
from app.domain.facts import Fact, FactSource
from app.domain.values import FeeType


class WarningKind(StrEnum):
    MISSING_COMPENSATION = "missing_compensation"
    MISSING_CAPACITY = "missing_capacity"
    UNKNOWN_FEE_TYPE = "unknown_fee_type"
    UNKNOWN_CLIENT_TIME = "unknown_client_time"
    UNKNOWN_CLIENT_INVOICE = "unknown_client_invoice"


@dataclass(frozen=True, slots=True, order=True)
class DataWarning:
    kind: WarningKind
    subject_key: str
    """Staff, work item or client key; empty for time with no client at all."""
    subject_name: str
    """The staff member's name, or the client's name for work items and clients."""
    minutes: int = 0
    """Minutes affected, where the warning is about time."""


def collect_warnings(directory: Directory, facts: Iterable[Fact]) -> list[DataWarning]:
    facts = list(facts)
    warnings = [
        *_staff_warnings(directory, facts),
        *_fee_type_warnings(directory, facts),
        *_client_warnings(directory, facts),
    ]
    return sorted(warnings)


def _staff_warnings(directory: Directory, facts: list[Fact]) -> list[DataWarning]:
    names = {member.key: member.name for member in directory.records.staff}
    uncosted: dict[str, int] = defaultdict(int)
    defaulted: dict[str, int] = defaultdict(int)
    for fact in facts:
        if fact.staff_key is not None:
            uncosted[fact.staff_key] += fact.measures.uncosted_minutes
            defaulted[fact.staff_key] += fact.measures.defaulted_capacity_minutes
    with_pay = {period.staff_key for period in directory.records.compensation}
    no_pay = {m.key for m in directory.records.staff if m.key not in with_pay}
    no_capacity = {m.key for m in directory.records.staff if not m.capacity_minutes_per_week}
    no_pay |= {key for key, minutes in uncosted.items() if minutes}
    no_capacity |= {key for key, minutes in defaulted.items() if minutes}
    return [
        *(
            DataWarning(WarningKind.MISSING_COMPENSATION, key, names.get(key, ""), uncosted[key])
            for key in no_pay
        ),
        *(
            DataWarning(WarningKind.MISSING_CAPACITY, key, names.get(key, ""), defaulted[key])
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
        if fact.client_known:
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
