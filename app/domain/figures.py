"""Additive measures and the figures derived from them (rules 8 and 10).

``Measures`` is what a fact carries and what any sum of facts is: every field is additive, so a
SQL ``SUM`` over any grouping gives a ``Measures`` too, and the ratios below are computed from it
in one place for the in-memory reference and the SQL reports alike. Ratios are ``None`` when
their denominator is zero (a margin on no revenue has no meaning).
"""

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal

from app.domain.money import ZERO, ratio

DAYS_PER_YEAR = 365


@dataclass(frozen=True, slots=True)
class Measures:
    fee_revenue: Decimal = ZERO
    """Rule 3 under the tenant's recognition policy, before tax."""
    expense_recoveries: Decimal = ZERO
    """Expense lines of counted invoices, before tax; never revenue or profit."""
    approved_not_sent: Decimal = ZERO
    """Fee lines of ``Approved`` invoices, before tax (what becomes revenue once sent)."""
    approved_not_sent_expenses: Decimal = ZERO
    """Expense lines of ``Approved`` invoices, before tax."""
    cost: Decimal = ZERO
    """Time cost of entries whose staff member had compensation in force (the known part)."""
    uncosted_minutes: int = 0
    """Minutes whose staff member had no compensation in force: ``cost`` misses them."""
    billable_minutes: int = 0
    """Minutes not on a non-billable work item (time on a client, T&M, fixed fee, unknown)."""
    non_billable_minutes: int = 0
    """Minutes on work items whose fee type is ``NonBillable``."""
    standard_value: Decimal = ZERO
    """Standard value of all time."""
    billable_standard_value: Decimal = ZERO
    """Standard value of billable time (the realization denominator)."""
    defaulted_capacity_minutes: int = 0
    """Minutes costed with the tenant's default capacity (Karbon had none)."""
    collected_before_tax: Decimal = ZERO
    """Counted invoices' ``(InvoiceTotal - TotalAmountDue) x SubTotal / Total``, per line share."""
    counted_invoice_total: Decimal = ZERO
    """``InvoiceTotal`` of counted invoices, per line share (tax included)."""
    counted_amount_due: Decimal = ZERO
    """``TotalAmountDue`` of counted invoices, per line share (tax included)."""

    def __add__(self, other: "Measures") -> "Measures":
        return Measures(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    @property
    def minutes(self) -> int:
        return self.billable_minutes + self.non_billable_minutes

    @property
    def hours(self) -> Decimal:
        return Decimal(self.minutes) / 60

    @property
    def cost_is_complete(self) -> bool:
        return self.uncosted_minutes == 0


MEASURE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Measures))


def sum_measures(items: Iterable[Measures]) -> Measures:
    result = Measures()
    for item in items:
        result = result + item
    return result


def profit(m: Measures) -> Decimal:
    """Rule 8. When ``m.cost_is_complete`` is false the profit is overstated and must be flagged."""
    return m.fee_revenue - m.cost


def margin(m: Measures) -> Decimal | None:
    return ratio(profit(m), m.fee_revenue)


def realization(m: Measures) -> Decimal | None:
    return ratio(m.fee_revenue, m.billable_standard_value)


def effective_hourly_rate(m: Measures) -> Decimal | None:
    """Fee revenue per hour of all time (billable and non-billable) in the same window."""
    return ratio(m.fee_revenue, m.hours)


def cash_realization(m: Measures) -> Decimal | None:
    return ratio(m.collected_before_tax, m.standard_value)


def billable_share(m: Measures) -> Decimal | None:
    return ratio(Decimal(m.billable_minutes), Decimal(m.minutes))


def write_up_down(fee_value: Decimal, standard_value_to_date: Decimal) -> Decimal:
    """Fixed fee: positive is a write-up (fee above the time's value), negative a write-down."""
    return fee_value - standard_value_to_date


def wip_days(wip: Decimal, fee_revenue_last_365_days: Decimal) -> Decimal | None:
    days = ratio(wip, fee_revenue_last_365_days)
    return None if days is None else days * DAYS_PER_YEAR


def debtor_days(amount_due: Decimal, invoice_total_last_365_days: Decimal) -> Decimal | None:
    """``amount_due``: counted invoices of any date; the total: counted invoices of 365 days."""
    days = ratio(amount_due, invoice_total_last_365_days)
    return None if days is None else days * DAYS_PER_YEAR


def lock_up_days(
    wip: Decimal,
    fee_revenue_last_365_days: Decimal,
    amount_due: Decimal,
    invoice_total_last_365_days: Decimal,
) -> Decimal | None:
    """Rule 10: WIP days + debtor days; ``None`` when either has no denominator."""
    wip_part = wip_days(wip, fee_revenue_last_365_days)
    debtor_part = debtor_days(amount_due, invoice_total_last_365_days)
    if wip_part is None or debtor_part is None:
        return None
    return wip_part + debtor_part


EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2999, 12, 31)
"""The days a report window or a pay period may name. Wide enough for any firm's history and
plans; narrow enough that a year before or a month after stays within the calendar."""


def last_365_days(as_of: date) -> tuple[date, date]:
    """The inclusive window ``[as_of - 364 days, as_of]`` used by lock-up days."""
    return as_of - timedelta(days=DAYS_PER_YEAR - 1), as_of


def capacity_minutes(
    minutes_per_week: Decimal, working_weeks_per_year: Decimal, window_days: int
) -> Decimal:
    """Available minutes in a window of ``window_days``: weekly capacity over the working weeks
    of the year, pro rata (holidays are spread evenly, as in the hourly cost)."""
    return minutes_per_week * working_weeks_per_year * window_days / DAYS_PER_YEAR


def utilization(minutes: int, available_minutes: Decimal) -> Decimal | None:
    return ratio(Decimal(minutes), available_minutes)
