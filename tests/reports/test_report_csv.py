"""`format=csv` on every list report: the JSON's columns and rows, streamed, booleans as in
JSON, the same number strings, a totals row where the report has totals; and one formatting
of numbers everywhere."""

import csv
import io
import re
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.presentation import (
    HOURS_PATTERN,
    MONEY_PATTERN,
    RATIO_PATTERN,
    csv_cell,
    hours,
    money,
    ratio,
)
from app.reports.ordering import SORT_FIELDS
from app.reports.refresh import refresh_reports
from app.reports.schemas import (
    ProfitabilityRow,
    ProfitabilitySort,
    UtilizationCostRow,
    WipRow,
    WorkItemRow,
)
from tests.reports.conftest import SyncedFirm
from tests.tenancy.helpers import problem_type

REPORTS = "/api/v1/reports"
WINDOW = {"from": "2026-01-01", "to": "2026-11-02", "limit": 200}


async def _csv(
    client: AsyncClient, firm: SyncedFirm, path: str, **params: Any
) -> list[dict[str, str]]:
    response = await client.get(path, headers=firm.headers, params={**params, "format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(response.text))
    rows = list(reader)
    assert reader.fieldnames is not None
    return rows


async def _json(client: AsyncClient, firm: SyncedFirm, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(path, headers=firm.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _as_json_shows(row: dict[str, Any]) -> dict[str, str]:
    return {column: csv_cell(value) for column, value in row.items()}


async def test_the_monthly_series_ends_with_its_totals(
    client: AsyncClient, synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    path = f"{REPORTS}/client-profitability"
    report = await _json(client, synced_firm, path, **WINDOW, interval="month")
    *rows, totals = await _csv(client, synced_firm, path, **WINDOW, interval="month")
    assert list(rows[0]) == list(ProfitabilityRow.model_fields)
    assert rows == [_as_json_shows(row) for row in report["items"]]
    assert totals == _as_json_shows(report["totals"]) and totals["name"] == "Total"
    assert {row["cost_complete"] for row in rows} <= {"true", "false"}


async def test_unbilled_work_and_utilization_have_every_row(
    client: AsyncClient, synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    for path, row_model, params in (
        (f"{REPORTS}/unbilled-work", WipRow, {"limit": 200}),
        (f"{REPORTS}/staff-utilization", UtilizationCostRow, WINDOW),
    ):
        report = await _json(client, synced_firm, path, **params)
        rows = await _csv(client, synced_firm, path, **params)
        assert report["total"] == len(rows) > 0, path
        assert list(rows[0]) == list(row_model.model_fields)
        assert rows == [_as_json_shows(row) for row in report["items"]], path
    utilization = await _csv(client, synced_firm, f"{REPORTS}/staff-utilization", **WINDOW)
    assert {row["capacity_defaulted"] for row in utilization} <= {"true", "false"}


async def test_a_clients_breakdown_lists_work_items_then_its_totals(
    client: AsyncClient, synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    ranking = await _json(client, synced_firm, f"{REPORTS}/client-profitability", **WINDOW)
    key = next(row["key"] for row in ranking["items"] if row["key"])
    path = f"{REPORTS}/clients/{key}"
    report = await _json(client, synced_firm, path, **{"from": WINDOW["from"], "to": WINDOW["to"]})
    *rows, totals = await _csv(
        client, synced_firm, path, **{"from": WINDOW["from"], "to": WINDOW["to"]}
    )
    assert list(totals) == list(WorkItemRow.model_fields)
    assert [row["key"] for row in rows] == [item["key"] or "" for item in report["by_work_item"]]
    assert totals["title"] == "Total" and totals["key"] == ""
    assert totals["fee_revenue"] == report["totals"]["fee_revenue"]


async def test_an_unknown_format_is_refused_on_every_report(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    for path in ("client-profitability", "unbilled-work", "staff-utilization", "clients/any"):
        response = await client.get(
            f"{REPORTS}/{path}", headers=synced_firm.headers, params={"format": "xml"}
        )
        assert response.status_code == 422, path
        assert problem_type(response) == "validation-error"
        assert response.json()["errors"][0]["field"] == "query.format"


def test_numbers_are_formatted_once_for_json_and_csv() -> None:
    assert money(Decimal("1234.565")) == "1234.56" and money(Decimal("-0.004")) == "0.00"
    assert ratio(Decimal("0.123456")) == "0.1235" and ratio(None) is None
    assert hours(90) == "1.50" and hours(Decimal("1")) == "0.02"
    for value, pattern in (
        (money(Decimal("-12")), MONEY_PATTERN),
        (ratio(Decimal("-1")) or "", RATIO_PATTERN),
        (hours(0), HOURS_PATTERN),
    ):
        assert re.fullmatch(pattern, value), (value, pattern)
    assert [csv_cell(v) for v in (True, False, None, "1.00")] == ["true", "false", "", "1.00"]


def test_the_sort_enum_lists_every_sortable_figure() -> None:
    assert {sort.value for sort in ProfitabilitySort} == set(SORT_FIELDS)
