"""Rules 1, 2, 3 and 6: counted invoices, line attribution, fee revenue, expense recoveries."""

from datetime import date

from app.domain import (
    ClientType,
    CostSettings,
    DataEntityType,
    FactSource,
    FeeType,
    InvoiceDataLine,
    InvoiceStatus,
    LineType,
    TenantRecords,
    by_client,
    by_work_item,
    evaluate,
    firm_total,
)
from app.domain import aggregate as aggregate_facts
from app.domain.figures import Measures
from tests.domain.builders import D, client, entry, invoice, line, staff, work_item

AS_OF = date(2024, 12, 31)


def totals(records: TenantRecords) -> Measures:
    return firm_total(evaluate(records, CostSettings(), AS_OF).facts)


def per_client(records: TenantRecords) -> dict[str | None, Measures]:
    return aggregate_facts(evaluate(records, CostSettings(), AS_OF).facts, by_client)


def per_work_item(records: TenantRecords) -> dict[str | None, Measures]:
    return aggregate_facts(evaluate(records, CostSettings(), AS_OF).facts, by_work_item)


def one_invoice(status: InvoiceStatus) -> TenantRecords:
    lines = (
        line("L1", "W1", "1000"),
        line("L2", None, "150", LineType.EXPENSE),
    )
    return TenantRecords(
        clients=(client("C1"),),
        work_items=(work_item("W1"),),
        invoices=(invoice("I1", status, lines=lines, total="1265", due="1265"),),
    )


def test_sent_invoices_count_as_fee_revenue_and_expense_recoveries() -> None:
    for status in (InvoiceStatus.AWAITING_PAYMENT, InvoiceStatus.PAID, InvoiceStatus.EXPORTED):
        total = totals(one_invoice(status))
        assert total.fee_revenue == D("1000"), status
        assert total.expense_recoveries == D("150"), status
        assert total.approved_not_sent == 0


def test_approved_not_sent_is_reported_but_not_revenue() -> None:
    total = totals(one_invoice(InvoiceStatus.APPROVED))
    assert total.fee_revenue == 0
    assert total.expense_recoveries == 0
    assert total.approved_not_sent == D("1000")
    assert total.approved_not_sent_expenses == D("150")
    assert total.counted_invoice_total == 0


def test_voided_invoice_is_ignored_everywhere() -> None:
    evaluation = evaluate(one_invoice(InvoiceStatus.VOIDED), CostSettings(), AS_OF)
    assert evaluation.facts == ()
    assert firm_total(evaluation.facts) == Measures()


def test_invoice_voided_after_it_was_sent_stops_counting_at_next_sync() -> None:
    assert totals(one_invoice(InvoiceStatus.PAID)).fee_revenue == D("1000")
    assert totals(one_invoice(InvoiceStatus.VOIDED)).fee_revenue == 0


def test_expense_lines_are_never_fee_revenue_or_profit() -> None:
    total = totals(one_invoice(InvoiceStatus.PAID))
    assert total.fee_revenue + total.expense_recoveries == D("1150")
    assert total.fee_revenue - total.cost == D("1000")


def test_line_keyed_to_a_work_item_goes_to_that_work_items_client() -> None:
    records = TenantRecords(
        clients=(client("C1"), client("C2")),
        work_items=(work_item("W2", client_key="C2"),),
        invoices=(invoice("I1", client_key="C1", lines=(line("L1", "W2", "500"),)),),
    )
    assert per_client(records)["C2"].fee_revenue == D("500")
    assert "C1" not in per_client(records)
    assert per_work_item(records)["W2"].fee_revenue == D("500")


def test_line_keyed_to_a_time_entry_goes_to_the_entrys_work_item() -> None:
    records = TenantRecords(
        staff=(staff("U1"),),
        clients=(client("C1"), client("C2")),
        work_items=(work_item("W2", client_key="C2"),),
        time_entries=(entry("T9", work_item_key="W2", status=entry().billed_status),),
        invoices=(
            invoice("I1", client_key="C1", lines=(line("L1", "T9", "300", LineType.TIME_ENTRY),)),
        ),
    )
    assert per_work_item(records)["W2"].fee_revenue == D("300")
    assert per_client(records)["C2"].fee_revenue == D("300")


def test_line_keyed_to_time_straight_on_a_client_stays_with_the_invoices_client() -> None:
    records = TenantRecords(
        clients=(client("C1"), client("C2")),
        time_entries=(entry("T9", work_item_key=None, client_key="C2"),),
        invoices=(
            invoice("I1", client_key="C1", lines=(line("L1", "T9", "300", LineType.TIME_ENTRY),)),
        ),
    )
    line_facts = [f for f in evaluate(records, CostSettings(), AS_OF).facts if f.source_key == "L1"]
    assert [(f.client_key, f.work_item_key, f.measures.fee_revenue) for f in line_facts] == [
        ("C1", None, D("300"))
    ]


def test_line_keyed_to_a_contact_or_an_unknown_key_goes_to_the_invoices_client() -> None:
    records = TenantRecords(
        clients=(client("C1"), client("P7", ClientType.CONTACT)),
        invoices=(invoice("I1", lines=(line("L1", "P7", "200"), line("L2", "zz-unsynced", "50"))),),
    )
    assert per_client(records) == {"C1": per_client(records)["C1"]}
    assert per_client(records)["C1"].fee_revenue == D("250")
    assert per_work_item(records)[None].fee_revenue == D("250")


