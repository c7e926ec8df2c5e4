"""The monthly sums written at refresh: a windowed report read from them (whole months) and
the facts (edge days) equals summing the facts themselves, for any window, filter and
grouping, work status included (each fact's work item's status as synced)."""

import itertools
import random
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.domain import Measures, sum_measures
from app.models import Client, ReportFact, WorkItem
from app.reports import repository
from app.reports.refresh import refresh_reports
from app.reports.repository import FactFilter, whole_months
from app.reports.schemas import GroupBy, WorkStatus
from tests.reports.conftest import SyncedFirm

FEE_TYPES = (None, "FixedFee", "TimeAndMaterials", "NonBillable")
GROUPINGS = (GroupBy.CLIENT, GroupBy.WORK_TYPE, GroupBy.OWNER, GroupBy.MANAGER, None)
WORK_STATUSES = (None, WorkStatus.COMPLETED, WorkStatus.OPEN)


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


@dataclass(frozen=True)
class Firm:
    """The facts of the last refresh, and what they are filtered and grouped by as synced."""

    facts: list[ReportFact]
    teams: dict[str, tuple[str | None, str | None]]
    """Each client's owner and manager."""
    statuses: dict[str, str | None]
    """Each synced work item's `PrimaryStatus`, deleted ones included."""


async def _firm(session: AsyncSession) -> Firm:
    facts = list((await session.scalars(select(ReportFact))).all())
    clients = await session.execute(
        select(Client.client_key, Client.owner_email, Client.manager_email)
    )
    work_items = await session.execute(select(WorkItem.work_item_key, WorkItem.primary_status))
    return Firm(
        facts,
        {key: (owner, manager) for key, owner, manager in clients},
        {key: status for key, status in work_items},
    )


def _in_status(fact: ReportFact, firm: Firm, where: FactFilter) -> bool:
    """Work on a synced work item in the status asked for (no status: open)."""
    if where.work_status is None and where.primary_status is None:
        return True
    if fact.work_item_key not in firm.statuses:
        return False
    status = firm.statuses[fact.work_item_key]
    if where.primary_status is not None and status != where.primary_status:
        return False
    completed = status == "Completed"
    return where.work_status is None or completed == (where.work_status is WorkStatus.COMPLETED)


def _reference(
    firm: Firm, where: FactFilter, group_by: GroupBy | None, monthly: bool
) -> dict[tuple[Any, date | None], Measures]:
    """The facts in the window summed one by one in Python."""
    groups: dict[tuple[Any, date | None], list[Measures]] = defaultdict(list)
    teams = firm.teams
    for fact in firm.facts:
        assert where.start is not None and where.end is not None
        if not where.start <= fact.fact_date <= where.end:
            continue
        if where.fee_type is not None and fact.fee_type != where.fee_type:
            continue
        if not _in_status(fact, firm, where):
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


async def _sums(
    session: AsyncSession,
    tenant_id: UUID,
    where: FactFilter,
    group_by: GroupBy | None,
    monthly: bool,
) -> dict[tuple[Any, date | None], Measures]:
    summed = await repository.sum_facts(session, tenant_id, where, group_by, monthly=monthly)
    return {(g.key, g.month): g.measures for g in summed}


async def test_windowed_sums_equal_the_facts_summed(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    tenant_id = synced_firm.tenant_id
    rng = random.Random(20261102)
    async with sessions() as session:
        firm = await _firm(session)
        first = min(fact.fact_date for fact in firm.facts)
        last = max(fact.fact_date for fact in firm.facts)
        windows = [(first, last), (date(first.year, 1, 1), date(last.year, 12, 31))]
        windows += [_random_window(rng, first, last) for _ in range(12)]
        for index, (start, end) in enumerate(windows):
            where = FactFilter(
                start,
                end,
                fee_type=FEE_TYPES[index % len(FEE_TYPES)],
                work_status=WORK_STATUSES[index % len(WORK_STATUSES)],
            )
            group_by = GROUPINGS[index % len(GROUPINGS)]
            monthly = index % 3 == 0
            got = await _sums(session, tenant_id, where, group_by, monthly)
            assert got == _reference(firm, where, group_by, monthly), (where, group_by, monthly)
    assert any(fact.fee_revenue for fact in firm.facts) and len(windows) == 14


async def test_sums_by_work_status_equal_the_facts_summed(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Completed and open work, and one `PrimaryStatus`, in every grouping, as a series and
    not, over a window with edge days and over whole months."""
    await refresh_reports(sessions, synced_firm.tenant_id)
    tenant_id = synced_firm.tenant_id
    async with sessions() as session:
        firm = await _firm(session)
        first = min(fact.fact_date for fact in firm.facts)
        last = max(fact.fact_date for fact in firm.facts)
        windows = [(first + timedelta(days=9), last - timedelta(days=9))]
        whole = ((first.replace(day=1) + timedelta(days=32)).replace(day=1), last.replace(day=1))
        windows.append((whole[0], whole[1] - timedelta(days=1)))
        filters = [FactFilter(work_status=status) for status in WORK_STATUSES[1:]]
        filters.append(FactFilter(primary_status="Completed"))
        for start, end in windows:
            assert whole_months(start, end)[0] < whole_months(start, end)[1]
            for status, group_by, monthly in itertools.product(filters, GROUPINGS, (False, True)):
                where = replace(status, start=start, end=end)
                got = await _sums(session, tenant_id, where, group_by, monthly)
                assert got == _reference(firm, where, group_by, monthly), (where, group_by)
                assert got or group_by is None, (where, group_by)


async def test_a_changed_work_status_moves_the_filtered_report(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """An incremental refresh after only a work item's status changed (completed, or
    reopened) moves its figures from one status to the other."""
    tenant_id = synced_firm.tenant_id
    await refresh_reports(sessions, tenant_id)
    async with sessions() as session:
        firm = await _firm(session)
    first = min(fact.fact_date for fact in firm.facts)
    last = max(fact.fact_date for fact in firm.facts)
    start = first + timedelta(days=3)
    where = FactFilter(start, last, work_status=WorkStatus.COMPLETED)
    values: dict[str, Any] = defaultdict(int)
    for fact in firm.facts:
        if fact.work_item_key in firm.statuses and fact.fact_date >= start:
            values[fact.work_item_key] += fact.standard_value
    key = max(values, key=lambda k: (values[k], k))
    completed = firm.statuses[key] == "Completed"
    before = await _status_values(sessions, tenant_id, where)
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(WorkItem)
            .where(WorkItem.tenant_id == tenant_id, WorkItem.work_item_key == key)
            .values(primary_status="InProgress" if completed else "Completed")
        )
    outcome = await refresh_reports(sessions, tenant_id)
    assert outcome.kind == "incremental" and outcome.clients, outcome
    after = await _status_values(sessions, tenant_id, where)
    shift = -values[key] if completed else values[key]
    assert values[key] > 0 and after[None] == before[None]
    assert after[WorkStatus.COMPLETED] == before[WorkStatus.COMPLETED] + shift
    assert after[WorkStatus.OPEN] == before[WorkStatus.OPEN] - shift


async def _status_values(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, where: FactFilter
) -> dict[WorkStatus | None, Any]:
    """The standard value of `where`'s window per work status (None: all)."""
    values = {}
    async with sessions() as session:
        for status in WORK_STATUSES:
            sums = await _sums(session, tenant_id, replace(where, work_status=status), None, False)
            values[status] = sums[(None, None)].standard_value
    return values
