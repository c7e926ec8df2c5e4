"""Parsers absorb Karbon's quirks; stream declarations build only documented queries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.sync.records import (
    ClientType,
    FeeType,
    FieldIssue,
    PrimaryStatus,
    SetAside,
    parse_batch,
    parse_contact,
    parse_invoice,
    parse_organization,
    parse_timesheet,
    parse_user,
    parse_work_item,
)
from app.sync.streams import (
    CONTACTS_STREAM,
    INVOICES_STREAM,
    STREAMS,
    TIMESHEETS_STREAM,
    USERS_STREAM,
    WORK_ITEMS_STREAM,
    NewestFirstWindow,
    OpenPeriod,
    Stream,
    fingerprint,
    timesheet_filters,
)

WORK_ITEM = {
    "WorkItemKey": "2LPSrkzbYrn4",
    "ClientKey": "3LCPr987gNrc",
    "ClientType": "ClientGroup",
    "ClientName": "Smith Family Group",
    "Title": "Payroll",
    "StartDate": "2021-12-29T00:00:00Z",
    "PrimaryStatus": "In Progress",
}


@pytest.mark.parametrize("spelling", ["In Progress", "InProgress", "in progress"])
def test_primary_status_is_normalised_across_list_and_detail(spelling: str) -> None:
    record = parse_work_item({**WORK_ITEM, "PrimaryStatus": spelling})
    assert record.primary_status is PrimaryStatus.IN_PROGRESS


def test_work_item_detail_adds_fee_settings_and_keeps_client_groups() -> None:
    detail = {
        "PrimaryStatus": "ReadyToStart",
        "FeeSettings": {"FeeType": "FixedFee", "FeeValue": 5150.2},
    }
    record = parse_work_item(WORK_ITEM, detail)
    assert record.known_fee_type is FeeType.FIXED_FEE
    assert record.fee_value == Decimal("5150.2")
    assert record.primary_status is PrimaryStatus.READY_TO_START
    assert record.client_type is ClientType.CLIENT_GROUP
    assert record.client_name == "Smith Family Group"
    assert record.start_date == date(2021, 12, 29)
    assert record.raw == WORK_ITEM and record.raw_detail == detail


def test_time_entries_are_flattened_with_their_timesheet() -> None:
    key = "WYscpLQXR4J-2m6pSFxRzcF2-2mYzTtly89Lq-3j5ZpPT4RDbT-4kbT4BYLMLhv-QbQFGnqPDDs"
    sheet = parse_timesheet(
        {
            "TimesheetKey": "3MslJsCcnnkm",
            "UserKey": "2mYzTtly89Lq",
            "StartDate": "2022-07-04T00:00:00Z",
            "EndDate": "2022-07-10T00:00:00Z",
            "Status": "Submitted",
            "TimeEntries": [
                {
                    "TimeEntryKey": key,
                    "ClientKey": "c1",
                    "ClientType": "Contact",
                    "Minutes": 360,
                    "HourlyRate": 80.1,
                    "Descriptions": ["x", None],
                    "BilledStatus": "Unbilled",
                },
            ],
        }
    )
    entry = sheet.entries[0]
    assert entry.time_entry_key == key  # long composite keys are fine
    assert (entry.user_key, entry.timesheet_key) == ("2mYzTtly89Lq", "3MslJsCcnnkm")
    assert (entry.period_start, entry.period_end) == (date(2022, 7, 4), date(2022, 7, 10))
    assert entry.work_item_key is None  # time straight against a client is kept
    assert entry.hourly_rate == Decimal("80.1")
    assert entry.descriptions == ["x"]


def test_invoice_money_is_exact_and_unit_price_string_is_parsed() -> None:
    invoice = parse_invoice(
        {
            "InvoiceKey": "M2dVbCt4RHk",
            "InvoiceStatus": "AwaitingPayment",
            "UpdatedAt": "2023-07-20T23:52:11Z",
            "InvoiceTotal": 1607.13,
            "InvoiceDate": "2023-07-21T00:00:00Z",
            "Client": {"ClientKey": "2xxnBLyCP4Ts", "ClientType": "Organization", "Name": "Acme"},
            "LineItems": [
                {
                    "LineItemKey": "l1",
                    "BillableItemType": "TimeEntry",
                    "BillableItemEntityKey": "t",
                    "Quantity": 1.5,
                    "UnitPrice": "150.10",
                    "Amount": 225.15,
                },
            ],
        }
    )
    assert invoice.total == Decimal("1607.13")
    assert invoice.client_key == "2xxnBLyCP4Ts" and invoice.client_type is ClientType.ORGANIZATION
    line = invoice.line_items[0] if invoice.line_items else None
    assert line is not None
    assert (line.unit_price, line.amount, line.invoice_key) == (
        Decimal("150.10"),
        Decimal("225.15"),
        "M2dVbCt4RHk",
    )


def test_invoice_without_lines_says_so() -> None:
    raw = {"InvoiceKey": "i", "InvoiceStatus": "Paid", "UpdatedAt": "2023-07-20T23:52:11Z"}
    assert parse_invoice(raw).line_items is None


def test_users_contacts_and_organizations() -> None:
    user = parse_user(
        {"Id": "u1", "Name": "Jo"}, {"CapacityMinutesPerWeek": 2400, "BillableRate": 150.5}
    )
    assert (user.capacity_minutes_per_week, user.billable_rate) == (2400, Decimal("150.5"))
    contact = parse_contact(
        {
            "ContactKey": "c",
            "FullName": "W",
            "ClientOwner": "o@x.com",
            "LastModifiedDateTime": "2022-07-05T07:30:13.7188114Z",
        }
    )
    assert contact.client_type is ClientType.CONTACT and contact.owner_email == "o@x.com"
    org = parse_organization(
        {
            "OrganizationKey": "o",
            "FullName": "Acme",
            "LastModifiedDateTime": "2021-12-29T07:01:53Z",
        },
        {"ClientManager": "m@x.com"},
    )
    assert org.client_type is ClientType.ORGANIZATION and org.manager_email == "m@x.com"


def test_karbon_times_without_an_offset_are_utc() -> None:
    stated = parse_contact(
        {"ContactKey": "c", "FullName": "W", "LastModifiedDateTime": "2022-07-05T07:30:13+02:00"}
    )
    unstated = parse_contact(
        {"ContactKey": "c", "FullName": "W", "LastModifiedDateTime": "2022-07-05T07:30:13"}
    )
    assert stated.last_modified == datetime(2022, 7, 5, 5, 30, 13, tzinfo=UTC)
    assert unstated.last_modified == datetime(2022, 7, 5, 7, 30, 13, tzinfo=UTC)
    assert unstated.last_modified.utcoffset() is not None


TIMESHEET = {
    "TimesheetKey": "ts1",
    "UserKey": "u",
    "StartDate": "2022-07-04T00:00:00Z",
    "EndDate": "2022-07-10T00:00:00Z",
    "Status": "Draft",
}


def entry(key: str, **fields: Any) -> dict[str, Any]:
    return {"TimeEntryKey": key, "Minutes": 30, "BilledStatus": "Unbilled", **fields}


def test_an_unreadable_entry_is_set_aside_alone_and_named() -> None:
    raw = {**TIMESHEET, "TimeEntries": [entry("bad", Minutes="lots", ClientKey="C1"), entry("ok")]}
    record = parse_timesheet(raw)
    assert [e.time_entry_key for e in record.entries] == ["ok"]
    assert record.issues() == [
        FieldIssue(
            entity="TimeEntry",
            key="bad",
            parent_key="ts1",
            field="Minutes",
            value="lots",
            reason="Input should be a valid integer, unable to parse string as an integer",
            set_aside=SetAside.RECORD,
            client_keys=("C1",),
            on=date(2022, 7, 4),
        )
    ]


@pytest.mark.parametrize("status", ["PartiallyBilled", None])
def test_an_entry_with_an_unknown_or_null_billed_status_is_kept_with_its_minutes(
    status: str | None,
) -> None:
    raw = {**TIMESHEET, "TimeEntries": [entry("e1", BilledStatus=status, ClientKey="C1")]}
    record = parse_timesheet(raw)
    (kept,) = record.entries
    assert (kept.minutes, kept.billed_status, kept.known_billed_status) == (30, status, None)
    (issue,) = record.issues()
    assert (issue.entity, issue.key, issue.field, issue.value, issue.set_aside) == (
        "TimeEntry",
        "e1",
        "BilledStatus",
        status,
        SetAside.FIELD,
    )
    assert issue.client_keys == ("C1",) and issue.on == date(2022, 7, 4)


def test_unknown_statuses_and_line_types_are_kept_as_sent_and_named() -> None:
    invoice = parse_invoice(
        {
            "InvoiceKey": "i1",
            "InvoiceStatus": "PartlyPaid",
            "UpdatedAt": "2023-07-20T23:52:11Z",
            "InvoiceDate": "2023-07-01T00:00:00Z",
            "Client": {"ClientKey": "C1", "ClientType": "Organization", "Name": "Acme"},
            "LineItems": [
                {"LineItemKey": "L1", "BillableItemType": "Disbursement", "Amount": 50},
                {"LineItemKey": "L2", "BillableItemType": "Entity", "Amount": "x"},
                {"LineItemKey": "L3", "BillableItemType": "Expense", "Amount": 5},
            ],
        }
    )
    assert invoice.status == "PartlyPaid"
    assert [(line.line_item_key, line.billable_item_type) for line in invoice.line_items or []] == [
        ("L1", "Disbursement"),
        ("L3", "Expense"),
    ]
    named = [(i.entity, i.key, i.field, i.set_aside, i.client_keys) for i in invoice.issues()]
    assert named == [
        ("Invoice", "i1", "InvoiceStatus", SetAside.FIELD, ("C1",)),
        ("InvoiceLine", "L1", "BillableItemType", SetAside.FIELD, ("C1",)),
        ("InvoiceLine", "L2", "Amount", SetAside.RECORD, ("C1",)),
    ]
    work_item = parse_work_item({**WORK_ITEM, "PrimaryStatus": "On Hold"})
    assert work_item.primary_status == "On Hold"
    assert [(i.field, i.value) for i in work_item.issues()] == [("PrimaryStatus", "On Hold")]


def test_a_record_that_cannot_be_read_is_set_aside_whole_and_the_rest_of_the_page_kept() -> None:
    good = {**WORK_ITEM}
    bad = {**WORK_ITEM, "WorkItemKey": "bad", "Title": None}
    batch = parse_batch(parse_work_item, [good, bad], key="WorkItemKey")
    assert [r.raw for r in batch.records] == [good]
    assert [(r.error.key, r.error.field, r.raw) for r in batch.rejects] == [("bad", "Title", bad)]
    (issue,) = batch.issues
    assert (issue.key, issue.field, issue.set_aside) == ("bad", "Title", SetAside.RECORD)
    assert issue.client_keys == ("3LCPr987gNrc",)


def test_list_params_use_only_documented_forms() -> None:
    assert CONTACTS_STREAM.list_params() == {"$top": "100", "$orderby": "LastModifiedDateTime desc"}
    assert INVOICES_STREAM.list_params() == {
        "$top": "100",
        "$orderby": "UpdatedAt desc",
        "$expand": "LineItems",
    }
    assert TIMESHEETS_STREAM.list_params("StartDate gt 2024-01-01T00:00:00Z")["$expand"] == (
        "TimeEntries"
    )
    assert all(s.page_size <= 100 for s in STREAMS)


def test_detail_policies() -> None:
    def needs_detail(stream: Stream, raw: dict[str, Any], stored: str | None) -> bool:
        return stream.needs_detail(raw, stored, token=stream.change_token(raw))

    assert needs_detail(USERS_STREAM, {"Id": "u"}, "same")
    token = WORK_ITEMS_STREAM.change_token(WORK_ITEM)
    assert not needs_detail(WORK_ITEMS_STREAM, WORK_ITEM, token)
    assert needs_detail(WORK_ITEMS_STREAM, {**WORK_ITEM, "Title": "x"}, token)
    assert needs_detail(WORK_ITEMS_STREAM, WORK_ITEM, None)
    invoice = {"InvoiceKey": "i", "UpdatedAt": "2024-01-01T00:00:00Z"}
    assert needs_detail(INVOICES_STREAM, invoice, None)
    assert not needs_detail(INVOICES_STREAM, {**invoice, "LineItems": []}, None)
    assert not needs_detail(INVOICES_STREAM, invoice, "2024-01-01T00:00:00Z")


def _line(kind: str, key: str | None) -> dict[str, Any]:
    return {"BillableItemType": kind, "BillableItemEntityKey": key, "Amount": 10}


@pytest.mark.parametrize(
    ("lines", "needed"),
    [
        ([_line("TimeEntry", "entry-1"), _line("Entity", "work-1")], False),
        ([_line("TimeEntry", "CLIENT")], True),  # a consolidated "Professional services"
        ([_line("Entity", "CLIENT")], True),
        ([_line("TimeEntry", None)], True),
        ([_line("TimeEntry", "")], True),
        ([_line("Expense", "CLIENT"), _line("Expense", None)], False),  # never revenue
        ([_line("Entity", "work-1"), _line("TimeEntry", "CLIENT")], True),
        ([], False),
    ],
)
def test_an_invoice_whose_listed_lines_leave_revenue_unplaced_gets_its_data_tab(
    lines: list[dict[str, Any]], needed: bool
) -> None:
    invoice = {
        "InvoiceKey": "i",
        "UpdatedAt": "2024-01-01T00:00:00Z",
        "Client": {"ClientKey": "CLIENT", "ClientType": "Contact"},
        "LineItems": lines,
    }
    token = INVOICES_STREAM.change_token(invoice)
    assert INVOICES_STREAM.needs_detail(invoice, None, token=token) == needed
    assert not INVOICES_STREAM.needs_detail(invoice, token, token=token)
    assert INVOICES_STREAM.detail_params == {"$expand": "LineItems,Data"}


def test_a_line_of_an_invoice_without_a_client_is_unplaced_only_without_a_key() -> None:
    invoice = {"InvoiceKey": "i", "UpdatedAt": "2024-01-01T00:00:00Z", "Client": None}
    keyed = {**invoice, "LineItems": [_line("TimeEntry", "entry-1")]}
    assert not INVOICES_STREAM.needs_detail(keyed, None, token="t")
    bare = {**invoice, "LineItems": [_line("TimeEntry", None)]}
    assert INVOICES_STREAM.needs_detail(bare, None, token="t")


def test_a_detail_rule_needs_its_policy_and_the_other_way_round() -> None:
    with pytest.raises(ValueError, match="list_falls_short"):
        replace(INVOICES_STREAM, list_falls_short=None)
    with pytest.raises(ValueError, match="list_falls_short"):
        replace(WORK_ITEMS_STREAM, list_falls_short=lambda raw: True)


def test_fingerprint_ignores_odata_annotations_and_key_order() -> None:
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1, "@odata.type": "x"})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_newest_first_window_rereads_ties_stops_below_mark_and_caps_at_run_start() -> None:
    since = datetime(2024, 5, 1, tzinfo=UTC)
    started = datetime(2024, 5, 2, tzinfo=UTC)
    window = NewestFirstWindow(CONTACTS_STREAM, since=since, run_started_at=started)
    page = [
        {"ContactKey": "new", "LastModifiedDateTime": "2024-05-03T00:00:00Z"},  # after run start
        {"ContactKey": "tie", "LastModifiedDateTime": "2024-05-01T00:00:00Z"},
        {"ContactKey": "old", "LastModifiedDateTime": "2024-04-30T00:00:00Z"},
    ]
    assert [r["ContactKey"] for r in window.admit(page)] == ["new", "tie"]
    assert window.exhausted
    assert window.next_high_water_mark == started


def test_timesheet_filters_cover_recent_window_and_open_periods() -> None:
    filters = timesheet_filters(
        date(2024, 6, 30),
        recent_days=28,
        open_periods=[
            OpenPeriod(date(2024, 1, 1), date(2024, 1, 7), frozenset({"u2", "o'neil"})),
            OpenPeriod(date(2024, 6, 24), date(2024, 6, 30), frozenset({"u3"})),  # in window
        ],
    )
    assert filters == [
        "StartDate gt 2024-06-01T23:59:59Z",
        "StartDate gt 2023-12-31T23:59:59Z and EndDate lt 2024-01-08T00:00:00Z"
        " and UserKey in ('o''neil', 'u2')",
    ]


def test_a_period_window_stream_must_say_how_many_recent_days_it_rereads() -> None:
    with pytest.raises(ValueError, match="timesheets: a period window needs recent_days"):
        replace(TIMESHEETS_STREAM, recent_days=None)
