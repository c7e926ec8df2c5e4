"""Rule 9 (unbilled work, with age) and fixed-fee write-up/down."""

from datetime import date

from app.domain import (
    BilledStatus,
    ClientType,
    CostSettings,
    FeeType,
    InvoiceStatus,
    TenantRecords,
    evaluate,
)
from app.domain.wip import WipItem
from tests.domain.builders import D, client, entry, invoice, line, work_item

AS_OF = date(2024, 12, 31)


def wip_of(records: TenantRecords) -> dict[tuple[str | None, str | None], WipItem]:
    items = evaluate(records, CostSettings(), AS_OF).wip
    return {(item.client_key, item.work_item_key): item for item in items}


def test_time_and_materials_wip_is_unbilled_and_draft_time_at_standard_value() -> None:
    records = TenantRecords(
        clients=(client("C1"),),
        work_items=(work_item("W1"),),
        time_entries=(
            entry("T1", on=date(2024, 12, 1), minutes=60, rate="100"),
            entry("T2", on=date(2024, 12, 21), minutes=30, rate="120", status=BilledStatus.DRAFT),
            entry("T3", on=date(2024, 11, 1), minutes=60, status=BilledStatus.BILLED),
            entry("T4", on=date(2024, 10, 1), minutes=60, status=BilledStatus.INTERIM_BILLED),
        ),
    )
    item = wip_of(records)[("C1", "W1")]
    assert item.amount == D("160")  # 100 + 0.5 x 120
    assert item.fee_type is FeeType.TIME_AND_MATERIALS
    assert item.since == date(2024, 12, 1)
    assert item.age_days == 30


def test_time_straight_on_a_client_is_wip() -> None:
    records = TenantRecords(
        clients=(client("C1"),),
        time_entries=(entry("T1", work_item_key=None, client_key="C1", minutes=90, rate="100"),),
    )
    item = wip_of(records)[("C1", None)]
    assert item.amount == D("150")
    assert item.fee_type is None


def test_non_billable_time_is_never_wip() -> None:
    records = TenantRecords(
        work_items=(work_item("W1", fee_type=FeeType.NON_BILLABLE),),
        time_entries=(entry("T1", minutes=600),),
    )
    assert wip_of(records) == {}


def test_unknown_fee_type_time_is_wip_under_its_own_fee_type() -> None:
    records = TenantRecords(
        work_items=(work_item("W1", fee_type=FeeType.UNKNOWN),),
        time_entries=(entry("T1", minutes=60, rate="80"), entry("T2", work_item_key="Wx")),
    )
    wip = wip_of(records)
    assert wip[("C1", "W1")].amount == D("80")
    assert wip[("C1", "W1")].fee_type is FeeType.UNKNOWN
    # a work item that was never synced: no known client; its time is still WIP
    assert wip[(None, "Wx")].fee_type is FeeType.UNKNOWN


def fixed_fee(
    *,
    completed: date | None = None,
    entries: bool = True,
    invoices: tuple[tuple[InvoiceStatus, str], ...] = (),
) -> TenantRecords:
    return TenantRecords(
        clients=(client("C1"),),
        work_items=(
            work_item("FF", fee_type=FeeType.FIXED_FEE, fee_value="1000", completed=completed),
        ),
        time_entries=(
            (
                entry("T1", work_item_key="FF", on=date(2024, 11, 1), minutes=300, rate="150"),
                entry("T2", work_item_key="FF", on=date(2024, 12, 1), minutes=120, rate="150"),
            )
            if entries
            else ()
        ),
        invoices=tuple(
            invoice(f"I{n}", status, lines=(line(f"L{n}", "FF", amount),))
            for n, (status, amount) in enumerate(invoices)
        ),
    )


def test_fixed_fee_wip_is_fee_less_invoiced_including_approved_excluding_voided() -> None:
    records = fixed_fee(
        invoices=(
            (InvoiceStatus.PAID, "300"),
            (InvoiceStatus.APPROVED, "200"),
            (InvoiceStatus.VOIDED, "400"),
        )
    )
    item = wip_of(records)[("C1", "FF")]
    assert item.amount == D("500")  # 1,000 - 300 - 200
    assert item.fee_type is FeeType.FIXED_FEE
    # in progress: aged from its first time entry
    assert item.since == date(2024, 11, 1)
    assert item.age_days == 60


def test_fixed_fee_entries_themselves_are_never_wip() -> None:
    records = fixed_fee(invoices=((InvoiceStatus.PAID, "1000"),))
    assert wip_of(records) == {}


def test_fixed_fee_overbilled_has_no_negative_wip() -> None:
    assert wip_of(fixed_fee(invoices=((InvoiceStatus.PAID, "1300"),))) == {}


def test_fixed_fee_without_time_is_wip_only_once_completed() -> None:
    assert wip_of(fixed_fee(entries=False)) == {}
    completed = wip_of(fixed_fee(entries=False, completed=date(2024, 12, 11)))[("C1", "FF")]
    assert completed.amount == D("1000")
    assert completed.age_days == 20  # since completion


def test_fixed_fee_write_up_down_against_time_to_date() -> None:
    evaluation = evaluate(fixed_fee(), CostSettings(), AS_OF)
    [position] = evaluation.fixed_fees
    # 7 h at 150 = 1,050 of time on a 1,000 fee: a write-down of 50
    assert position.standard_value == D("1050")
    assert position.minutes == 420
    assert position.write_up_down == D("-50")


def test_wip_of_a_client_group() -> None:
    group = ClientType.CLIENT_GROUP
    records = TenantRecords(
        work_items=(work_item("W1", client_key="G1", client_type=group),),
        time_entries=(entry("T1", minutes=60, rate="100"),),
    )
    item = wip_of(records)[("G1", "W1")]
    assert item.client_known
    assert item.amount == D("100")
