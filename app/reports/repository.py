"""Report queries: sums of fact measures grouped in SQL, and reads of the stored WIP.

This module builds every query a report runs; the rows a refresh writes (the facts, monthly
sums and kept window sums those queries read) are built in `app.reports.kept_sums`.

Every query is scoped to one tenant. Grouping or filtering by owner or manager joins the
client's name row of the refresh (which holds its owner and manager by e-mail, a UserKey
resolved); the facts carry everything else a filter or grouping needs, their work item's
status included. A windowed sum by client, owner, manager or work type reads the monthly sums
for the months wholly inside the window and the facts only for the days at its edges: the
firm's monthly sums per owner, per manager or per fee type, work type and work status when no
client is asked for, else the clients' (a filter by Karbon's own `PrimaryStatus` reads the
facts alone). Over a window whose per-client sums the refresh kept (the trailing year and each
calendar year), it reads one row per client instead, unless a status filters. `grouped_sums`
chooses which of these sources to read; `rank_groups` orders, pages, counts and totals the
groups in one statement (by client over a window not kept, its page's clients are then summed
in full in a second).
"""

from collections.abc import Container, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    CTE,
    ColumnElement,
    Date,
    DateTime,
    Numeric,
    Select,
    Subquery,
    and_,
    case,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import MEASURE_NAMES, Measures
from app.domain.money import ZERO
from app.models import (
    Client,
    ReportClientName,
    ReportFact,
    ReportFixedFee,
    ReportRefresh,
    ReportSummedWindow,
    ReportWarning,
    ReportWindowSum,
    ReportWipItem,
    Staff,
    WorkItem,
)
from app.models.reports import (
    ReportFirmMonthlySum,
    ReportManagerMonthlySum,
    ReportMonthlySum,
    ReportOwnerMonthlySum,
    ReportStaffMonthlySum,
)
from app.reports.keys import any_of, one_of
from app.reports.ordering import FIGURES, SORT_SUMS
from app.reports.schemas import GroupBy, WorkStatus

SUM_NAMES = (*MEASURE_NAMES, "unbilled")
"""What a report's group sums: the measures and the WIP."""
FACT_ONLY_GROUPINGS = ("work_item", "staff")
"""Groupings the monthly sums do not carry: these always sum the facts."""


@dataclass(frozen=True, slots=True)
class FactFilter:
    start: date | None = None
    end: date | None = None
    owner: str | None = None
    manager: str | None = None
    fee_type: str | None = None
    client_key: str | None = None
    work_status: WorkStatus | None = None
    primary_status: str | None = None
    """Karbon's `PrimaryStatus` as stored (`InProgress`)."""
    clients: frozenset[str] | None = None
    """Only these clients (an incremental refresh's); None: every client."""

    @property
    def by_work_status(self) -> bool:
        """Only facts of work items in a given status (the kept window sums hold every
        status)."""
        return self.work_status is not None or self.primary_status is not None


COMPLETED = "Completed"


def stored_work_status(status: Any) -> ColumnElement[Any]:
    """The `WorkStatus` of a stored work item status ('' for none, NULL when not synced):
    NULL for no synced work item."""
    work_status: ColumnElement[Any] = case(
        (status == COMPLETED, WorkStatus.COMPLETED.value),
        (status.is_not(None), WorkStatus.OPEN.value),
    )
    return work_status


def fact_work_status() -> ColumnElement[Any]:
    """Each fact's `work_status`, as the monthly sums keep it."""
    return stored_work_status(ReportFact.work_item_status).label("work_status")


def work_status_of(primary_status: str | None) -> WorkStatus:
    return WorkStatus.COMPLETED if primary_status == COMPLETED else WorkStatus.OPEN


@dataclass(frozen=True, slots=True)
class Grouped:
    key: Any
    month: date | None
    measures: Measures


async def refresh_state(session: AsyncSession, tenant_id: UUID) -> ReportRefresh | None:
    return await session.get(ReportRefresh, tenant_id)


def _client_join(table: Any) -> ColumnElement[bool]:
    return and_(
        ReportClientName.tenant_id == table.tenant_id,
        ReportClientName.client_key == table.client_key,
    )


