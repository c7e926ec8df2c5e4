from arq.connections import ArqRedis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.embedded import ServiceUrls
from app.models import SyncKind, SyncRun, SyncState, SyncTrigger
from app.settings import Settings
from app.sync.control import request_sync, stop_syncing, sync_job_id
from tests.factories import create_tenant


async def _queued_job_ids(redis: ArqRedis, settings: Settings) -> set[str]:
    return {job.job_id for job in await redis.queued_jobs(queue_name=settings.queue_name)}


async def test_a_requested_sync_is_queued_and_enqueued_after_commit(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, service_urls: ServiceUrls
) -> None:
    tenant_id = await create_tenant(sessions)
    redis = ArqRedis.from_url(service_urls.redis_url)
    async with unit_of_work(sessions) as session:
        request = await request_sync(session, redis, settings, tenant_id)
        assert sync_job_id(settings, request.run.id) not in await _queued_job_ids(redis, settings)
    assert not request.joined
    assert request.run.state == SyncState.QUEUED
    assert sync_job_id(settings, request.run.id) in await _queued_job_ids(redis, settings)
    await redis.aclose()


async def test_a_rolled_back_request_enqueues_nothing(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, service_urls: ServiceUrls
) -> None:
    tenant_id = await create_tenant(sessions)
    redis = ArqRedis.from_url(service_urls.redis_url)
    try:
        async with unit_of_work(sessions) as session:
            request = await request_sync(session, redis, settings, tenant_id)
            raise RuntimeError("the request failed after asking for a sync")
    except RuntimeError:
        pass
    assert sync_job_id(settings, request.run.id) not in await _queued_job_ids(redis, settings)
    async with sessions() as session:
        assert (await session.execute(select(SyncRun))).scalars().all() == []
    await redis.aclose()


async def test_a_second_request_joins_the_active_sync(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, service_urls: ServiceUrls
) -> None:
    tenant_id = await create_tenant(sessions)
    redis = ArqRedis.from_url(service_urls.redis_url)
    async with unit_of_work(sessions) as session:
        first = await request_sync(session, redis, settings, tenant_id)
    async with unit_of_work(sessions) as session:
        second = await request_sync(
            session, redis, settings, tenant_id, kind=SyncKind.FULL, trigger=SyncTrigger.MANUAL
        )
    assert second.joined and second.run.id == first.run.id
    await redis.aclose()


async def test_stopping_cancels_the_active_sync_only(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, service_urls: ServiceUrls
) -> None:
    tenant_id = await create_tenant(sessions)
    other_tenant = await create_tenant(sessions, "Other LLP")
    redis = ArqRedis.from_url(service_urls.redis_url)
    async with unit_of_work(sessions) as session:
        mine = await request_sync(session, redis, settings, tenant_id)
        theirs = await request_sync(session, redis, settings, other_tenant)
    async with unit_of_work(sessions) as session:
        cancelled = await stop_syncing(session, redis, settings, tenant_id)
    assert cancelled == [mine.run.id]
    async with sessions() as session:
        assert (await session.get(SyncRun, mine.run.id)).state == SyncState.CANCELLED  # type: ignore[union-attr]
        assert (await session.get(SyncRun, theirs.run.id)).state == SyncState.QUEUED  # type: ignore[union-attr]
    await redis.aclose()
