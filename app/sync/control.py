"""Starting and stopping syncs: the only way the API and the scheduler ask for one.

A tenant has at most one queued or running sync (a partial unique index guarantees it);
asking while one is active joins it. Jobs are enqueued only after the run's row has
committed, so a worker never looks for a run that does not exist.
"""

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from arq.connections import ArqRedis
from arq.jobs import Job
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.models import SyncKind, SyncRun, SyncState, SyncTrigger
from app.settings import Settings
from app.sync import repository

RUN_SYNC_JOB = "run_sync"


@dataclass(frozen=True)
class SyncRequest:
    run: SyncRun
    joined: bool
    """True when a sync was already queued or running and the request joined it."""


def sync_job_id(settings: Settings, run_id: UUID, attempt: str | None = None) -> str:
    parts = ("sync", run_id) if attempt is None else ("sync", run_id, attempt)
    return settings.job_id(*parts)


async def enqueue_run(
    redis: ArqRedis, settings: Settings, run_id: UUID, *, attempt: str | None = None
) -> None:
    """Queue the run's job. A resumed run gets a new job id: arq keeps a dead worker's job
    id reserved until its timeout, and the tenant lock already prevents a double run."""
    await redis.enqueue_job(
        RUN_SYNC_JOB,
        str(run_id),
        _job_id=sync_job_id(settings, run_id, attempt),
        _queue_name=settings.queue_name,
    )


async def request_sync(
    session: AsyncSession,
    redis: ArqRedis,
    settings: Settings,
    tenant_id: UUID,
    *,
    kind: SyncKind = SyncKind.INITIAL,
    trigger: SyncTrigger = SyncTrigger.CONNECT,
) -> SyncRequest:
    active = await repository.active_run(session, tenant_id)
    if active is not None:
        return SyncRequest(active, joined=True)
    run = SyncRun(
        tenant_id=tenant_id,
        kind=kind,
        trigger=trigger,
        state=SyncState.QUEUED,
        requested_at=datetime.now(UTC),
        progress={},
        checkpoint={},
    )
    try:
        async with session.begin_nested():
            session.add(run)
    except IntegrityError:  # another request created the active run a moment ago
        active = await repository.active_run(session, tenant_id)
        if active is None:
            raise
        return SyncRequest(active, joined=True)
    run_id = run.id
    after_commit(session, lambda: enqueue_run(redis, settings, run_id))
    return SyncRequest(run, joined=False)


async def stop_syncing(
    session: AsyncSession,
    redis: ArqRedis,
    settings: Settings,
    tenant_id: UUID,
    *,
    reason: str = "Karbon was disconnected",
) -> list[UUID]:
    """Cancel the tenant's queued or running sync; what it already stored stays."""
    cancelled = await repository.cancel_active_runs(
        session, tenant_id, now=datetime.now(UTC), reason=reason
    )

    async def abort_jobs() -> None:
        for run_id in cancelled:
            job = Job(sync_job_id(settings, run_id), redis, _queue_name=settings.queue_name)
            # Marks the job aborted (a running one is cancelled at its next await) without
            # waiting for it to finish.
            with contextlib.suppress(TimeoutError):
                await job.abort(timeout=0)

    after_commit(session, abort_jobs)
    return cancelled
