"""Rules 8 and 10: profit, margin, realization, rates, cash realization, lock-up, utilization."""

from datetime import date

from app.domain import (
    Measures,
    billable_share,
    capacity_minutes,
    cash_realization,
    debtor_days,
    effective_hourly_rate,
    last_365_days,
    lock_up_days,
    margin,
    profit,
    realization,
    sum_measures,
    utilization,
    wip_days,
    write_up_down,
)
from tests.domain.builders import D


def test_profit_and_margin() -> None:
    m = Measures(fee_revenue=D("1000"), cost=D("600"))
    assert profit(m) == D("400")
    assert margin(m) == D("0.4")


def test_margin_is_none_when_revenue_is_zero() -> None:
    m = Measures(fee_revenue=D(0), cost=D("250"))
    assert profit(m) == D("-250")
    assert margin(m) is None


def test_realization_uses_billable_standard_value_only() -> None:
    m = Measures(fee_revenue=D("900"), standard_value=D("1500"), billable_standard_value=D("1000"))
    assert realization(m) == D("0.9")
    assert realization(Measures(fee_revenue=D("10"))) is None


def test_effective_hourly_rate_is_revenue_per_hour_of_all_time() -> None:
    m = Measures(fee_revenue=D("900"), billable_minutes=360, non_billable_minutes=180)
    assert effective_hourly_rate(m) == D("100")  # 900 / 9 h
    assert effective_hourly_rate(Measures(fee_revenue=D("1"))) is None
    assert billable_share(m) == D(2) / D(3)


def test_cash_realization() -> None:
    m = Measures(collected_before_tax=D("600"), standard_value=D("800"))
    assert cash_realization(m) == D("0.75")


def test_write_up_and_write_down() -> None:
    assert write_up_down(D("1200"), D("1000")) == D("200")
    assert write_up_down(D("1200"), D("1500")) == D("-300")


def test_lock_up_days_are_wip_days_plus_debtor_days() -> None:
    # WIP 10,000 on 365,000 revenue = 10 days; 20,000 due on 292,000 invoiced = 25 days
    assert wip_days(D("10000"), D("365000")) == D("10")
    assert debtor_days(D("20000"), D("292000")) == D("25")
    assert lock_up_days(D("10000"), D("365000"), D("20000"), D("292000")) == D("35")
    assert lock_up_days(D("10000"), D("0"), D("20000"), D("292000")) is None


def test_last_365_days_is_inclusive_of_as_of() -> None:
    start, end = last_365_days(date(2024, 12, 31))
    assert (end - start).days + 1 == 365
    assert end == date(2024, 12, 31)


def test_utilization_against_capacity_over_working_weeks() -> None:
    # 40 h/week over 48 of 52 weeks; a 365-day window has 40 x 48 = 1,920 h = 115,200 min.
    available = capacity_minutes(D(2400), D(48), 365)
    assert available == D(115200)
    assert utilization(57600, available) == D("0.5")
    assert utilization(10, D(0)) is None


def test_measures_add_field_by_field() -> None:
    a = Measures(fee_revenue=D("1"), billable_minutes=5, cost=D("2"))
    b = Measures(fee_revenue=D("3"), non_billable_minutes=7, cost=D("0.5"))
    total = sum_measures([a, b])
    assert total == Measures(
        fee_revenue=D("4"), billable_minutes=5, non_billable_minutes=7, cost=D("2.5")
    )
    assert total.minutes == 12
    assert total.hours == D("0.2")
