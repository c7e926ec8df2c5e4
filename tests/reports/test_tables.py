"""Terminal tables: ratios as percentages, warnings by name."""

import logging
from pathlib import Path

import pytest
from rich.console import Console

from app.cli import _log_to_file, tables
from app.observability import configure_logging


def test_ratios_print_as_percentages() -> None:
    assert tables.percent("0.2341") == "23.4%"
    assert tables.percent("-0.1") == "-10.0%"
    assert tables.percent(None) == "-"


def _warning(kind: str, name: str, hours: str, message: str) -> dict[str, str]:
    return {
        "kind": kind,
        "subject_key": name,
        "subject_name": name,
        "hours": hours,
        "message": message,
    }


def test_warnings_are_listed_by_kind_with_their_subjects() -> None:
    lines = tables.warning_lines(
        [
            _warning("missing_compensation", "Ana Ruiz", "12.50", "No compensation entered."),
            _warning("missing_compensation", "Bo Li", "0.00", "No compensation entered."),
            _warning("sync_not_completed", "", "0.00", "No sync has completed yet."),
        ]
    )
    assert lines == [
        "missing_compensation for Ana Ruiz (12.50 h), Bo Li: No compensation entered.",
        "sync_not_completed: No sync has completed yet.",
    ]


def test_a_profitability_table_shows_margins_as_percentages_and_names_warnings() -> None:
    row = {
        "name": "Acme Ltd",
        "fee_revenue": "100.00",
        "cost": "80.00",
        "profit": "20.00",
        "margin": "0.2000",
        "billable_hours": "3.00",
        "realization": "0.9512",
        "unbilled_work": "5.00",
    }
    report = {
        "from": "2026-01-01",
        "to": "2026-12-31",
        "currency": "NZD",
        "as_of": "2026-12-31",
        "items": [row],
        "total": 1,
        "totals": {**row, "name": "Total"},
        "warnings": [_warning("missing_capacity", "Ana Ruiz", "0.00", "No capacity.")],
    }
    console = Console(width=200, record=True)
    console.print(tables.profitability(report))
    shown = console.export_text()
    assert "20.0%" in shown and "95.1%" in shown and "0.2000" not in shown
    assert "missing_capacity for Ana Ruiz: No capacity." in shown


def _utilization_table(rows: list[dict[str, str]]) -> str:
    report = {"from": "2026-01-01", "to": "2026-12-31", "as_of": "2026-12-31"}
    console = Console(width=200, record=True)
    console.print(tables.staff_utilization({**report, "items": rows, "total": len(rows)}))
    return console.export_text()


def test_a_table_leaves_out_the_pay_columns_a_member_does_not_get() -> None:
    row = {"name": "Ana Ruiz", "available_hours": "150.00", "utilization": "0.5000"}
    assert "Cost" not in _utilization_table([row])
    with_pay = _utilization_table([{**row, "cost": "900.00", "cost_complete": "true"}])
    assert "Cost" in with_pay and "900.00" in with_pay


def test_the_demo_logs_to_a_file_instead_of_the_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    log_file = tmp_path / "data" / "demo.log"
    _log_to_file(log_file)
    try:
        logging.getLogger("reckonry.test").info("a line that would break the progress bars")
    finally:
        configure_logging("INFO")
    assert "would break the progress bars" in log_file.read_text()
    assert "would break" not in capfd.readouterr().err
