"""The sync's background jobs: running one sync, and the scheduler that starts them.

`run_sync` may run more than once for the same run (a resumed or duplicated job): the
tenant lock lets only one proceed, and a run that is no longer active is left alone.
"""

import asyncio
import enum
import hashlib
import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.metrics import SYNC_RUN_DURATION, SYNC_RUNS, SYNC_RUNS_IN_PROGRESS
from app.models import ACTIVE_STATES, SyncKind, SyncRun, SyncState, SyncTrigger
from app.reports.completeness import LISTED_STATES
from app.reports.queue import enqueue_refresh, enqueue_refresh_once
from app.secrets import Secrets
from app.settings import Settings
from app.sync import repository
from app.sync.access import KarbonAccess
from app.sync.connection import clear_sync_error, load_karbon_credentials, tenant_may_sync
from app.sync.control import enqueue_run, request_sync
from app.sync.engine import RunPlan, SyncCancelledError, SyncEngine, capture_response
from app.sync.failures import alert_admins_once, describe, report_failure
from app.sync.karbon.errors import KarbonAuthError, KarbonPermissionError
from app.sync.lock import SYNC_LOCK_TTL, LockLostError, hold_lock, tenant_sync_lock_key
from app.sync.rotation import (
    NIGHTLY_WINDOW_MINUTES,
    NIGHTLY_WINDOW_START_HOUR,
    enqueue_tonight,
    list_pages_read,
    night_requests,
    recheck_until,
)
from app.tenancy import repository as tenancy_repository

logger = logging.getLogger(__name__)

ORPHAN_CHECK_SECONDS = {0, 15, 30, 45}
"""When the worker looks for runs whose worker died: a crashed run resumes within 15 s of its
lock expiring."""
STALE_RUNNING = SYNC_LOCK_TTL
"""A running run whose lock is gone and whose last heartbeat is older than the lock's
lifetime has lost its worker (a live worker renews the lock every 10 s)."""
STALE_QUEUED = timedelta(minutes=2)
"""A queued run holds no lock yet: its job may only be waiting for a free worker."""
PARTIAL_REFRESH_MINUTES = 5
"""During a first sync, reports' facts are refreshed when a stream's lists are in or it is
done, and at least this often while the run makes progress."""
FIRST_SYNC_POLL_SECONDS = 5.0
"""How often the first sync's watcher reads the run's progress."""


class RunEnd(enum.StrEnum):
    """How this worker's part of a run ended: the job's result, and a metric's outcome label."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    AUTH_FAILED = "auth failed"
    PERMISSION_DENIED = "permission denied"
    CANCELLED = "cancelled"
    NOT_CONNECTED = "not connected"
    LOCK_LOST = "lock lost; another worker resumes the run"
    INTERRUPTED = "interrupted"
    """The job itself stopped: the worker shut down, or recording the run's end failed."""


