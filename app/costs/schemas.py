"""Request and response shapes of the cost-assumption endpoints."""

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from app.domain import RECOGNITION_POLICIES
from app.domain.figures import EARLIEST_DAY, LATEST_DAY
from app.kit.presentation import Hours, Money, Ratio, TwoPlaces

_EXPECTED_POLICIES = " or ".join(
    ", ".join(f"'{name}'" for name in RECOGNITION_POLICIES).rsplit(", ", 1)
)


def _known_policy(name: str) -> str:
    if name not in RECOGNITION_POLICIES:
        raise PydanticCustomError(
            "enum", "Input should be {expected}", {"expected": _EXPECTED_POLICIES}
        )
    return name


PolicyName = Annotated[
    str,
    AfterValidator(_known_policy),
    WithJsonSchema({"type": "string", "enum": list(RECOGNITION_POLICIES)}),
]
"""A name in the domain's registry of recognition policies."""


class CostSettingsBody(BaseModel):
    """Bounded to what the columns store exactly and what costing, which divides by the weeks
    and the capacity, can use."""

    overhead_rate: Decimal = Field(
        ge=0,
        le=10,
        decimal_places=4,
        description="Overhead on top of compensation, e.g. `0.25` for 25% (4 decimal places)",
    )
    working_weeks_per_year: Decimal = Field(
        ge=1, le=52, decimal_places=2, description="Weeks a year staff work (1 to 52)"
    )
    default_capacity_hours_per_week: Decimal = Field(
        ge=1,
        le=100,
        decimal_places=2,
        description="Capacity of staff for whom Karbon has none (1 to 100 hours)",
    )
    recognition_policy: PolicyName = Field(
        description="`billing`: revenue when invoiced and sent. `completion`: fixed-fee work "
        "earns its whole fee on its completed date."
    )


class CostSettingsView(BaseModel):
    """The settings in fixed formats, whatever form they were sent in: `0.25` reads `0.2500`."""

    overhead_rate: Ratio = Field(description="Overhead on top of compensation: `0.2500` is 25%")
    working_weeks_per_year: TwoPlaces
    default_capacity_hours_per_week: Hours
    recognition_policy: PolicyName
    is_default: bool = Field(description="True until the firm has saved its own settings")


class CompensationBody(BaseModel):
    effective_from: date = Field(
        ge=EARLIEST_DAY, le=LATEST_DAY, description="The first day this annual amount applies"
    )
    annual_amount: Decimal = Field(ge=0, le=100_000_000, decimal_places=2)


class CompensationView(BaseModel):
    effective_from: date
    annual_amount: Money = Field(description="Exact decimal to the cent, in `currency`")
    currency: str | None


class StaffView(BaseModel):
    """A staff member as every member of the firm sees them: no pay."""

    key: str
    name: str
    email: str | None
    capacity_minutes_per_week: int | None = Field(description="As Karbon has it; null if unset")
    capacity_hours_per_week: Hours = Field(description="What costing uses (default if unset)")
    capacity_defaulted: bool


class StaffCostView(StaffView):
    """A staff member with their pay: shown to admins and to integrator keys with `pay:read`
    only. Others get `StaffView`, in which these fields are absent."""

    compensation: list[CompensationView] = Field(description="Oldest first")
    hourly_cost: Money | None = Field(
        description="Today's hourly cost from the latest compensation; null when none is entered"
    )
    currency: str | None
