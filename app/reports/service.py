"""The reports: SQL sums of facts turned into figures with the domain's ratio functions."""

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.caching import LruCache
from app.domain import (
    Measures,
    effective_hourly_rate,
    last_365_days,
    margin,
    profit,
    realization,
)
from app.domain.money import ZERO
from app.kit.pagination import PageParams
from app.kit.presentation import hours, money, optional_money, ratio
from app.kit.problems import ProblemError
from app.reports import completeness, repository
from app.reports.cache import CONTEXT_TTL_SECONDS, TenantTtlCache
from app.reports.completeness import Completeness
from app.reports.repository import FactFilter, Ordering, RankedGroup, Ranking, WarningSum
from app.reports.schemas import (
    ClientProfitabilityReport,
    EntityProgressView,
    Figures,
    GroupBy,
    Interval,
    Order,
    ProfitabilityRow,
    ReportWarningView,
    WorkStatus,
)

WARNING_MESSAGES = {
    "missing_compensation": "No compensation entered: the cost of this person's time is "
    "missing, so cost is understated and profit overstated.",
    "missing_capacity": "No capacity in Karbon: the default capacity is used for hourly cost.",
    "unknown_fee_type": "The work item's fee type is not known yet: its time counts as billable "
    "and its unbilled time as WIP at standard value.",
    "unknown_client_time": "Time belongs to a client that is not synced.",
    "unknown_client_invoice": "An invoice belongs to a client that is not synced.",
    "unattributed_invoice": "An invoice without a client whose lines name no client either: "
    "its amount is in no client's figures.",
    "deleted_work_item": "The work item was deleted in Karbon: its time and invoices keep the "
    "client and fee type it last had.",
    "unreadable_field": "Karbon sent a value this version cannot read: the records are kept, "
    "and the field is treated as unknown (an unreadable BilledStatus is never unbilled work).",
    "set_aside_record": "Karbon sent records that cannot be read at all: they are left out of "
    "every figure until Karbon sends them readable.",
    "sync_not_completed": "No sync has completed yet: figures cover what has arrived so far.",
    "details_owed": "Records held from Karbon's lists still wait for their detail (a work "
    "item's fee type, a person's capacity): the figures of the clients concerned may still "
    "move (`may_move`).",
}


@dataclass(frozen=True, slots=True)
class ReportContext:
    tenant_id: UUID
    version: int
    as_of: datetime | None
    refreshed_at: datetime | None
    completeness: Completeness
    """How complete the facts of this refresh are (`app.reports.completeness`)."""
    currency: str | None
    summed_windows: frozenset[tuple[date, date]]
    """Windows whose per-client sums the last refresh kept."""

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
    """The refresh version, `as_of` and warnings; kept per process (see `app.reports.cache`).
    The rest of the request's transaction plans its queries without parallel workers and
    with `REPORT_WORK_MEM`."""
    await _plan_settings(session)
    context = _contexts.get(tenant_id)
    if context is None:
        context = await _read_report_context(session, tenant_id)
        _contexts.put(tenant_id, context)
    return context


REPORT_WORK_MEM = "32MB"
"""Memory a report's sort or hash may use before spilling to disk."""


async def _plan_settings(session: AsyncSession) -> None:
    # A report runs several small sums whose row estimates over unions of monthly sums and
    # facts run high; starting parallel workers for them costs more than the sums (20 ms
    # for a query that reads 200 rows on a busy server). The same estimates (thousands of
    # groups where an owner has tens) make the planner sort 20,000 rows on disk to group
    # them under the default 4 MB, where hashing them in memory takes half the time.
    await session.execute(
        text(
            "SELECT set_config('max_parallel_workers_per_gather', '0', true),"
            " set_config('work_mem', :work_mem, true)"
        ),
        {"work_mem": REPORT_WORK_MEM},
    )


