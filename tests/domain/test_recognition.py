"""Recognition policy: billing basis (default) and completion basis for fixed-fee work."""

from datetime import date

import pytest

from app.domain import (
    BillingBasis,
    CompletionBasis,
    CostSettings,
    FeeType,
    InvoiceStatus,
    TenantRecords,
    by_work_item,
    evaluate,
    firm_total,
    in_window,
    recognition_policy,
)
from app.domain import aggregate as aggregate_facts
from tests.domain.builders import D, client, entry, invoice, line, work_item

AS_OF = date(2024, 12, 31)
BILLING = CostSettings(recognition=BillingBasis())
COMPLETION = CostSettings(recognition=CompletionBasis())


def fixed_fee_records(completed: date | None) -> TenantRecords:
    # A 1,200 fixed fee billed 400 in March and 800 in June; T&M work billed 300 in June.
    return TenantRecords(
        clients=(client("C1"),),
        work_items=(
            work_item("FF", fee_type=FeeType.FIXED_FEE, fee_value="1200", completed=completed),
            work_item("TM"),
        ),
        time_entries=(entry("T1", work_item_key="FF"),),
        invoices=(
            invoice("I1", on=date(2024, 3, 31), lines=(line("L1", "FF", "400"),)),
            invoice(
                "I2",
                on=date(2024, 6, 30),
                lines=(line("L2", "FF", "800"), line("L3", "TM", "300")),
            ),
        ),
    )


def test_billing_basis_recognises_fixed_fee_as_invoiced() -> None:
    facts = evaluate(fixed_fee_records(completed=date(2024, 9, 15)), BILLING, AS_OF).facts
    assert firm_total(facts, in_window(date(2024, 1, 1), date(2024, 3, 31))).fee_revenue == 400
    assert firm_total(facts, in_window(date(2024, 4, 1), date(2024, 6, 30))).fee_revenue == 1100
    assert firm_total(facts, in_window(date(2024, 7, 1), date(2024, 12, 31))).fee_revenue == 0


def test_completion_basis_earns_the_whole_fee_on_completion_and_not_twice() -> None:
    facts = evaluate(fixed_fee_records(completed=date(2024, 9, 15)), COMPLETION, AS_OF).facts
    assert firm_total(facts, in_window(date(2024, 1, 1), date(2024, 3, 31))).fee_revenue == 0
    # only the T&M line in June
    assert firm_total(facts, in_window(date(2024, 4, 1), date(2024, 6, 30))).fee_revenue == 300
    assert firm_total(facts, in_window(date(2024, 9, 15), date(2024, 9, 15))).fee_revenue == 1200
    assert aggregate_facts(facts, by_work_item)["FF"].fee_revenue == 1200


def test_completion_basis_earns_nothing_before_completion() -> None:
    facts = evaluate(fixed_fee_records(completed=None), COMPLETION, AS_OF).facts
    assert firm_total(facts).fee_revenue == 300


def test_completion_basis_keeps_invoice_side_measures() -> None:
    facts = evaluate(fixed_fee_records(completed=None), COMPLETION, AS_OF).facts
    total = firm_total(facts)
    assert total.counted_invoice_total == D("1500")
    assert total.counted_amount_due == D("1500")


def test_approved_not_sent_does_not_depend_on_the_policy() -> None:
    records = TenantRecords(
        work_items=(work_item("FF", fee_type=FeeType.FIXED_FEE, fee_value="500"),),
        invoices=(invoice("I1", InvoiceStatus.APPROVED, lines=(line("L1", "FF", "500"),)),),
    )
    for settings in (BILLING, COMPLETION):
        assert firm_total(evaluate(records, settings, AS_OF).facts).approved_not_sent == 500


def test_policies_are_found_by_name() -> None:
    assert isinstance(recognition_policy("billing"), BillingBasis)
    assert isinstance(recognition_policy("completion"), CompletionBasis)
    with pytest.raises(KeyError):
        recognition_policy("cash")


def test_default_settings_use_billing_basis_and_rule_4_defaults() -> None:
    settings = CostSettings()
    assert settings.recognition.name == "billing"
    assert settings.overhead_rate == 0
    assert settings.working_weeks_per_year == 48
    assert settings.default_capacity_hours_per_week == D("37.5")
    with pytest.raises(ValueError):
        CostSettings(working_weeks_per_year=D(0))
