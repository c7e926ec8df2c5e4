"""Sync endpoints: progress, manual syncs, history, settings, and the operators' view."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, status
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import PlatformOperator, SyncStatusReader, TenantAdmin
from app.api.deps import RedisDep, SessionDep, SettingsDep
from app.api.pagination import PageParamsDep
from app.api.responses import ADMIN, OPERATOR, READER, SUBSCRIPTION, VALIDATION, problems
from app.kit.pagination import Page
from app.kit.problems import ProblemError
from app.models import KarbonConnection, SyncKind, SyncState, SyncTrigger, Tenant
from app.sync import repository
from app.sync.connection import tenant_may_sync
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
from app.sync.status import run_view, settings_view, sync_status

router = APIRouter(prefix="/api/v1", tags=["sync"])

_NOT_CONNECTED = {409: "`karbon-not-connected`: paste the Karbon keys first."}


@router.get(
    "/sync",
    summary="Current and last sync, progress, rate, ETA, next runs",
    responses=problems(READER),
)
async def get_sync_status(principal: SyncStatusReader, session: SessionDep) -> SyncStatus:
    assert principal.tenant_id is not None
    now = datetime.now(UTC)
    may_sync = await tenant_may_sync(session, principal.tenant_id, now)
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
    assert principal.tenant_id is not None
    await _require_syncable(session, principal.tenant_id)
    request = await request_sync(
        session,
        redis,
        settings,
        principal.tenant_id,
        kind=SyncKind(body.kind),
        trigger=SyncTrigger.MANUAL,
    )
    await session.flush()
    return SyncRequested(joined=request.joined, run=run_view(request.run))


async def _require_syncable(session: AsyncSession, tenant_id: UUID) -> None:
    connection = (
        await session.execute(
            select(KarbonConnection).where(KarbonConnection.tenant_id == tenant_id)
        )
    ).scalar_one_or_none()
    if connection is None or not connection.is_connected:
        raise ProblemError(
            409,
            "karbon-not-connected",
            "Karbon is not connected: paste the AccessKey and Bearer token first "
            "(PUT /api/v1/karbon/credentials).",
            title="Karbon not connected",
        )
    if not await tenant_may_sync(session, tenant_id, datetime.now(UTC)):
        raise ProblemError(
            402,
            "subscription-required",
            "The 7-day trial has ended: subscribe to sync again. Your synced data is kept.",
            title="Subscription required",
        )


@router.get(
    "/sync/runs",
    summary="History of syncs, newest first",
    responses=problems({**READER, **VALIDATION}),
)
async def list_sync_runs(
    principal: SyncStatusReader, session: SessionDep, page: PageParamsDep
) -> Page[SyncRunView]:
    assert principal.tenant_id is not None
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
    assert principal.tenant_id is not None
    return settings_view(await repository.sync_settings(session, principal.tenant_id))


@router.patch(
    "/sync/settings",
    summary="Change the incremental interval or nightly reconciliation (admins)",
    responses=problems({**ADMIN, **VALIDATION}),
)
async def update_sync_settings(
    principal: TenantAdmin, session: SessionDep, body: SyncSettingsPatch
) -> SyncSettingsView:
    assert principal.tenant_id is not None
    stored = await repository.sync_settings(session, principal.tenant_id)
    if body.incremental_interval_minutes is not None:
        stored.incremental_interval_minutes = body.incremental_interval_minutes
    if body.nightly_reconciliation is not None:
        stored.nightly_reconciliation = body.nightly_reconciliation
    await session.flush()
    return settings_view(stored)


@router.get(
    "/ops/sync",
    summary="Every firm's sync state, rate and errors (operators only)",
    responses=problems({**OPERATOR, **VALIDATION}),
)
async def list_firm_syncs(
    _: PlatformOperator, session: SessionDep, page: PageParamsDep
) -> Page[TenantSyncView]:
    tenants = (
        await session.execute(
            select(Tenant, KarbonConnection)
            .outerjoin(KarbonConnection, KarbonConnection.tenant_id == Tenant.id)
            .order_by(Tenant.created_at, Tenant.id)
            .limit(page.limit)
            .offset(page.offset)
        )
    ).all()
    total = (await session.execute(select(func.count()).select_from(Tenant))).scalar_one()
    items = []
    for tenant, connection in tenants:
        current = await repository.active_run(session, tenant.id)
        last = await repository.last_finished_run(
            session,
            tenant.id,
            states=(SyncState.SUCCEEDED, SyncState.FAILED, SyncState.AUTH_FAILED),
        )
        items.append(
            TenantSyncView(
                tenant_id=tenant.id,
                tenant_name=tenant.name,
                connected=bool(connection and connection.is_connected),
                current=run_view(current) if current else None,
                last=run_view(last) if last else None,
                last_error_code=connection.last_error_code if connection else None,
                last_error_at=connection.last_error_at if connection else None,
            )
        )
    return Page[TenantSyncView](items=items, total=total, limit=page.limit, offset=page.offset)