async def _read_report_context(session: AsyncSession, tenant_id: UUID) -> ReportContext:
    state, complete = await completeness.refresh_with_completeness(session, tenant_id)
    return ReportContext(
        tenant_id=tenant_id,
        version=state.version if state else 0,
        as_of=state.as_of if state else None,
        refreshed_at=state.refreshed_at if state else None,
        completeness=complete,
        currency=state.currency if state else None,
        summed_windows=await repository.summed_windows(session, tenant_id),
    )


async def warnings_in_view(
    session: AsyncSession, context: ReportContext, where: FactFilter
) -> list[ReportWarningView]:
    """The warnings about the clients and window `where` selects, and the firm-wide ones."""
    views = [_warning_view(w) for w in await repository.warnings(session, context.tenant_id, where)]
    owed = sum(p.details_owed for p in context.completeness.progress)
    if owed:
        views.insert(0, _warning_view(WarningSum("details_owed", "", "", 0, ZERO, owed)))
    if context.as_of is None:
        views.insert(0, _warning_view(WarningSum("sync_not_completed", "", "", 0, ZERO, 0)))
    return views


async def report_header(
    session: AsyncSession, context: ReportContext, where: FactFilter
) -> dict[str, Any]:
    """What every report carries: when its facts are from, how complete they are, and the
    warnings in view."""
    return {
        **completeness_fields(context),
        "warnings": await warnings_in_view(session, context, where),
        "currency": context.currency,
    }


def completeness_fields(context: ReportContext) -> dict[str, Any]:
    kept = context.completeness
    return {
        "as_of": context.as_of,
        "refreshed_at": context.refreshed_at,
        "complete": kept.complete,
        "progress": [
            EntityProgressView(
                entity=p.entity, state=p.state, records=p.records, details_owed=p.details_owed
            )
            for p in kept.progress
        ],
        "all_clients_may_move": not kept.complete and not kept.lists_in,
        "moving_clients": len(kept.moving_clients),
    }


def _warning_view(warning: WarningSum) -> ReportWarningView:
    return ReportWarningView(
        kind=warning.kind,
        subject_key=warning.subject_key,
        subject_name=warning.subject_name,
        hours=hours(warning.minutes),
        amount=money(warning.amount),
        records=warning.records,
        message=WARNING_MESSAGES.get(warning.kind, warning.kind),
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
        "effective_rate": optional_money(effective_hourly_rate(m)),
        "approved_not_sent": money(m.approved_not_sent),
    }


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
    work_status: WorkStatus | None = None
    primary_status: str | None = None


async def client_profitability(
    session: AsyncSession,
    context: ReportContext,
    query: ProfitabilityQuery,
    *,
    limit: int | None,
    offset: int = 0,
) -> tuple[ProfitabilityQuery, Ranking]:
    """The groups asked for (`limit=None`: all), in order; `query` comes back with its window
    filled in. Summing, ordering, counting and totalling happen in the database."""
    query = _windowed(context, query)
    ranking = await repository.rank_groups(
        session,
        context.tenant_id,
        _fact_filter(query),
        query.group_by,
        Ordering(query.sort, descending=query.order is Order.DESC),
        monthly=query.interval is Interval.MONTH,
        summed_windows=context.summed_windows,
        limit=limit,
        offset=offset,
    )
    return query, ranking


def _fact_filter(query: ProfitabilityQuery) -> FactFilter:
    return FactFilter(
        query.start,
        query.end,
        query.owner,
        query.manager,
        query.fee_type,
        work_status=query.work_status,
        primary_status=query.primary_status,
    )


def _windowed(context: ReportContext, query: ProfitabilityQuery) -> ProfitabilityQuery:
    start, end = context.window(query.start, query.end)
    return replace(query, start=start, end=end)


_served: LruCache[Hashable, bytes] = LruCache(1024)


