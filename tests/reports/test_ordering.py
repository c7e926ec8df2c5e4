"""Report rows are ordered in SQL: each sort figure's SQL expression agrees with the domain
function a person reads, and the database's order, paging, count and totals equal sorting
the unordered sums in Python."""

import itertools
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import BigInteger, Numeric, column, select, values
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain import (
    MEASURE_NAMES,
    Measures,
    effective_hourly_rate,
    margin,
    profit,
    realization,
    sum_measures,
)
from app.models import Client
from app.reports import repository
from app.reports.ordering import FIGURES, SORT_FIELDS, SORT_SUMS
from app.reports.refresh import refresh_reports, windows_to_sum
from app.reports.repository import FactFilter, Ordering, RankedGroup
from app.reports.schemas import GroupBy
from tests.reports.conftest import SyncedFirm

Figure = Callable[[Measures, Decimal | None], Decimal | int | None]
DOMAIN: dict[str, Figure] = {
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
    "unbilled_work": lambda _, unbilled: unbilled,
}
MINUTES = {"uncosted_minutes", "billable_minutes", "non_billable_minutes"}
MINUTES |= {"defaulted_capacity_minutes"}


def test_every_sort_figure_has_a_domain_twin() -> None:
    assert set(DOMAIN) == set(FIGURES)


def _random_measures(rng: random.Random) -> tuple[Measures, Decimal]:
    def amount() -> Decimal:
        if rng.random() < 0.25:
            return Decimal(0)
        return Decimal(rng.randrange(-(10**9), 10**11)) / 10**6

    values_: dict[str, Any] = {
        name: rng.choice((0, rng.randrange(1, 10**6))) if name in MINUTES else amount()
        for name in MEASURE_NAMES
    }
    return Measures(**values_), amount()


