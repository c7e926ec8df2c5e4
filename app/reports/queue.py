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


def refresh_after_commit(
    session: AsyncSession, redis: ArqRedis, settings: Settings, tenant_id: UUID
) -> None:
    after_commit(session, lambda: enqueue_refresh(redis, settings, tenant_id))