async def served_json(
    context: ReportContext, key: Hashable, report: Callable[[], Awaitable[BaseModel]]
) -> bytes:
    """A report's JSON, serialized once per refresh version. `key` names the report and
    whatever else its answer depends on (window, filters, page), never who asks: a report
    served this way shows every member of the firm the same figures."""
    # The refresh version is in the key: a new refresh makes earlier entries unreachable.
    kept = (context.tenant_id, context.version, key)
    body = _served.get(kept)
    if body is None:
        body = (await report()).model_dump_json(by_alias=True).encode()
        _served.put(kept, body)
    return body


async def profitability_page_json(
    session: AsyncSession,
    context: ReportContext,
    query: ProfitabilityQuery,
    limit: int,
    offset: int,
) -> bytes:
    """One page of the report as JSON (`served_json`)."""

    async def page() -> ClientProfitabilityReport:
        windowed, ranking = await client_profitability(
            session, context, query, limit=limit, offset=offset
        )
        return await profitability_report(session, context, windowed, ranking, limit, offset)

    key = ("client-profitability", _windowed(context, query), limit, offset)
    return await served_json(context, key, page)


async def _group_names(
    session: AsyncSession, tenant_id: UUID, group_by: GroupBy, groups: Sequence[RankedGroup]
) -> dict[Any, str]:
    keys = sorted({group.key for group in groups if group.key is not None})
    if group_by is GroupBy.CLIENT:
        return await repository.client_names(session, tenant_id, keys)
    return {key: key for key in keys}


def _profitability_row(
    group: RankedGroup, name: str | None, currency: str | None, *, may_move: bool
) -> ProfitabilityRow:
    return ProfitabilityRow(
        key=group.key,
        name=name,
        month=group.month,
        unbilled_work=optional_money(group.unbilled),
        may_move=may_move,
        **figures(group.measures, currency),
    )


def _group_may_move(context: ReportContext, group_by: GroupBy, key: Any) -> bool:
    """A client's own flag; any other group (owner, manager, work type) may move with any
    client in it, so it is flagged whenever the report is not complete."""
    if group_by is GroupBy.CLIENT:
        return context.completeness.may_move(key)
    return not context.completeness.complete


async def profitability_rows(
    session: AsyncSession, context: ReportContext, query: ProfitabilityQuery, ranking: Ranking
) -> list[ProfitabilityRow]:
    """The ranking's groups as rows, named."""
    names = await _group_names(session, context.tenant_id, query.group_by, ranking.groups)
    return [
        _profitability_row(
            group,
            names.get(group.key),
            context.currency,
            may_move=_group_may_move(context, query.group_by, group.key),
        )
        for group in ranking.groups
    ]


def paged_fields(
    rows: Sequence[Any],
    page: PageParams,
    context: ReportContext,
    warnings: list[ReportWarningView],
) -> dict[str, Any]:
    """What every paged report carries: the page of `rows`, its place among them, the
    context's `as_of`, completeness and currency, and the warnings in view."""
    return {
        "items": list(rows[page.offset : page.offset + page.limit]),
        "total": len(rows),
        "limit": page.limit,
        "offset": page.offset,
        **completeness_fields(context),
        "warnings": warnings,
        "currency": context.currency,
    }


async def profitability_report(
    session: AsyncSession,
    context: ReportContext,
    query: ProfitabilityQuery,
    ranking: Ranking,
    limit: int,
    offset: int,
) -> ClientProfitabilityReport:
    assert query.start is not None and query.end is not None
    return ClientProfitabilityReport(
        items=await profitability_rows(session, context, query, ranking),
        total=ranking.count,
        limit=limit,
        offset=offset,
        **await report_header(session, context, _fact_filter(query)),
        start=query.start,
        end=query.end,
        group_by=query.group_by,
        interval=query.interval,
        totals=totals_row(ranking, context),
    )


def totals_row(ranking: Ranking, context: ReportContext) -> ProfitabilityRow:
    """The row of every group together, named `Total`."""
    return _profitability_row(
        ranking.totals, "Total", context.currency, may_move=not context.completeness.complete
    )