async def test_sql_figures_agree_with_the_domain(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    rng = random.Random(7)
    cases = [(Measures(), Decimal(0))] + [_random_measures(rng) for _ in range(300)]
    columns = [
        column(name, BigInteger if name in MINUTES else Numeric(30, 10)) for name in MEASURE_NAMES
    ]
    rows = values(*columns, column("unbilled", Numeric(30, 10)), name="sums").data(
        [(*(getattr(m, name) for name in MEASURE_NAMES), unbilled) for m, unbilled in cases]
    )
    query = select(*(FIGURES[name](rows.c) for name in DOMAIN))
    async with sessions() as session:
        results = (await session.execute(query)).all()
    assert len(results) == len(cases)
    nulls = 0
    for (measures, unbilled), row in zip(cases, results, strict=True):
        for name, got in zip(DOMAIN, row, strict=True):
            expected = DOMAIN[name](measures, unbilled)
            if expected is None:
                assert got is None, (name, measures)
                nulls += 1
                continue
            tolerance = Decimal("1e-12") * max(Decimal(1), abs(Decimal(expected)))
            assert abs(Decimal(got) - Decimal(expected)) <= tolerance, (name, measures)
    assert nulls > 0  # the zero denominators were exercised


def _reference_order(
    groups: list[RankedGroup], names: dict[Any, str], sort: str, descending: bool
) -> list[tuple[Any, date | None]]:
    def tie(group: RankedGroup) -> tuple[str, date]:
        return (group.key or "", group.month or date.min)

    if sort in ("name", "month"):

        def first(group: RankedGroup) -> Any:
            if sort == "month":
                return group.month or date.min
            return (names.get(group.key) or "").lower()

        ordered = sorted(groups, key=lambda g: (first(g), *tie(g)), reverse=descending)
    else:
        valued = [(DOMAIN[sort](g.measures, g.unbilled), g) for g in groups]
        present = [(v, g) for v, g in valued if v is not None]
        present.sort(key=lambda pair: (pair[0], *tie(pair[1])), reverse=descending)
        missing = sorted((g for v, g in valued if v is None), key=tie, reverse=descending)
        ordered = [g for _, g in present] + missing
    return [(g.key, g.month) for g in ordered]


async def _unordered(
    session: AsyncSession, tenant_id: Any, where: FactFilter, group_by: GroupBy, monthly: bool
) -> list[RankedGroup]:
    """The groups from the plain sums (no ordering), with their WIP."""
    summed = await repository.sum_facts(session, tenant_id, where, group_by, monthly=monthly)
    if monthly:
        return [RankedGroup(g.key, g.month, g.measures, None) for g in summed]
    wip = await repository.sum_wip(session, tenant_id, where, group_by)
    groups = [RankedGroup(g.key, None, g.measures, wip.get(g.key, 0)) for g in summed]
    known = {g.key for g in summed}
    groups += [RankedGroup(k, None, Measures(), v) for k, v in wip.items() if k not in known]
    return groups


@pytest.mark.parametrize(
    ("group_by", "monthly"),
    [
        (GroupBy.CLIENT, False),
        (GroupBy.OWNER, False),
        (GroupBy.WORK_TYPE, False),
        (GroupBy.CLIENT, True),
    ],
)
async def test_the_database_orders_pages_and_totals_as_the_domain_would(
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
    group_by: GroupBy,
    monthly: bool,
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    tenant_id = synced_firm.tenant_id
    where = FactFilter(date(2000, 1, 1), date(2100, 12, 31))
    async with sessions() as session:
        groups = await _unordered(session, tenant_id, where, group_by, monthly)
        keys = [g.key for g in groups if g.key is not None]
        names = (
            await repository.client_names(session, tenant_id, keys)
            if group_by is GroupBy.CLIENT
            else {key: key for key in keys}
        )
        assert len(groups) >= 2 and names
        for sort in SORT_FIELDS:
            for descending in (False, True):
                ordering = Ordering(sort, descending)
                ranking = await repository.rank_groups(
                    session, tenant_id, where, group_by, ordering, monthly=monthly, limit=None
                )
                got = [(g.key, g.month) for g in ranking.groups]
                assert got == _reference_order(groups, names, sort, descending), ordering
                assert ranking.count == len(groups)
                page = await repository.rank_groups(
                    session, tenant_id, where, group_by, ordering, monthly=monthly, limit=3,
                    offset=2,
                )  # fmt: skip
                assert page.groups == ranking.groups[2:5]
                assert (page.count, page.totals) == (ranking.count, ranking.totals)
        total = sum_measures(g.measures for g in groups)
        assert ranking.totals.measures == total
        past_the_end = await repository.rank_groups(
            session, tenant_id, where, group_by, ordering, monthly=monthly, limit=5, offset=10**6
        )
        assert past_the_end.groups == [] and past_the_end.count == len(groups)
        assert past_the_end.totals == ranking.totals


def test_the_windows_summed_are_the_trailing_year_and_each_calendar_year() -> None:
    windows = windows_to_sum(date(2026, 3, 5), date(2024, 7, 1), date(2026, 1, 31))
    assert windows == {
        (date(2025, 3, 6), date(2026, 3, 5)),
        (date(2024, 1, 1), date(2024, 12, 31)),
        (date(2025, 1, 1), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 12, 31)),
    }


@pytest.mark.parametrize("group_by", [GroupBy.CLIENT, GroupBy.OWNER, GroupBy.MANAGER])
async def test_the_kept_window_sums_answer_as_the_monthly_sums_do(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession], group_by: GroupBy
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    tenant_id = synced_firm.tenant_id
    async with sessions() as session:
        windows = await repository.summed_windows(session, tenant_id)
        owners = await session.scalars(select(Client.owner_email).distinct())
        filters = [FactFilter(), FactFilter(owner=next(o for o in owners if o))]
        compared = 0
        for (start, end), extra in itertools.product(sorted(windows), filters):
            where = replace(extra, start=start, end=end)
            for sort in ("margin", "name", "unbilled_work"):
                ordering = Ordering(sort, descending=sort != "name")
                rankings = [
                    await repository.rank_groups(
                        session,
                        tenant_id,
                        where,
                        group_by,
                        ordering,
                        monthly=False,
                        summed_windows=windows if summed else frozenset(),
                        limit=None,
                    )
                    for summed in (False, True)
                ]
                assert rankings[0] == rankings[1], (where, ordering)
                compared += rankings[0].count
    assert len(windows) >= 2 and compared > 0


def test_each_sort_field_names_the_sums_it_reads() -> None:
    assert set(SORT_SUMS) == set(SORT_FIELDS)
    for figure, build in FIGURES.items():
        names = SORT_SUMS[figure]
        only = values(*(column(name, Numeric(30, 10)) for name in names), name="sums").data(
            [tuple(Decimal(1) for _ in names)]
        )
        build(only.c)  # reads no other column (a missing one raises KeyError)
