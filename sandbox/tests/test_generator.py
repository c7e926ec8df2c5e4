"""The firm generator: deterministic for a seed, realistic mixes, internally consistent money."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from sandbox import render
from sandbox.generator import SIZES, generate_firm
from sandbox.model import (
    BILLED_STATUSES,
    FEE_TYPES,
    PRIMARY_STATUSES,
    TIMESHEET_STATUSES,
    VISIBLE_INVOICE_STATUSES,
    Firm,
)
from sandbox.tests import invariants
from sandbox.tests.conftest import TODAY


def fingerprint(firm: Firm) -> str:
    """A digest of everything the API can show about the firm."""
    h = hashlib.sha256()
    parts = (
        [render.dumps(render.user_detail(u, "")) for u in firm.users.values()]
        + [render.dumps(render.contact_summary(firm, c)) for c in firm.contacts.values()]
        + [
            render.dumps(render.organization_detail(firm, o, "", ["ClientTeam"]))
            for o in firm.organizations.values()
        ]
        + [render.dumps(render.work_item_detail(firm, w, "")) for w in firm.work_items.values()]
        + [render.dumps(render.timesheet(t, with_entries=True)) for t in firm.timesheets.values()]
        + [
            render.dumps(render.invoice_detail(i, "", ["LineItems", "Payments", "Data"]))
            for i in firm.invoices.values()
        ]
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
    keyed: Counter[str] = Counter()
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
    assert counts["users"] == 25 and counts["contacts"] + counts["organizations"] // 2 >= 700
    assert 3500 <= counts["work_items"] <= 5500
    assert 4500 <= counts["invoices"] <= 7500
    assert counts["timesheets"] >= 25 * 140  # about weekly for 3 years (156 weeks)


def test_money_is_consistent(firm: Firm) -> None:
    invariants.check_money(firm)


def test_fixed_fees_never_overbilled(firm: Firm) -> None:
    invariants.check_fixed_fees(firm)


def test_billed_status_matches_invoices(firm: Firm) -> None:
    invariants.check_billed_status(firm)


def test_references_resolve(firm: Firm) -> None:
    invariants.check_references(firm)
