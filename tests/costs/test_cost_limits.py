"""Cost assumptions are refused (a 422 naming the field) unless their columns store them
exactly and the costing that divides by them can use them, so nothing accepted can break a
later read or report refresh."""

from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from pydantic import BaseModel
from sqlalchemy import Numeric

from app.costs.schemas import CompensationBody, CostSettingsBody
from app.models import Base, CompensationPeriod, CostSettings
from tests.reports.conftest import SyncedFirm
from tests.tenancy.helpers import problem_type

VALID = {
    "overhead_rate": "0.25",
    "working_weeks_per_year": "46",
    "default_capacity_hours_per_week": "35",
    "recognition_policy": "billing",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("overhead_rate", "0.00001"),  # the column keeps 4 places
        ("overhead_rate", "10.5"),
        ("working_weeks_per_year", "0.004"),  # the column keeps 2 places: it would be 0
        ("working_weeks_per_year", "0.5"),  # hourly cost divides by it
        ("working_weeks_per_year", "53"),
        ("default_capacity_hours_per_week", "0.001"),
        ("default_capacity_hours_per_week", "0.5"),
        ("default_capacity_hours_per_week", "100.01"),
        ("default_capacity_hours_per_week", "NaN"),
    ],
)
async def test_a_setting_its_column_cannot_store_or_costing_cannot_use_is_refused(
    client: AsyncClient, synced_firm: SyncedFirm, field: str, value: str
) -> None:
    headers = synced_firm.headers
    response = await client.put(
        "/api/v1/cost-settings", headers=headers, json={**VALID, field: value}
    )
    assert response.status_code == 422 and problem_type(response) == "validation-error"
    assert [error["field"] for error in response.json()["errors"]] == [field], response.text
    for read in ("/api/v1/cost-settings", "/api/v1/staff"):
        assert (await client.get(read, headers=headers)).status_code == 200


async def test_settings_at_the_limits_are_stored_exactly(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    headers = synced_firm.headers
    for limits in (
        {
            "overhead_rate": "0.0001",
            "working_weeks_per_year": "1",
            "default_capacity_hours_per_week": "1",
        },
        {
            "overhead_rate": "10",
            "working_weeks_per_year": "52.00",
            "default_capacity_hours_per_week": "100",
        },
        {
            "overhead_rate": "0.1250",
            "working_weeks_per_year": "46.50",
            "default_capacity_hours_per_week": "37.25",
        },
    ):
        saved = await client.put("/api/v1/cost-settings", headers=headers, json={**VALID, **limits})
        assert saved.status_code == 200, saved.text
        read = (await client.get("/api/v1/cost-settings", headers=headers)).json()
        for field, value in limits.items():
            assert float(read[field]) == float(value), (field, read)
        assert (await client.get("/api/v1/staff", headers=headers)).status_code == 200


@pytest.mark.parametrize("amount", ["0.001", "-1", "100000000.01", "NaN", "Infinity"])
async def test_a_compensation_amount_its_column_cannot_store_is_refused(
    client: AsyncClient, synced_firm: SyncedFirm, amount: str
) -> None:
    staff = (await client.get("/api/v1/staff", headers=synced_firm.headers)).json()["items"]
    response = await client.put(
        f"/api/v1/staff/{staff[0]['key']}/cost",
        headers=synced_firm.headers,
        json={"effective_from": "2024-01-01", "annual_amount": amount},
    )
    assert response.status_code == 422 and problem_type(response) == "validation-error"
    assert [error["field"] for error in response.json()["errors"]] == ["annual_amount"]


@pytest.mark.parametrize(
    ("body", "model"), [(CostSettingsBody, CostSettings), (CompensationBody, CompensationPeriod)]
)
def test_every_decimal_the_api_writes_fits_its_column(
    body: type[BaseModel], model: type[Base]
) -> None:
    columns = model.__table__.columns
    decimals = [name for name, field in body.model_fields.items() if field.annotation is Decimal]
    assert decimals
    for name in decimals:
        column_type = columns[name].type
        assert isinstance(column_type, Numeric) and column_type.scale is not None
        limits = _limits(body.model_fields[name].metadata)
        assert limits["decimal_places"] <= column_type.scale, name
        assert limits["le"] < 10 ** (column_type.precision - column_type.scale), name
        assert limits["ge"] >= 0, name


def _limits(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for constraint in metadata:
        for attribute in ("ge", "le", "decimal_places"):
            if getattr(constraint, attribute, None) is not None:
                found[attribute] = getattr(constraint, attribute)
    return found
