"""Firm-wide sums (by staff member, and in all) read from monthly sums (whole months)
and the facts (edge days) equal the facts summed one by one, for any window."""

import random
from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.domain import Measures, sum_measures
from app.models import ReportFact
from app.reports import repository
from app.reports.refresh import refresh_reports
from app.reports.repository import FactFilter
from tests.reports.conftest import SyncedFirm


def _measures(fact: ReportFact) -> Measures:
    return Measures(**{name: getattr(fact, name) for name in Measures.__dataclass_fields__})


async def test_sums_by_staff_member_equal_the_facts_summed(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    rng = random.Random(7)
    async with sessions() as session:
        facts = list((await session.scalars(select(ReportFact))).all())
        first = min(fact.fact_date for fact in facts)
        last = max(fact.fact_date for fact in facts)
        windows = [(first, last), (date(last.year, 1, 1), date(last.year, 12, 31))]
        for _ in range(10):
            start = first + timedelta(days=rng.randrange((last - first).days))
            windows.append((start, start + timedelta(days=rng.randrange(20, 400))))
        for start, end in windows:
            expected: dict[str, list[Measures]] = defaultdict(list)
            for fact in facts:
                if fact.staff_key is not None and start <= fact.fact_date <= end:
                    expected[fact.staff_key].append(_measures(fact))
            summed = await repository.sum_facts(
                session, synced_firm.tenant_id, FactFilter(start, end), "staff"
            )
            assert {g.key: g.measures for g in summed if g.key is not None} == {
                key: sum_measures(items) for key, items in expected.items()
            }, (start, end)


async def test_firm_totals_equal_the_facts_summed(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    rng = random.Random(11)
    async with sessions() as session:
        facts = list((await session.scalars(select(ReportFact))).all())
        first = min(fact.fact_date for fact in facts)
        last = max(fact.fact_date for fact in facts)
        windows: list[tuple[date | None, date | None]] = [(None, None), (first, last)]
        for _ in range(10):
            start = first + timedelta(days=rng.randrange((last - first).days))
            windows.append((start, start + timedelta(days=rng.randrange(20, 400))))
        for start, end in windows:
            expected = sum_measures(
                _measures(f)
                for f in facts
                if (start is None or start <= f.fact_date) and (end is None or f.fact_date <= end)
            )
            summed = await repository.sum_facts(
                session, synced_firm.tenant_id, FactFilter(start, end), None
            )
            assert [g.measures for g in summed] == [expected], (start, end)