class SyncJobDeps(Protocol):
    """What the sync's jobs need of the worker's context (`ctx["deps"]`)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def secrets(self) -> Secrets: ...
    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...
    @property
    def redis(self) -> ArqRedis: ...
    @property
    def karbon(self) -> KarbonAccess: ...


async def run_sync(ctx: dict[str, Any], run_id: str) -> str:
    deps: SyncJobDeps = ctx["deps"]
    async with deps.sessions() as session:
        run = await repository.get_run(session, UUID(run_id))
    if run is None or run.state not in ACTIVE_STATES:
        return "not active"
    lock_key = tenant_sync_lock_key(deps.settings.redis_key_prefix, run.tenant_id)
    async with hold_lock(deps.redis, lock_key) as lost:
        if lost is None:
            return "another worker is syncing this tenant"
        return await _run_holding_lock(deps, run.id, lost)


async def _run_holding_lock(deps: SyncJobDeps, run_id: UUID, lost: asyncio.Event) -> str:
    run = await _start(deps.sessions, run_id)
    if run is None:
        return "not active"
    started = time.perf_counter()
    in_progress = SYNC_RUNS_IN_PROGRESS.labels(run.kind)
    in_progress.inc()
    end = RunEnd.INTERRUPTED
    try:
        end = await _run_started(deps, run, lost)
        return end
    finally:
        in_progress.dec()
        SYNC_RUNS.labels(run.kind, run.trigger, end.name.lower()).inc()
        SYNC_RUN_DURATION.labels(run.kind).observe(time.perf_counter() - started)


async def _run_started(deps: SyncJobDeps, run: SyncRun, lost: asyncio.Event) -> RunEnd:
    async with deps.sessions() as session:
        credentials = await load_karbon_credentials(session, deps.secrets, run.tenant_id)
        plan = await _plan(session, run, deps.settings)
    if credentials is None:
        await _finish(deps.sessions, run.id, SyncState.CANCELLED, message="Karbon is not connected")
        return RunEnd.NOT_CONNECTED
    if run.kind is SyncKind.FULL:
        await _enqueue_rotation(deps, run)
    client = deps.karbon.client(
        run.tenant_id, credentials.access_key, credentials.bearer_token, capture_response
    )
    async with client:
        engine = SyncEngine(deps.sessions, client, plan, dict(run.checkpoint), dict(run.progress))
        return await _outcome(deps, run, engine, lost)


async def _outcome(
    deps: SyncJobDeps, run: SyncRun, engine: SyncEngine, lost: asyncio.Event
) -> RunEnd:
    try:
        await _until_lock_lost(_run_engine(deps, run, engine), lost)
    except SyncCancelledError:
        return RunEnd.CANCELLED
    except LockLostError:
        return RunEnd.LOCK_LOST
    except KarbonAuthError as error:
        await _fail(deps, run, error, SyncState.AUTH_FAILED, alert=True)
        return RunEnd.AUTH_FAILED
    except KarbonPermissionError as error:
        await _fail(deps, run, error, SyncState.PERMISSION_DENIED, alert=True)
        return RunEnd.PERMISSION_DENIED
    except Exception as error:
        logger.error("sync failed", exc_info=error, extra={"run_id": str(run.id)})
        await _fail(deps, run, error, SyncState.FAILED, alert=False)
        return RunEnd.FAILED
    async with unit_of_work(deps.sessions) as session:
        await _set_finished(session, run.id, SyncState.SUCCEEDED, None, None)
        await clear_sync_error(session, run.tenant_id)
    await enqueue_refresh(deps.redis, deps.settings, run.tenant_id)
    return RunEnd.SUCCEEDED


async def _run_engine(deps: SyncJobDeps, run: SyncRun, engine: SyncEngine) -> None:
    """The engine's run; a first sync's with a watcher refreshing the reports alongside."""
    if run.kind is not SyncKind.INITIAL:
        await engine.run()
        return
    watcher = asyncio.ensure_future(
        watch_first_sync(
            deps,
            run.id,
            run.tenant_id,
            every=PARTIAL_REFRESH_MINUTES * 60,
            poll=FIRST_SYNC_POLL_SECONDS,
        )
    )
    try:
        await engine.run()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def watch_first_sync(
    deps: SyncJobDeps,
    run_id: UUID,
    tenant_id: UUID,
    *,
    every: float,
    poll: float,
) -> None:
    """Until cancelled (the run ended) or the run is gone: queue a refresh of the reports'
    facts when a stream's lists are in or it is done, and `every` seconds while the run
    makes progress. A refresh still queued or running takes the place of a new one; what
    was due is queued as soon as it is gone."""
    lists_in: set[str] = set()
    refreshed_progress: dict[str, Any] | None = None
    last_refresh = time.monotonic()
    due = False
    while True:
        await asyncio.sleep(poll)
        try:
            progress = await _run_progress(deps.sessions, run_id)
            if progress is None:
                return
            newly_in = _streams_with_lists_in(progress) - lists_in
            lists_in |= newly_in
            moved = progress != refreshed_progress
            due = due or bool(newly_in) or (moved and time.monotonic() - last_refresh >= every)
            if due and await enqueue_refresh_once(deps.redis, deps.settings, tenant_id):
                due, refreshed_progress, last_refresh = False, progress, time.monotonic()
        except Exception as error:  # a missed refresh must not stop the sync
            logger.warning("first sync watcher", exc_info=error, extra={"run_id": str(run_id)})


async def _run_progress(
    sessions: async_sessionmaker[AsyncSession], run_id: UUID
) -> dict[str, Any] | None:
    async with sessions() as session:
        run = await repository.get_run(session, run_id)
    return dict(run.progress) if run is not None and run.state in ACTIVE_STATES else None


def _streams_with_lists_in(progress: dict[str, Any]) -> set[str]:
    return {
        stream
        for stream, saved in progress.items()
        if isinstance(saved, dict) and saved.get("state") in LISTED_STATES
    }


async def _until_lock_lost(work: Any, lost: asyncio.Event) -> None:
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(lost.wait())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            return
        task.cancel()
        raise LockLostError("the tenant's sync lock expired while the run was going")
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            # Let the sync unwind (its requests and transactions) before the client closes.
            await asyncio.gather(task, return_exceptions=True)


async def _start(sessions: async_sessionmaker[AsyncSession], run_id: UUID) -> SyncRun | None:
    async with unit_of_work(sessions) as session:
        run = await repository.run_for_update(session, run_id)
        if run is None or run.state not in ACTIVE_STATES:
            return None
        run.state = SyncState.RUNNING
        run.started_at = run.started_at or datetime.now(UTC)
        run.heartbeat_at = datetime.now(UTC)
        return run


async def _plan(session: AsyncSession, run: SyncRun, settings: Settings) -> RunPlan:
    started_at = run.started_at or datetime.now(UTC)
    return RunPlan(
        run_id=run.id,
        tenant_id=run.tenant_id,
        kind=run.kind,
        started_at=started_at,
        today=datetime.now(UTC).date(),
        high_water_marks=await repository.high_water_marks(session, run.tenant_id),
        open_periods=await repository.open_periods(session, run.tenant_id),
        recheck_until=await _recheck_until(session, run.tenant_id, started_at, settings),
    )


async def _recheck_until(
    session: AsyncSession, tenant_id: UUID, started_at: datetime, settings: Settings
) -> datetime:
    """Every run's re-checks end in time for the firm's next incremental."""
    sync_settings = await repository.sync_settings(session, tenant_id)
    interval = timedelta(minutes=sync_settings.incremental_interval_minutes)
    list_pages = await list_pages_read(session, tenant_id)
    return recheck_until(started_at, interval, list_pages, settings.karbon_requests_per_second)


async def _enqueue_rotation(deps: SyncJobDeps, run: SyncRun) -> None:
    """A full run (started or resumed) queues its night's share of re-checks, once."""
    assert run.started_at is not None  # set by `_start`
    capacity = night_requests(deps.settings.karbon_requests_per_second)
    async with unit_of_work(deps.sessions) as session:
        await enqueue_tonight(
            session, run.tenant_id, run.id, run.started_at.date(), capacity, datetime.now(UTC)
        )


