"""Messy mode: a firm with what Karbon's spec allows and tidy data never shows.

``make_messy`` turns a generated firm into one that has, chosen by its seed (so the same seed
gives the same mess): time entries with a ``BilledStatus`` Karbon added later or a null among
good entries, invoice lines with an unknown ``BillableItemType``, a work item with an unknown
``PrimaryStatus``, an invoice served with ``"Client": null`` whose lines name work items, and
clients whose owner and manager are given as UserKeys. ``advance_messy`` then deletes a work
item that has time logged and rewrites an entry, as a firm's next day might.

``Mess`` names what was changed, so a test can check each case is accounted for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, time

from sandbox.model import Firm, Invoice, TimeEntry, Timesheet

UNKNOWN_BILLED_STATUS = "WrittenOff"
UNKNOWN_LINE_TYPE = "Disbursement"
UNKNOWN_PRIMARY_STATUS = "OnHold"


@dataclass
class Mess:
    unknown_billed_status: list[str] = field(default_factory=list)
    """Time entry keys served with an unknown ``BilledStatus``."""
    null_billed_status: list[str] = field(default_factory=list)
    unknown_line_types: list[tuple[str, str]] = field(default_factory=list)
    """(invoice key, line key) served with an unknown ``BillableItemType``."""
    unknown_primary_status: list[str] = field(default_factory=list)
    client_withheld: list[str] = field(default_factory=list)
    """Invoice keys served with ``"Client": null``."""
    owners_as_user_keys: list[str] = field(default_factory=list)
    """Client keys whose ClientOwner/ClientManager are served as UserKeys."""
    deleted_work_item: str | None = None
    rewritten_entry: str | None = None


def make_messy(firm: Firm, seed: int | None = None) -> Mess:
    rng = random.Random(firm.seed if seed is None else seed)
    mess = Mess()
    _unreadable_billed_statuses(firm, rng, mess)
    _unknown_line_types(firm, rng, mess)
    _unknown_primary_status(firm, rng, mess)
    _client_withheld(firm, rng, mess)
    _owners_as_user_keys(firm, rng, mess)
    return mess


def advance_messy(firm: Firm, mess: Mess) -> Mess:
    """Delete a work item after time was logged on it, and rewrite an entry (its minutes and
    a readable status where it had none)."""
    rng = random.Random(firm.seed + 1)
    logged = sorted({e.work_item_key for e in firm.time_entries() if e.work_item_key})
    candidates = [key for key in logged if key in firm.work_items]
    non_billable = [k for k in candidates if firm.work_items[k].fee_type == "NonBillable"]
    victim = rng.choice(non_billable or candidates)
    del firm.work_items[victim]
    firm.deleted.setdefault("WorkItem", {})[victim] = datetime.combine(
        firm.today, time(12), tzinfo=UTC
    )
    mess.deleted_work_item = victim
    entries = firm.time_entry_index()
    rewritten = entries[mess.null_billed_status[0]]
    rewritten.minutes += 30
    rewritten.billed_status = "Unbilled"
    mess.rewritten_entry = rewritten.key
    mess.null_billed_status = mess.null_billed_status[1:]
    return mess


def _recent_sheets(firm: Firm) -> list[Timesheet]:
    """Timesheets an incremental sync re-reads (the last four weeks), with several entries."""
    recent = [
        sheet
        for sheet in firm.timesheets.values()
        if (firm.today - sheet.start_date).days <= 28 and len(sheet.entries) >= 3
    ]
    return sorted(recent, key=lambda sheet: sheet.key)


def _unreadable_billed_statuses(firm: Firm, rng: random.Random, mess: Mess) -> None:
    sheets = _recent_sheets(firm)
    for sheet in rng.sample(sheets, min(2, len(sheets))):
        unbilled = [e for e in sheet.entries if e.billed_status in ("Unbilled", "Draft")]
        first, second = (unbilled if len(unbilled) >= 2 else sheet.entries)[:2]
        _set_status(first, UNKNOWN_BILLED_STATUS, mess.unknown_billed_status)
        _set_status(second, None, mess.null_billed_status)


def _set_status(entry: TimeEntry, status: str | None, named: list[str]) -> None:
    entry.billed_status = status
    named.append(entry.key)


def _counted(firm: Firm) -> list[Invoice]:
    return sorted(
        (i for i in firm.invoices.values() if i.status in ("AwaitingPayment", "Paid")),
        key=lambda invoice: invoice.key,
    )


def _unknown_line_types(firm: Firm, rng: random.Random, mess: Mess) -> None:
    """On invoices attributed by their lines (no Data tab, or a recurring one naming only
    services), so the line's type decides where its revenue goes."""
    by_lines = [
        invoice
        for invoice in _counted(firm)
        if all(data.entity_type == "Service" for data in invoice.data)
        and any(line.billable_item_type != "Expense" for line in invoice.line_items)
    ]
    for invoice in rng.sample(by_lines, min(2, len(by_lines))):
        line = next(li for li in invoice.line_items if li.billable_item_type != "Expense")
        line.billable_item_type = UNKNOWN_LINE_TYPE
        mess.unknown_line_types.append((invoice.key, line.key))


def _unknown_primary_status(firm: Firm, rng: random.Random, mess: Mess) -> None:
    open_items = sorted(
        key
        for key, item in firm.work_items.items()
        if item.primary_status == "InProgress" and item.fee_type == "TimeAndMaterials"
    )
    if open_items:
        key = rng.choice(open_items)
        firm.work_items[key].primary_status = UNKNOWN_PRIMARY_STATUS
        mess.unknown_primary_status.append(key)


def _client_withheld(firm: Firm, rng: random.Random, mess: Mess) -> None:
    """An invoice whose lines name work items, served without its client."""
    retyped = {invoice_key for invoice_key, _ in mess.unknown_line_types}
    naming = [
        invoice
        for invoice in _counted(firm)
        if invoice.key not in retyped
        and any(line.billable_item_entity_key in firm.work_items for line in invoice.line_items)
    ]
    if naming:
        invoice = rng.choice(naming)
        invoice.client_withheld = True
        mess.client_withheld.append(invoice.key)


def _owners_as_user_keys(firm: Firm, rng: random.Random, mess: Mess) -> None:
    owned = sorted(
        (c for c in firm.contacts.values() if c.team.owner_key), key=lambda contact: contact.key
    )
    for contact in rng.sample(owned, min(3, len(owned))):
        contact.team.given_as_user_keys = True
        mess.owners_as_user_keys.append(contact.key)
