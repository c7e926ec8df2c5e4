"""Cost assumptions over the API: validation, roles, unknown staff, effective dates."""

from httpx import AsyncClient

from tests.reports.conftest import SyncedFirm
from tests.tenancy.helpers import join, problem_type

VALID = {
    "overhead_rate": "0.25",
    "working_weeks_per_year": "46",
    "default_capacity_hours_per_week": "35",
    "recognition_policy": "completion",
}


async def test_settings_start_at_the_defaults_and_are_saved(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    before = (await client.get("/api/v1/cost-settings", headers=synced_firm.headers)).json()
    assert before["is_default"]
    saved = await client.put("/api/v1/cost-settings", headers=synced_firm.headers, json=VALID)
    assert saved.status_code == 200, saved.text
    after = (await client.get("/api/v1/cost-settings", headers=synced_firm.headers)).json()
    assert not after["is_default"] and after["recognition_policy"] == "completion"


async def test_settings_are_shown_in_their_fixed_formats_whatever_was_sent(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    before = (await client.get("/api/v1/cost-settings", headers=synced_firm.headers)).json()
    assert before["working_weeks_per_year"] == "48.00"
    saved = await client.put("/api/v1/cost-settings", headers=synced_firm.headers, json=VALID)
    after = (await client.get("/api/v1/cost-settings", headers=synced_firm.headers)).json()
    assert saved.json() == after
    assert after["overhead_rate"] == "0.2500"
    assert after["working_weeks_per_year"] == "46.00"
    assert after["default_capacity_hours_per_week"] == "35.00"


async def test_out_of_range_settings_name_their_fields(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    body = {**VALID, "working_weeks_per_year": "0", "recognition_policy": "accrual"}
    response = await client.put("/api/v1/cost-settings", headers=synced_firm.headers, json=body)
    assert response.status_code == 422 and problem_type(response) == "validation-error"
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"working_weeks_per_year", "recognition_policy"}


async def test_a_raise_adds_a_period_and_keeps_the_earlier_one(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    staff = (await client.get("/api/v1/staff", headers=synced_firm.headers)).json()["items"]
    key = staff[0]["key"]
    assert staff[0]["hourly_cost"] is None
    for day, amount in (("2020-01-01", "60000"), ("2021-01-01", "72000")):
        response = await client.put(
            f"/api/v1/staff/{key}/cost",
            headers=synced_firm.headers,
            json={"effective_from": day, "annual_amount": amount},
        )
        assert response.status_code == 200, response.text
    view = response.json()
    assert [p["annual_amount"] for p in view["compensation"]] == ["60000.00", "72000.00"]
    weekly_hours = float(view["capacity_hours_per_week"])
    assert abs(float(view["hourly_cost"]) - 72000 / (weekly_hours * 48)) < 0.01


async def test_unknown_staff_is_404(client: AsyncClient, synced_firm: SyncedFirm) -> None:
    response = await client.put(
        "/api/v1/staff/nobody/cost",
        headers=synced_firm.headers,
        json={"effective_from": "2024-01-01", "annual_amount": "1"},
    )
    assert response.status_code == 404 and problem_type(response) == "staff-not-found"


async def test_staff_keys_of_any_plausible_length_are_looked_up(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    # Karbon sets no length for its keys: a long one is looked up, not refused as invalid.
    body = {"effective_from": "2024-01-01", "annual_amount": "1"}
    long_key = await client.put(
        f"/api/v1/staff/{'k' * 600}/cost", headers=synced_firm.headers, json=body
    )
    assert long_key.status_code == 404 and problem_type(long_key) == "staff-not-found"
    absurd = await client.put(
        f"/api/v1/staff/{'k' * 1025}/cost", headers=synced_firm.headers, json=body
    )
    assert absurd.status_code == 422 and problem_type(absurd) == "validation-error"


async def test_members_cannot_change_costs(client: AsyncClient, synced_firm: SyncedFirm) -> None:
    _, member = await join(client, synced_firm.headers, "member@example.com")
    response = await client.put("/api/v1/cost-settings", headers=member, json=VALID)
    assert response.status_code == 403 and problem_type(response) == "admin-required"
