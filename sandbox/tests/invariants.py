"""Consistency rules of a generated firm, reusable by any test (run after advancing too)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from sandbox.model import Firm


def check_money(firm: Firm) -> None:
    for inv in firm.invoices.values():
        for li in inv.line_items:
            assert li.amount == li.quantity * li.unit_price  # exactly, before tax
            assert li.amount == li.amount.quantize(Decimal("0.01"))
        assert inv.total == inv.subtotal + inv.tax_total
        assert sum((d.billed for d in inv.data), Decimal(0)) == inv.subtotal
        assert sum((v for _n, v in inv.tax_lines()), Decimal(0)) == inv.tax_total
        if inv.status == "Paid":
            assert inv.total_amount_due == 0 and inv.amount_paid == inv.total
        if inv.status in ("AwaitingPayment", "Approved", "Exported"):
            assert 0 < inv.total_amount_due <= inv.total
        if inv.tax_location == "Data":
            assert all(li.tax_rate is None for li in inv.line_items)


def check_fixed_fees(firm: Firm) -> None:
    billed: Counter[str] = Counter()
    for inv in firm.invoices.values():
        if inv.status == "Voided":
            continue
        for li in inv.line_items:
            if li.billable_item_type == "Entity":
                assert li.billable_item_entity_key in firm.work_items
                billed[li.billable_item_entity_key] += li.amount  # type: ignore[assignment]
    assert billed
    for key, amount in billed.items():
        wi = firm.work_items[key]
        assert wi.fee_type == "FixedFee"
        assert amount <= (wi.fee_value or 0)
    non_billable = {k for k, w in firm.work_items.items() if w.fee_type == "NonBillable"}
    for inv in firm.invoices.values():
        for li in inv.line_items:
            assert li.billable_item_entity_key not in non_billable


def check_billed_status(firm: Firm) -> None:
    """Billed/InterimBilled entries point at a counted invoice whose lines key to the entry, its
    work item, its client or (consolidated) the invoice's client, and whose Data tab lists it;
    Draft entries sit on a draft invoice; Unbilled ones on none."""
    for e in firm.time_entries():
        if e.billed_status == "Unbilled":
            assert e.billed_by is None
            continue
        inv = firm.invoices[e.billed_by or ""]
        if e.billed_status == "Draft":
            assert inv.status == "Draft"
            continue
        assert inv.status not in ("Draft", "Voided")
        keys = {li.billable_item_entity_key for li in inv.line_items}
        data_entries = {
            t.time_entry_key
            for d in inv.data
            if d.work and d.work.time_entries
            for t in d.work.time_entries
        }
        wi = firm.work_items.get(e.work_item_key or "")
        if wi is not None and wi.fee_type == "FixedFee":
            assert wi.key in keys  # billed through the Entity line for the fee
        else:
            assert e.key in data_entries, e.key  # the Data tab names billed time
        assert (
            e.key in keys
            or e.work_item_key in keys
            or e.client_key in keys
            or inv.client.client_key in keys
        ), e.key
        if e.work_item_key:
            wi = firm.work_items.get(e.work_item_key)
            assert wi is None or wi.fee_type != "NonBillable"
    # every line keyed to a time entry bills an entry that is (interim) billed by that invoice
    entries = firm.time_entry_index()
    for inv in firm.visible_invoices():
        if inv.status == "Voided":
            continue
        for li in inv.line_items:
            billed = entries.get(li.billable_item_entity_key)
            if billed is not None:
                assert billed.billed_by == inv.key
                assert billed.billed_status in ("Billed", "InterimBilled")
                assert li.amount == billed.standard_value


def check_references(firm: Firm) -> None:
    for w in firm.work_items.values():
        assert w.assignee_key in firm.users
        assert firm.client_type(w.client_key) in (w.client_type, None)
    for t in firm.timesheets.values():
        assert t.user_key in firm.users and t.entries
        assert (t.end_date - t.start_date).days == 6 and t.start_date.weekday() == 0
        for e in t.entries:
            assert e.timesheet_key == t.key and e.user_key == t.user_key
            assert e.entity_key == (e.work_item_key or e.client_key)
            assert e.key.endswith(t.key)
    for c in firm.contacts.values():
        for k in (c.team.owner_key, c.team.manager_key):
            assert k is None or k in firm.users
