"""The reports: SQL sums of facts turned into figures with the domain's ratio functions."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.problems import ProblemError
from app.domain import (
    MEASURE_NAMES,
    Measures,
    effective_hourly_rate,
    last_365_days,
    margin,
    profit,
    realization,
)
from app.models import ReportWarning
from app.reports import repository
from app.reports.cache import CONTEXT_TTL_SECONDS, LruCache, TenantTtlCache
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


_contexts: TenantTtlCache[ReportContext] = TenantTtlCache(CONTEXT_TTL_SECONDS)


async def report_context(session: AsyncSession, tenant_id: UUID) -> ReportContext:
    """The refresh version, `as_of` and warnings; kept per process (see `app.reports.cache`)."""
    context = _contexts.get(tenant_id)
    if context is None:
        context = await _read_report_context(session, tenant_id)
        _contexts.put(tenant_id, context)
    return context


async def _read_report_context(session: AsyncSession, tenant_id: UUID) -> ReportContext:
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
class RankedGroup:
    group: Grouped
    unbilled: Decimal | None
    """The group's WIP; None in a monthly series."""


@dataclass(frozen=True, slots=True)
class SortedGroups:
    """A report's groups in the order asked for; rows are built only for what is shown."""

    groups: list[RankedGroup]
    names: dict[Any, str]
    """Every group's name when sorted by name; otherwise filled in per page."""
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

_sorted_groups: LruCache[SortedGroups] = LruCache(128)
_pages: LruCache[bytes] = LruCache(512)


async def client_profitability(
    session: AsyncSession, context: ReportContext, query: ProfitabilityQuery
) -> tuple[ProfitabilityQuery, SortedGroups]:
    """The report's groups, sorted; `query` comes back with its window filled in."""
    start, end = context.window(query.start, query.end)
    query = replace(query, start=start, end=end)
    # The refresh version is in the key: a new refresh makes earlier entries unreachable.
    key = (context.tenant_id, context.version, query)
    found = _sorted_groups.get(key)
    if found is None:
        found = await _compute_profitability(session, context, query, start, end)
        _sorted_groups.put(key, found)
    return query, found


async def profitability_page_json(
    session: AsyncSession,
    context: ReportContext,
    query: ProfitabilityQuery,
    limit: int,
    offset: int,
) -> bytes:
    """One page of the report as JSON, serialized once per refresh version."""
    query, result = await client_profitability(session, context, query)
    key = (context.tenant_id, context.version, query, limit, offset)
    body = _pages.get(key)
    if body is None:
        report = await profitability_report(session, context, result, query, limit, offset)
        body = report.model_dump_json(by_alias=True).encode()
        _pages.put(key, body)
    return body


async def _compute_profitability(
    session: AsyncSession,
    context: ReportContext,
    query: ProfitabilityQuery,
    start: date,
    end: date,
) -> SortedGroups:
    where = FactFilter(start, end, query.owner, query.manager, query.fee_type)
    monthly = query.interval is Interval.MONTH
    groups = await repository.sum_facts(
        session, context.tenant_id, where, query.group_by, monthly=monthly
    )
    wip = await repository.sum_wip(session, context.tenant_id, where, query.group_by)
    if not monthly:
        known = {group.key for group in groups}
        groups += [Grouped(k, None, Measures()) for k in wip if k not in known]
    ranked = [RankedGroup(g, None if monthly else wip.get(g.key) or ZERO) for g in groups]
    names: dict[Any, str] = {}
    if query.sort == "name":
        names = await _group_names(session, context.tenant_id, query.group_by, groups)
    ordered = _sorted(ranked, names, query.sort, query.order)
    totals = _totals(groups, None if monthly else wip, context.currency)
    return SortedGroups(ordered, names, totals, start, end)


async def _group_names(
    session: AsyncSession, tenant_id: UUID, group_by: GroupBy, groups: Sequence[Grouped]
) -> dict[Any, str]:
    keys = sorted({group.key for group in groups if group.key is not None})
    if group_by is GroupBy.CLIENT:
        return await repository.client_names(session, tenant_id, keys)
    return {key: key for key in keys}


def _sorted(
    ranked: list[RankedGroup], names: dict[Any, str], sort: str, order: Order
) -> list[RankedGroup]:
    """Sorted by the figure asked for; a ratio with no denominator has no place in an order,
    so such rows go last."""
    if sort == "name":
        return sorted(
            ranked,
            key=lambda r: ((names.get(r.group.key) or "").lower(), r.group.key or ""),
            reverse=order is Order.DESC,
        )
    if sort == "month":
        return sorted(
            ranked,
            key=lambda r: (r.group.month or date.min, r.group.key or ""),
            reverse=order is Order.DESC,
        )
    figure = SORT_KEYS[sort]
    valued = [(figure(r.group.measures, r.unbilled), r) for r in ranked]
    present = [(value, r) for value, r in valued if value is not None]
    present.sort(key=lambda pair: (pair[0], pair[1].group.key or ""), reverse=order is Order.DESC)
    missing = sorted(
        (r for value, r in valued if value is None),
        key=lambda r: r.group.key or "",
        reverse=order is Order.DESC,
    )
    return [r for _, r in present] + missing


def _totals(
    groups: list[Grouped], wip: dict[Any, Any] | None, currency: str | None
) -> ProfitabilityRow:
    nothing = Measures()
    total = Measures(
        **{
            name: sum((getattr(group.measures, name) for group in groups), getattr(nothing, name))
            for name in MEASURE_NAMES
        }
    )
    unbilled = None if wip is None else money(sum(wip.values(), ZERO))
    return ProfitabilityRow(
        key=None, name="Total", unbilled_work=unbilled, **figures(total, currency)
    )


def _profitability_row(
    ranked: RankedGroup, names: dict[Any, str], currency: str | None
) -> ProfitabilityRow:
    group = ranked.group
    return ProfitabilityRow(
        key=group.key,
        name=names.get(group.key),
        month=group.month,
        unbilled_work=None if ranked.unbilled is None else money(ranked.unbilled),
        **figures(group.measures, currency),
    )


async def profitability_rows(
    session: AsyncSession,
    context: ReportContext,
    query: ProfitabilityQuery,
    result: SortedGroups,
    shown: Sequence[RankedGroup],
) -> list[ProfitabilityRow]:
    """Rows for `shown` (a page, or every group for an export), named."""
    names = result.names
    if query.sort != "name":
        groups = [ranked.group for ranked in shown]
        names = await _group_names(session, context.tenant_id, query.group_by, groups)
    return [_profitability_row(ranked, names, context.currency) for ranked in shown]


def page_of(rows: Sequence[Any], limit: int, offset: int) -> list[Any]:
    return list(rows[offset : offset + limit])


async def profitability_report(
    session: AsyncSession,
    context: ReportContext,
    result: SortedGroups,
    query: ProfitabilityQuery,
    limit: int,
    offset: int,
) -> ClientProfitabilityReport:
    shown = page_of(result.groups, limit, offset)
    return ClientProfitabilityReport(
        items=await profitability_rows(session, context, query, result, shown),
        total=len(result.groups),
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