async def _fail(
    deps: SyncJobDeps, run: SyncRun, error: Exception, state: SyncState, *, alert: bool
) -> None:
    failure = describe(error)
    async with unit_of_work(deps.sessions) as session:
        await _set_finished(session, run.id, state, failure.code, failure.message)
        await report_failure(session, run.tenant_id, failure)
    if alert:
        async with unit_of_work(deps.sessions) as session:
            await alert_admins_once(session, deps.settings, run.tenant_id, failure)


async def _finish(
    sessions: async_sessionmaker[AsyncSession], run_id: UUID, state: SyncState, *, message: str
) -> None:
    async with unit_of_work(sessions) as session:
        await _set_finished(session, run_id, state, None, message)


async def _set_finished(
    session: AsyncSession, run_id: UUID, state: SyncState, code: str | None, message: str | None
) -> None:
    run = await repository.run_for_update(session, run_id)
    if run is None or run.state not in ACTIVE_STATES:
        return  # cancelled meanwhile: keep the cancellation
    run.state = state
    run.finished_at = datetime.now(UTC)
    run.error_code = code
    run.error_message = message


# -- the scheduler ----------------------------------------------------------------------


async def schedule_syncs(ctx: dict[str, Any]) -> int:
    """Every minute: start due incremental and nightly syncs."""
    return await schedule_due_syncs(ctx, datetime.now(UTC))


