"""Asking a worker to refresh a tenant's reports (after a sync or a change of assumptions)."""

from uuid import UUID, uuid4

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.settings import Settings

REFRESH_REPORTS_JOB = "refresh_reports"


async def enqueue_refresh(redis: ArqRedis, settings: Settings, tenant_id: UUID) -> None:
    # A fresh id each time: a refresh already running may have read the data before this
    # change, so a second one must still run; refreshes of one tenant take turns on a
    # database lock.
    await redis.enqueue_job(
        REFRESH_REPORTS_JOB,
        str(tenant_id),
        _job_id=settings.job_id("refresh", tenant_id, uuid4().hex),
        _queue_name=settings.queue_name,
    )


async def enqueue_refresh_once(redis: ArqRedis, settings: Settings, tenant_id: UUID) -> bool:
    """Queue a refresh of the partial facts during a first sync, unless one is still queued
    or running; says whether it was queued. The job id is the tenant's own, and arq refuses
    an id it still holds, so no firm ever has two of these waiting."""
    job = await redis.enqueue_job(
        REFRESH_REPORTS_JOB,
        str(tenant_id),
        _job_id=partial_refresh_job_id(settings, tenant_id),
        _queue_name=settings.queue_name,
    )
    return job is not None


def partial_refresh_job_id(settings: Settings, tenant_id: UUID) -> str:
    return settings.job_id("refresh", tenant_id, "during-first-sync")


def refresh_after_commit(
    session: AsyncSession, redis: ArqRedis, settings: Settings, tenant_id: UUID
) -> None:
    after_commit(session, lambda: enqueue_refresh(redis, settings, tenant_id))
