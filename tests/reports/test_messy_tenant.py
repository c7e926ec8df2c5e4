"""End to end against a messy Karbon tenant: sync it, let it change (a work item deleted, an
entry rewritten), sync again incrementally, and check every report figure against values
computed independently from the sandbox's own data, and the data-quality list."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import SyncKind
from app.reports.refresh import refresh_reports
from app.settings import Settings
from sandbox.messy import UNKNOWN_BILLED_STATUS, Mess, advance_messy
from sandbox.model import Firm, WorkItem
from sandbox.state import Sandbox, SandboxConfig
from tests.reports.conftest import SyncedFirm, admin_headers
from tests.reports.expected import expected_figures
from tests.reports.test_figures import check_row, close, enter_costs
from tests.sync.conftest import SANDBOX_TODAY, connect_tenant, sync_now


@pytest.fixture
def sandbox() -> Sandbox:
    config = SandboxConfig()
    config.update({"max_page_size": 7, "rate_limit_enabled": False})
    return Sandbox.create(("Demo firm", "tiny", 3), config=config, today=SANDBOX_TODAY, messy=True)


async def _synced_then_changed(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> tuple[SyncedFirm, dict[str, WorkItem]]:
    """The firm synced, changed in Karbon, and synced again incrementally; with every work
    item the sync has seen."""
    tenant = sandbox.tenant("Demo firm")
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    assert (await sync_now(job_context, tenant_id))[1] == "succeeded"
    seen = dict(tenant.firm.work_items)
    with tenant.lock:
        advance_messy(tenant.firm, tenant.firm.mess)
        tenant.data.invalidate()
    assert (await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL))[1] == "succeeded"
    return SyncedFirm(tenant_id, await admin_headers(sessions, settings, tenant_id)), seen


async def test_a_messy_tenant_loses_no_figure_and_names_every_unreadable_record(
    client: AsyncClient,
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    synced, seen = await _synced_then_changed(sandbox, job_context, sessions, settings)
    firm: Firm = sandbox.tenant("Demo firm").firm
    mess: Mess = firm.mess
    costing = await enter_costs(client, synced, sorted(firm.users))
    await refresh_reports(sessions, synced.tenant_id)
    start, end = firm.history_start, SANDBOX_TODAY
    window = {"from": start.isoformat(), "to": end.isoformat()}
    expected = expected_figures(firm, start, end, costing, work_items=seen)

    report = await _get(client, synced, "/api/v1/reports/client-profitability", window)
    rows = {row["key"]: row for row in report["items"]}
    assert set(rows) == set(expected.clients)
    for key, figures in expected.clients.items():
        check_row(rows[key], figures)
    totals = report["totals"]
    clients = expected.clients.values()
    assert close(totals["fee_revenue"], sum((c.fee_revenue for c in clients), Decimal(0)))
    assert close(totals["unbilled_work"], sum((c.unbilled_work for c in clients), Decimal(0)))

    warnings = {(w["kind"], w["subject_key"]): w for w in report["warnings"]}
    assert warnings[("unreadable_field", "TimeEntry.BilledStatus")]["records"] == 3
    assert warnings[("unreadable_field", "InvoiceLine.BillableItemType")]["records"] == 2
    assert ("unreadable_field", "WorkItem.PrimaryStatus") in warnings
    deleted = warnings[("deleted_work_item", mess.deleted_work_item)]
    minutes = sum(
        e.minutes for e in firm.time_entries() if e.work_item_key == mess.deleted_work_item
    )
    assert minutes > 0 and Decimal(deleted["hours"]) == round(Decimal(minutes) / 60, 2)
    unattributed = [w for w in report["warnings"] if w["kind"] == "unattributed_invoice"]
    assert {w["subject_key"]: Decimal(w["amount"]) for w in unattributed} == {
        key: amount.quantize(Decimal("0.01")) for key, amount in expected.unattributed.items()
    }

    await _check_owners_by_email(client, synced, firm, mess, window)
    await _check_warnings_follow_the_window(client, synced, firm, mess)
    await _check_data_quality_list(client, synced, firm, mess)


async def _get(
    client: AsyncClient, synced: SyncedFirm, path: str, params: dict[str, Any]
) -> dict[str, Any]:
    response = await client.get(path, headers=synced.headers, params={**params, "limit": 200})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _check_owners_by_email(
    client: AsyncClient, synced: SyncedFirm, firm: Firm, mess: Mess, window: dict[str, str]
) -> None:
    """Owners given as UserKeys are grouped under the user's e-mail; filters take either."""
    by_owner = await _get(
        client, synced, "/api/v1/reports/client-profitability", {**window, "group_by": "owner"}
    )
    keys = {row["key"] for row in by_owner["items"]}
    assert not keys & set(firm.users)
    owner_key = firm.contacts[mess.owners_as_user_keys[0]].team.owner_key
    assert owner_key is not None
    email = firm.users[owner_key].email
    assert email in keys
    path = "/api/v1/reports/client-profitability"
    by_key = await _get(client, synced, path, {**window, "owner": owner_key})
    by_email = await _get(client, synced, path, {**window, "owner": email})
    assert by_key["items"] == by_email["items"] and by_key["items"]
    contacts_owned = {k for k, c in firm.contacts.items() if c.team.owner_key == owner_key}
    orgs_owned = {k for k, o in firm.organizations.items() if o.team.owner_key == owner_key}
    assert {row["key"] for row in by_key["items"]} <= contacts_owned | orgs_owned


