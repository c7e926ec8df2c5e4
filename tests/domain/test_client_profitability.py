"""A worked client-profitability example end to end: facts, sums, then figures."""

from datetime import date

from app.domain import (
    CostSettings,
    FeeType,
    InvoiceStatus,
    LineType,
    TenantRecords,
    by_client,
    debtor_days,
    effective_hourly_rate,
    evaluate,
    firm_total,
    in_window,
    last_365_days,
    lock_up_days,
    margin,
    profit,
    realization,
    wip_days,
)
from app.domain import aggregate as aggregate_facts
from tests.domain.builders import D, client, entry, invoice, line, pay, staff, work_item

AS_OF = date(2024, 12, 31)

# U1 costs 60,000 / (40 h x 48) = 31.25 an hour.
RECORDS = TenantRecords(
    staff=(staff("U1", capacity=2400),),
    compensation=(pay("U1", date(2024, 1, 1), "60000"),),
    clients=(client("C1"), client("C2")),
    work_items=(
        work_item("W1", client_key="C1"),
        work_item("W2", client_key="C1", fee_type=FeeType.NON_BILLABLE),
        work_item("W3", client_key="C2"),
    ),
    time_entries=(
        entry("T1", work_item_key="W1", minutes=480, rate="150", on=date(2024, 5, 6)),
        entry("T2", work_item_key="W2", minutes=120, rate="150", on=date(2024, 5, 6)),
        entry("T3", work_item_key="W3", minutes=240, rate="100", on=date(2024, 5, 6)),
    ),
    invoices=(
        invoice(
            "I1",
            InvoiceStatus.PAID,
            on=date(2024, 5, 31),
            lines=(
                line("L1", "T1", "1080", LineType.TIME_ENTRY),
                line("L2", None, "20", LineType.EXPENSE),
            ),
            total="1210",
            due="0",
        ),
    ),
)


def test_client_rows() -> None:
    facts = evaluate(RECORDS, CostSettings(), AS_OF).facts
    rows = aggregate_facts(facts, by_client, in_window(date(2024, 5, 1), date(2024, 5, 31)))
    c1, c2 = rows["C1"], rows["C2"]
    assert c1.fee_revenue == D("1080")
    assert c1.expense_recoveries == D("20")
    assert c1.cost == D("312.5")  # 10 h x 31.25, the non-billable 2 h included
    assert profit(c1) == D("767.5")
    assert margin(c1) == D("767.5") / D("1080")
    assert realization(c1) == D("0.9")  # 1,080 / (8 h x 150)
    assert effective_hourly_rate(c1) == D("108")  # 1,080 / 10 h
    assert c1.collected_before_tax == D("1100")
    # C2 has cost and no revenue: a loss, and no margin
    assert profit(c2) == D("-125")
    assert margin(c2) is None
    assert firm_total(facts).fee_revenue == D("1080")


def test_lock_up_from_facts_and_wip() -> None:
    evaluation = evaluate(RECORDS, CostSettings(), AS_OF)
    start, end = last_365_days(AS_OF)
    year = firm_total(evaluation.facts, in_window(start, end))
    wip = sum((item.amount for item in evaluation.wip), D(0))
    # T1 and T3 are unbilled in this data set: 8 h x 150 + 4 h x 100
    assert wip == D("1600")
    assert wip_days(wip, year.fee_revenue) == D("1600") / D("1080") * 365
    assert debtor_days(year.counted_amount_due, year.counted_invoice_total) == 0
    assert lock_up_days(wip, year.fee_revenue, D(0), year.counted_invoice_total) == wip_days(
        wip, year.fee_revenue
    )
