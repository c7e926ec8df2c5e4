"""A firm's sync settings are created on first use; first uses at once (say several people
opening sync status together, each on its own API process) all get them."""

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.sync import repository
from tests.factories import create_tenant


async def test_first_reads_of_a_firms_settings_at_once_all_get_the_defaults(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant_id = await create_tenant(sessions)

    async def interval() -> int:
        async with unit_of_work(sessions) as session:
            settings = await repository.sync_settings(session, tenant_id)
            await asyncio.sleep(0.05)  # the request goes on before its commit
            return settings.incremental_interval_minutes

    assert await asyncio.gather(*(interval() for _ in range(4))) == [120] * 4
