"""Firms, their people and their integrator keys; sign-in."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.kit.pagination import Page, PageParams
from app.kit.problems import ProblemError
from app.models import ActorKind, ApiKey, AuditKind, KarbonConnection, Role, Tenant, User
from app.tenancy import audit, password_work, repository
from app.tenancy.accounts import OutgoingEmail, access_token, invitation_email
from app.tenancy.audit import Actor
from app.tenancy.plan import plan_state
from app.tenancy.principal_cache import forget_principals
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
    Plan,
    SignUp,
    TenantView,
    Trial,
)
from app.tenancy.security import new_api_key


def _not_found(what: str) -> ProblemError:
    return ProblemError(404, "not-found", f"No such {what} in your firm.")


def _email_taken() -> ProblemError:
    return ProblemError(
        409,
        "email-taken",
        "This e-mail address already has an account: sign in instead.",
        errors=[{"field": "email", "message": "Already registered"}],
    )


async def _new_user(
    session: AsyncSession, tenant_id: UUID | None, email: str, password: str | None, role: Role
) -> User:
    """The account; without a password it waits for its invitation to be accepted."""
    if await repository.user_by_email(session, email) is not None:
        raise _email_taken()
    password_hash = await password_work.hashed(password) if password else None
    user = User(tenant_id=tenant_id, email=email.lower(), password_hash=password_hash, role=role)
    # The check above misses a sign-up of the same address committing meanwhile: the unique
    # index then refuses this one, which is the same 409.
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise _email_taken() from None
    return user


async def sign_up(session: AsyncSession, keys: Sequence[str], request: SignUp) -> AccessToken:
    tenant = Tenant(name=request.firm_name)
    session.add(tenant)
    await session.flush()
    admin = await _new_user(session, tenant.id, str(request.email), request.password, Role.ADMIN)
    return access_token(keys, admin)


async def create_operator(session: AsyncSession, email: str, password: str) -> User:
    return await _new_user(session, None, email, password, Role.OPERATOR)


async def sign_in(
    session: AsyncSession,
    limiter: SignInLimiter,
    keys: Sequence[str],
    *,
    email: str,
    password: str,
    address: str,
) -> AccessToken:
    await limiter.check(email, address)
    user = await repository.user_by_email(session, email)
    matches = await password_work.verified(user.password_hash if user else None, password)
    if user is None or not matches or not user.is_active:
        await limiter.failed(email, address)
        raise ProblemError(
            401,
            "invalid-credentials",
            "The e-mail address or the password is wrong.",
            title="Sign-in failed",
            headers={"WWW-Authenticate": "Bearer"},
        )
    await limiter.succeeded(email, address)
    return access_token(keys, user)


def tenant_view(tenant: Tenant, now: datetime) -> TenantView:
    state = plan_state(tenant, now)
    return TenantView(
        id=tenant.id,
        name=tenant.name,
        subscription_active=state.subscribed,
        trial=Trial.from_state(state.trial),
        plan=Plan.of(tenant, state),
    )


async def user_email(session: AsyncSession, user_id: UUID) -> str:
    user = await repository.user_by_id(session, user_id)
    assert user is not None
    return user.email


async def me(session: AsyncSession, user_id: UUID, now: datetime) -> Me:
    user = await repository.user_by_id(session, user_id)
    assert user is not None
    tenant = await repository.tenant(session, user.tenant_id) if user.tenant_id else None
    return Me(
        user_id=user.id,
        email=user.email,
        role=user.role,
        tenant=tenant_view(tenant, now) if tenant else None,
    )


async def members(session: AsyncSession, tenant_id: UUID, params: PageParams) -> Page[Member]:
    rows, total = await repository.paged(session, repository.tenant_users(tenant_id), params)
    return Page[Member](
        items=[Member.of(row) for row in rows],
        total=total,
        limit=params.limit,
        offset=params.offset,
    )


async def invite_member(
    session: AsyncSession,
    keys: Sequence[str],
    app_url: str,
    actor: Actor,
    tenant_id: UUID,
    request: NewMember,
) -> tuple[Member, OutgoingEmail]:
    """The invited person's account, and the e-mail with their single-use link."""
    tenant = await repository.tenant(session, tenant_id)
    assert tenant is not None
    user = await _new_user(session, tenant_id, str(request.email), None, request.role)
    await session.refresh(user)
    await _record_member(session, actor, user, "member.invited", f"invited as {user.role}")
    return Member.of(user), invitation_email(keys, app_url, user, tenant.name)


