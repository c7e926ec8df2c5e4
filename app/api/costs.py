"""Cost assumptions: staff compensation with effective dates, and the firm's cost settings.

Every change schedules a refresh of the reports once it has committed: reports recompute from
the new assumptions without a new sync.
"""

from collections.abc import Sequence

from fastapi import APIRouter

from app.api.auth import ReportReader, TenantAdmin, TenantMember, actor_of
from app.api.deps import KarbonKey, RedisDep, SessionDep, SettingsDep
from app.api.pagination import PageParamsDep
from app.api.responses import ADMIN, MEMBER, READER, VALIDATION, problems
from app.costs import repository, service
from app.costs.schemas import (
    CompensationBody,
    CostSettingsBody,
    CostSettingsView,
    StaffCostView,
    StaffView,
)
from app.kit.pagination import Page
from app.kit.problems import ProblemError
from app.models import AuditKind
from app.reports.queue import refresh_after_commit
from app.reports.repository import refresh_state
from app.tenancy import audit

router = APIRouter(prefix="/api/v1", tags=["cost assumptions"])

_STAFF_NOT_FOUND = {404: "`staff-not-found`: no synced staff member with this key in your firm."}


@router.get(
    "/staff",
    summary="Staff with Karbon capacity; with compensation and hourly cost for those who see pay",
    description="Admins and integrator keys with `pay:read` get each person's compensation "
    "history and hourly cost (`StaffCostView`); members and other keys (`reports:read`) get "
    "the same list without them (`StaffView`: the pay fields are absent).",
    responses=problems({**READER, **VALIDATION}),
)
async def list_staff(
    principal: ReportReader, session: SessionDep, page: PageParamsDep
) -> Page[StaffCostView | StaffView]:
    tenant_id = principal.tenant_id
    members = await repository.live_staff_page(
        session, tenant_id, limit=page.limit, offset=page.offset
    )
    items: Sequence[StaffCostView | StaffView]
    if principal.sees_pay:
        state = await refresh_state(session, tenant_id)
        currency = state.currency if state else None
        items = await service.staff_cost_views(session, tenant_id, members, currency)
    else:
        items = await service.staff_views(session, tenant_id, members)
    return Page[StaffCostView | StaffView](
        items=list(items),
        total=await repository.count_live_staff(session, tenant_id),
        limit=page.limit,
        offset=page.offset,
    )


@router.put(
    "/staff/{key}/cost",
    summary="Add a compensation period effective from a date (a raise never rewrites the past)",
    responses=problems({**ADMIN, **_STAFF_NOT_FOUND, **VALIDATION}),
)
async def add_staff_compensation(
    principal: TenantAdmin,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    key: KarbonKey,
    body: CompensationBody,
) -> StaffCostView:
    member = await repository.live_staff_member(session, principal.tenant_id, key)
    if member is None:
        raise ProblemError(
            404, "staff-not-found", "No synced staff member with this key in your firm."
        )
    await service.add_compensation(session, principal.tenant_id, key, body)
    await audit.record(
        session,
        principal.tenant_id,
        actor_of(principal),
        AuditKind.COMPENSATION,
        "compensation.added",
        f"compensation of {member.name}",
        f"a period effective from {body.effective_from.isoformat()}",
    )
    refresh_after_commit(session, redis, settings, principal.tenant_id)
    state = await refresh_state(session, principal.tenant_id)
    views = await service.staff_cost_views(
        session, principal.tenant_id, [member], state.currency if state else None
    )
    return views[0]


@router.get(
    "/cost-settings",
    summary="Overhead rate, working weeks, default capacity and recognition policy",
    responses=problems(MEMBER),
)
async def get_cost_settings(principal: TenantMember, session: SessionDep) -> CostSettingsView:
    return service.settings_view(await repository.cost_settings(session, principal.tenant_id))


@router.put(
    "/cost-settings",
    summary="Change the cost settings; reports recompute without a new sync",
    responses=problems({**ADMIN, **VALIDATION}),
)
async def update_cost_settings(
    principal: TenantAdmin,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    body: CostSettingsBody,
) -> CostSettingsView:
    before = service.settings_view(await repository.cost_settings(session, principal.tenant_id))
    after = service.settings_view(await service.save_settings(session, principal.tenant_id, body))
    await audit.record(
        session,
        principal.tenant_id,
        actor_of(principal),
        AuditKind.COST_SETTINGS,
        "cost_settings.changed",
        "cost settings",
        f"changed: {', '.join(_changed(before, after)) or 'nothing'}",
    )
    refresh_after_commit(session, redis, settings, principal.tenant_id)
    return after


def _changed(before: CostSettingsView, after: CostSettingsView) -> list[str]:
    """The names of the settings that changed (their values stay out of the audit record)."""
    return [
        name
        for name in CostSettingsBody.model_fields
        if getattr(before, name) != getattr(after, name)
    ]
