"""A firm's cost settings are created by their first save; first saves at once (two admins,
or one admin's retried request on another API process) both succeed, the last one kept."""

import asyncio
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.costs import repository
from app.costs.schemas import CostSettingsBody
from app.costs.service import save_settings
from app.db import unit_of_work
from tests.factories import create_tenant


async def test_first_saves_at_once_all_succeed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant_id = await create_tenant(sessions)

    async def save(weeks: str) -> None:
        body = CostSettingsBody(
            overhead_rate=Decimal("0.2"),
            working_weeks_per_year=Decimal(weeks),
            default_capacity_hours_per_week=Decimal("37.5"),
            recognition_policy="billing",
        )
        async with unit_of_work(sessions) as session:
            await save_settings(session, tenant_id, body)
            await asyncio.sleep(0.05)  # the request goes on before its commit

    await asyncio.gather(*(save(weeks) for weeks in ("44", "45", "46", "47")))

    async with sessions() as session:
        stored = await repository.cost_settings(session, tenant_id)
    assert stored is not None and stored.working_weeks_per_year in {44, 45, 46, 47}