async def _record_member(
    session: AsyncSession, actor: Actor, user: User, action: str, detail: str
) -> None:
    assert user.tenant_id is not None
    await audit.record(
        session, user.tenant_id, actor, AuditKind.MEMBERS, action, user.email, detail
    )


async def deactivate_member(
    session: AsyncSession, tenant_id: UUID, actor: Actor, member_id: UUID
) -> None:
    """The person can no longer sign in; what they did stays attributed to them."""
    user = await repository.tenant_user(session, tenant_id, member_id)
    if user is None:
        raise _not_found("member")
    if user.id == actor.id:
        raise ProblemError(
            409, "cannot-remove-yourself", "Ask another admin to remove your account."
        )
    if user.is_active:
        user.is_active = False
        await session.flush()
        await _record_member(session, actor, user, "member.removed", f"was {user.role}")
        after_commit(session, forget_principals)


async def create_api_key(
    session: AsyncSession, tenant_id: UUID, actor: Actor, request: NewApiKeyRequest
) -> CreatedApiKey:
    generated = new_api_key()
    key = ApiKey(
        tenant_id=tenant_id,
        name=request.name,
        key_hash=generated.key_hash,
        display_prefix=generated.display_prefix,
        created_by_id=actor.id if actor.kind == ActorKind.PERSON else None,
        scopes=[scope.value for scope in request.scopes],
    )
    session.add(key)
    await session.flush()
    await session.refresh(key)
    await _record_key(session, actor, key, "api_key.created", f"scopes {', '.join(key.scopes)}")
    return CreatedApiKey(**ApiKeyView.model_validate(key).model_dump(), key=generated.plaintext)


async def api_keys(session: AsyncSession, tenant_id: UUID, params: PageParams) -> Page[ApiKeyView]:
    rows, total = await repository.paged(session, repository.tenant_api_keys(tenant_id), params)
    return Page[ApiKeyView](
        items=[ApiKeyView.model_validate(row) for row in rows],
        total=total,
        limit=params.limit,
        offset=params.offset,
    )


async def api_key(session: AsyncSession, tenant_id: UUID, key_id: UUID) -> ApiKeyView:
    key = await repository.tenant_api_key(session, tenant_id, key_id)
    if key is None:
        raise _not_found("API key")
    return ApiKeyView.model_validate(key)


async def revoke_api_key(
    session: AsyncSession, tenant_id: UUID, actor: Actor, key_id: UUID, now: datetime
) -> None:
    key = await repository.tenant_api_key(session, tenant_id, key_id)
    if key is None:
        raise _not_found("API key")
    if key.revoked_at is None:
        key.revoked_at = now
        await session.flush()
        await _record_key(session, actor, key, "api_key.revoked", "it no longer works")
        after_commit(session, forget_principals)


async def _record_key(
    session: AsyncSession, actor: Actor, key: ApiKey, action: str, detail: str
) -> None:
    subject = audit.key_label(key.name, key.display_prefix)
    await audit.record(session, key.tenant_id, actor, AuditKind.API_KEYS, action, subject, detail)


async def ops_tenants(session: AsyncSession, params: PageParams, now: datetime) -> Page[OpsTenant]:
    rows, total = await repository.paged(session, repository.tenants_by_age(), params)
    connections = await repository.connections_by_tenant(session, [row.id for row in rows])
    items = [_ops_tenant(tenant, connections.get(tenant.id), now) for tenant in rows]
    return Page[OpsTenant](items=items, total=total, limit=params.limit, offset=params.offset)


async def ops_tenant(session: AsyncSession, tenant: Tenant, now: datetime) -> OpsTenant:
    return _ops_tenant(tenant, await repository.connection(session, tenant.id), now)


def _ops_tenant(tenant: Tenant, connection: KarbonConnection | None, now: datetime) -> OpsTenant:
    state = plan_state(tenant, now)
    return OpsTenant(
        id=tenant.id,
        name=tenant.name,
        created_at=tenant.created_at,
        subscription_active=state.subscribed,
        trial=Trial.from_state(state.trial),
        plan=Plan.of(tenant, state),
        karbon_connected=bool(connection and connection.is_connected),
        last_sync_error_code=connection.last_error_code if connection else None,
    )
