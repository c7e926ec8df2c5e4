"""Who a time entry or an invoice line belongs to (rules 2 and 6).

Known clients are the synced contacts and organizations plus every client that a work item, an
invoice or a time entry names as a Client Group: groups are clients in their own right but no
endpoint lists them, so they are known from the records that point at them (named from the work
item's or invoice's client name). A contact or organization key that is not synced is unknown
and is flagged, but its time and revenue are kept under that key.

Invoice lines: when an invoice carries its Data tab, the Data lines replace the presentation
lines, because presentation lines may be consolidated ("Professional services") while the Data
tab says which work items were billed. A recurring invoice is the exception: its Data tab names
only services, and its presentation lines name the fixed-fee work item. A Data line splits into
a fee part (work or service) and an expense part. Both sources are before tax.

Gaps Karbon's spec allows: an invoice without a client is attributed by what each line names
(a work item's client, a time entry's client, or a client's own key); a line whose
``BillableItemType`` could not be read is a fee of the invoice's client. Work items deleted in
Karbon are in the directory still (flagged), so their time and lines keep the client and fee
type they last had.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cached_property

from app.domain.money import ZERO
from app.domain.values import (
    Client,
    ClientType,
    DataEntityType,
    Invoice,
    InvoiceDataLine,
    LineType,
    TenantRecords,
    TimeEntry,
    WorkItem,
)


class LineKind(StrEnum):
    FEE = "fee"
    EXPENSE = "expense"


@dataclass(frozen=True, slots=True)
class BillingLine:
    """One billable amount of an invoice, from a presentation line or a Data-tab line."""

    key: str
    kind: LineKind
    entity_key: str | None
    amount: Decimal
    work_type: str | None = None
    """A work type the line itself names (a recurring service), used when no work item is known."""
    type_known: bool = True
    """False for a ``BillableItemType`` that could not be read: the line is then a fee of the
    invoice's client, and its entity key names a client only when the invoice has none."""


@dataclass(frozen=True, slots=True)
class AttributedLine:
    invoice: Invoice
    line: BillingLine
    client_key: str | None
    """``None``: neither the invoice nor the line says whose it is (unattributed)."""
    work_item: WorkItem | None

    @property
    def work_item_key(self) -> str | None:
        return self.work_item.key if self.work_item else None


class Directory:
    """Index of one tenant's synced keys, used to resolve opaque Karbon keys."""

    def __init__(self, records: TenantRecords) -> None:
        self.records = records
        self.work_items: Mapping[str, WorkItem] = {w.key: w for w in records.work_items}
        self.time_entries: Mapping[str, TimeEntry] = {t.key: t for t in records.time_entries}
        self.clients: Mapping[str, Client] = _known_clients(records)
        self.synced_client_keys = frozenset(c.key for c in records.clients)

    def is_known_client(self, client_key: str | None) -> bool:
        return client_key is not None and client_key in self.clients

    def work_item_of_entry(self, entry: TimeEntry) -> WorkItem | None:
        if entry.work_item_key is None:
            return None
        return self.work_items.get(entry.work_item_key)

    def client_of_entry(self, entry: TimeEntry) -> str | None:
        """Rule 6: the work item's client when the work item is known, else the entry's."""
        work_item = self.work_item_of_entry(entry)
        return work_item.client_key if work_item else entry.client_key

    def work_item_of_line(self, line: BillingLine) -> WorkItem | None:
        """Rule 2: a synced work item key, or a synced time entry key (then its work item)."""
        key = line.entity_key
        if key is None:
            return None
        if key in self.work_items:
            return self.work_items[key]
        entry = self.time_entries.get(key)
        return self.work_item_of_entry(entry) if entry else None

    @cached_property
    def attributed_lines(self) -> tuple[AttributedLine, ...]:
        """Every line of every invoice that is not voided (rule 1: voided is ignored)."""
        return tuple(
            line
            for invoice in self.records.invoices
            if not invoice.is_voided
            for line in self.attribute(invoice)
        )

    def attribute(self, invoice: Invoice) -> list[AttributedLine]:
        attributed = []
        for line in billing_lines(invoice):
            work_item = self.work_item_of_line(line) if line.type_known else None
            if work_item is not None:
                client_key: str | None = work_item.client_key
            else:
                client_key = invoice.client_key or self.client_named_by(line)
            attributed.append(AttributedLine(invoice, line, client_key, work_item))
        return attributed

    def client_named_by(self, line: BillingLine) -> str | None:
        """For an invoice without a client: the client a line's entity key leads to (a work
        item's, a time entry's, or a known client's own key)."""
        key = line.entity_key
        if key is None:
            return None
        if key in self.work_items:
            return self.work_items[key].client_key
        if key in self.time_entries:
            return self.client_of_entry(self.time_entries[key])
        return key if key in self.clients else None


def billing_lines(invoice: Invoice) -> list[BillingLine]:
    if _attributed_by_data_tab(invoice):
        assert invoice.data_lines is not None
        return [
            part
            for index, data_line in enumerate(invoice.data_lines)
            for part in _data_line_parts(invoice.key, index, data_line)
        ]
    return [
        BillingLine(
            key=line.key,
            kind=LineKind.EXPENSE if line.item_type is LineType.EXPENSE else LineKind.FEE,
            entity_key=line.entity_key,
            amount=line.amount,
            type_known=line.item_type is not None,
        )
        for line in invoice.lines
    ]


def _attributed_by_data_tab(invoice: Invoice) -> bool:
    """The Data tab when there is one, except on a recurring invoice: its Data tab names only
    services (no work item), while its presentation lines name the fixed-fee work item billed,
    which the work item's revenue and WIP need."""
    data = invoice.data_lines
    if data is None:
        return False
    recurring = bool(data) and all(d.entity_type is DataEntityType.SERVICE for d in data)
    return not (recurring and invoice.lines)


def _data_line_parts(invoice_key: str, index: int, data: InvoiceDataLine) -> list[BillingLine]:
    key = f"{invoice_key}:data:{index}"
    parts = (data.work_billed, data.service_billed, data.expenses_billed)
    if all(part is None for part in parts):
        fee = data.billed
    else:
        fee = (data.work_billed or ZERO) + (data.service_billed or ZERO)
    expenses = data.expenses_billed or ZERO
    # A service key is not a work item or client key; its revenue stays with the invoice's client.
    entity_key = None if data.entity_type is DataEntityType.SERVICE else data.entity_key
    lines = []
    if fee or not expenses:
        lines.append(
            BillingLine(f"{key}:fee", LineKind.FEE, entity_key, fee, data.service_work_type)
        )
    if expenses:
        lines.append(BillingLine(f"{key}:expense", LineKind.EXPENSE, entity_key, expenses))
    return lines


def _known_clients(records: TenantRecords) -> dict[str, Client]:
    known = {client.key: client for client in records.clients}
    for key, client_type, name in _referenced_clients(records):
        if key not in known and client_type is ClientType.CLIENT_GROUP:
            known[key] = Client(key, client_type, name)
    for work_item in records.work_items:
        # A work item names its client; a client it names is known even if not synced yet.
        known.setdefault(
            work_item.client_key,
            Client(work_item.client_key, work_item.client_type, work_item.client_name),
        )
    return known


def _referenced_clients(records: TenantRecords) -> Iterable[tuple[str, ClientType, str]]:
    for invoice in records.invoices:
        if invoice.client_key is not None and invoice.client_type is not None:
            yield invoice.client_key, invoice.client_type, invoice.client_name
    for entry in records.time_entries:
        if entry.client_key is not None and entry.client_type is not None:
            yield entry.client_key, entry.client_type, ""
