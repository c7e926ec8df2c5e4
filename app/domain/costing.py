"""Hourly cost and time cost (rules 4 and 5).

``hourly cost = annual_compensation x (1 + overhead_rate) / (capacity_hours x working_weeks)``
and ``time cost = minutes / 60 x hourly cost``. The time cost is computed in one division,
``minutes x annual x (1 + overhead) / (capacity_minutes x working_weeks)``, which is the same
quantity with a single rounding.

Compensation is effective-dated: the period in force on an entry's date is the latest one whose
``effective_from`` is on or before it. Time dated before a staff member's first period has no
compensation in force, so its cost is unknown (flagged as uncosted minutes), never zero.
"""

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from app.domain.money import fact_amount
from app.domain.values import CompensationPeriod, StaffMember


@dataclass(frozen=True, slots=True)
class Capacity:
    minutes_per_week: Decimal
    defaulted: bool
    """True when Karbon had no (or zero) capacity and the tenant default was used."""


def capacity_of(staff: StaffMember | None, default_hours_per_week: Decimal) -> Capacity:
    if staff is None or not staff.capacity_minutes_per_week:
        return Capacity(default_hours_per_week * 60, defaulted=True)
    return Capacity(Decimal(staff.capacity_minutes_per_week), defaulted=False)


def hourly_cost(
    annual_compensation: Decimal,
    overhead_rate: Decimal,
    capacity_minutes_per_week: Decimal,
    working_weeks_per_year: Decimal,
) -> Decimal:
    """Rule 4, unrounded (for display of a staff member's rate)."""
    capacity_hours = capacity_minutes_per_week / 60
    return annual_compensation * (1 + overhead_rate) / (capacity_hours * working_weeks_per_year)


def time_cost(
    minutes: int,
    annual_compensation: Decimal,
    overhead_rate: Decimal,
    capacity_minutes_per_week: Decimal,
    working_weeks_per_year: Decimal,
) -> Decimal:
    """Rule 5 time cost, quantized to the fact scale."""
    loaded = Decimal(minutes) * annual_compensation * (1 + overhead_rate)
    return fact_amount(loaded / (capacity_minutes_per_week * working_weeks_per_year))


def standard_value(minutes: int, hourly_rate: Decimal) -> Decimal:
    """Rule 5 standard value: ``minutes / 60 x HourlyRate`` (Karbon's rate, never re-derived)."""
    return fact_amount(Decimal(minutes) * hourly_rate / 60)


class CompensationSchedule:
    """Looks up the annual compensation in force for a staff member on a date."""

    def __init__(self, periods: Iterable[CompensationPeriod]) -> None:
        by_staff: dict[str, list[CompensationPeriod]] = defaultdict(list)
        for period in periods:
            by_staff[period.staff_key].append(period)
        self._periods: Mapping[str, list[CompensationPeriod]] = {
            key: sorted(items, key=lambda p: p.effective_from) for key, items in by_staff.items()
        }
        self._starts = {
            key: [p.effective_from for p in items] for key, items in self._periods.items()
        }

    def annual_on(self, staff_key: str, on: date) -> Decimal | None:
        starts = self._starts.get(staff_key)
        if not starts:
            return None
        index = bisect_right(starts, on) - 1
        if index < 0:
            return None
        return self._periods[staff_key][index].annual_amount

    def has_any(self, staff_key: str) -> bool:
        return staff_key in self._periods
