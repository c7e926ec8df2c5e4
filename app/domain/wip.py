"""Unbilled work (rule 9) as of the last sync, and fixed-fee write-up/down (rule 10).

* Time and materials, time straight on a client, and time on a work item whose fee type is not
  known yet: entries ``Unbilled`` or ``Draft`` at standard value, one item per client and work
  item. Unknown fee types are shown under their own fee type (and flagged) rather than hidden,
  because leaving them out would understate WIP without saying so.
* Fixed fee: ``max(0, FeeValue - fee lines of all non-voided invoices attributed to it)``,
  ``Approved`` included, once it has time logged or is completed. Its entries are never WIP.
* Non-billable: never WIP.

Age is in days up to ``as_of``: from the oldest unbilled entry for time-based WIP; for fixed fee
from the completed date, or from its first time entry while it is still in progress.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from app.domain.attribution import Directory, LineKind
from app.domain.costing import standard_value
from app.domain.facts import fee_type_of_entry
from app.domain.figures import write_up_down
from app.domain.money import ZERO, total
from app.domain.values import UNBILLED_STATUSES, FeeType, TimeEntry, WorkItem

TIME_BASED_WIP = frozenset({FeeType.TIME_AND_MATERIALS, FeeType.UNKNOWN, None})
"""Fee types whose unbilled entries are WIP (``None``: time straight on a client)."""


@dataclass(frozen=True, slots=True)
class WipItem:
    client_key: str | None
    client_known: bool
    work_item_key: str | None
    fee_type: FeeType | None
    work_type: str | None
    amount: Decimal
    since: date
    age_days: int


@dataclass(frozen=True, slots=True)
class FixedFeePosition:
    """A fixed-fee work item's fee against what was invoiced and the time it took, to date."""

    work_item: WorkItem
    invoiced: Decimal
    """Fee lines of all non-voided invoices attributed to it, ``Approved`` included."""
    minutes: int
    standard_value: Decimal
    first_entry_date: date | None

    @property
    def fee_value(self) -> Decimal:
        return self.work_item.fixed_fee_value

    @property
    def write_up_down(self) -> Decimal:
        return write_up_down(self.fee_value, self.standard_value)

    @property
    def wip(self) -> Decimal:
        has_time = self.first_entry_date is not None
        if not has_time and not self.work_item.is_completed:
            return ZERO
        return max(ZERO, self.fee_value - self.invoiced)


def fixed_fee_positions(directory: Directory) -> list[FixedFeePosition]:
    invoiced: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for line in directory.attributed_lines:
        if line.work_item_key is not None and line.line.kind is LineKind.FEE:
            invoiced[line.work_item_key] += line.line.amount
    entries = _entries_by_work_item(directory)
    positions = []
    for work_item in directory.records.work_items:
        if work_item.fee_type is not FeeType.FIXED_FEE:
            continue
        own = entries.get(work_item.key, [])
        positions.append(
            FixedFeePosition(
                work_item=work_item,
                invoiced=invoiced[work_item.key],
                minutes=sum(entry.minutes for entry in own),
                standard_value=total(standard_value(e.minutes, e.hourly_rate) for e in own),
                first_entry_date=min((entry.entry_date for entry in own), default=None),
            )
        )
    return positions


def build_wip(directory: Directory, as_of: date) -> list[WipItem]:
    items = _time_based_wip(directory, as_of)
    for position in fixed_fee_positions(directory):
        if position.wip > 0:
            items.append(_fixed_fee_wip(directory, position, as_of))
    return items


def _age(since: date, as_of: date) -> int:
    return max(0, (as_of - since).days)


def _fixed_fee_wip(directory: Directory, position: FixedFeePosition, as_of: date) -> WipItem:
    work_item = position.work_item
    since = work_item.completed_date if work_item.is_completed else None
    since = since or position.first_entry_date or as_of
    return WipItem(
        client_key=work_item.client_key,
        client_known=directory.is_known_client(work_item.client_key),
        work_item_key=work_item.key,
        fee_type=FeeType.FIXED_FEE,
        work_type=work_item.work_type,
        amount=position.wip,
        since=since,
        age_days=_age(since, as_of),
    )


def _time_based_wip(directory: Directory, as_of: date) -> list[WipItem]:
    groups: dict[tuple[str | None, str | None], list[TimeEntry]] = defaultdict(list)
    for entry in directory.records.time_entries:
        if entry.billed_status not in UNBILLED_STATUSES:
            continue
        if fee_type_of_entry(directory, entry) not in TIME_BASED_WIP:
            continue
        groups[(directory.client_of_entry(entry), entry.work_item_key)].append(entry)
    items = []
    for (client_key, work_item_key), entries in groups.items():
        amount = total(standard_value(e.minutes, e.hourly_rate) for e in entries)
        if amount <= 0:
            continue
        work_item = directory.work_items.get(work_item_key) if work_item_key else None
        since = min(entry.entry_date for entry in entries)
        items.append(
            WipItem(
                client_key=client_key,
                client_known=directory.is_known_client(client_key),
                work_item_key=work_item_key,
                fee_type=fee_type_of_entry(directory, entries[0]),
                work_type=work_item.work_type if work_item else None,
                amount=amount,
                since=since,
                age_days=_age(since, as_of),
            )
        )
    return items


def _entries_by_work_item(directory: Directory) -> dict[str, list[TimeEntry]]:
    grouped: dict[str, list[TimeEntry]] = defaultdict(list)
    for entry in directory.records.time_entries:
        if entry.work_item_key is not None:
            grouped[entry.work_item_key].append(entry)
    return grouped
