"""Records Karbon sends with a gap: what is kept, where it is attributed, and what is flagged."""

from dataclasses import replace
from datetime import date
from decimal import Decimal

from hypothesis import given

from app.domain import (
    CostSettings,
    DataWarning,
    Evaluation,
    FactSource,
    FeeType,
    TenantRecords,
    WarningKind,
    evaluate,
    firm_total,
)
from tests.domain.builders import client, entry, invoice, line, pay, staff, work_item
from tests.domain.strategies import tenants

AS_OF = date(2024, 12, 31)
D = Decimal


def evaluated(records: TenantRecords) -> Evaluation:
    return evaluate(records, CostSettings(), AS_OF)


def costed(**parts: object) -> TenantRecords:
    return TenantRecords(
        staff=(staff("U1"),),
        compensation=(pay("U1", date(2024, 1, 1), "60000"),),
        clients=(client("C1"), client("C2")),
        **parts,  # type: ignore[arg-type]
    )


def test_an_entry_with_an_unreadable_billed_status_keeps_its_time_and_cost_but_is_not_wip() -> None:
    readable = costed(work_items=(work_item("W1"),), time_entries=(entry("T1", minutes=90),))
    unreadable = replace(readable, time_entries=(entry("T1", minutes=90, status=None),))
    before, after = evaluated(readable), evaluated(unreadable)
    assert firm_total(after.facts) == firm_total(before.facts)
    assert firm_total(after.facts).billable_minutes == 90
    assert firm_total(after.facts).cost > 0
    assert before.wip and not after.wip


@given(tenants())
def test_no_figure_but_wip_depends_on_a_billed_status_that_cannot_be_read(
    records: TenantRecords,
) -> None:
    unread = replace(
        records, time_entries=tuple(replace(e, billed_status=None) for e in records.time_entries)
    )
    before, after = evaluated(records), evaluated(unread)
    assert after.facts == before.facts
    time_based = [item for item in after.wip if item.fee_type is not FeeType.FIXED_FEE]
    assert time_based == []


def test_a_line_of_unreadable_type_is_fee_revenue_of_its_invoices_client() -> None:
    records = costed(
        work_items=(work_item("W2", client_key="C2"),),
        invoices=(invoice("I1", client_key="C1", lines=(line("L1", "W2", "250", None),)),),
    )
    (fact,) = [f for f in evaluated(records).facts if f.source is FactSource.INVOICE_LINE]
    assert (fact.client_key, fact.work_item_key) == ("C1", None)
    assert fact.measures.fee_revenue == D("250")


def test_an_invoice_without_a_client_is_attributed_by_its_lines() -> None:
    records = costed(
        work_items=(work_item("W2", client_key="C2"),),
        time_entries=(entry("T9", work_item_key=None, client_key="C1"),),
        invoices=(
            invoice(
                "I1",
                client_key=None,
                lines=(line("L1", "W2", "300"), line("L2", "T9", "40"), line("L3", "Z", "7")),
            ),
        ),
    )
    evaluation = evaluated(records)
    lines = {f.source_key: f for f in evaluation.facts if f.source is FactSource.INVOICE_LINE}
    assert {key: fact.client_key for key, fact in lines.items()} == {
        "L1": "C2",
        "L2": "C1",
        "L3": None,
    }
    assert firm_total(evaluation.facts).fee_revenue == D("347")
    unattributed = [w for w in evaluation.warnings if w.kind is WarningKind.UNATTRIBUTED_INVOICE]
    assert unattributed == [
        DataWarning(
            WarningKind.UNATTRIBUTED_INVOICE, "I1", "INV-I1", amount=D("7"), on=date(2024, 3, 31)
        )
    ]
    assert not [w for w in evaluation.warnings if w.kind is WarningKind.UNKNOWN_CLIENT_INVOICE]


def test_an_invoice_without_client_or_lines_is_unattributed_for_its_subtotal() -> None:
    records = costed(invoices=(invoice("I2", client_key=None, total="110", sub_total="100"),))
    (warning,) = evaluated(records).warnings
    assert (warning.kind, warning.amount) == (WarningKind.UNATTRIBUTED_INVOICE, D("100"))


def test_time_on_a_deleted_non_billable_work_item_stays_non_billable_and_is_not_wip() -> None:
    records = costed(
        work_items=(work_item("W1", fee_type=FeeType.NON_BILLABLE, deleted=True),),
        time_entries=(entry("T1", minutes=600, rate="150"),),
    )
    evaluation = evaluated(records)
    total = firm_total(evaluation.facts)
    assert (total.billable_minutes, total.non_billable_minutes) == (0, 600)
    assert evaluation.wip == ()
    assert evaluation.warnings == (
        DataWarning(
            WarningKind.DELETED_WORK_ITEM,
            "W1",
            "Client C1",
            600,
            client_key="C1",
            on=date(2024, 3, 4),
        ),
    )


def test_an_invoice_of_unreadable_status_is_neither_revenue_nor_voided() -> None:
    records = costed(
        work_items=(work_item("W1"),),
        invoices=(invoice("I1", status=None, lines=(line("L1", "W1", "100"),)),),
    )
    facts = evaluated(records).facts
    total = firm_total(facts)
    assert total.fee_revenue == 0 and total.approved_not_sent == 0
    assert [f.source_key for f in facts] == ["L1"]  # kept, where a voided invoice is not
