"""Platform operators' view of every firm and their actions on one: its plan, its trial, its
data. (Sync health across firms is `GET /api/v1/ops/sync`, with the sync routes.)"""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import PlatformOperator, actor_of
from app.api.deps import RedisDep, SessionDep, SettingsDep
from app.api.pagination import PageParamsDep
from app.api.responses import OPERATOR, VALIDATION, problems
from app.kit.pagination import Page
from app.sync import retention
from app.tenancy import billing, service
from app.tenancy.schemas import OpsTenant, PlanChange, TrialExtension

router = APIRouter(prefix="/api/v1")


def _now() -> datetime:
    return datetime.now(UTC)


@router.get(
    "/ops/tenants",
    tags=["operations"],
    summary="Every firm: trial, subscription, connection, storage (platform operators)",
    description="`storage` is what the firm's synced data costs to keep, as the daily storage "
    "job last measured it.",
    responses=problems({**OPERATOR, **VALIDATION}),
)
async def list_firms(
    _: PlatformOperator, session: SessionDep, page: PageParamsDep
) -> Page[OpsTenant]:
    firms = await service.ops_tenants(session, page, _now())
    return await _with_storage(session, firms)


async def _with_storage(session: AsyncSession, firms: Page[OpsTenant]) -> Page[OpsTenant]:
    figures = await retention.storage_figures(session, [firm.id for firm in firms.items])
    items = [firm.model_copy(update={"storage": figures.get(firm.id)}) for firm in firms.items]
    return firms.model_copy(update={"items": items})


_FIRM_NOT_FOUND = {404: "`not-found`: no firm has this tenant id."}


@router.put(
    "/ops/tenants/{tenant_id}/subscription",
    tags=["operations"],
    summary="Set a firm's plan (platform operators)",
    description='E.g. `{"status": "active"}` for a firm paying by invoice. Reports and '
    "scheduled syncs follow at once; the firm's data is never touched.",
    responses=problems({**OPERATOR, **_FIRM_NOT_FOUND, **VALIDATION}),
)
async def set_firm_plan(
    operator: PlatformOperator, tenant_id: UUID, body: PlanChange, session: SessionDep
) -> OpsTenant:
    tenant = await billing.set_plan(session, actor_of(operator), tenant_id, body.status, _now())
    return await service.ops_tenant(session, tenant, _now())


@router.post(
    "/ops/tenants/{tenant_id}/trial-extension",
    tags=["operations"],
    summary="Extend a firm's trial (platform operators)",
    description="Adds `days` to the trial's end, or to now once it has ended.",
    responses=problems(
        {
            **OPERATOR,
            **_FIRM_NOT_FOUND,
            409: "`trial-not-started`: the trial starts when Karbon first accepts the keys.",
            **VALIDATION,
        }
    ),
)
async def extend_firm_trial(
    operator: PlatformOperator, tenant_id: UUID, body: TrialExtension, session: SessionDep
) -> OpsTenant:
    tenant = await billing.extend_trial(session, actor_of(operator), tenant_id, body.days, _now())
    return await service.ops_tenant(session, tenant, _now())


@router.delete(
    "/ops/tenants/{tenant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["operations"],
    summary="Delete a firm and all its data (platform operators)",
    description="Deletes every row the firm owns: its people, keys, Karbon connection, synced "
    "data, raw responses, sync runs, cost assumptions and reports. A queued or running sync is "
    "cancelled first. `confirm` must repeat the firm's name exactly. This cannot be undone; "
    "disconnecting Karbon, by contrast, keeps the data.",
    responses=problems(
        {
            400: "`confirmation-mismatch`: `confirm` is not the firm's exact name; nothing "
            "was deleted.",
            **OPERATOR,
            **_FIRM_NOT_FOUND,
            **VALIDATION,
        }
    ),
)
async def delete_firm(
    _: PlatformOperator,
    tenant_id: UUID,
    confirm: Annotated[str, Query(description="The firm's exact name", max_length=200)],
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    await retention.delete_firm(session, redis, settings, tenant_id, confirm)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
