"""The monthly sums written at refresh: a windowed report read from them (whole months) and
the facts (edge days) equals summing the facts themselves, for any window, filter and
grouping."""

import random
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain import Measures, sum_measures
from app.models import Client, ReportFact
from app.reports import repository
from app.reports.refresh import refresh_reports
from app.reports.repository import FactFilter, whole_months
from app.reports.schemas import GroupBy
from tests.reports.conftest import SyncedFirm

FEE_TYPES = (None, "FixedFee", "TimeAndMaterials", "NonBillable")
GROUPINGS = (GroupBy.CLIENT, GroupBy.WORK_TYPE, GroupBy.OWNER, GroupBy.MANAGER, None)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2025, 1, 1), date(2025, 12, 31), (date(2025, 1, 1), date(2026, 1, 1))),
        (date(2025, 1, 2), date(2025, 12, 30), (date(2025, 2, 1), date(2025, 12, 1))),
        (date(2025, 2, 1), date(2025, 2, 28), (date(2025, 2, 1), date(2025, 3, 1))),
        (date(2025, 2, 3), date(2025, 2, 27), (date(2025, 3, 1), date(2025, 2, 1))),
        (date(2024, 12, 31), date(2025, 1, 31), (date(2025, 1, 1), date(2025, 2, 1))),
    ],
)
def test_whole_months_are_those_inside_the_window(
    start: date, end: date, expected: tuple[date, date]
) -> None:
    assert whole_months(start, end) == expected


def _fact_measures(fact: ReportFact) -> Measures:
    return Measures(**{name: getattr(fact, name) for name in Measures.__dataclass_fields__})


def _reference(
    facts: list[ReportFact],
    teams: dict[str, tuple[str | None, str | None]],
    where: FactFilter,
    group_by: GroupBy | None,
    monthly: bool,
) -> dict[tuple[Any, date | None], Measures]:
    """The facts in the window summed one by one in Python."""
    groups: dict[tuple[Any, date | None], list[Measures]] = defaultdict(list)
    for fact in facts:
        assert where.start is not None and where.end is not None
        if not where.start <= fact.fact_date <= where.end:
            continue
        if where.fee_type is not None and fact.fee_type != where.fee_type:
            continue
        key: Any = None
        if group_by is GroupBy.CLIENT:
            key = fact.client_key
        elif group_by is GroupBy.WORK_TYPE:
            key = fact.work_type
        elif group_by is GroupBy.OWNER:
            key = teams.get(fact.client_key or "", (None, None))[0]
        elif group_by is GroupBy.MANAGER:
            key = teams.get(fact.client_key or "", (None, None))[1]
        month = fact.fact_date.replace(day=1) if monthly else None
        groups[(key, month)].append(_fact_measures(fact))
    return {group: sum_measures(items) for group, items in groups.items()}


def _random_window(rng: random.Random, first: date, last: date) -> tuple[date, date]:
    span = (last - first).days
    start = first + timedelta(days=rng.randrange(span))
    if rng.random() < 0.3:
        start = start.replace(day=1)
    end = min(last, start + timedelta(days=rng.randrange(1, 500)))
    return start, end


async def test_windowed_sums_equal_the_facts_summed(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    tenant_id = synced_firm.tenant_id
    rng = random.Random(20261102)
    async with sessions() as session:
        facts = list((await session.scalars(select(ReportFact))).all())
        clients = await session.execute(
            select(Client.client_key, Client.owner_email, Client.manager_email)
        )
        teams = {key: (owner, manager) for key, owner, manager in clients}
        first = min(fact.fact_date for fact in facts)
        last = max(fact.fact_date for fact in facts)
        windows = [(first, last), (date(first.year, 1, 1), date(last.year, 12, 31))]
        windows += [_random_window(rng, first, last) for _ in range(12)]
        for index, (start, end) in enumerate(windows):
            where = FactFilter(start, end, fee_type=FEE_TYPES[index % len(FEE_TYPES)])
            group_by = GROUPINGS[index % len(GROUPINGS)]
            monthly = index % 3 == 0
            summed = await repository.sum_facts(
                session, tenant_id, where, group_by, monthly=monthly
            )
            got = {(g.key, g.month): g.measures for g in summed}
            expected = _reference(facts, teams, where, group_by, monthly)
            assert got == expected, (where, group_by, monthly)
    assert any(fact.fee_revenue for fact in facts) and len(windows) == 14
