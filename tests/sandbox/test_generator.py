"""The firm generator: deterministic for a seed, realistic mixes, internally consistent money."""

from __future__ import annotations

import hashlib
from collections import Counter
from decimal import Decimal

import pytest

from app.sandbox import render
from app.sandbox.generator import SIZES, generate_firm
from app.sandbox.model import (
    BILLED_STATUSES,
    FEE_TYPES,
    PRIMARY_STATUSES,
    TIMESHEET_STATUSES,
    VISIBLE_INVOICE_STATUSES,
    Firm,
)
from tests.sandbox.conftest import TODAY


def fingerprint(firm: Firm) -> str:
    """A digest of everything the API can show about the firm."""
    h = hashlib.sha256()
    parts = (
        [render.dumps(render.user_detail(u, "")) for u in firm.users.values()]
        + [render.dumps(render.contact_summary(firm, c)) for c in firm.contacts.values()]
        + [render.dumps(render.organization_detail(firm, o, "", ["ClientTeam"]))
           for o in firm.organizations.values()]
        + [render.dumps(render.work_item_detail(firm, w, "")) for w in firm.work_items.values()]
        + [render.dumps(render.timesheet(t, with_entries=True))
           for t in firm.timesheets.values()]
        + [render.dumps(render.invoice_detail(i, "", ["LineItems", "Payments", "Data"]))
           for i in firm.invoices.values()]
    )
    for p in parts:
        h.update(p.encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def firm() -> Firm:
    return generate_firm("small", 0, today=TODAY)


def test_same_seed_same_firm_different_seed_different_firm(firm: Firm) -> None:
    again = generate_firm("small", 0, today=TODAY)
    assert fingerprint(again) == fingerprint(firm)
    assert fingerprint(generate_firm("small", 1, today=TODAY)) != fingerprint(firm)
    tiny = [fingerprint(generate_firm("tiny", s, today=TODAY)) for s in (0, 0, 5)]
    assert tiny[0] == tiny[1] != tiny[2]


def test_unknown_size() -> None:
    with pytest.raises(ValueError, match="unknown size"):
        generate_firm("huge")


def test_today_is_respected_and_nothing_is_in_the_future(firm: Firm) -> None:
    assert firm.today == TODAY
    assert (TODAY - firm.history_start).days == SIZES["small"].history_days
    limit = max(render.ts(i.updated_at) for i in firm.invoices.values())
    assert limit < f"{TODAY.isoformat()}T00:00:00Z"
    assert all(c.last_modified.date() < TODAY for c in firm.contacts.values())
    assert all(t.start_date <= TODAY for t in firm.timesheets.values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_realistic_mixes(seed: int) -> None:
    firm = generate_firm("small", seed, today=TODAY)
    wis = list(firm.work_items.values())
    assert {w.fee_type for w in wis} == set(FEE_TYPES)
    assert all(w.fee_value and w.fee_value > 0 for w in wis if w.fee_type == "FixedFee")
    assert all(w.fee_value is None for w in wis if w.fee_type != "FixedFee")
    assert {w.primary_status for w in wis} >= set(PRIMARY_STATUSES) - {"Waiting"}
    assert any(w.client_type == "ClientGroup" for w in wis)
    assert any(w.related_client_group_key for w in wis)
    entries = list(firm.time_entries())
    assert {e.billed_status for e in entries} == set(BILLED_STATUSES)
    assert any(e.work_item_key is None for e in entries)  # time straight on clients
    assert all(e.minutes > 0 and e.minutes % 15 == 0 for e in entries)
    assert {t.status for t in firm.timesheets.values()} >= {"Draft", "Submitted", "Approved"}
    assert {i.status for i in firm.visible_invoices()} == set(VISIBLE_INVOICE_STATUSES)
    lines = [li for i in firm.visible_invoices() for li in i.line_items]
    assert {li.billable_item_type for li in lines} == {"TimeEntry", "Expense", "Entity"}
    keyed = Counter()
    te_keys = firm.time_entry_index()
    for li in lines:
        k = li.billable_item_entity_key
        if k in te_keys:
            keyed["time entry"] += 1
        elif k in firm.work_items:
            keyed["work item"] += 1
        elif k in firm.contacts or k in firm.organizations:
            keyed["client"] += 1
    assert set(keyed) == {"time entry", "work item", "client"}
    assert any(u.capacity_minutes_per_week is None for u in firm.users.values())
    assert {i.tax_location for i in firm.invoices.values()} == {"Presentation", "Data"}
    assert any(i.recurring for i in firm.invoices.values())
    assert any(len(i.payments) > 1 for i in firm.invoices.values()) or seed != 0
    assert all(len(firm.deleted[k]) > 0 for k in ("Contact", "WorkItem", "TimeEntry"))


def test_timesheet_statuses_over_sizes() -> None:
    medium = generate_firm("medium", 0, today=TODAY)
    assert {t.status for t in medium.timesheets.values()} == set(TIMESHEET_STATUSES)
    assert {w.primary_status for w in medium.work_items.values()} == set(PRIMARY_STATUSES)
    caps = [u.capacity_minutes_per_week for u in medium.users.values()]
    assert None in caps and 0 in caps
    counts = medium.counts()
    assert counts["users"] == 25 and 700 <= counts["contacts"] + counts["organizations"] // 2
    assert 3500 <= counts["work_items"] <= 5500
    assert 4500 <= counts["invoices"] <= 7500
    assert counts["timesheets"] >= 25 * 150  # about weekly for 3 years


def test_money_is_consistent(firm: Firm) -> None:
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


def test_fixed_fees_never_overbilled(firm: Firm) -> None:
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


def test_billed_status_matches_invoices(firm: Firm) -> None:
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
        data_entries = {t.time_entry_key for d in inv.data if d.work and d.work.time_entries
                        for t in d.work.time_entries}
        wi = firm.work_items.get(e.work_item_key or "")
        if wi is not None and wi.fee_type == "FixedFee":
            assert wi.key in keys  # billed through the Entity line for the fee
        else:
            assert e.key in data_entries, e.key  # the Data tab names billed time
        assert (e.key in keys or e.work_item_key in keys or e.client_key in keys
                or inv.client.client_key in keys), e.key
        if e.work_item_key:
            wi = firm.work_items.get(e.work_item_key)
            assert wi is None or wi.fee_type != "NonBillable"
    # every line keyed to a time entry bills an entry that is (interim) billed by that invoice
    entries = firm.time_entry_index()
    for inv in firm.visible_invoices():
        if inv.status == "Voided":
            continue
        for li in inv.line_items:
            e = entries.get(li.billable_item_entity_key)
            if e is not None:
                assert e.billed_by == inv.key and e.billed_status in ("Billed", "InterimBilled")
                assert li.amount == e.standard_value


def test_references_resolve(firm: Firm) -> None:
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
