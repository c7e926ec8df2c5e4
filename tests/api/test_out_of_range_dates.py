"""Days outside what the calendar arithmetic can hold are a 422 naming the field: each
report's `from` and `to` (the routes come from the OpenAPI document) and a pay period's
start."""

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.api.test_contract import _operations
from tests.reports.conftest import SyncedFirm
from tests.tenancy.helpers import problem_type

TOO_LATE = "9999-12-31"
TOO_EARLY = "0001-01-01"


@pytest.mark.parametrize(
    ("field", "day"),
    # An early `to` alone is too early: the default `from` is a year before it.
    [("to", TOO_LATE), ("to", "0001-01-05"), ("from", TOO_EARLY)],
)
async def test_report_windows_beyond_the_calendar_name_the_field(
    app: FastAPI, client: AsyncClient, synced_firm: SyncedFirm, field: str, day: str
) -> None:
    windowed = [
        operation
        for operation in _operations(app.openapi())
        if any(param["name"] == field for param in operation.parameters)
    ]
    assert len(windowed) == 4
    for operation in windowed:
        url = operation.path.replace("{client_key}", "any-client")
        response = await client.get(url, headers=synced_firm.headers, params={field: day})
        where = (operation.path, response.text)
        assert response.status_code == 422 and problem_type(response) == "validation-error", where
        assert [error["field"] for error in response.json()["errors"]] == [f"query.{field}"]


async def test_the_widest_window_allowed_is_answered(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    window = {"from": "1900-01-01", "to": "2999-12-31"}
    for path in ("summary", "client-profitability", "staff-utilization"):
        response = await client.get(
            f"/api/v1/reports/{path}", headers=synced_firm.headers, params=window
        )
        assert response.status_code == 200, (path, response.text)


async def test_a_pay_period_starting_beyond_the_calendar_names_the_field(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    staff = (await client.get("/api/v1/staff", headers=synced_firm.headers)).json()["items"]
    response = await client.put(
        f"/api/v1/staff/{staff[0]['key']}/cost",
        headers=synced_firm.headers,
        json={"effective_from": TOO_LATE, "annual_amount": "50000"},
    )
    assert response.status_code == 422 and problem_type(response) == "validation-error"
    assert [error["field"] for error in response.json()["errors"]] == ["effective_from"]
