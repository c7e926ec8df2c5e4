"""The reports: SQL sums of facts turned into figures with the domain's ratio functions."""

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.problems import ProblemError
from app.domain import (
    Measures,
    effective_hourly_rate,
    last_365_days,
    margin,
    profit,
    realization,
)
from app.models import ReportWarning
from app.reports import repository
from app.reports.presentation import hours, money, ratio
from app.reports.repository import FactFilter, Grouped
from app.reports.schemas import (
    ClientProfitabilityReport,
    Figures,
    GroupBy,
    Interval,
    Order,
    ProfitabilityRow,
    ReportWarningView,
)

ZERO = Decimal(0)
WARNING_MESSAGES = {
    "missing_compensation": "No compensation entered: the cost of this person's time is "
    "missing, so cost is understated and profit overstated.",
    "missing_capacity": "No capacity in Karbon: the default capacity is used for hourly cost.",
    "unknown_fee_type": "The work item's fee type is not known yet: its time counts as billable "
    "and its unbilled time as WIP at standard value.",
    "unknown_client_time": "Time belongs to a client that is not synced.",
    "unknown_client_invoice": "An invoice belongs to a client that is not synced.",
    "sync_not_completed": "No sync has completed yet: figures cover what has arrived so far.",
}


@dataclass(frozen=True, slots=True)
class ReportContext:
    tenant_id: UUID
    version: int
    as_of: datetime | None
    currency: str | None
    warnings: list[ReportWarningView]

    @property
    def as_of_date(self) -> date:
        return (self.as_of or datetime.now(UTC)).date()

    def window(self, start: date | None, end: date | None) -> tuple[date, date]:
        """The window asked for; by default the 365 days up to the last sync."""
        default_start, default_end = last_365_days(self.as_of_date)
        window = (start or default_start, end or default_end)
        if window[0] > window[1]:
            raise ProblemError(
                422,
                "validation-error",
                "`from` must not be after `to`.",
                title="Validation error",
                errors=[{"field": "query.from", "message": "must not be after `to`"}],
            )
        return window


async def report_context(session: AsyncSession, tenant_id: UUID) -> ReportContext:
    state = await repository.refresh_state(session, tenant_id)
    warnings = [_warning_view(w) for w in await repository.warnings(session, tenant_id)]
    if state is None or state.as_of is None:
        warnings.insert(0, _sync_not_completed())
    return ReportContext(
        tenant_id=tenant_id,
        version=state.version if state else 0,
        as_of=state.as_of if state else None,
        currency=state.currency if state else None,
        warnings=warnings,
    )


def _warning_view(warning: ReportWarning) -> ReportWarningView:
    return ReportWarningView(
        kind=warning.kind,
        subject_key=warning.subject_key,
        subject_name=warning.subject_name,
        hours=hours(warning.minutes),
        message=WARNING_MESSAGES.get(warning.kind, warning.kind),
    )


def _sync_not_completed() -> ReportWarningView:
    return ReportWarningView(
        kind="sync_not_completed",
        subject_key="",
        subject_name="",
        hours=hours(0),
        message=WARNING_MESSAGES["sync_not_completed"],
    )


def figures(m: Measures, currency: str | None) -> dict[str, Any]:
    return {
        "currency": currency,
        "fee_revenue": money(m.fee_revenue),
        "expense_recoveries": money(m.expense_recoveries),
        "cost": money(m.cost),
        "cost_complete": m.cost_is_complete,
        "uncosted_hours": hours(m.uncosted_minutes),
        "profit": money(profit(m)),
        "margin": ratio(margin(m)),
        "billable_hours": hours(m.billable_minutes),
        "non_billable_hours": hours(m.non_billable_minutes),
        "standard_value": money(m.standard_value),
        "realization": ratio(realization(m)),
        "effective_rate": _optional_money(effective_hourly_rate(m)),
        "approved_not_sent": money(m.approved_not_sent),
    }


def _optional_money(value: Decimal | None) -> str | None:
    return money(value) if value is not None else None


def figures_view(m: Measures, currency: str | None) -> Figures:
    return Figures(**figures(m, currency))


# -- client profitability ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfitabilityQuery:
    start: date | None = None
    end: date | None = None
    owner: str | None = None
    manager: str | None = None
    fee_type: str | None = None
    group_by: GroupBy = GroupBy.CLIENT
    interval: Interval | None = None
    sort: str = "fee_revenue"
    order: Order = Order.DESC


@dataclass(frozen=True, slots=True)
class SortedRows:
    rows: list[ProfitabilityRow]
    totals: ProfitabilityRow
    start: date
    end: date


SORT_KEYS: dict[str, Callable[[Measures, Decimal | None], Decimal | int | None]] = {
    "fee_revenue": lambda m, _: m.fee_revenue,
    "expense_recoveries": lambda m, _: m.expense_recoveries,
    "cost": lambda m, _: m.cost,
    "profit": lambda m, _: profit(m),
    "margin": lambda m, _: margin(m),
    "billable_hours": lambda m, _: m.billable_minutes,
    "non_billable_hours": lambda m, _: m.non_billable_minutes,
    "standard_value": lambda m, _: m.standard_value,
    "realization": lambda m, _: realization(m),
    "effective_rate": lambda m, _: effective_hourly_rate(m),
    "approved_not_sent": lambda m, _: m.approved_not_sent,
    "unbilled_work": lambda _, wip: wip,
}
"""Every figure a profitability row can be sorted by (plus `name` and `month`)."""
SORT_FIELDS = (*SORT_KEYS, "name", "month")


