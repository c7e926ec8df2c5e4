"""Rules 4, 5 and 7: hourly cost, time cost, standard value, effective-dated compensation."""

from datetime import date
from decimal import Decimal

from app.domain import (
    CostSettings,
    FeeType,
    TenantRecords,
    WarningKind,
    by_client,
    evaluate,
    firm_total,
    hourly_cost,
    in_window,
)
from app.domain import aggregate as aggregate_facts
from tests.domain.builders import D, client, entry, pay, staff, work_item

AS_OF = date(2024, 12, 31)
LOADED = CostSettings(overhead_rate=D("0.25"), working_weeks_per_year=D(48))


def test_hourly_cost_follows_rule_4() -> None:
    # 72,000 x 1.25 / (40 h x 48 weeks) = 90,000 / 1,920 = 46.875
    assert hourly_cost(D(72000), D("0.25"), D(2400), D(48)) == D("46.875")


def test_time_cost_and_standard_value_of_one_entry() -> None:
    records = TenantRecords(
        staff=(staff("U1", capacity=2400),),
        compensation=(pay("U1", date(2024, 1, 1), "72000"),),
        clients=(client("C1"),),
        work_items=(work_item("W1"),),
        time_entries=(entry("T1", minutes=90, rate="120"),),
    )
    total = firm_total(evaluate(records, LOADED, AS_OF).facts)
    assert total.cost == D("70.3125")  # 1.5 h x 46.875
    assert total.standard_value == D("180")  # 1.5 h x 120
    assert total.billable_minutes == 90
    assert total.uncosted_minutes == 0
    assert total.defaulted_capacity_minutes == 0


def test_missing_or_zero_capacity_uses_tenant_default_and_is_flagged() -> None:
    records = TenantRecords(
        staff=(staff("U1", capacity=None), staff("U2", capacity=0)),
        compensation=(pay("U1", date(2024, 1, 1), "72000"), pay("U2", date(2024, 1, 1), "72000")),
        work_items=(work_item("W1"),),
        time_entries=(entry("T1", user="U1", minutes=60), entry("T2", user="U2", minutes=30)),
    )
    evaluation = evaluate(records, LOADED, AS_OF)
    total = firm_total(evaluation.facts)
    # default 37.5 h: 90,000 / (37.5 x 48 = 1,800) = 50 per hour; 1.5 h -> 75
    assert total.cost == D("75")
    assert total.defaulted_capacity_minutes == 90
    flagged = {w.subject_key for w in evaluation.warnings if w.kind is WarningKind.MISSING_CAPACITY}
    assert flagged == {"U1", "U2"}


def test_missing_compensation_is_uncosted_never_zero_silently() -> None:
    records = TenantRecords(
        staff=(staff("U1"), staff("U2")),
        compensation=(pay("U1", date(2024, 1, 1), "72000"),),
        work_items=(work_item("W1"),),
        time_entries=(entry("T1", user="U1", minutes=60), entry("T2", user="U2", minutes=120)),
    )
    evaluation = evaluate(records, LOADED, AS_OF)
    total = firm_total(evaluation.facts)
    assert total.cost == D("46.875")
    assert total.uncosted_minutes == 120
    assert not total.cost_is_complete
    missing = [w for w in evaluation.warnings if w.kind is WarningKind.MISSING_COMPENSATION]
    assert [(w.subject_key, w.subject_name, w.minutes) for w in missing] == [
        ("U2", "Staff U2", 120)
    ]


def test_time_before_first_compensation_period_is_uncosted() -> None:
    records = TenantRecords(
        staff=(staff("U1"),),
        compensation=(pay("U1", date(2024, 6, 1), "72000"),),
        work_items=(work_item("W1"),),
        time_entries=(entry("T1", on=date(2024, 5, 27), minutes=60),),
    )
    total = firm_total(evaluate(records, LOADED, AS_OF).facts)
    assert total.cost == 0
    assert total.uncosted_minutes == 60


def test_a_raise_applies_from_its_date_and_leaves_earlier_windows_alone() -> None:
    records = TenantRecords(
        staff=(staff("U1"),),
        compensation=(
            pay("U1", date(2024, 1, 1), "72000"),
            pay("U1", date(2024, 7, 1), "96000"),
        ),
        work_items=(work_item("W1"),),
        time_entries=(
            entry("T1", on=date(2024, 6, 24), minutes=60),
            entry("T2", on=date(2024, 7, 1), minutes=60),
        ),
    )
    facts = evaluate(records, LOADED, AS_OF).facts
    first_half = firm_total(facts, in_window(date(2024, 1, 1), date(2024, 6, 30)))
    second_half = firm_total(facts, in_window(date(2024, 7, 1), date(2024, 12, 31)))
    assert first_half.cost == D("46.875")
    assert second_half.cost == D("62.5")  # 96,000 x 1.25 / 1,920


def test_cost_counts_billable_and_non_billable_time_alike() -> None:
    records = TenantRecords(
        staff=(staff("U1"),),
        compensation=(pay("U1", date(2024, 1, 1), "72000"),),
        work_items=(work_item("W1"), work_item("W2", fee_type=FeeType.NON_BILLABLE)),
        time_entries=(
            entry("T1", work_item_key="W1", minutes=60, rate="100"),
            entry("T2", work_item_key="W2", minutes=60, rate="100"),
        ),
    )
    by = aggregate_facts(evaluate(records, LOADED, AS_OF).facts, by_client)
    c1 = by["C1"]
    assert c1.cost == D("93.75")
    assert (c1.billable_minutes, c1.non_billable_minutes) == (60, 60)
    assert c1.standard_value == D("200")
    assert c1.billable_standard_value == D("100")


def test_a_repeating_cost_is_rounded_only_at_the_tenth_place() -> None:
    records = TenantRecords(
        staff=(staff("U1", capacity=2400),),
        compensation=(pay("U1", date(2024, 1, 1), "100000"),),
        work_items=(work_item("W1"),),
        time_entries=(entry("T1", minutes=7, rate="100"),),
    )
    total = firm_total(evaluate(records, CostSettings(), AS_OF).facts)
    # 7 x 100,000 / (2,400 x 48) = 6.07638888...
    assert total.cost == D("6.0763888889")
    assert total.standard_value == D("11.6666666667")  # 7 / 60 x 100
    assert Decimal(7) * 100 / 60 - total.standard_value < D("1e-9")