async def _check_warnings_follow_the_window(
    client: AsyncClient, synced: SyncedFirm, firm: Firm, mess: Mess
) -> None:
    """Warnings about unreadable entries are dated and concern the entries' clients: a window
    before them, or another client, shows none."""
    unread = {*mess.unknown_billed_status, *mess.null_billed_status}
    sheets = {e.key: s for s in firm.timesheets.values() for e in s.entries}
    earliest = min(sheets[key].start_date for key in unread)
    before = {"from": firm.history_start.isoformat(), "to": (earliest - timedelta(days=1))}
    report = await _get(client, synced, "/api/v1/reports/client-profitability", before)
    kinds = {(w["kind"], w["subject_key"]) for w in report["warnings"]}
    assert kinds and ("unreadable_field", "TimeEntry.BilledStatus") not in kinds
    concerned = {e.client_key for e in firm.time_entries() if e.key in unread}
    other = sorted({e.client_key for e in firm.time_entries()} - concerned)[0]
    one_client = await _get(client, synced, f"/api/v1/reports/clients/{other}", {})
    kinds = {(w["kind"], w["subject_key"]) for w in one_client["warnings"]}
    assert ("unreadable_field", "TimeEntry.BilledStatus") not in kinds


async def _check_data_quality_list(
    client: AsyncClient, synced: SyncedFirm, firm: Firm, mess: Mess
) -> None:
    listed = await _get(client, synced, "/api/v1/data-quality", {})
    named = {(i["entity"], i["key"], i["field"]): i for i in listed["items"]}
    expected = {
        *(("TimeEntry", key, "BilledStatus") for key in mess.unknown_billed_status),
        *(("TimeEntry", key, "BilledStatus") for key in mess.null_billed_status),
        *(("InvoiceLine", line, "BillableItemType") for _, line in mess.unknown_line_types),
        *(("WorkItem", key, "PrimaryStatus") for key in mess.unknown_primary_status),
    }
    assert set(named) == expected and listed["total"] == len(expected)
    assert ("TimeEntry", mess.rewritten_entry, "BilledStatus") not in named
    entry = named[("TimeEntry", mess.unknown_billed_status[0], "BilledStatus")]
    assert entry["value"] == UNKNOWN_BILLED_STATUS and entry["set_aside"] == "field"
    assert entry["clients"] and entry["clients"][0]["name"]
    assert entry["first_seen_at"] < entry["last_seen_at"]
