"""The order of a report's rows, decided in the database.

Each figure a row can be sorted by is written here as a SQL expression over the summed
measure columns; it mirrors the function of `app.domain.figures` that computes the figure a
person reads, and a test holds the two in agreement. A ratio with no denominator is NULL, as
the domain's is None, and such rows go last in either direction.
"""

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, func

Columns = Any
"""The summed columns of a grouped query (`Subquery.c`)."""


def _ratio(numerator: ColumnElement[Any], denominator: ColumnElement[Any]) -> ColumnElement[Any]:
    divided: ColumnElement[Any] = numerator / func.nullif(denominator, 0)
    return divided


def _minutes(c: Columns) -> ColumnElement[Any]:
    minutes: ColumnElement[Any] = c.billable_minutes + c.non_billable_minutes
    return minutes


FIGURES: dict[str, Callable[[Columns], ColumnElement[Any]]] = {
    "fee_revenue": lambda c: c.fee_revenue,
    "expense_recoveries": lambda c: c.expense_recoveries,
    "cost": lambda c: c.cost,
    "profit": lambda c: c.fee_revenue - c.cost,
    "margin": lambda c: _ratio(c.fee_revenue - c.cost, c.fee_revenue),
    "billable_hours": lambda c: c.billable_minutes,
    "non_billable_hours": lambda c: c.non_billable_minutes,
    "standard_value": lambda c: c.standard_value,
    "realization": lambda c: _ratio(c.fee_revenue, c.billable_standard_value),
    "effective_rate": lambda c: _ratio(c.fee_revenue * 60, _minutes(c)),
    "approved_not_sent": lambda c: c.approved_not_sent,
    "unbilled_work": lambda c: c.unbilled,
}
"""Every figure a profitability row can be sorted by (besides `name` and `month`)."""

SORT_FIELDS = (*FIGURES, "name", "month")

SORT_SUMS: dict[str, tuple[str, ...]] = {
    "fee_revenue": ("fee_revenue",),
    "expense_recoveries": ("expense_recoveries",),
    "cost": ("cost",),
    "profit": ("fee_revenue", "cost"),
    "margin": ("fee_revenue", "cost"),
    "billable_hours": ("billable_minutes",),
    "non_billable_hours": ("non_billable_minutes",),
    "standard_value": ("standard_value",),
    "realization": ("fee_revenue", "billable_standard_value"),
    "effective_rate": ("fee_revenue", "billable_minutes", "non_billable_minutes"),
    "approved_not_sent": ("approved_not_sent",),
    "unbilled_work": ("unbilled",),
    "name": (),
    "month": (),
}
"""The sums each sort field reads: ranking many groups sums only these."""
