"""Paging through @odata.nextLink, $filter / $orderby semantics, and the 400s Karbon answers."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from sandbox.state import Sandbox
from sandbox.tests.conftest import BASE, client_for, get_all, make_sandbox

LISTS = {
    "/v3/Users": "Id",
    "/v3/Contacts": "ContactKey",
    "/v3/Organizations": "OrganizationKey",
    "/v3/WorkItems": "WorkItemKey",
    "/v3/Timesheets?$expand=TimeEntries": "TimesheetKey",
    "/v3/Invoices": "InvoiceKey",
}


def _expected_keys(sandbox: Sandbox, url: str) -> set[str]:
    firm = sandbox.tenant("Firm A").firm
    return {
        "/v3/Users": set(firm.users),
        "/v3/Contacts": set(firm.contacts),
        "/v3/Organizations": set(firm.organizations),
        "/v3/WorkItems": set(firm.work_items),
        "/v3/Timesheets?$expand=TimeEntries": set(firm.timesheets),
        "/v3/Invoices": {i.key for i in firm.visible_invoices()},
    }[url]


@pytest.mark.parametrize("url", list(LISTS))
async def test_next_link_visits_every_record_exactly_once(
    shared_sandbox: Sandbox, url: str
) -> None:
    shared_sandbox.config.max_page_size = 7  # force many pages with little data
    try:
        async with client_for(shared_sandbox, shared_sandbox.tenant("Firm A")) as c:
            sep = "&" if "?" in url else "?"
            rows, pages = await get_all(c, f"{url}{sep}$top=100")
            first = (await c.get(f"{url}{sep}$top=100")).json()
    finally:
        shared_sandbox.config.max_page_size = 100
    keys = [r[LISTS[url]] for r in rows]
    assert len(keys) == len(set(keys))  # no record twice
    assert set(keys) == _expected_keys(shared_sandbox, url)  # every record
    assert first["@odata.count"] == len(keys)
    assert pages == -(-len(keys) // 7) and pages > 1


async def test_next_link_is_absolute_and_keeps_the_query(shared_client: httpx.AsyncClient) -> None:
    url = "/v3/Invoices?$orderby=UpdatedAt desc&$filter=InvoiceStatus eq 'Paid'&$top=10"
    body = (await shared_client.get(url)).json()
    link = body["@odata.nextLink"]
    parts = urlsplit(link)
    assert link.startswith(f"{BASE}/v3/Invoices?")
    q = dict(parse_qsl(parts.query))
    assert q == {
        "$orderby": "UpdatedAt desc",
        "$filter": "InvoiceStatus eq 'Paid'",
        "$top": "10",
        "$skip": "10",
    }
    second = (await shared_client.get(link)).json()
    assert dict(parse_qsl(urlsplit(second["@odata.nextLink"]).query))["$skip"] == "20"
    assert len(second["value"]) == 10


async def test_top_skip_and_last_page(
    shared_client: httpx.AsyncClient, shared_sandbox: Sandbox
) -> None:
    n = len(shared_sandbox.tenant("Firm A").firm.work_items)
    all_rows, _ = await get_all(shared_client, "/v3/WorkItems")
    page = (await shared_client.get("/v3/WorkItems?$top=5&$skip=3")).json()
    assert [w["WorkItemKey"] for w in page["value"]] == [w["WorkItemKey"] for w in all_rows[3:8]]
    last = (await shared_client.get(f"/v3/WorkItems?$skip={n - 2}")).json()
    assert len(last["value"]) == 2 and "@odata.nextLink" not in last
    beyond = (await shared_client.get(f"/v3/WorkItems?$skip={n + 5}")).json()
    assert beyond["value"] == [] and beyond["@odata.count"] == n
    zero = (await shared_client.get("/v3/WorkItems?$top=0")).json()
    assert zero["value"] == [] and "@odata.nextLink" not in zero
    default = (await shared_client.get("/v3/WorkItems")).json()
    assert len(default["value"]) == 100 and default["@odata.count"] == n  # server page: 100
    assert [w["WorkItemKey"] for w in all_rows] == sorted(w["WorkItemKey"] for w in all_rows)


async def test_timesheet_filters(shared_client: httpx.AsyncClient, shared_sandbox: Sandbox) -> None:
    firm = shared_sandbox.tenant("Firm A").firm
    users = list(firm.users)[:2]
    cut = date(2026, 3, 1)
    end = date(2026, 6, 1)
    url = (
        "/v3/Timesheets?$filter=StartDate gt 2026-03-01T00:00:00Z and EndDate lt "
        f"2026-06-01T00:00:00Z and Status eq 'Approved' and UserKey in ('{users[0]}', "
        f"'{users[1]}')&$orderby=StartDate desc&$top=100"
    )
    rows, _ = await get_all(shared_client, url)
    expected = [
        t
        for t in firm.timesheets.values()
        if t.start_date > cut
        and t.end_date < end
        and t.status == "Approved"
        and t.user_key in users
    ]
    assert {r["TimesheetKey"] for r in rows} == {t.key for t in expected} and rows
    starts = [r["StartDate"] for r in rows]
    assert starts == sorted(starts, reverse=True)
    # ties (same week, several users) stay in ascending key order
    for a, b in itertools.pairwise(rows):
        if a["StartDate"] == b["StartDate"]:
            assert a["TimesheetKey"] < b["TimesheetKey"]
    wk = next(t.work_item_keys[0] for t in firm.timesheets.values() if t.work_item_keys)
    rows, _ = await get_all(
        shared_client, f"/v3/Timesheets?$filter=WorkItemKeys/any(x: x eq '{wk}')"
    )
    assert {r["TimesheetKey"] for r in rows} == {
        t.key for t in firm.timesheets.values() if wk in t.work_item_keys
    }
    rows, _ = await get_all(shared_client, "/v3/Timesheets?$filter=Status in ('Draft', 'Declined')")
    assert {r["Status"] for r in rows} == {"Draft", "Declined"}
    rows, _ = await get_all(
        shared_client, "/v3/Timesheets?$filter=year(StartDate) eq 2026 and month(StartDate) eq 2"
    )
    assert rows and all(r["StartDate"].startswith("2026-02") for r in rows)


async def test_invoice_filter_and_orderings(
    shared_client: httpx.AsyncClient, shared_sandbox: Sandbox
) -> None:
    firm = shared_sandbox.tenant("Firm A").firm
    for status in ("Approved", "AwaitingPayment", "Paid", "Exported", "Voided"):
        rows, _ = await get_all(shared_client, f"/v3/Invoices?$filter=InvoiceStatus eq '{status}'")
        assert {r["InvoiceKey"] for r in rows} == {
            i.key for i in firm.visible_invoices() if i.status == status
        }
        assert rows, status
    rows, _ = await get_all(shared_client, "/v3/Invoices?$orderby=UpdatedAt desc")
    updated = [datetime.fromisoformat(r["UpdatedAt"]) for r in rows]
    assert updated == sorted(updated, reverse=True)
    for field in ("InvoiceDate", "InvoiceNumber"):
        rows, _ = await get_all(shared_client, f"/v3/Invoices?$orderby={field}")
        values = [r[field] for r in rows]
        assert values == sorted(values)
    rows, _ = await get_all(shared_client, "/v3/Invoices?$orderby=CreatedAt desc")
    created = [firm.invoices[r["InvoiceKey"]].created_at for r in rows]
    assert created == sorted(created, reverse=True)


async def test_client_orderings_and_string_filters(
    shared_client: httpx.AsyncClient, shared_sandbox: Sandbox
) -> None:
    firm = shared_sandbox.tenant("Firm A").firm
    for path in ("/v3/Contacts", "/v3/Organizations"):
        rows, _ = await get_all(shared_client, f"{path}?$orderby=LastModifiedDateTime desc")
        stamps = [r["LastModifiedDateTime"] for r in rows]
        assert stamps == sorted(stamps, reverse=True)
        rows, _ = await get_all(shared_client, f"{path}?$orderby=FullName")
        names = [r["FullName"].casefold() for r in rows]
        assert names == sorted(names)
    org = next(iter(firm.organizations.values()))
    word = org.full_name.split()[0]
    rows, _ = await get_all(
        shared_client, f"/v3/Organizations?$filter=contains(FullName, '{word.lower()}')"
    )
    assert org.key in {r["OrganizationKey"] for r in rows}  # case-insensitive, like SQL Server
    rows, _ = await get_all(
        shared_client, f"/v3/Organizations?$filter=FullName eq '{org.full_name.upper()}'"
    )
    assert org.key in {r["OrganizationKey"] for r in rows}
    rows, _ = await get_all(shared_client, "/v3/Contacts?$filter=ContactType eq 'Prospect'")
    assert rows and {r["ContactType"] for r in rows} == {"Prospect"}


async def test_work_item_filters_and_primary_status_forms(
    shared_client: httpx.AsyncClient, shared_sandbox: Sandbox
) -> None:
    firm = shared_sandbox.tenant("Firm A").firm
    in_progress = {w.key for w in firm.work_items.values() if w.primary_status == "InProgress"}
    rows, _ = await get_all(shared_client, "/v3/WorkItems?$filter=PrimaryStatus eq 'In Progress'")
    assert {r["WorkItemKey"] for r in rows} == in_progress and in_progress
    unspaced = await shared_client.get("/v3/WorkItems?$filter=PrimaryStatus eq 'InProgress'")
    assert unspaced.status_code == 200 and unspaced.json()["value"] == []  # silently nothing
    wi = next(iter(firm.work_items.values()))
    rows, _ = await get_all(
        shared_client,
        f"/v3/WorkItems?$filter=ClientKey eq '{wi.client_key}' and StartDate ge 2025-01-01",
    )
    assert {r["WorkItemKey"] for r in rows} == {
        w.key
        for w in firm.work_items.values()
        if w.client_key == wi.client_key and w.start_date >= date(2025, 1, 1)
    }
    rows, _ = await get_all(shared_client, "/v3/WorkItems?$orderby=StartDate desc")
    starts = [r["StartDate"] for r in rows]
    assert starts == sorted(starts, reverse=True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "/v3/Contacts?$top=130",
            "The limit of '100' for Top query has been exceeded. The value "
            "from the incoming request is '130'.",
        ),
        (
            "/v3/Users?$orderby=Name",
            "Query option 'OrderBy' is not allowed. To allow it, set the "
            "'AllowedQueryOptions' property on EnableQueryAttribute or "
            "QueryValidationSettings.",
        ),
        (
            "/v3/Contacts?$select=FullName",
            "Query option 'Select' is not allowed. To allow it, set "
            "the 'AllowedQueryOptions' property on EnableQueryAttribute "
            "or QueryValidationSettings.",
        ),
        (
            "/v3/WorkItems?$expand=FeeSettings",
            "Query option 'Expand' is not allowed. To allow it, "
            "set the 'AllowedQueryOptions' property on "
            "EnableQueryAttribute or QueryValidationSettings.",
        ),
        (
            "/v3/Contacts?$orderby=ContactKey",
            "The property 'ContactKey' cannot be used in the $orderby query option.",
        ),
        (
            "/v3/Invoices?$orderby=InvoiceTotal desc",
            "The property 'InvoiceTotal' cannot be used in the $orderby query option.",
        ),
        (
            "/v3/Contacts?$filter=Nickname eq 'x'",
            "Could not find a property named 'Nickname' on type 'KarbonService.ContactSummaryDTO'.",
        ),
        (
            "/v3/Contacts?$filter=LastModifiedDateTime ge 2026-01-01T00:00:00Z",
            "The property 'LastModifiedDateTime' cannot be used in the $filter query option.",
        ),
        (
            "/v3/Invoices?$filter=UpdatedAt ge 2026-01-01T00:00:00Z",
            "The property 'UpdatedAt' cannot be used in the $filter query option.",
        ),
        (
            "/v3/Invoices?$filter=InvoiceStatus eq 'Paid' or InvoiceStatus eq 'Approved'",
            "Logical operator 'Or' is not allowed. To allow it, set the 'AllowedLogicalOperators' "
            "property on EnableQueryAttribute or QueryValidationSettings.",
        ),
        (
            "/v3/Invoices?$filter=InvoiceStatus ne 'Paid'",
            "Logical operator 'NotEqual' is not allowed. To allow it, set the "
            "'AllowedLogicalOperators' property on EnableQueryAttribute or "
            "QueryValidationSettings.",
        ),
        (
            "/v3/WorkItems?$filter=contains(ClientKey, 'a')",
            "Function 'contains' is not allowed. To allow it, set the 'AllowedFunctions' "
            "property on EnableQueryAttribute or QueryValidationSettings.",
        ),
        (
            "/v3/Timesheets?$filter=StartDate gt '2024-01-01'",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.DateTimeOffset' and 'Edm.String' for operator kind 'GreaterThan'.",
        ),
        ("/v3/Timesheets?$filter=StartDate gt", "Syntax error at position 12 in 'StartDate gt'."),
        (
            "/v3/Users?$top=-1",
            "Invalid value '-1' for $top query option found. The $top query "
            "option requires a non-negative integer value.",
        ),
        (
            "/v3/Users?$skip=x",
            "Invalid value 'x' for $skip query option found. The $skip query "
            "option requires a non-negative integer value.",
        ),
        (
            "/v3/Users?$top=1&$top=2",
            "Query option '$top' was specified more than once, but it must "
            "be specified at most once.",
        ),
        ("/v3/Users?$foo=1", "The query parameter '$foo' is not supported."),
        (
            "/v3/Timesheets?$expand=Entries",
            "Could not find a property named 'Entries' on type "
            "'KarbonService.TimesheetSummaryDTO'.",
        ),
        (
            "/v3/Invoices/x?$expand=Lines",
            "Could not find a property named 'Lines' on type 'KarbonService.InvoiceDTO'.",
        ),
        (
            "/v3/Users/x?$select=Name",
            "Query option 'Select' is not allowed. To allow it, set the "
            "'AllowedQueryOptions' property on EnableQueryAttribute or "
            "QueryValidationSettings.",
        ),
    ],
)
async def test_unsupported_queries_answer_400(
    shared_client: httpx.AsyncClient, url: str, message: str
) -> None:
    r = await shared_client.get(url)
    assert r.status_code == 400, r.text
    assert r.json() == {"error": {"code": "4002", "message": message}}


async def test_last_modified_filter_switch() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0), allow_last_modified_filter=True)
    firm = sandbox.tenant("Firm A").firm
    since = datetime(2026, 7, 1, tzinfo=UTC)
    async with client_for(sandbox, sandbox.tenant("Firm A")) as c:
        rows, _ = await get_all(
            c, "/v3/Contacts?$filter=LastModifiedDateTime ge 2026-07-01T00:00:00Z"
        )
    assert {r["ContactKey"] for r in rows} == {
        k for k, v in firm.contacts.items() if v.last_modified >= since
    }


async def test_invoice_list_expand_can_be_rejected() -> None:
    sandbox = make_sandbox(("Firm A", "tiny", 0), invoice_list_rejects_expand=True)
    async with client_for(sandbox, sandbox.tenant("Firm A")) as c:
        r = await c.get("/v3/Invoices?$expand=LineItems")
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("Query option 'Expand' is not allowed.")
