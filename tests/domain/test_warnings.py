"""Data-quality warnings: who has no compensation or capacity, unknown fee types and clients."""

from datetime import date

from app.domain import (
    ClientType,
    CostSettings,
    DataWarning,
    FeeType,
    TenantRecords,
    WarningKind,
    evaluate,
)
from tests.domain.builders import client, entry, invoice, line, pay, staff, work_item

AS_OF = date(2024, 12, 31)


def warnings_of(records: TenantRecords) -> set[DataWarning]:
    return set(evaluate(records, CostSettings(), AS_OF).warnings)


def test_complete_data_has_no_warnings() -> None:
    records = TenantRecords(
        staff=(staff("U1"),),
        compensation=(pay("U1", date(2024, 1, 1), "60000"),),
        clients=(client("C1"),),
        work_items=(work_item("W1"),),
        time_entries=(entry("T1"),),
        invoices=(invoice("I1", lines=(line("L1", "W1", "100"),)),),
    )
    assert warnings_of(records) == set()


def test_each_kind_of_gap_is_named() -> None:
    records = TenantRecords(
        staff=(staff("U1", capacity=None, name="Ann"), staff("U2", name="Bo")),
        compensation=(pay("U1", date(2024, 1, 1), "60000"),),
        clients=(client("C1"),),
        work_items=(work_item("W1", fee_type=FeeType.UNKNOWN),),
        time_entries=(
            entry("T1", user="U1", minutes=60),
            entry(
                "T2",
                user="U2",
                minutes=45,
                work_item_key=None,
                client_key="P404",
                client_type=ClientType.CONTACT,
            ),
        ),
        invoices=(invoice("I1", client_key="O404", lines=(line("L1", None, "10"),)),),
    )
    assert warnings_of(records) == {
        DataWarning(WarningKind.MISSING_CAPACITY, "U1", "Ann", 60),
        DataWarning(WarningKind.MISSING_COMPENSATION, "U2", "Bo", 45),
        DataWarning(WarningKind.UNKNOWN_FEE_TYPE, "W1", "Client C1", 60),
        DataWarning(WarningKind.UNKNOWN_CLIENT_TIME, "P404", "", 45),
        DataWarning(WarningKind.UNKNOWN_CLIENT_INVOICE, "O404", ""),
    }


def test_staff_without_any_compensation_is_flagged_even_without_time() -> None:
    records = TenantRecords(staff=(staff("U9", name="Cy"),))
    assert warnings_of(records) == {DataWarning(WarningKind.MISSING_COMPENSATION, "U9", "Cy", 0)}


def test_time_with_no_client_at_all_is_flagged() -> None:
    records = TenantRecords(
        staff=(staff("U1"),),
        compensation=(pay("U1", date(2024, 1, 1), "60000"),),
        time_entries=(entry("T1", work_item_key=None, client_key=None, minutes=15),),
    )
    assert warnings_of(records) == {DataWarning(WarningKind.UNKNOWN_CLIENT_TIME, "", "", 15)}