async def resume_orphaned_runs(ctx: dict[str, Any]) -> int:
    """Every 15 s: queue again the runs whose worker died."""
    return await resume_orphans(ctx, datetime.now(UTC))


async def schedule_due_syncs(ctx: dict[str, Any], now: datetime) -> int:
    deps: SyncJobDeps = ctx["deps"]
    started = 0
    async with deps.sessions() as session:
        tenants = await tenancy_repository.connected_tenant_ids(session)
    for tenant_id in tenants:
        async with unit_of_work(deps.sessions) as session:
            kind = await _due_kind(session, tenant_id, now)
            if kind is not None:
                request = await request_sync(
                    session,
                    deps.redis,
                    deps.settings,
                    tenant_id,
                    kind=kind,
                    trigger=SyncTrigger.SCHEDULE,
                )
                started += 0 if request.joined else 1
    return started


async def _due_kind(session: AsyncSession, tenant_id: UUID, now: datetime) -> SyncKind | None:
    if not await tenant_may_sync(session, tenant_id, now):
        return None
    if await repository.active_run(session, tenant_id) is not None:
        return None
    settings = await repository.sync_settings(session, tenant_id)
    last_full = await repository.last_finished_run(session, tenant_id, kinds=(SyncKind.FULL,))
    if settings.nightly_reconciliation and _in_nightly_slot(tenant_id, now, last_full):
        return SyncKind.FULL
    last = await repository.last_finished_run(session, tenant_id, states=repository.FINISHED_STATES)
    if last is None or last.state == SyncState.AUTH_FAILED:
        # The initial sync starts on connect; rejected keys wait for new ones. A missing
        # permission is granted in Karbon, with the same keys: the next runs try again.
        return None
    interval = timedelta(minutes=settings.incremental_interval_minutes)
    if last.finished_at is not None and now - last.finished_at >= interval:
        return SyncKind.INCREMENTAL
    return None


def nightly_minute(tenant_id: UUID) -> int:
    """The tenant's own minute of the night, spreading reconciliations across the window."""
    digest = hashlib.sha256(tenant_id.bytes).digest()
    return NIGHTLY_WINDOW_START_HOUR * 60 + int.from_bytes(digest[:4]) % NIGHTLY_WINDOW_MINUTES


def _in_nightly_slot(tenant_id: UUID, now: datetime, last_full: SyncRun | None) -> bool:
    minute_of_day = now.hour * 60 + now.minute
    if minute_of_day < nightly_minute(tenant_id):
        return False
    if minute_of_day >= (NIGHTLY_WINDOW_START_HOUR * 60 + NIGHTLY_WINDOW_MINUTES):
        return False
    today: date = now.date()
    return last_full is None or last_full.requested_at.date() < today


async def resume_orphans(ctx: dict[str, Any], now: datetime) -> int:
    """Runs whose worker died: their heartbeat is stale and nobody holds the tenant lock."""
    deps: SyncJobDeps = ctx["deps"]
    settings, redis = deps.settings, deps.redis
    async with deps.sessions() as session:
        runs = await repository.active_runs(session)
    resumed = 0
    for run in runs:
        last_sign_of_life = run.heartbeat_at or run.requested_at
        stale_after = STALE_QUEUED if run.state == SyncState.QUEUED else STALE_RUNNING
        if now - last_sign_of_life < stale_after:
            continue
        if await redis.exists(tenant_sync_lock_key(settings.redis_key_prefix, run.tenant_id)):
            continue
        # One attempt per check (every 15 s): a killed worker leaves its job's id taken in
        # arq, so a run resumed twice within a minute needs a new id the second time.
        await enqueue_run(redis, settings, run.id, attempt=now.strftime("%Y%m%d%H%M%S"))
        resumed += 1
    return resumed
