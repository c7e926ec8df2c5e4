"""A tenant's cost assumptions. Facts are recomputed from them; no re-sync is needed."""

from dataclasses import dataclass, field
from decimal import Decimal

from app.domain.recognition import BillingBasis, RecognitionPolicy


@dataclass(frozen=True, slots=True)
class CostSettings:
    overhead_rate: Decimal = Decimal(0)
    working_weeks_per_year: Decimal = Decimal(48)
    default_capacity_hours_per_week: Decimal = Decimal("37.5")
    recognition: RecognitionPolicy = field(default_factory=BillingBasis)

    def __post_init__(self) -> None:
        if self.working_weeks_per_year <= 0:
            raise ValueError("working_weeks_per_year must be positive")
        if self.default_capacity_hours_per_week <= 0:
            raise ValueError("default_capacity_hours_per_week must be positive")
        if self.overhead_rate < 0:
            raise ValueError("overhead_rate must not be negative")
