from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import Client, Staff, SyncKind, WorkItem
from app.sync.rebuild import rebuild_from_raw
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, sync_now
from tests.sync.test_engine import assert_same, expected_from, stored


async def test_normalized_tables_are_rebuilt_from_raw_responses_without_karbon(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await sync_now(job_context, tenant_id)
    sandbox.advance("Demo firm", 60)
    await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)
    synced = await stored(sessions, tenant_id)
    async with unit_of_work(sessions) as session:
        await session.execute(delete(WorkItem).where(WorkItem.tenant_id == tenant_id))
        await session.execute(update(Staff).values(capacity_minutes_per_week=None, name="?"))
        await session.execute(update(Client).values(owner_email=None))
    requests_before = sandbox.counters("Demo firm")["requests"]

    summary = await rebuild_from_raw(sessions, tenant_id)

    assert sandbox.counters("Demo firm")["requests"] == requests_before, "no network"
    assert summary.pages > 0 and summary.rejected == 0
    assert await stored(sessions, tenant_id) == synced
    assert_same(await stored(sessions, tenant_id), expected_from(sandbox.tenant("Demo firm").firm))
