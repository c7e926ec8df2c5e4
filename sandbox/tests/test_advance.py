"""Advancing a firm: new time and invoices, status changes, edits and deletions that an
incremental sync and a reconciliation must notice."""

from __future__ import annotations

from datetime import timedelta

from sandbox.generator import advance_firm, generate_firm
from sandbox.tests import invariants
from sandbox.tests.conftest import TODAY, client_for, get_all, make_sandbox
from sandbox.tests.test_generator import fingerprint


def test_advance_is_deterministic_and_keeps_consistency() -> None:
    a = generate_firm("small", 4, today=TODAY)
    b = generate_firm("small", 4, today=TODAY)
    changes = advance_firm(a, 30)
    assert advance_firm(b, 30) == changes
    assert fingerprint(a) == fingerprint(b)
    assert a.today == TODAY + timedelta(days=30)
    for key in (
        "time_entries_created",
        "invoices_drafted",
        "invoices_approved",
        "invoices_sent",
        "invoices_paid",
        "work_items_completed",
        "clients_edited",
    ):
        assert changes.get(key, 0) > 0, key
    for check in (
        invariants.check_money,
        invariants.check_fixed_fees,
        invariants.check_billed_status,
        invariants.check_references,
    ):
        check(a)
    assert advance_firm(a, 0) == {}


async def test_incremental_queries_see_the_changes() -> None:
    sandbox = make_sandbox(("Firm A", "small", 2))
    tenant = sandbox.tenant("Firm A")
    firm = tenant.firm
    async with client_for(sandbox, tenant) as c:
        before_inv = {r["InvoiceKey"]: r for r in (await get_all(c, "/v3/Invoices"))[0]}
        before_ts = {r["TimesheetKey"] for r in (await get_all(c, "/v3/Timesheets"))[0]}
        before_wi = {r["WorkItemKey"]: r for r in (await get_all(c, "/v3/WorkItems"))[0]}
        before_contacts = {r["ContactKey"] for r in (await get_all(c, "/v3/Contacts"))[0]}
        newest = max(r["UpdatedAt"] for r in before_inv.values())
        last_week = (TODAY - timedelta(days=7)).isoformat()

        r = await c.post("/_sandbox/tenants/Firm A/advance", json={"days": 45})
        assert r.status_code == 200
        body = r.json()
        assert body["today"] == (TODAY + timedelta(days=45)).isoformat()
        assert body["changes"]["invoices_drafted"] > 0

        # Invoices: newest-first by UpdatedAt shows the changed ones ahead of the old high mark.
        page = (await c.get("/v3/Invoices?$orderby=UpdatedAt desc&$top=100")).json()["value"]
        changed = [i for i in page if i["UpdatedAt"] > newest]
        assert changed
        assert any(i["InvoiceKey"] not in before_inv for i in changed)  # new invoices
        assert any(
            i["InvoiceKey"] in before_inv
            and i["InvoiceStatus"] != before_inv[i["InvoiceKey"]]["InvoiceStatus"]
            for i in changed
        )  # transitions
        # Timesheets: new weeks appear with StartDate after the old cut-off.
        new_ts, _ = await get_all(
            c, f"/v3/Timesheets?$filter=StartDate gt {last_week}T00:00:00Z&$expand=TimeEntries"
        )
        assert {t["TimesheetKey"] for t in new_ts} - before_ts
        # Work items have no timestamp: only a full pass shows completions and deletions.
        after_wi = {r["WorkItemKey"]: r for r in (await get_all(c, "/v3/WorkItems"))[0]}
        assert any(
            after_wi[k]["PrimaryStatus"] == "Completed" != before_wi[k]["PrimaryStatus"]
            for k in before_wi
            if k in after_wi
        )
        contacts = (await c.get("/v3/Contacts?$orderby=LastModifiedDateTime desc&$top=5")).json()[
            "value"
        ]
        assert contacts[0]["LastModifiedDateTime"] >= f"{TODAY.isoformat()}"

    # Deleted records disappear from lists and details 404.
    gone_wi = [k for k in before_wi if k not in after_wi]
    assert set(gone_wi) <= set(firm.deleted["WorkItem"])
    assert (
        set(firm.deleted["WorkItem"]) & set(before_wi)
        or set(firm.deleted["Contact"]) & (before_contacts)
        or set(firm.deleted["TimeEntry"])
    )
    async with client_for(sandbox, tenant) as c:
        for key in gone_wi:
            assert (await c.get(f"/v3/WorkItems/{key}")).status_code == 404
        entries = {
            e["TimeEntryKey"]
            for t in (await get_all(c, "/v3/Timesheets?$expand=TimeEntries"))[0]
            for e in t["TimeEntries"]
        }
    assert entries.isdisjoint(firm.deleted["TimeEntry"])


async def test_deletions_happen_within_a_few_months() -> None:
    sandbox = make_sandbox(("Firm A", "small", 1))
    firm = sandbox.tenant("Firm A").firm
    before = {k: set(v) for k, v in firm.deleted.items()}
    sandbox.advance("Firm A", 120)
    newly = {k: set(v) - before[k] for k, v in firm.deleted.items()}
    assert newly["WorkItem"] and newly["TimeEntry"]
    assert not (newly["WorkItem"] & set(firm.work_items))
    async with client_for(sandbox, sandbox.tenant("Firm A")) as c:
        rows, _ = await get_all(c, "/v3/WorkItems")
    assert {r["WorkItemKey"] for r in rows}.isdisjoint(newly["WorkItem"])


async def test_advance_admin_validation() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0))
    async with client_for(sandbox) as c:
        assert (
            await c.post("/_sandbox/tenants/Firm A/advance", json={"days": -1})
        ).status_code == 422
        assert (await c.post("/_sandbox/tenants/Nope/advance", json={"days": 1})).status_code == 404
