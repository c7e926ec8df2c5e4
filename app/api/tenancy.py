"""Sign-up, sign-in, the caller, the firm's members and integrator keys, and operators' view."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import PlatformOperator, SecretsDep, SignedInUser, TenantAdmin, TenantMember
from app.api.deps import RedisDep, SessionDep, SettingsDep
from app.api.pagination import PageParamsDep
from app.api.responses import ADMIN, MEMBER, OPERATOR, SIGNED_IN, VALIDATION, problems
from app.kit.pagination import Page
from app.sync import retention
from app.tenancy import service
from app.tenancy.ratelimit import SignInLimiter
from app.tenancy.schemas import (
    AccessToken,
    ApiKeyView,
    CreatedApiKey,
    Me,
    Member,
    NewApiKeyRequest,
    NewMember,
    OpsTenant,
    SignUp,
)

router = APIRouter(prefix="/api/v1")


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    tags=["account"],
    summary="Create a firm and its first admin",
    description="Returns a sign-in token for the new admin. The 7-day trial does not start "
    "yet: it starts when Karbon first accepts the firm's keys.",
    responses=problems(
        {409: "`email-taken`: the e-mail address already has an account.", **VALIDATION}
    ),
)
async def sign_up(body: SignUp, session: SessionDep, secrets: SecretsDep) -> AccessToken:
    return await service.sign_up(session, secrets.secret_key, body)


@router.post(
    "/auth/token",
    tags=["account"],
    summary="Sign in with e-mail and password",
    description="OAuth2 password form: `username` is the e-mail address. Send the returned "
    "`access_token` as `Authorization: Bearer <token>`.",
    responses=problems(
        {
            401: "`invalid-credentials`: the e-mail address or the password is wrong.",
            **VALIDATION,
            429: "`too-many-sign-in-attempts`: too many attempts for this account or address; "
            "`Retry-After` says how many seconds to wait.",
        }
    ),
)
async def sign_in(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    secrets: SecretsDep,
) -> AccessToken:
    return await service.sign_in(
        session,
        SignInLimiter(redis, settings.redis_key_prefix),
        secrets.secret_key,
        email=form.username,
        password=form.password,
        address=request.client.host if request.client else "unknown",
    )


@router.get(
    "/me",
    tags=["account"],
    summary="Who am I: role, firm and trial",
    responses=problems(SIGNED_IN),
)
async def get_me(principal: SignedInUser, session: SessionDep) -> Me:
    assert principal.user_id is not None
    return await service.me(session, principal.user_id, _now())


@router.get(
    "/members",
    tags=["members"],
    summary="The firm's people",
    responses=problems({**MEMBER, **VALIDATION}),
)
async def list_members(
    principal: TenantMember, session: SessionDep, page: PageParamsDep
) -> Page[Member]:
    return await service.members(session, principal.tenant_id, page)


@router.post(
    "/members",
    status_code=status.HTTP_201_CREATED,
    tags=["members"],
    summary="Add a person to the firm (admins)",
    description="Creates the account with an initial password the admin passes on.",
    responses=problems(
        {**ADMIN, 409: "`email-taken`: the e-mail address already has an account.", **VALIDATION}
    ),
)
async def add_member(principal: TenantAdmin, body: NewMember, session: SessionDep) -> Member:
    return await service.add_member(session, principal.tenant_id, body)


@router.delete(
    "/members/{member_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["members"],
    summary="Remove a person from the firm (admins)",
    description="The person can no longer sign in.",
    responses=problems(
        {
            **ADMIN,
            404: "`not-found`: no such member in your firm.",
            409: "`cannot-remove-yourself`: ask another admin.",
            **VALIDATION,
        }
    ),
)
async def remove_member(principal: TenantAdmin, member_id: UUID, session: SessionDep) -> Response:
    await service.deactivate_member(session, principal.tenant_id, principal.user_id, member_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api-keys",
    status_code=status.HTTP_201_CREATED,
    tags=["api keys"],
    summary="Create an integrator key (admins)",
    description="The key is in this response only; it is stored as a hash. It reads the "
    "firm's reports and sync status and nothing else.",
    responses=problems({**ADMIN, **VALIDATION}),
)
async def create_api_key(
    principal: TenantAdmin, body: NewApiKeyRequest, session: SessionDep
) -> CreatedApiKey:
    return await service.create_api_key(session, principal.tenant_id, principal.user_id, body)


@router.get(
    "/api-keys",
    tags=["api keys"],
    summary="The firm's integrator keys, newest first (admins)",
    responses=problems({**ADMIN, **VALIDATION}),
)
async def list_api_keys(
    principal: TenantAdmin, session: SessionDep, page: PageParamsDep
) -> Page[ApiKeyView]:
    return await service.api_keys(session, principal.tenant_id, page)


_KEY_NOT_FOUND = {404: "`not-found`: no such API key in your firm."}


@router.get(
    "/api-keys/{key_id}",
    tags=["api keys"],
    summary="One integrator key (admins)",
    responses=problems({**ADMIN, **_KEY_NOT_FOUND, **VALIDATION}),
)
async def get_api_key(principal: TenantAdmin, key_id: UUID, session: SessionDep) -> ApiKeyView:
    return await service.api_key(session, principal.tenant_id, key_id)


@router.delete(
    "/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["api keys"],
    summary="Revoke an integrator key (admins)",
    description="Takes effect on the key's next request. Revoking twice is harmless.",
    responses=problems({**ADMIN, **_KEY_NOT_FOUND, **VALIDATION}),
)
async def revoke_api_key(principal: TenantAdmin, key_id: UUID, session: SessionDep) -> Response:
    await service.revoke_api_key(session, principal.tenant_id, key_id, _now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
