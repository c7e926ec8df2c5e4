"""The first sync's watcher: it queues a refresh of the reports' facts when an entity's lists
are in or it is done, and on its timer while the run makes progress; never two at once."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.embedded import ServiceUrls
from app.models import SyncKind, SyncRun, SyncState, SyncTrigger
from app.redis_pool import create_redis
from app.reports.queue import REFRESH_REPORTS_JOB, partial_refresh_job_id
from app.settings import Settings
from app.sync.jobs import watch_first_sync
from tests.factories import create_tenant

POLL = 0.02
EVERY = 0.6


@dataclass(frozen=True)
class Deps:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis


@pytest.fixture
async def deps(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], service_urls: ServiceUrls
) -> AsyncIterator[Deps]:
    redis = create_redis(service_urls.redis_url)
    yield Deps(settings, sessions, redis)
    await redis.aclose()


async def _first_sync(sessions: async_sessionmaker[AsyncSession]) -> tuple[UUID, UUID]:
    tenant_id = await create_tenant(sessions)
    async with unit_of_work(sessions) as session:
        run = SyncRun(
            tenant_id=tenant_id,
            kind=SyncKind.INITIAL,
            trigger=SyncTrigger.CONNECT,
            state=SyncState.RUNNING,
            requested_at=datetime.now(UTC),
            progress={},
            checkpoint={},
        )
        session.add(run)
        await session.flush()
        return tenant_id, run.id


async def _set(sessions: async_sessionmaker[AsyncSession], run_id: UUID, **values: Any) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(update(SyncRun).where(SyncRun.id == run_id).values(**values))


def _stream(state: str, records: int) -> dict[str, Any]:
    return {"state": state, "records": records, "details_pending": 0}


async def _refreshes_queued(deps: Deps, tenant_id: UUID) -> list[str]:
    queued = await deps.redis.queued_jobs(queue_name=deps.settings.queue_name)
    return [
        job.job_id
        for job in queued
        if job.function == REFRESH_REPORTS_JOB and job.args == (str(tenant_id),)
    ]


async def _worker_takes_it(deps: Deps, tenant_id: UUID) -> None:
    """What a worker does with the queued refresh, as far as the queue can tell: runs it."""
    job_id = partial_refresh_job_id(deps.settings, tenant_id)
    await deps.redis.zrem(deps.settings.queue_name, job_id)
    await deps.redis.delete(job_key_prefix + job_id)


async def _wait_for_refresh(deps: Deps, tenant_id: UUID, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await _refreshes_queued(deps, tenant_id):
            return True
        await asyncio.sleep(POLL)
    return False


async def test_refreshes_when_lists_are_in_and_on_its_timer_one_at_a_time(
    deps: Deps, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id, run_id = await _first_sync(sessions)
    watcher = asyncio.ensure_future(
        watch_first_sync(deps, run_id, tenant_id, every=EVERY, poll=POLL)
    )
    try:
        await _set(sessions, run_id, progress={"users": _stream("running", 3)})
        assert not await _wait_for_refresh(deps, tenant_id, EVERY / 3)

        # Users' lists are in: a refresh at once.
        await _set(sessions, run_id, progress={"users": _stream("listed", 7)})
        assert await _wait_for_refresh(deps, tenant_id, EVERY / 2)

        # Contacts done while that refresh still waits: no second one beside it...
        await _set(
            sessions,
            run_id,
            progress={"users": _stream("listed", 7), "contacts": _stream("done", 4)},
        )
        await asyncio.sleep(POLL * 10)
        assert await _refreshes_queued(deps, tenant_id) == [
            partial_refresh_job_id(deps.settings, tenant_id)
        ]
        # ...but one as soon as the worker has taken it.
        await _worker_takes_it(deps, tenant_id)
        assert await _wait_for_refresh(deps, tenant_id, EVERY / 2)
        await _worker_takes_it(deps, tenant_id)

        # No entity newly in, but the run moves: the timer brings the next refresh.
        progress = {"users": _stream("listed", 7), "contacts": _stream("done", 9)}
        await _set(sessions, run_id, progress=progress)
        assert not await _wait_for_refresh(deps, tenant_id, EVERY / 3)
        assert await _wait_for_refresh(deps, tenant_id, EVERY * 3)
        await _worker_takes_it(deps, tenant_id)

        # A run that stands still brings none.
        assert not await _wait_for_refresh(deps, tenant_id, EVERY * 2)

        # The run ends: the watcher stops.
        await _set(sessions, run_id, state=SyncState.SUCCEEDED, finished_at=datetime.now(UTC))
        await asyncio.wait_for(watcher, EVERY * 3)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
