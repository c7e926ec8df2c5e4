"""An empty owner or manager filter (`?owner=`) filters like any other value: the clients'
names are joined, never multiplied with every fact (a cartesian product grows with the
firm's size, and SQLAlchemy warns of it)."""

import warnings
from uuid import UUID

import pytest
from sqlalchemy.exc import SAWarning
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.reports.repository import FactFilter, Ordering, sum_facts, wip_lines, wip_totals
from tests.factories import create_tenant


@pytest.mark.parametrize("where", [FactFilter(owner=""), FactFilter(manager="")])
async def test_an_empty_team_filter_joins_the_clients(
    sessions: async_sessionmaker[AsyncSession], where: FactFilter
) -> None:
    tenant_id: UUID = await create_tenant(sessions)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)
        async with sessions() as session:
            assert await sum_facts(session, tenant_id, where, None) == []


@pytest.mark.parametrize("where", [FactFilter(owner=""), FactFilter(manager="")])
async def test_an_empty_team_filter_joins_the_clients_of_work_in_progress(
    sessions: async_sessionmaker[AsyncSession], where: FactFilter
) -> None:
    tenant_id: UUID = await create_tenant(sessions)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)
        async with sessions() as session:
            every = await wip_lines(session, tenant_id, where, Ordering("amount", True), limit=None)
            assert every == []
            assert (await wip_totals(session, tenant_id, where, [(0, None)])).items == 0
