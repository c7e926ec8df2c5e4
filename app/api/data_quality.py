"""What Karbon sent that Reckonry could not read: every field, record, entry or line set aside."""

from fastapi import APIRouter

from app.api.auth import ActiveTrialOrSubscription
from app.api.deps import SessionDep
from app.api.pagination import PageParamsDep
from app.api.responses import READER, SUBSCRIPTION, VALIDATION, problems
from app.kit.pagination import Page
from app.sync.data_quality import data_quality_page
from app.sync.schemas import DataQualityIssueView

router = APIRouter(prefix="/api/v1", tags=["data quality"])


@router.get(
    "/data-quality",
    summary="Every record Karbon sent that was set aside or only partly read",
    description="Each item names the entity, its key, the field, what Karbon sent and why it "
    "could not be read, the clients it concerns and when it was first and last seen. Report "
    "`warnings` count these for the clients and window in view.",
    responses=problems({**READER, **SUBSCRIPTION, **VALIDATION}),
)
async def get_data_quality(
    principal: ActiveTrialOrSubscription, session: SessionDep, page: PageParamsDep
) -> Page[DataQualityIssueView]:
    return await data_quality_page(session, principal.tenant_id, page)
