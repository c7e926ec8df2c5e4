"""Report figures computed straight from the sandbox's own firm, by DOMAIN.md's rules.

Deliberately independent of `app.domain`: plain loops over the sandbox dataclasses. Messy
firms too: `work_items` may include work items since deleted (they keep their client and fee
type); an entry whose `BilledStatus` is unknown or null is never WIP; a line of unknown type
is a fee of its invoice's client; an invoice served without a client belongs to whoever its
lines name, and what they do not name is in no client's figures (`Expected.unattributed`).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sandbox.model import Firm, Invoice, LineItem, TimeEntry, Timesheet, WorkItem

COUNTED = {"AwaitingPayment", "Paid", "Exported"}
LINE_TYPES = {"TimeEntry", "Expense", "Entity"}
Items = dict[str, WorkItem]
ZERO = Decimal(0)


@dataclass
class ClientFigures:
    fee_revenue: Decimal = ZERO
    expense_recoveries: Decimal = ZERO
    approved_not_sent: Decimal = ZERO
    cost: Decimal = ZERO
    billable_minutes: int = 0
    non_billable_minutes: int = 0
    standard_value: Decimal = ZERO
    unbilled_work: Decimal = ZERO
    uncosted_minutes: int = 0


@dataclass
class Costing:
    annual: dict[str, Decimal]
    overhead_rate: Decimal
    working_weeks: Decimal
    default_capacity_hours: Decimal


@dataclass
class Expected:
    clients: dict[str, ClientFigures] = field(default_factory=lambda: defaultdict(ClientFigures))
    staff_minutes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unattributed: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))
    """Per invoice in the window: what no client could be found for."""


def _entries(firm: Firm, start: date, end: date) -> list[tuple[Timesheet, TimeEntry]]:
    return [
        (sheet, entry)
        for sheet in firm.timesheets.values()
        if start <= sheet.start_date <= end
        for entry in sheet.entries
    ]


def _client_of_entry(items: Items, entry: TimeEntry) -> str:
    item = items.get(entry.work_item_key or "")
    return item.client_key if item else entry.client_key


def _hourly_cost(firm: Firm, user_key: str, costing: Costing) -> Decimal | None:
    annual = costing.annual.get(user_key)
    if annual is None:
        return None
    capacity = firm.users[user_key].capacity_minutes_per_week
    hours = Decimal(capacity) / 60 if capacity else costing.default_capacity_hours
    return annual * (1 + costing.overhead_rate) / (hours * costing.working_weeks)


def _line_client(
    firm: Firm, items: Items, invoice_client: str | None, line: LineItem
) -> tuple[str | None, str | None]:
    """Rule 2: (client, work item) of a line; for an invoice without a client, the client
    the line's key leads to."""
    known_type = line.billable_item_type in LINE_TYPES
    if not known_type and invoice_client is not None:
        return invoice_client, None
    entries = firm.time_entry_index()
    key = line.billable_item_entity_key
    item = items.get(key)
    if item is None and key in entries:
        item = items.get(entries[key].work_item_key or "")
    if item is not None:
        return item.client_key, item.key if known_type else None
    if invoice_client is None and key in entries:
        return entries[key].client_key, None
    if invoice_client is None and (key in firm.contacts or key in firm.organizations):
        return key, None
    return invoice_client, None


Part = tuple[str | None, str | None, bool, Decimal]
"""A billed amount: its client, its work item, whether it is a fee (else an expense)."""


def _billed_parts(firm: Firm, items: Items, invoice: Invoice) -> list[Part]:
    """Rule 2 over what an invoice is attributed by: its Data tab (the sync fetches it with
    each invoice), which names the work items billed even when the lines are consolidated;
    but a recurring invoice's Data tab names only services, so its lines, which name the
    fixed-fee work item, are used instead."""
    client = None if invoice.client_withheld else invoice.client.client_key
    recurring = all(data.entity_type == "Service" for data in invoice.data)
    if not invoice.data or recurring:
        return [
            (
                *_line_client(firm, items, client, line),
                line.billable_item_type != "Expense",
                line.amount,
            )
            for line in invoice.line_items
        ]
    parts: list[Part] = []
    for data in invoice.data:
        item = items.get(data.entity_key) if data.entity_type == "Work Item" else None
        owner = (item.client_key, item.key) if item else (client, None)
        if owner[0] is None and data.entity_type == "Client":
            owner = (data.entity_key, None)
        fee = (data.work.billed if data.work else ZERO) + (
            data.service.billed if data.service else ZERO
        )
        expenses = sum((expense.billed for expense in data.expenses or []), ZERO)
        parts += [(*owner, True, fee)] + ([(*owner, False, expenses)] if expenses else [])
    return parts


def expected_figures(
    firm: Firm, start: date, end: date, costing: Costing, work_items: Items | None = None
) -> Expected:
    """`work_items`: every work item the sync has seen (deleted ones included); by default
    the firm's."""
    items = firm.work_items if work_items is None else work_items
    expected = Expected()
    for sheet, entry in _entries(firm, start, end):
        figures = expected.clients[_client_of_entry(items, entry)]
        item = items.get(entry.work_item_key or "")
        value = Decimal(entry.minutes) * entry.hourly_rate / 60
        if item is not None and item.fee_type == "NonBillable":
            figures.non_billable_minutes += entry.minutes
        else:
            figures.billable_minutes += entry.minutes
        figures.standard_value += value
        rate = _hourly_cost(firm, sheet.user_key, costing)
        if rate is None:
            figures.uncosted_minutes += entry.minutes
        else:
            figures.cost += Decimal(entry.minutes) / 60 * rate
        expected.staff_minutes[sheet.user_key] += entry.minutes
    for invoice in firm.visible_invoices():
        if not start <= invoice.invoice_date <= end:
            continue
        for client, _, is_fee, amount in _billed_parts(firm, items, invoice):
            if client is None:
                if invoice.status != "Voided":
                    expected.unattributed[invoice.key] += amount
                continue
            figures = expected.clients[client]
            if invoice.status in COUNTED:
                if is_fee:
                    figures.fee_revenue += amount
                else:
                    figures.expense_recoveries += amount
            elif invoice.status == "Approved" and is_fee:
                figures.approved_not_sent += amount
    _add_wip(firm, items, expected)
    return expected


def _add_wip(firm: Firm, items: Items, expected: Expected) -> None:
    """Rule 9, as of the last sync (all dates)."""
    ff_invoiced: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for invoice in firm.visible_invoices():
        if invoice.status == "Voided":
            continue
        for _, item_key, is_fee, amount in _billed_parts(firm, items, invoice):
            if item_key and is_fee:
                ff_invoiced[item_key] += amount
    has_time: set[str] = set()
    for entry in firm.time_entries():
        item = items.get(entry.work_item_key or "")
        if item is not None:
            has_time.add(item.key)
        if entry.billed_status not in ("Unbilled", "Draft"):
            continue
        if item is None or item.fee_type == "TimeAndMaterials":
            value = Decimal(entry.minutes) * entry.hourly_rate / 60
            expected.clients[_client_of_entry(items, entry)].unbilled_work += value
    for item in items.values():
        if item.fee_type != "FixedFee":
            continue
        if item.key in has_time or item.primary_status == "Completed":
            wip = max(ZERO, (item.fee_value or ZERO) - ff_invoiced[item.key])
            expected.clients[item.client_key].unbilled_work += wip