def user_email(tenant_id: UUID, given: Any) -> ColumnElement[Any]:
    """Karbon gives a client's owner or manager as "the UserKey or the email address" (spec):
    the synced user's e-mail for a UserKey, else what was given."""
    email = (
        select(Staff.email)
        .where(Staff.tenant_id == tenant_id, Staff.user_key == given, Staff.email.is_not(None))
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(email, given)


def _carries_team(table: Any) -> bool:
    """Rows that carry their client's owner or manager (the monthly sums with them, and
    their edges)."""
    return not isinstance(table, type) and any(hasattr(table, name) for name in TEAM)


def _team(table: Any) -> Any:
    """Where `table`'s rows find their client's owner and manager."""
    return table if _carries_team(table) else ReportClientName


def _group_column(table: Any, group_by: GroupBy | str) -> Any:
    match group_by:
        case GroupBy.OWNER:
            return _team(table).owner_email
        case GroupBy.MANAGER:
            return _team(table).manager_email
        case GroupBy.WORK_TYPE:
            return table.work_type
        case "work_item":
            return table.work_item_key
        case "staff":
            return table.staff_key
    return table.client_key


def _filtered(query: Select[Any], table: Any, tenant_id: UUID, where: FactFilter) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [table.tenant_id == tenant_id]
    if where.start is not None and table is ReportFact:
        conditions.append(ReportFact.fact_date >= where.start)
    if where.end is not None and table is ReportFact:
        conditions.append(ReportFact.fact_date <= where.end)
    if where.fee_type is not None:
        conditions.append(table.fee_type == where.fee_type)
    if where.client_key is not None:
        conditions.append(table.client_key == where.client_key)
    if where.clients is not None:
        conditions.append(one_of(table.client_key, where.clients))
    conditions += _team_conditions(tenant_id, where, _team(table))
    if hasattr(table, "work_item_status"):
        conditions += _in_status(table.work_item_status, where)
    elif where.work_status is not None:  # monthly sums: never asked for a `primary_status`
        conditions.append(table.work_status == where.work_status.value)
    return query.where(*conditions)


def _in_status(status: Any, where: FactFilter) -> list[ColumnElement[bool]]:
    """The rows whose stored work item status (see `stored_work_status`) `where` asks for:
    deleted work items keep their last known status."""
    conditions: list[ColumnElement[bool]] = []
    if where.work_status is not None:
        conditions.append(stored_work_status(status) == where.work_status.value)
    if where.primary_status is not None:
        conditions.append(status == where.primary_status)
    return conditions


def _team_conditions(
    tenant_id: UUID, where: FactFilter, team: Any = ReportClientName
) -> list[ColumnElement[bool]]:
    """The owner and manager filters (each an e-mail or a UserKey) over `team`'s columns."""
    conditions = []
    if where.owner is not None:
        conditions.append(team.owner_email == user_email(tenant_id, where.owner))
    if where.manager is not None:
        conditions.append(team.manager_email == user_email(tenant_id, where.manager))
    return conditions


def _needs_client(group_by: GroupBy | str | None, where: FactFilter) -> bool:
    filtered = where.owner is not None or where.manager is not None  # "" filters too
    return group_by in (GroupBy.OWNER, GroupBy.MANAGER) or filtered


async def sum_facts(
    session: AsyncSession,
    tenant_id: UUID,
    where: FactFilter,
    group_by: GroupBy | str | None,
    *,
    monthly: bool = False,
) -> list[Grouped]:
    rows = _measure_rows(tenant_id, where, group_by, monthly=monthly).subquery()
    sums = [func.sum(rows.c[name]) for name in MEASURE_NAMES]
    query = select(rows.c.key, rows.c.month, *sums).group_by(rows.c.key, rows.c.month)
    return [Grouped(row[0], row[1], _measures(row[2:])) for row in await session.execute(query)]


def _measure_rows(
    tenant_id: UUID,
    where: FactFilter,
    group_by: GroupBy | str | None,
    *,
    monthly: bool,
    names: Sequence[str] = MEASURE_NAMES,
) -> Select[Any]:
    """The rows to sum, filtered: `key`, `month` (NULL unless `monthly`) and the measures
    among `names`."""
    source = _measure_source(tenant_id, where, group_by)
    key = _group_column(source, group_by) if group_by else literal(None)
    month = _month_of(source) if monthly else null().cast(Date)
    measures = [getattr(source, name).label(name) for name in _measure_names(names)]
    query = select(key.label("key"), month.label("month"), *measures)
    return _scoped(query, source, tenant_id, where, group_by)


def _scoped(
    query: Select[Any],
    table: Any,
    tenant_id: UUID,
    where: FactFilter,
    group_by: GroupBy | str | None,
) -> Select[Any]:
    """`query` over `table`, joined to each row's live client where the grouping or a filter
    needs it, and filtered to the tenant and `where`."""
    query = query.select_from(_from_clause(table))
    if _needs_client(group_by, where) and not _carries_team(table):
        query = query.outerjoin(ReportClientName, _client_join(table))
    return _filtered(query, table, tenant_id, where)


def _measure_names(names: Sequence[str]) -> list[str]:
    return [name for name in MEASURE_NAMES if name in names]


def _wip_rows(
    tenant_id: UUID,
    where: FactFilter,
    group_by: GroupBy | None,
    names: Sequence[str] = MEASURE_NAMES,
) -> Select[Any]:
    """The WIP as rows shaped like `_measure_rows`: no measures, `unbilled` the amount."""
    key = _group_column(ReportWipItem, group_by) if group_by else literal(None)
    zeros = [literal(0).label(name) for name in _measure_names(names)]
    month = null().cast(Date).label("month")
    query = select(key.label("key"), month, *zeros, ReportWipItem.amount)
    return _scoped(query, ReportWipItem, tenant_id, where, group_by)


@dataclass(frozen=True, slots=True)
class Ordering:
    sort: str
    """A figure of `ordering.FIGURES`, `name` or `month`."""
    descending: bool


@dataclass(frozen=True, slots=True)
class RankedGroup:
    key: Any
    month: date | None
    measures: Measures
    unbilled: Decimal | None
    """The group's WIP; None in a monthly series."""


@dataclass(frozen=True, slots=True)
class Ranking:
    groups: list[RankedGroup]
    """The groups asked for (a page, or all), in order."""
    count: int
    """How many groups there are in all."""
    totals: RankedGroup
    """Every group summed."""


async def rank_groups(
    session: AsyncSession,
    tenant_id: UUID,
    where: FactFilter,
    group_by: GroupBy,
    ordering: Ordering,
    *,
    monthly: bool,
    summed_windows: Container[tuple[date, date]] = frozenset(),
    limit: int | None,
    offset: int = 0,
) -> Ranking:
    """Sums per group (and month), ordered, counted and totalled in one statement.
    `summed_windows`: the windows whose per-client sums the last refresh kept (see
    `grouped_sums`). By client over any other window, see `_rank_clients`."""
    if group_by is GroupBy.CLIENT and not _reads_kept_sums(
        where, group_by, monthly, summed_windows
    ):
        return await _rank_clients(
            session, tenant_id, where, ordering, monthly=monthly, limit=limit, offset=offset
        )
    grouped = _grouped(
        tenant_id, where, group_by, monthly=monthly, summed_windows=summed_windows
    ).cte()
    totals = [func.sum(grouped.c[n]) for n in SUM_NAMES]
    summary = select(func.count(), *totals).select_from(grouped).subquery()
    every, page = await _page_of(
        session, tenant_id, grouped, group_by, ordering, [summary], limit, offset
    )
    if not every[0]:
        return Ranking([], 0, _nothing(monthly))
    groups = [_ranked(row, monthly) for row in page]
    return Ranking(groups, every[0], _ranked((None, None, *every[1:]), monthly))


async def _page_of(
    session: AsyncSession,
    tenant_id: UUID,
    grouped: CTE,
    group_by: GroupBy,
    ordering: Ordering,
    summaries: Sequence[Subquery],
    limit: int | None,
    offset: int,
) -> tuple[Any, list[Any]]:
    """The columns of `summaries` (one row each, the first over all of `grouped`'s groups)
    and the page of `grouped`'s groups in order (their columns), in one statement: even past
    the last page, the summaries come."""
    page = select(grouped, literal(True).label("on_page"))
    if ordering.sort == "name" and group_by is GroupBy.CLIENT:
        page = page.add_columns(ReportClientName.name)
        page = page.outerjoin(ReportClientName, _named(grouped.c, tenant_id))
    order = _order(grouped.c, group_by, ordering)
    paged = page.order_by(*order).limit(limit).offset(offset).subquery()
    joined: Any = summaries[0]
    for summary in [*summaries[1:], paged]:
        joined = joined.outerjoin(summary, true())
    query = (
        select(*summaries, paged).select_from(joined).order_by(*_order(paged.c, group_by, ordering))
    )
    rows = (await session.execute(query)).all()
    width, columns = sum(len(summary.c) for summary in summaries), len(grouped.c)
    return rows[0][:width], [row[width : width + columns] for row in rows if row.on_page]


async def _rank_clients(
    session: AsyncSession,
    tenant_id: UUID,
    where: FactFilter,
    ordering: Ordering,
    *,
    monthly: bool,
    limit: int | None,
    offset: int,
) -> Ranking:
    """Clients over a window whose sums were not kept: they are many, so the page is found
    from the sums its order needs alone, only the page's clients are summed in full, and the
    totals come from the fewest monthly rows that answer (`_monthly_source`), in the page's
    statement."""
    ranks = _grouped(
        tenant_id, where, GroupBy.CLIENT, monthly=monthly, names=SORT_SUMS[ordering.sort]
    ).cte()
    counted = select(func.count()).select_from(ranks).subquery()
    summary, rows = await _page_of(
        session,
        tenant_id,
        ranks,
        GroupBy.CLIENT,
        ordering,
        [counted, *_every_sum(tenant_id, where, monthly=monthly)],
        limit,
        offset,
    )
    count, *sums = summary
    measures = _measures(sums[: len(MEASURE_NAMES)]) if sums[0] is not None else Measures()
    unbilled = None if monthly else sums[-1] or ZERO
    totals = RankedGroup(None, None, measures, unbilled)
    page = [(row[0], row[1]) for row in rows]
    if not page:
        return Ranking([], count, totals)
    summed = await _page_sums(session, tenant_id, where, page, monthly=monthly)
    return Ranking([summed[group] for group in page], count, totals)


def _every_sum(tenant_id: UUID, where: FactFilter, *, monthly: bool) -> list[Subquery]:
    """One row each: the measures `where` selects summed, and (unless `monthly`) their WIP."""
    rows = _measure_rows(tenant_id, where, None, monthly=False).subquery()
    measured = select(*(func.sum(rows.c[name]) for name in MEASURE_NAMES)).subquery()
    if monthly:
        return [measured]
    wip = select(func.sum(ReportWipItem.amount))
    return [measured, _scoped(wip, ReportWipItem, tenant_id, where, None).subquery()]


async def _page_sums(
    session: AsyncSession,
    tenant_id: UUID,
    where: FactFilter,
    page: Sequence[tuple[Any, date | None]],
    *,
    monthly: bool,
) -> dict[tuple[Any, date | None], RankedGroup]:
    """Every sum of the clients (and months) on `page`."""
    full = grouped_sums(tenant_id, where, GroupBy.CLIENT, monthly=monthly)
    keys = {key for key, _ in page}
    on_page = [any_of(full.c.key, [key for key in keys if key is not None])]
    if None in keys:
        on_page.append(full.c.key.is_(None))
    rows = await session.execute(select(full).where(or_(*on_page)))
    groups = (_ranked(row, monthly) for row in rows)
    return {(group.key, group.month): group for group in groups}


def grouped_sums(
    tenant_id: UUID,
    where: FactFilter,
    group_by: GroupBy,
    *,
    monthly: bool,
    summed_windows: Container[tuple[date, date]] = frozenset(),
    names: Sequence[str] = SUM_NAMES,
) -> Subquery:
    """One row per group (per month in a series): `key`, `month`, the measures and the WIP
    (`unbilled`) among `names` summed. Read from the per-client sums kept for the window when
    they answer the query (see `_reads_kept_sums`), else from the monthly sums and the facts."""
    return _grouped(
        tenant_id, where, group_by, monthly=monthly, summed_windows=summed_windows, names=names
    ).subquery()


def _grouped(
    tenant_id: UUID,
    where: FactFilter,
    group_by: GroupBy | None,
    *,
    monthly: bool,
    summed_windows: Container[tuple[date, date]] = frozenset(),
    names: Sequence[str] = SUM_NAMES,
) -> Select[Any]:
    """`grouped_sums` as a select."""
    if group_by is not None and _reads_kept_sums(where, group_by, monthly, summed_windows):
        return _grouped_window_sums(tenant_id, where, group_by)
    rows: Any = _measure_rows(tenant_id, where, group_by, monthly=monthly, names=names)
    unbilled = null().cast(Numeric) if monthly else literal(0)
    rows = rows.add_columns(unbilled.label("unbilled"))
    if not monthly:
        rows = union_all(rows, _wip_rows(tenant_id, where, group_by, names))
    rows = rows.subquery()
    sums = [func.sum(rows.c[n]).label(n) for n in SUM_NAMES if n in names]
    return select(rows.c.key, rows.c.month, *sums).group_by(rows.c.key, rows.c.month)


def _reads_kept_sums(
    where: FactFilter,
    group_by: GroupBy,
    monthly: bool,
    summed_windows: Container[tuple[date, date]],
) -> bool:
    """The kept per-client sums answer a window's totals for every fee type, grouped by
    client, owner or manager."""
    return (
        not monthly
        and (where.start, where.end) in summed_windows
        and where.fee_type is None
        and not where.by_work_status
        and group_by is not GroupBy.WORK_TYPE
    )


def _grouped_window_sums(tenant_id: UUID, where: FactFilter, group_by: GroupBy) -> Select[Any]:
    table = ReportWindowSum
    key = _group_column(table, group_by).label("key")
    month = null().cast(Date).label("month")
    if group_by is GroupBy.CLIENT:  # a row per client already
        query = select(key, month, *(getattr(table, n).label(n) for n in SUM_NAMES))
    else:
        sums = [func.sum(getattr(table, n)).label(n) for n in SUM_NAMES]
        query = select(key, month, *sums).group_by(key)
    query = query.where(table.window_start == where.start, table.window_end == where.end)
    return _scoped(query, table, tenant_id, where, group_by)


def _order(grouped: Any, group_by: GroupBy, ordering: Ordering) -> list[ColumnElement[Any]]:
    """`grouped`: a grouped select's columns, with the client's `name` when sorting by it
    (else the name row's)."""

    def direct(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return column.desc() if ordering.descending else column.asc()

    # Text orders by code point whatever the database's collation, so the order is the same
    # on every server.
    key = func.coalesce(grouped.key, "").collate("C")
    match ordering.sort:
        case "name":
            name = grouped.key
            if group_by is GroupBy.CLIENT:
                name = grouped.name if "name" in grouped else ReportClientName.name
            first = direct(func.lower(func.coalesce(name, "")).collate("C"))
        case "month":
            first = direct(func.coalesce(grouped.month, date.min))
        case figure:
            first = direct(FIGURES[figure](grouped)).nulls_last()
    return [first, direct(key), direct(grouped.month)]


def _named(grouped: Any, tenant_id: UUID) -> ColumnElement[bool]:
    return and_(ReportClientName.tenant_id == tenant_id, ReportClientName.client_key == grouped.key)


def _nothing(monthly: bool) -> RankedGroup:
    """The sums of no group."""
    return RankedGroup(None, None, Measures(), None if monthly else ZERO)


def _ranked(values: Sequence[Any], monthly: bool) -> RankedGroup:
    key, month, *sums = values
    return RankedGroup(key, month, _measures(sums[:-1]), None if monthly else sums[-1] or ZERO)


def _measure_source(tenant_id: UUID, where: FactFilter, group_by: GroupBy | str | None) -> Any:
    """The facts, or (same columns) sums of them: for a grouping the monthly sums carry, every
    month of them when there is no window, else the window's whole months from them and its
    edge days from the facts; for firm-wide sums by staff member or for the whole firm, the
    same from the staff members' or the firm's monthly sums."""
    if where.primary_status is not None:  # the monthly sums keep the work status alone
        return ReportFact
    if group_by == "staff":
        if not _firm_wide(where) or where.start is None or where.end is None:
            return ReportFact
        return _months_and_edges(tenant_id, where.start, where.end, STAFF_MONTHS).c
    if group_by in FACT_ONLY_GROUPINGS:
        return ReportFact
    months = _monthly_source(where, group_by)
    if where.start is None and where.end is None:
        return _all_months(tenant_id, months).c
    if where.start is None or where.end is None:
        return ReportFact
    return _months_and_edges(tenant_id, where.start, where.end, months).c


def _monthly_source(where: FactFilter, group_by: GroupBy | str | None) -> "_MonthlySource":
    """The fewest monthly rows that answer: when no client is asked for, the firm's (per fee
    type, work type and work status), else per owner or per manager when one of them alone
    is grouped or filtered by; else the clients' (with their owner and manager when a
    grouping or filter needs them)."""
    no_client = where.client_key is None and where.clients is None
    if no_client and group_by in (None, GroupBy.WORK_TYPE, GroupBy.OWNER, GroupBy.MANAGER):
        by_owner = where.owner is not None or group_by is GroupBy.OWNER
        by_manager = where.manager is not None or group_by is GroupBy.MANAGER
        if not by_owner and not by_manager:
            return FIRM_MONTHS
        if not by_manager:
            return OWNER_MONTHS
        if not by_owner:
            return MANAGER_MONTHS
    return TEAM_MONTHS if _needs_client(group_by, where) else CLIENT_MONTHS


def _firm_wide(where: FactFilter) -> bool:
    """No filter but the window: what the staff members' monthly sums answer."""
    return FactFilter(where.start, where.end) == where


def _from_clause(source: Any) -> Any:
    """A mapped table as itself; the months-and-edges union (its columns) as its subquery."""
    return source if isinstance(source, type) else source.tenant_id.table


def whole_months(start: date, end: date) -> tuple[date, date]:
    """`[first, until)`: the first days of the months lying wholly inside `[start, end]`
    (empty when `first >= until`)."""
    first = start if start.day == 1 else _next_month(start)
    until = (end + timedelta(days=1)).replace(day=1)
    return first, until


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True, slots=True)
class _MonthlySource:
    table: Any
    dimensions: tuple[str, ...]


CLIENT_MONTHS = _MonthlySource(
    ReportMonthlySum, ("client_key", "fee_type", "work_type", "work_status")
)
STAFF_MONTHS = _MonthlySource(ReportStaffMonthlySum, ("staff_key",))
FIRM_MONTHS = _MonthlySource(ReportFirmMonthlySum, ("fee_type", "work_type", "work_status"))
TEAM = ("owner_email", "manager_email")
TEAM_MONTHS = _MonthlySource(ReportMonthlySum, (*CLIENT_MONTHS.dimensions, *TEAM))
"""The clients' monthly sums with the owner and manager each row carries: no join."""
OWNER_MONTHS = _MonthlySource(ReportOwnerMonthlySum, ("owner_email", *FIRM_MONTHS.dimensions))
MANAGER_MONTHS = _MonthlySource(ReportManagerMonthlySum, ("manager_email", *FIRM_MONTHS.dimensions))


def _all_months(tenant_id: UUID, source: _MonthlySource) -> Subquery:
    table = source.table
    columns = _summed_columns(table, table.month, source.dimensions)
    return select(*columns).where(table.tenant_id == tenant_id).subquery()


def _months_and_edges(tenant_id: UUID, start: date, end: date, source: _MonthlySource) -> Subquery:
    first, until = whole_months(start, end)
    in_window = and_(ReportFact.fact_date >= start, ReportFact.fact_date <= end)
    edges = _edge_facts(source).where(ReportFact.tenant_id == tenant_id, in_window)
    if first >= until:
        return edges.subquery()
    table = source.table
    months = select(*_summed_columns(table, table.month, source.dimensions)).where(
        table.tenant_id == tenant_id, table.month >= first, table.month < until
    )
    edges = edges.where(or_(ReportFact.fact_date < first, ReportFact.fact_date >= until))
    return union_all(edges, months).subquery()


def _edge_facts(source: _MonthlySource) -> Select[Any]:
    """The facts shaped like `source`'s rows (with their client's owner and manager when the
    source carries them)."""
    columns = _summed_columns(ReportFact, ReportFact.fact_date, source.dimensions)
    if not set(TEAM) & set(source.dimensions):
        return select(*columns)
    return select(*columns).outerjoin(ReportClientName, _client_join(ReportFact))


def _month_of(source: Any) -> ColumnElement[Any]:
    """The first day of the month of each of `source`'s rows."""
    return _first_of_month(source.fact_date) if source is ReportFact else source.month


def _first_of_month(day: Any) -> ColumnElement[Any]:
    # A date truncated as a timestamp without time zone: no time zone arithmetic per row.
    truncated: ColumnElement[Any] = func.date_trunc("month", day.cast(DateTime)).cast(Date)
    return truncated


def _summed_columns(table: Any, day: Any, dimensions: Sequence[str]) -> list[Any]:
    """`table`'s rows as a monthly source's."""
    month = day if table is not ReportFact else _first_of_month(ReportFact.fact_date)
    columns = [table.tenant_id, day.label("fact_date"), month.label("month")]
    columns += [_dimension(table, name) for name in dimensions]
    return columns + [getattr(table, name) for name in MEASURE_NAMES]


def _dimension(table: Any, name: str) -> Any:
    """`table`'s column `name`; the facts take the owner and manager from their client's
    name row, and their work status from their work item's."""
    if table is not ReportFact:
        return getattr(table, name)
    if name in TEAM:
        return getattr(ReportClientName, name)
    return fact_work_status() if name == "work_status" else getattr(table, name)


def _measures(values: Sequence[Any]) -> Measures:
    return Measures(**{name: value for name, value in zip(MEASURE_NAMES, values, strict=True)})


async def sum_wip(
    session: AsyncSession, tenant_id: UUID, where: FactFilter, group_by: GroupBy | str | None
) -> dict[Any, Any]:
    key = _group_column(ReportWipItem, group_by) if group_by else literal(None)
    query = _scoped(
        select(key, func.sum(ReportWipItem.amount)), ReportWipItem, tenant_id, where, group_by
    )
    return {row[0]: row[1] for row in await session.execute(query.group_by(key))}


@dataclass(frozen=True, slots=True)
class WorkItemTitle:
    title: str
    fee_type: str | None
    work_type: str | None
    primary_status: str | None

    @property
    def work_status(self) -> WorkStatus:
        return work_status_of(self.primary_status)


@dataclass(frozen=True, slots=True)
class WipLine:
    """A stored WIP item with its client's name and its work item's title and status."""

    client_key: str | None
    client_name: str | None
    work_item_key: str | None
    fee_type: str | None
    work_type: str | None
    amount: Decimal
    since: date
    age_days: int
    work_item: WorkItemTitle | None
    """None when the item is time on the client itself or its work item is not synced."""


@dataclass(frozen=True, slots=True)
class WipTotals:
    items: int
    amount: Decimal
    """The items' amounts, each rounded to the cent as shown, summed."""
    by_age: list[Decimal]
    """The same per bucket of `age_buckets`."""


def _filtered_wip(query: Select[Any], tenant_id: UUID, where: FactFilter) -> Select[Any]:
    if _needs_client(None, where):
        query = query.join(ReportClientName, _client_join(ReportWipItem))
    return _filtered(query, ReportWipItem, tenant_id, where)


async def wip_lines(
    session: AsyncSession,
    tenant_id: UUID,
    where: FactFilter,
    ordering: Ordering,
    *,
    limit: int | None,
    offset: int = 0,
) -> list[WipLine]:
    """The WIP items `where` selects, ordered by `ordering.sort` (`amount` or `age_days`),
    then by client, work item and start (all in the same direction); one page of them."""
    wip = ReportWipItem
    in_order = _filtered_wip(select(wip), tenant_id, where).order_by(*_wip_order(wip, ordering))
    page = in_order.limit(limit).offset(offset).subquery()
    columns: list[Any] = [
        page.c.client_key,
        ReportClientName.name,
        page.c.work_item_key,
        page.c.fee_type,
        page.c.work_type,
        page.c.amount,
        page.c.since,
        page.c.age_days,
        page.c.work_item_status,
        WorkItem.title,
        WorkItem.fee_type.label("work_item_fee_type"),
        WorkItem.work_type.label("work_item_work_type"),
    ]
    synced = and_(WorkItem.tenant_id == tenant_id, WorkItem.work_item_key == page.c.work_item_key)
    named = and_(
        ReportClientName.tenant_id == tenant_id, ReportClientName.client_key == page.c.client_key
    )
    # The page first, then its names and titles: never a join over every item.
    query: Select[Any] = (
        select(*columns)
        .select_from(page)
        .outerjoin(ReportClientName, named)
        .outerjoin(WorkItem, synced)
        .order_by(*_wip_order(page.c, ordering))
    )
    return [_wip_line(row) for row in await session.execute(query)]


def _wip_order(wip: Any, ordering: Ordering) -> list[ColumnElement[Any]]:
    """`wip`: the WIP table or a subquery's columns."""
    columns: list[Any] = [
        wip.age_days if ordering.sort == "age_days" else wip.amount,
        func.coalesce(wip.client_key, "").collate("C"),
        func.coalesce(wip.work_item_key, "").collate("C"),
        wip.since,
        wip.id,
    ]
    return [column.desc() if ordering.descending else column.asc() for column in columns]


def _wip_line(row: Any) -> WipLine:
    work_item = None
    if row.work_item_status is not None:
        work_item = WorkItemTitle(
            row.title,
            row.work_item_fee_type,
            row.work_item_work_type,
            row.work_item_status or None,
        )
    return WipLine(
        row.client_key,
        row.name,
        row.work_item_key,
        row.fee_type,
        row.work_type,
        row.amount,
        row.since,
        row.age_days,
        work_item,
    )


def cents(amount: Any) -> ColumnElement[Any]:
    """`amount` rounded to the cent half to even, as a report shows it
    (`app.kit.presentation.money`); PostgreSQL's `round` rounds half away from zero."""
    tie = func.mod(func.abs(amount) * 100, 2) == Decimal("0.5")
    rounded: ColumnElement[Any] = case((tie, func.trunc(amount, 2)), else_=func.round(amount, 2))
    return rounded


async def wip_totals(
    session: AsyncSession,
    tenant_id: UUID,
    where: FactFilter,
    age_buckets: Sequence[tuple[int, int | None]],
) -> WipTotals:
    """How many WIP items `where` selects, and their amounts as shown, summed in all and per
    age bucket (`(first, last)` days, `last` None for no end)."""
    wip = ReportWipItem
    shown = cents(wip.amount)
    per_bucket = [
        func.coalesce(func.sum(shown).filter(_aged(low, high)), 0) for low, high in age_buckets
    ]
    query = _filtered_wip(
        select(func.count(), func.coalesce(func.sum(shown), 0), *per_bucket), tenant_id, where
    )
    items, amount, *by_age = (await session.execute(query)).one()
    return WipTotals(items, amount, list(by_age))


def _aged(low: int, high: int | None) -> ColumnElement[bool]:
    age = ReportWipItem.age_days
    return age >= low if high is None else age.between(low, high)


async def fixed_fees(
    session: AsyncSession, tenant_id: UUID, client_key: str
) -> Sequence[ReportFixedFee]:
    query = select(ReportFixedFee).where(
        ReportFixedFee.tenant_id == tenant_id, ReportFixedFee.client_key == client_key
    )
    return (await session.execute(query)).scalars().all()


async def summed_windows(session: AsyncSession, tenant_id: UUID) -> frozenset[tuple[date, date]]:
    query = select(ReportSummedWindow.window_start, ReportSummedWindow.window_end).where(
        ReportSummedWindow.tenant_id == tenant_id
    )
    return frozenset((start, end) for start, end in await session.execute(query))


@dataclass(frozen=True, slots=True)
class WarningSum:
    kind: str
    subject_key: str
    subject_name: str
    minutes: int
    amount: Decimal
    records: int


async def warnings(session: AsyncSession, tenant_id: UUID, where: FactFilter) -> list[WarningSum]:
    """The warnings in view: firm-wide ones, and those about the clients and dates `where`
    selects (an undated one whenever its client is in view), summed per subject."""
    table = ReportWarning
    conditions: list[ColumnElement[bool]] = [table.tenant_id == tenant_id]
    if where.start is not None and where.end is not None:
        dated_in = table.warning_date.between(where.start, where.end)
        conditions.append(or_(table.warning_date.is_(None), dated_in))
    client_conditions = _team_conditions(tenant_id, where)
    if where.client_key is not None:
        client_conditions.append(table.client_key == where.client_key)
    if client_conditions:
        conditions.append(or_(table.client_key.is_(None), and_(*client_conditions)))
    subject = (table.kind, table.subject_key, table.subject_name)
    query = (
        select(*subject, func.sum(table.minutes), func.sum(table.amount), func.count())
        .outerjoin(ReportClientName, _client_join(table))
        .where(*conditions)
        .group_by(*subject)
        .order_by(*subject)
    )
    return [WarningSum(*row) for row in await session.execute(query)]


async def client_names(
    session: AsyncSession, tenant_id: UUID, keys: Sequence[str]
) -> dict[str, str]:
    """Clients' names as of the last refresh (see `ReportClientName`)."""
    if not keys:
        return {}
    query = select(ReportClientName.client_key, ReportClientName.name).where(
        ReportClientName.tenant_id == tenant_id, one_of(ReportClientName.client_key, keys)
    )
    return {key: name for key, name in await session.execute(query)}


async def client_team(
    session: AsyncSession, tenant_id: UUID, key: str
) -> tuple[str | None, str | None]:
    """A client's owner and manager by e-mail, as of the last refresh."""
    query = select(ReportClientName.owner_email, ReportClientName.manager_email).where(
        ReportClientName.tenant_id == tenant_id, ReportClientName.client_key == key
    )
    row = (await session.execute(query)).one_or_none()
    return (row[0], row[1]) if row else (None, None)


async def client(session: AsyncSession, tenant_id: UUID, key: str) -> Client | None:
    query = select(Client).where(
        Client.tenant_id == tenant_id, Client.client_key == key, Client.deleted_at.is_(None)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def client_has_facts(session: AsyncSession, tenant_id: UUID, key: str) -> bool:
    facts = select(ReportFact.id).where(
        ReportFact.tenant_id == tenant_id, ReportFact.client_key == key
    )
    wip = select(ReportWipItem.id).where(
        ReportWipItem.tenant_id == tenant_id, ReportWipItem.client_key == key
    )
    query = select(facts.exists() | wip.exists())
    return bool((await session.execute(query)).scalar_one())


async def work_item_titles(
    session: AsyncSession, tenant_id: UUID, keys: Sequence[str]
) -> dict[str, WorkItemTitle]:
    """Title, fee type, work type and status of each work item."""
    query = select(
        WorkItem.work_item_key,
        WorkItem.title,
        WorkItem.fee_type,
        WorkItem.work_type,
        WorkItem.primary_status,
    ).where(WorkItem.tenant_id == tenant_id, one_of(WorkItem.work_item_key, keys))
    return {
        key: WorkItemTitle(title, fee_type, work_type, status)
        for key, title, fee_type, work_type, status in await session.execute(query)
    }


async def live_staff(session: AsyncSession, tenant_id: UUID) -> Sequence[Staff]:
    query = select(Staff).where(Staff.tenant_id == tenant_id, Staff.deleted_at.is_(None))
    return (await session.execute(query)).scalars().all()


async def staff_names(
    session: AsyncSession, tenant_id: UUID, keys: Sequence[str]
) -> dict[str, str]:
    query = select(Staff.user_key, Staff.name).where(
        Staff.tenant_id == tenant_id, one_of(Staff.user_key, keys)
    )
    return {key: name for key, name in await session.execute(query)}
