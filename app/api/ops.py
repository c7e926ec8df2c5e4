"""Platform operators' actions on a firm's stored data."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from app.api.auth import PlatformOperator
from app.api.deps import RedisDep, SessionDep, SettingsDep
from app.api.responses import OPERATOR, VALIDATION, problems
from app.sync import retention

router = APIRouter(prefix="/api/v1")


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
            404: "`not-found`: no firm has this tenant id.",
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