def test_client_of_an_entry_is_its_work_items_client_else_its_own() -> None:
    records = TenantRecords(
        clients=(client("C1"), client("C2")),
        work_items=(work_item("W1", client_key="C1"),),
        time_entries=(
            entry("T1", work_item_key="W1", client_key="C2", minutes=60),
            entry("T2", work_item_key=None, client_key="C2", minutes=30),
        ),
    )
    by = per_client(records)
    assert by["C1"].minutes == 60
    assert by["C2"].minutes == 30


def test_client_group_clients_keep_their_time_and_revenue() -> None:
    group = ClientType.CLIENT_GROUP
    records = TenantRecords(
        clients=(client("C1"),),
        work_items=(work_item("W1", client_key="G1", client_type=group),),
        time_entries=(
            entry("T1", work_item_key="W1", minutes=60, rate="100"),
            entry("T2", work_item_key=None, client_key="G2", client_type=group, minutes=30),
        ),
        invoices=(
            invoice("I1", client_key="G1", client_type=group, lines=(line("L1", "W1", "400"),)),
        ),
    )
    evaluation = evaluate(records, CostSettings(), AS_OF)
    by = aggregate_facts(evaluation.facts, by_client)
    assert by["G1"].fee_revenue == D("400")
    assert by["G1"].minutes == 60
    assert by["G2"].minutes == 30
    assert all(fact.client_known for fact in evaluation.facts)
    assert not [w for w in evaluation.warnings if w.kind.startswith("unknown_client")]


def test_counted_invoice_totals_are_shared_across_lines_in_proportion() -> None:
    # 10% tax: total 1,100 on 1,000; 440 still due, so 660 paid = 600 before tax.
    records = TenantRecords(
        clients=(client("C1"), client("C2")),
        work_items=(work_item("W1", client_key="C1"), work_item("W2", client_key="C2")),
        invoices=(
            invoice(
                "I1",
                lines=(line("L1", "W1", "750"), line("L2", "W2", "250")),
                total="1100",
                due="440",
            ),
        ),
    )
    by = per_client(records)
    assert by["C1"].collected_before_tax == D("450")
    assert by["C2"].collected_before_tax == D("150")
    assert by["C1"].counted_invoice_total == D("825")
    assert by["C2"].counted_amount_due == D("110")


def test_counted_invoice_without_lines_keeps_its_totals_on_its_client() -> None:
    records = TenantRecords(
        clients=(client("C1"),),
        invoices=(invoice("I1", total="110", sub_total="100", due="55"),),
    )
    facts = evaluate(records, CostSettings(), AS_OF).facts
    assert [f.source for f in facts] == [FactSource.INVOICE]
    total = firm_total(facts)
    assert total.fee_revenue == 0
    assert total.counted_invoice_total == D("110")
    assert total.counted_amount_due == D("55")
    assert total.collected_before_tax == D("50")


def test_data_tab_attributes_a_consolidated_invoice_to_its_work_items() -> None:
    data = (
        InvoiceDataLine("W1", DataEntityType.WORK_ITEM, D("660"), D("600"), D("60")),
        InvoiceDataLine("W2", DataEntityType.WORK_ITEM, D("400"), D("400")),
        InvoiceDataLine("C1", DataEntityType.CLIENT, D("40"), expenses_billed=D("40")),
        InvoiceDataLine(
            "S1",
            DataEntityType.SERVICE,
            D("150"),
            service_billed=D("150"),
            service_work_type="Payroll",
        ),
    )
    records = TenantRecords(
        clients=(client("C1"),),
        work_items=(work_item("W1"), work_item("W2", fee_type=FeeType.FIXED_FEE)),
        invoices=(
            invoice(
                "I1",
                lines=(line("L1", None, "1250"),),
                data_lines=data,
                total="1250",
            ),
        ),
    )
    by_item = per_work_item(records)
    assert by_item["W1"].fee_revenue == D("600")
    assert by_item["W1"].expense_recoveries == D("60")
    assert by_item["W2"].fee_revenue == D("400")
    assert by_item[None].fee_revenue == D("150")
    assert by_item[None].expense_recoveries == D("40")
    assert totals(records).fee_revenue == D("1150")


def test_a_recurring_invoice_is_attributed_by_its_lines_to_the_fixed_fee_work_item() -> None:
    service = InvoiceDataLine(
        "S1", DataEntityType.SERVICE, D("300"), service_billed=D("300"), service_work_type="Tax"
    )
    recurring = work_item("W1", fee_type=FeeType.FIXED_FEE, fee_value="300")
    records = TenantRecords(
        clients=(client("C1"),),
        work_items=(recurring,),
        invoices=(invoice("I1", lines=(line("L1", "W1", "300"),), data_lines=(service,)),),
    )
    evaluation = evaluate(records, CostSettings(), AS_OF)
    assert aggregate_facts(evaluation.facts, by_work_item)["W1"].fee_revenue == D("300")
    assert sum(item.amount for item in evaluation.wip) == 0  # billed in full: no WIP left
    without_lines = TenantRecords(
        clients=records.clients,
        work_items=records.work_items,
        invoices=(invoice("I1", data_lines=(service,)),),
    )
    # With nothing else to go by, the service's revenue stays with the invoice's client.
    assert per_work_item(without_lines)[None].fee_revenue == D("300")
    assert per_client(without_lines)["C1"].fee_revenue == D("300")
