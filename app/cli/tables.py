"""The reports as terminal tables, read from their JSON (the API's shape).

Ratios (margin, realization, utilization) show as percentages; warnings by kind and subject.
"""

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

Report = dict[str, Any]
# (field, title, format) per column; the first column is left-aligned.
Columns = Sequence[tuple[str, str, Callable[[Any], str]]]


def percent(value: Any) -> str:
    return "-" if value is None else f"{Decimal(value) * 100:.1f}%"


def plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


PROFITABILITY: Columns = (
    ("name", "Client", plain),
    ("fee_revenue", "Revenue", plain),
    ("cost", "Cost", plain),
    ("profit", "Profit", plain),
    ("margin", "Margin", percent),
    ("billable_hours", "Billable h", plain),
    ("realization", "Realization", percent),
    ("unbilled_work", "Unbilled", plain),
)
UNBILLED: Columns = (
    ("client_name", "Client", plain),
    ("work_item_title", "Work item", plain),
    ("fee_type", "Fee type", plain),
    ("amount", "Amount", plain),
    ("since", "Since", plain),
    ("age_days", "Age (days)", plain),
)
UTILIZATION: Columns = (
    ("name", "Staff member", plain),
    ("available_hours", "Available h", plain),
    ("billable_hours", "Billable h", plain),
    ("non_billable_hours", "Non-billable h", plain),
    ("utilization", "Utilization", percent),
    ("billable_utilization", "Billable util.", percent),
    ("cost", "Cost", plain),
    ("cost_complete", "Cost complete", plain),
)
WORK_ITEMS: Columns = (
    ("title", "Work item", plain),
    ("fee_type", "Fee type", plain),
    ("fee_revenue", "Revenue", plain),
    ("cost", "Cost", plain),
    ("profit", "Profit", plain),
    ("margin", "Margin", percent),
    ("realization", "Realization", percent),
    ("unbilled_work", "Unbilled", plain),
)
STAFF: Columns = (
    ("name", "Staff member", plain),
    ("billable_hours", "Billable h", plain),
    ("non_billable_hours", "Non-billable h", plain),
    ("cost", "Cost", plain),
    ("standard_value", "Standard value", plain),
)
SUMMARY: Columns = (
    ("fee_revenue", "Fee revenue", plain),
    ("cost", "Cost", plain),
    ("profit", "Profit", plain),
    ("margin", "Margin", percent),
    ("billable_hours", "Billable hours", plain),
    ("non_billable_hours", "Non-billable hours", plain),
    ("realization", "Realization", percent),
    ("effective_rate", "Effective hourly rate", plain),
    ("unbilled_work", "Unbilled work", plain),
    ("cash_realization", "Cash realization", percent),
    ("amount_due", "Amount due", plain),
    ("wip_days", "WIP days", plain),
    ("debtor_days", "Debtor days", plain),
    ("lock_up_days", "Lock-up days", plain),
)


def table(title: str, columns: Columns, rows: Sequence[Report], caption: str = "") -> Table:
    """Columns a field of which no row has (pay, for those who may not see it) are left out."""
    if rows:
        columns = [column for column in columns if any(column[0] in row for row in rows)]
    shown = Table(title=title, caption=caption or None)
    for index, (_, heading, _) in enumerate(columns):
        shown.add_column(heading, justify="left" if index == 0 else "right")
    for row in rows:
        shown.add_row(*(render(row.get(field)) for field, _, render in columns))
    return shown


def _window(report: Report) -> str:
    currency = f" ({report['currency']})" if report.get("currency") else ""
    return f"{report['from']} to {report['to']}{currency}"


def _paged(report: Report) -> str:
    shown = len(report["items"])
    more = f"; showing {shown} of {report['total']}" if report["total"] > shown else ""
    return f"as of {report['as_of']}{more}"


def profitability(report: Report) -> RenderableType:
    monthly = report.get("interval") == "month"
    columns = (("month", "Month", plain), *PROFITABILITY) if monthly else PROFITABILITY
    title = "Client profitability by month" if monthly else "Client profitability"
    rows = [*report["items"], report["totals"]]
    shown = table(f"{title} {_window(report)}", columns, rows, _paged(report))
    return _with_warnings(shown, report)


def summary(report: Report) -> RenderableType:
    values = {**report["totals"], **report}
    shown = Table(title=f"Summary {_window(report)}", caption=f"as of {report['as_of']}")
    shown.add_column("Figure")
    shown.add_column("Value", justify="right")
    for field, heading, render in SUMMARY:
        shown.add_row(heading, render(values.get(field)))
    return _with_warnings(shown, report)


def unbilled_work(report: Report) -> RenderableType:
    currency = f" ({report['currency']})" if report.get("currency") else ""
    ages = ", ".join(f"{bucket['label']} days: {bucket['amount']}" for bucket in report["by_age"])
    caption = f"{_paged(report)}; total {report['total_amount']}; {ages}"
    return _with_warnings(
        table(f"Unbilled work{currency}", UNBILLED, report["items"], caption), report
    )


def staff_utilization(report: Report) -> RenderableType:
    shown = table(
        f"Staff utilization {_window(report)}", UTILIZATION, report["items"], _paged(report)
    )
    return _with_warnings(shown, report)


def client(report: Report) -> RenderableType:
    name = report.get("name") or report["key"]
    totals = table(
        f"{name}: totals {_window(report)}",
        PROFITABILITY,
        [report["totals"]],
        f"as of {report['as_of']}",
    )
    work_items = table("By work item", WORK_ITEMS, report["by_work_item"])
    staff = table("By staff member", STAFF, report["by_staff"])
    return _with_warnings(Group(totals, work_items, staff), report)


def warning_lines(warnings: Sequence[Report]) -> list[str]:
    """One line per kind of warning: its subjects by name, then what it means."""
    by_kind: dict[str, list[Report]] = {}
    for warning in warnings:
        by_kind.setdefault(warning["kind"], []).append(warning)
    lines = []
    for kind, items in by_kind.items():
        subjects = ", ".join(
            f"{item['subject_name']} ({item['hours']} h)"
            if Decimal(item["hours"] or 0)
            else item["subject_name"]
            for item in items
            if item["subject_name"]
        )
        about = f" for {subjects}" if subjects else ""
        lines.append(f"{kind}{about}: {items[0]['message']}")
    return lines


def _with_warnings(shown: RenderableType, report: Report) -> RenderableType:
    lines = warning_lines(report.get("warnings", []))
    if not lines:
        return shown
    listed = Text("Warnings:\n", style="bold yellow")
    for line in lines:
        listed.append(f"  - {line}\n", style="yellow")
    return Group(shown, listed)
