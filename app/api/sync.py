"""Sync endpoints: progress, manual syncs, history, settings, and the operators' view."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import (
    PlatformOperator,
    SyncStatusReader,
    TenantAdmin,
    TenantPrincipal,
    actor_of,
    principal_tenant,
)
from app.api.deps import RedisDep, SessionDep, SettingsDep
from app.api.pagination import PageParamsDep
from app.api.responses import ADMIN, OPERATOR, READER, SUBSCRIPTION, VALIDATION, problems
from app.kit.pagination import Page
from app.models import AuditKind, SyncKind, SyncTrigger
from app.sync import repository
from app.sync.connection import require_syncable, tenant_may_sync
from app.sync.control import request_sync
from app.sync.schemas import (
    SyncRequestBody,
    SyncRequested,
    SyncRunView,
    SyncSettingsPatch,
    SyncSettingsView,
    SyncStatus,
    TenantSyncView,
)
from app.sync.status import firm_syncs_page, run_view, settings_view, sync_status
from app.tenancy import audit

router = APIRouter(prefix="/api/v1", tags=["sync"])

_NOT_CONNECTED = {409: "`karbon-not-connected`: paste the Karbon keys first."}


@router.get(
    "/sync",
    summary="Current and last sync, progress, rate, ETA, next runs",
    responses=problems(READER),
)
async def get_sync_status(principal: SyncStatusReader, session: SessionDep) -> SyncStatus:
    now = datetime.now(UTC)
    terms = await principal_tenant(session, principal.tenant_id)
    may_sync = await tenant_may_sync(session, principal.tenant_id, now, terms=terms)
    return await sync_status(session, principal.tenant_id, may_sync=may_sync, now=now)


@router.post(
    "/sync",
    summary="Start a manual sync (a request while one runs joins it)",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems({**ADMIN, **SUBSCRIPTION, **_NOT_CONNECTED, **VALIDATION}),
)
async def start_sync(
    principal: TenantAdmin,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    body: Annotated[SyncRequestBody, Body()] = SyncRequestBody(),
) -> SyncRequested:
    await require_syncable(session, principal.tenant_id)
    request = await request_sync(
        session,
        redis,
        settings,
        principal.tenant_id,
        kind=SyncKind(body.kind),
        trigger=SyncTrigger.MANUAL,
    )
    await session.flush()
    outcome = "joined the running one" if request.joined else "started"
    await _record(
        session, principal, AuditKind.SYNC, "sync.requested", f"a {body.kind} sync", outcome
    )
    return SyncRequested(joined=request.joined, run=run_view(request.run))


@router.get(
    "/sync/runs",
    summary="History of syncs, newest first",
    responses=problems({**READER, **VALIDATION}),
)
async def list_sync_runs(
    principal: SyncStatusReader, session: SessionDep, page: PageParamsDep
) -> Page[SyncRunView]:
    runs = await repository.latest_runs(
        session, principal.tenant_id, limit=page.limit, offset=page.offset
    )
    return Page[SyncRunView](
        items=[run_view(run) for run in runs],
        total=await repository.count_runs(session, principal.tenant_id),
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/sync/settings", summary="The firm's sync schedule", responses=problems(READER))
async def get_sync_settings(principal: SyncStatusReader, session: SessionDep) -> SyncSettingsView:
    return settings_view(await repository.sync_settings(session, principal.tenant_id))


@router.patch(
    "/sync/settings",
    summary="Change the incremental interval or nightly reconciliation (admins)",
    responses=problems({**ADMIN, **VALIDATION}),
)
async def update_sync_settings(
    principal: TenantAdmin, session: SessionDep, body: SyncSettingsPatch
) -> SyncSettingsView:
    stored = await repository.sync_settings(session, principal.tenant_id)
    if body.incremental_interval_minutes is not None:
        stored.incremental_interval_minutes = body.incremental_interval_minutes
    if body.nightly_reconciliation is not None:
        stored.nightly_reconciliation = body.nightly_reconciliation
    await session.flush()
    view = settings_view(stored)
    detail = (
        f"incremental every {view.incremental_interval_minutes} minutes, nightly reconciliation "
        f"{'on' if view.nightly_reconciliation else 'off'}"
    )
    await _record(
        session,
        principal,
        AuditKind.SYNC_SETTINGS,
        "sync_settings.changed",
        "sync settings",
        detail,
    )
    return view


async def _record(
    session: AsyncSession,
    principal: TenantPrincipal,
    kind: AuditKind,
    action: str,
    subject: str,
    detail: str,
) -> None:
    await audit.record(
        session, principal.tenant_id, actor_of(principal), kind, action, subject, detail
    )


@router.get(
    "/ops/sync",
    summary="Every firm's sync state, rate and errors (operators only)",
    responses=problems({**OPERATOR, **VALIDATION}),
)
async def list_firm_syncs(
    _: PlatformOperator, session: SessionDep, page: PageParamsDep
) -> Page[TenantSyncView]:
    return await firm_syncs_page(session, page, datetime.now(UTC))
