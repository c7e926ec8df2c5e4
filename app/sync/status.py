"""Reading sync state for people: progress, rate, ETA, when the next syncs run, and every
firm's syncs for the operators."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.pagination import Page, PageParams
from app.models import (
    ACTIVE_STATES,
    KarbonConnection,
    NightlyRotation,
    SyncKind,
    SyncRun,
    SyncSettings,
    SyncState,
    Tenant,
)
from app.sync import repository, rotation
from app.sync.connection import tenant_may_sync
from app.sync.jobs import nightly_minute
from app.sync.schemas import (
    NightlyRunView,
    RotationView,
    StreamProgressView,
    SyncErrorView,
    SyncRunView,
    SyncSettingsView,
    SyncStatus,
    TenantSyncView,
)
from app.sync.streams import STREAMS
from app.tenancy import repository as tenancy_repository


def _stream_view(name: str, saved: dict[str, Any] | None) -> StreamProgressView:
    """A stream with nothing saved yet has not read its first page."""
    saved = saved or {}
    state = saved.get("state")
    return StreamProgressView(
        name=name,
        state=state if state in ("listed", "done") else ("running" if saved else "pending"),
        pages_done=saved.get("pages_done", 0),
        pages_total=saved.get("pages_total"),
        records_total=saved.get("karbon_count"),
        records=saved.get("records", 0),
        detail_calls=saved.get("details_done", 0),
        details_pending=saved.get("details_pending", 0),
        requests=saved.get("requests", 0),
    )


def remaining_requests(streams: list[StreamProgressView]) -> int | None:
    """Detail calls queued, plus list pages left, each to queue as many details as the
    stream's pages so far did."""
    remaining = 0
    for stream in streams:
        if stream.state == "done":
            continue
        remaining += stream.details_pending
        if stream.state == "listed":
            continue
        if stream.pages_total is None:
            return None
        queued = stream.details_pending + stream.detail_calls
        details_per_page = queued / stream.pages_done if stream.pages_done else 0
        remaining += round((stream.pages_total - stream.pages_done) * (1 + details_per_page))
    return remaining


def run_view(run: SyncRun) -> SyncRunView:
    streams = [_stream_view(s.name, run.progress.get(s.name)) for s in STREAMS]
    eta = None
    if run.state in ACTIVE_STATES and run.request_rate > 0:
        left = remaining_requests(streams)
        eta = None if left is None else left / run.request_rate
    error = (
        SyncErrorView(code=run.error_code, message=run.error_message)
        if run.error_code or run.error_message
        else None
    )
    return SyncRunView(
        id=run.id,
        kind=run.kind,
        trigger=run.trigger,
        state=run.state,
        requested_at=run.requested_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        requests_made=run.requests_made,
        request_rate=round(run.request_rate, 3),
        eta_seconds=eta,
        streams=streams,
        error=error,
    )


def next_nightly(tenant_id: UUID, now: datetime) -> datetime:
    minute = nightly_minute(tenant_id)
    today_slot = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(minutes=minute)
    return today_slot if today_slot > now else today_slot + timedelta(days=1)


async def sync_status(
    session: AsyncSession, tenant_id: UUID, *, may_sync: bool, now: datetime
) -> SyncStatus:
    current, last = await repository.current_and_last_run(
        session, tenant_id, states=(*repository.FINISHED_STATES, SyncState.CANCELLED)
    )
    settings = await repository.sync_settings(session, tenant_id)
    return SyncStatus(
        current=run_view(current) if current else None,
        last=run_view(last) if last else None,
        next_incremental_at=_next_incremental(settings, last, may_sync=may_sync, now=now),
        next_reconciliation_at=_next_reconciliation(settings, tenant_id, may_sync, now),
    )


def _next_incremental(
    settings: SyncSettings, last: SyncRun | None, *, may_sync: bool, now: datetime
) -> datetime | None:
    if not may_sync or last is None or last.finished_at is None:
        return None
    return max(now, last.finished_at + timedelta(minutes=settings.incremental_interval_minutes))


def _next_reconciliation(
    settings: SyncSettings, tenant_id: UUID, may_sync: bool, now: datetime
) -> datetime | None:
    return next_nightly(tenant_id, now) if may_sync and settings.nightly_reconciliation else None


def settings_view(settings: SyncSettings) -> SyncSettingsView:
    return SyncSettingsView(
        incremental_interval_minutes=settings.incremental_interval_minutes,
        nightly_reconciliation=settings.nightly_reconciliation,
    )


async def firm_syncs_page(
    session: AsyncSession, params: PageParams, now: datetime
) -> Page[TenantSyncView]:
    """The operators' view: every firm, oldest first, with its current and last sync, its
    schedule and its nightly rotation."""
    tenants, total = await tenancy_repository.paged(
        session, tenancy_repository.tenants_by_age(), params
    )
    ids = [t.id for t in tenants]
    connections = await tenancy_repository.connections_by_tenant(session, ids)
    nightly = _NightlyFigures(
        rotations=await rotation.latest_rotations(session, ids),
        rechecks_queued=await rotation.rechecks_queued(session, ids),
    )
    items = [
        await _firm_sync(session, tenant, connections.get(tenant.id), nightly, now)
        for tenant in tenants
    ]
    return Page[TenantSyncView](items=items, total=total, limit=params.limit, offset=params.offset)


@dataclass(frozen=True)
class _NightlyFigures:
    rotations: dict[UUID, NightlyRotation]
    rechecks_queued: dict[UUID, int]


async def _firm_sync(
    session: AsyncSession,
    tenant: Tenant,
    connection: KarbonConnection | None,
    nightly: _NightlyFigures,
    now: datetime,
) -> TenantSyncView:
    current = await repository.active_run(session, tenant.id)
    last = await repository.last_finished_run(
        session,
        tenant.id,
        states=repository.FINISHED_STATES,
    )
    last_full = await repository.last_finished_run(
        session, tenant.id, kinds=(SyncKind.FULL,), states=repository.FINISHED_STATES
    )
    settings = await repository.sync_settings(session, tenant.id)
    may_sync = await tenant_may_sync(session, tenant.id, now, terms=tenant)
    latest = nightly.rotations.get(tenant.id)
    return TenantSyncView(
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        connected=bool(connection and connection.is_connected),
        current=run_view(current) if current else None,
        last=run_view(last) if last else None,
        last_error_code=connection.last_error_code if connection else None,
        last_error_at=connection.last_error_at if connection else None,
        next_incremental_at=_next_incremental(settings, last, may_sync=may_sync, now=now),
        next_nightly_at=_next_reconciliation(settings, tenant.id, may_sync, now),
        rotation=_rotation_view(latest) if latest else None,
        rechecks_queued=nightly.rechecks_queued.get(tenant.id, 0),
        last_nightly=await _nightly_run_view(session, last_full) if last_full else None,
    )


def _rotation_view(row: NightlyRotation) -> RotationView:
    planned = row.list_pages + row.share
    return RotationView(
        night=row.night,
        period_nights=row.period,
        bucket=row.bucket,
        share=row.share,
        detail_records=row.detail_records,
        list_pages=row.list_pages,
        planned_requests=planned,
        night_requests=row.night_requests,
        fits_the_night=planned <= row.night_requests,
    )


async def _nightly_run_view(session: AsyncSession, run: SyncRun) -> NightlyRunView:
    row = await session.get(NightlyRotation, run.id)
    return NightlyRunView(
        run_id=run.id,
        state=run.state,
        started_at=run.started_at,
        finished_at=run.finished_at,
        requests_made=run.requests_made,
        night_requests=row.night_requests if row else None,
    )
