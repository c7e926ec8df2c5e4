"""The scheduler: incremental syncs at each firm's interval, a nightly reconciliation at each
firm's own minute, pauses after the trial, and resumption of runs whose worker died."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import (
    NightlyRotation,
    PendingDetail,
    SyncKind,
    SyncRun,
    SyncSettings,
    SyncState,
    SyncTrigger,
    Tenant,
)
from app.settings import Settings
from app.sync.control import sync_job_id
from app.sync.jobs import nightly_minute, resume_orphans, run_sync, schedule_due_syncs
from app.sync.lock import tenant_sync_lock_key
from app.worker import cron_jobs
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, sync_now

NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


async def _finished_run(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: UUID,
    finished_at: datetime,
    *,
    kind: SyncKind = SyncKind.INITIAL,
    state: SyncState = SyncState.SUCCEEDED,
) -> None:
    async with unit_of_work(sessions) as session:
        session.add(
            SyncRun(
                tenant_id=tenant_id,
                kind=kind,
                trigger=SyncTrigger.CONNECT,
                state=state,
                requested_at=finished_at - timedelta(minutes=5),
                started_at=finished_at,
                finished_at=finished_at,
                progress={},
                checkpoint={},
            )
        )


async def _start_trial(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, started: datetime
) -> None:
    async with unit_of_work(sessions) as session:
        tenant = await session.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.trial_started_at = started


async def _active_runs(sessions: async_sessionmaker[AsyncSession]) -> list[SyncRun]:
    async with sessions() as session:
        query = select(SyncRun).where(SyncRun.state.in_((SyncState.QUEUED, SyncState.RUNNING)))
        return list((await session.execute(query)).scalars().all())


async def _connected(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> UUID:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await _start_trial(sessions, tenant_id, NOON - timedelta(days=2))
    return tenant_id


async def test_an_incremental_sync_starts_once_the_interval_has_passed(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await _connected(sandbox, job_context, sessions)
    await _finished_run(sessions, tenant_id, NOON - timedelta(minutes=119))
    assert await schedule_due_syncs(job_context, NOON) == 0
    assert await schedule_due_syncs(job_context, NOON + timedelta(minutes=1)) == 1
    [run] = await _active_runs(sessions)
    assert (run.kind, run.trigger) == (SyncKind.INCREMENTAL, SyncTrigger.SCHEDULE)
    assert await schedule_due_syncs(job_context, NOON + timedelta(minutes=2)) == 0


async def test_each_firm_sets_its_own_interval(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await _connected(sandbox, job_context, sessions)
    async with unit_of_work(sessions) as session:
        session.add(
            SyncSettings(
                tenant_id=tenant_id, incremental_interval_minutes=360, nightly_reconciliation=True
            )
        )
    await _finished_run(sessions, tenant_id, NOON - timedelta(hours=3))
    assert await schedule_due_syncs(job_context, NOON) == 0
    assert await schedule_due_syncs(job_context, NOON + timedelta(hours=3)) == 1


async def test_rejected_keys_and_an_ended_trial_pause_the_schedule(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    rejected = await _connected(sandbox, job_context, sessions)
    await _finished_run(sessions, rejected, NOON - timedelta(hours=5), state=SyncState.AUTH_FAILED)
    expired = await connect_tenant(sessions, job_context["deps"].settings, sandbox, name="Expired")
    await _start_trial(sessions, expired, NOON - timedelta(days=8))
    await _finished_run(sessions, expired, NOON - timedelta(hours=5))
    assert await schedule_due_syncs(job_context, NOON) == 0


async def test_the_nightly_reconciliation_runs_at_the_firms_own_minute(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await _connected(sandbox, job_context, sessions)
    minute = nightly_minute(tenant_id)
    assert 60 <= minute < 300
    slot = datetime(2026, 11, 3, tzinfo=UTC) + timedelta(minutes=minute)
    await _finished_run(sessions, tenant_id, slot - timedelta(minutes=30))
    assert await schedule_due_syncs(job_context, slot - timedelta(minutes=1)) == 0
    assert await schedule_due_syncs(job_context, slot) == 1
    [run] = await _active_runs(sessions)
    assert run.kind == SyncKind.FULL


async def test_the_nightly_the_scheduler_starts_queues_its_rotation_share(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await _connected(sandbox, job_context, sessions)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"
    slot = datetime(2026, 11, 3, tzinfo=UTC) + timedelta(minutes=nightly_minute(tenant_id))
    assert await schedule_due_syncs(job_context, slot - timedelta(minutes=1)) == 0
    assert await schedule_due_syncs(job_context, slot) == 1
    [run] = await _active_runs(sessions)
    assert (run.kind, run.trigger) == (SyncKind.FULL, SyncTrigger.SCHEDULE)
    assert await run_sync(job_context, str(run.id)) == "succeeded"
    async with sessions() as session:
        rotation = await session.get(NightlyRotation, run.id)
        queued = await session.scalar(
            select(func.count()).select_from(PendingDetail).where(PendingDetail.run_id == run.id)
        )
        finished = await session.get(SyncRun, run.id)
    assert rotation is not None and rotation.share > 0
    assert queued == 0  # the run had time to re-read its whole share
    assert finished is not None and finished.requests_made >= rotation.share


async def test_nightly_minutes_spread_firms_across_the_window() -> None:
    import uuid

    minutes = {nightly_minute(uuid.uuid4()) for _ in range(200)}
    assert len(minutes) > 100
    assert min(minutes) >= 60 and max(minutes) < 300


async def test_a_run_whose_worker_died_is_queued_again(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await _connected(sandbox, job_context, sessions)
    async with unit_of_work(sessions) as session:
        run = SyncRun(
            tenant_id=tenant_id,
            kind=SyncKind.INITIAL,
            trigger=SyncTrigger.CONNECT,
            state=SyncState.RUNNING,
            requested_at=NOON - timedelta(minutes=30),
            heartbeat_at=NOON - timedelta(minutes=10),
            progress={},
            checkpoint={},
        )
        session.add(run)
    redis = job_context["deps"].redis
    settings = job_context["deps"].settings
    lock = tenant_sync_lock_key(settings.redis_key_prefix, tenant_id)
    await redis.set(lock, "a live worker", px=5000)
    assert await resume_orphans(job_context, NOON) == 0, "its worker still holds the lock"
    await redis.delete(lock)
    assert await resume_orphans(job_context, NOON) == 1
    queued = {job.job_id for job in await redis.queued_jobs(queue_name=settings.queue_name)}
    assert any(job_id.startswith(f"{sync_job_id(settings, run.id)}:") for job_id in queued)


@pytest.mark.parametrize(
    ("state", "last_sign_of_life", "resumed"),
    [
        # A running run renews its lock every 10 s: gone lock, heartbeat older than the
        # lock's 30 s lifetime, the worker died.
        (SyncState.RUNNING, timedelta(seconds=31), True),
        (SyncState.RUNNING, timedelta(seconds=20), False),
        # A queued run holds no lock: its job may be waiting for a free worker.
        (SyncState.QUEUED, timedelta(seconds=60), False),
        (SyncState.QUEUED, timedelta(minutes=3), True),
    ],
)
async def test_a_crashed_run_resumes_once_its_lock_has_expired(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    state: SyncState,
    last_sign_of_life: timedelta,
    resumed: bool,
) -> None:
    tenant_id = await _connected(sandbox, job_context, sessions)
    async with unit_of_work(sessions) as session:
        session.add(
            SyncRun(
                tenant_id=tenant_id,
                kind=SyncKind.INITIAL,
                trigger=SyncTrigger.CONNECT,
                state=state,
                requested_at=NOON - last_sign_of_life,
                heartbeat_at=None if state == SyncState.QUEUED else NOON - last_sign_of_life,
                progress={},
                checkpoint={},
            )
        )
    assert await resume_orphans(job_context, NOON) == int(resumed)


def test_the_worker_looks_for_crashed_runs_every_15_seconds(settings: Settings) -> None:
    [resume] = [job for job in cron_jobs(settings) if job.name.endswith(":resume_orphaned_runs")]
    assert resume.second == {0, 15, 30, 45}


async def test_a_run_resumed_twice_within_a_minute_is_queued_both_times(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A resumed run's worker can die too, within the same minute: the first resume's job is
    still known to arq (a killed worker never finishes it), so its id must not be reused."""
    tenant_id = await _connected(sandbox, job_context, sessions)
    async with unit_of_work(sessions) as session:
        run = SyncRun(
            tenant_id=tenant_id,
            kind=SyncKind.INITIAL,
            trigger=SyncTrigger.CONNECT,
            state=SyncState.RUNNING,
            requested_at=NOON - timedelta(minutes=5),
            heartbeat_at=NOON - timedelta(minutes=1),
            progress={},
            checkpoint={},
        )
        session.add(run)
    redis = job_context["deps"].redis
    settings = job_context["deps"].settings
    assert await resume_orphans(job_context, NOON) == 1
    assert await resume_orphans(job_context, NOON + timedelta(seconds=45)) == 1
    queued = {job.job_id for job in await redis.queued_jobs(queue_name=settings.queue_name)}
    resumed = [
        job_id for job_id in queued if job_id.startswith(f"{sync_job_id(settings, run.id)}:")
    ]
    assert len(resumed) == 2