class _RowCache:
    """Computed reports of the current refresh version, per process (a small LRU)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._rows: OrderedDict[tuple[Any, ...], SortedRows] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> SortedRows | None:
        found = self._rows.get(key)
        if found is not None:
            self._rows.move_to_end(key)
        return found

    def put(self, key: tuple[Any, ...], rows: SortedRows) -> None:
        self._rows[key] = rows
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)


_cache = _RowCache()


async def client_profitability(
    session: AsyncSession, context: ReportContext, query: ProfitabilityQuery
) -> SortedRows:
    start, end = context.window(query.start, query.end)
    query = replace(query, start=start, end=end)
    # The refresh version is in the key: a new refresh makes earlier entries unreachable.
    key = (context.tenant_id, context.version, query)
    cached = _cache.get(key)
    if cached is None:
        cached = await _compute_profitability(session, context, query, start, end)
        _cache.put(key, cached)
    return cached


async def _compute_profitability(
    session: AsyncSession,
    context: ReportContext,
    query: ProfitabilityQuery,
    start: date,
    end: date,
) -> SortedRows:
    where = FactFilter(start, end, query.owner, query.manager, query.fee_type)
    monthly = query.interval is Interval.MONTH
    groups = await repository.sum_facts(
        session, context.tenant_id, where, query.group_by, monthly=monthly
    )
    wip = await repository.sum_wip(session, context.tenant_id, where, query.group_by)
    if not monthly:
        known = {group.key for group in groups}
        groups += [Grouped(k, None, Measures()) for k in wip if k not in known]
    names = await _group_names(session, context.tenant_id, query.group_by, groups)
    rows = [
        (
            group,
            _profitability_row(group, names, context.currency, None if monthly else wip),
        )
        for group in groups
    ]
    rows.sort(key=lambda pair: _sort_value(pair, query.sort), reverse=query.order is Order.DESC)
    rows = _nones_last(rows, query.sort)
    totals = _totals(groups, wip, context.currency, monthly)
    return SortedRows([row for _, row in rows], totals, start, end)


async def _group_names(
    session: AsyncSession, tenant_id: UUID, group_by: GroupBy, groups: list[Grouped]
) -> dict[Any, str]:
    keys = sorted({group.key for group in groups if group.key is not None})
    if group_by is GroupBy.CLIENT:
        return await repository.client_names(session, tenant_id, keys)
    return {key: key for key in keys}


def _profitability_row(
    group: Grouped, names: dict[Any, str], currency: str | None, wip: dict[Any, Any] | None
) -> ProfitabilityRow:
    unbilled = None if wip is None else money(wip.get(group.key) or ZERO)
    return ProfitabilityRow(
        key=group.key,
        name=names.get(group.key),
        month=group.month,
        unbilled_work=unbilled,
        **figures(group.measures, currency),
    )


def _totals(
    groups: list[Grouped], wip: dict[Any, Any], currency: str | None, monthly: bool
) -> ProfitabilityRow:
    total = Measures()
    for group in groups:
        total = total + group.measures
    unbilled = None if monthly else money(sum(wip.values(), ZERO))
    return ProfitabilityRow(
        key=None, name="Total", unbilled_work=unbilled, **figures(total, currency)
    )


def _sort_value(pair: tuple[Grouped, ProfitabilityRow], sort: str) -> tuple[Any, ...]:
    group, row = pair
    if sort == "name":
        return ((row.name or "").lower(), row.key or "")
    if sort == "month":
        return (group.month or date.min, row.key or "")
    wip = Decimal(row.unbilled_work) if row.unbilled_work is not None else None
    value = SORT_KEYS[sort](group.measures, wip)
    return (value if value is not None else ZERO, row.key or "")


def _nones_last(
    rows: list[tuple[Grouped, ProfitabilityRow]], sort: str
) -> list[tuple[Grouped, ProfitabilityRow]]:
    """A ratio with no denominator has no place in an order: such rows go last."""
    if sort not in SORT_KEYS:
        return rows
    present = [pair for pair in rows if _sort_figure(pair, sort) is not None]
    missing = [pair for pair in rows if _sort_figure(pair, sort) is None]
    return present + missing


def _sort_figure(pair: tuple[Grouped, ProfitabilityRow], sort: str) -> Any:
    group, row = pair
    wip = Decimal(row.unbilled_work) if row.unbilled_work is not None else None
    return SORT_KEYS[sort](group.measures, wip)


def page_of(rows: Sequence[Any], limit: int, offset: int) -> list[Any]:
    return list(rows[offset : offset + limit])


def profitability_report(
    context: ReportContext,
    result: SortedRows,
    query: ProfitabilityQuery,
    limit: int,
    offset: int,
) -> ClientProfitabilityReport:
    return ClientProfitabilityReport(
        items=page_of(result.rows, limit, offset),
        total=len(result.rows),
        limit=limit,
        offset=offset,
        as_of=context.as_of,
        warnings=context.warnings,
        currency=context.currency,
        start=result.start,
        end=result.end,
        group_by=query.group_by,
        interval=query.interval,
        totals=result.totals,
    )
