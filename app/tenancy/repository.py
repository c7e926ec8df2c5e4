"""Queries for tenants, users, integrator keys and Karbon connections."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Select, bindparam, delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.pagination import PageParams
from app.models import (
    ApiKey,
    AuditEvent,
    AuditKind,
    KarbonConnection,
    RevokedToken,
    Role,
    StripeEvent,
    Tenant,
    User,
)

Row = TypeVar("Row")


async def paged(
    session: AsyncSession, query: Select[Row], params: PageParams
) -> tuple[Sequence[Row], int]:
    """The page's rows and the size of the whole list."""
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = await session.scalars(query.limit(params.limit).offset(params.offset))
    return rows.all(), total or 0


async def tenant(
    session: AsyncSession, tenant_id: UUID, *, for_update: bool = False
) -> Tenant | None:
    return await session.get(Tenant, tenant_id, with_for_update=for_update)


@dataclass(frozen=True, slots=True)
class TenantTerms:
    """What the plan check reads of a firm (`app.tenancy.plan.PlanTerms`)."""

    id: UUID
    trial_started_at: datetime | None
    trial_extended_until: datetime | None
    subscription_status: str


_TENANT_TERMS = (
    Tenant.id,
    Tenant.trial_started_at,
    Tenant.trial_extended_until,
    Tenant.subscription_status,
)


def _tenant_terms(values: Sequence[Any]) -> TenantTerms | None:
    """The terms from `_TENANT_TERMS`' columns of an outer join: None without a firm."""
    return None if values[0] is None else TenantTerms(*values)


async def tenant_terms(session: AsyncSession, tenant_id: UUID) -> TenantTerms | None:
    row = (await session.execute(select(*_TENANT_TERMS).where(Tenant.id == tenant_id))).first()
    return None if row is None else _tenant_terms(row)


async def tenant_by_stripe_ids(
    session: AsyncSession, subscription_id: str | None, customer_id: str | None
) -> Tenant | None:
    """The firm that paid through this Stripe subscription or customer, locked."""
    matches = [
        column == value
        for column, value in (
            (Tenant.stripe_subscription_id, subscription_id),
            (Tenant.stripe_customer_id, customer_id),
        )
        if value is not None
    ]
    if not matches:
        return None
    query = select(Tenant).where(or_(*matches)).order_by(Tenant.created_at).limit(1)
    found: Tenant | None = await session.scalar(query.with_for_update())
    return found


async def record_stripe_event(session: AsyncSession, event_id: str, event_type: str) -> bool:
    """False when the event was recorded before (a repeated delivery)."""
    inserted = await session.scalar(
        insert(StripeEvent)
        .values(id=event_id, type=event_type, outcome="received")
        .on_conflict_do_nothing(index_elements=[StripeEvent.id])
        .returning(StripeEvent.id)
    )
    return inserted is not None


async def set_stripe_event_outcome(
    session: AsyncSession, event_id: str, tenant_id: UUID | None, outcome: str
) -> None:
    await session.execute(
        update(StripeEvent)
        .where(StripeEvent.id == event_id)
        .values(tenant_id=tenant_id, outcome=outcome)
    )


def tenants_by_age() -> Select[Tenant]:
    return select(Tenant).order_by(Tenant.created_at, Tenant.id)


async def user_by_id(session: AsyncSession, user_id: UUID) -> User | None:
    return await session.get(User, user_id)


@dataclass(frozen=True, slots=True)
class UserCredential:
    """What a sign-in token's checks read of its user, with their firm's plan terms."""

    id: UUID
    tenant_id: UUID | None
    role: Role
    is_active: bool
    token_generation: int
    signed_out: bool
    """This token was signed out."""
    tenant: TenantTerms | None
    """None for an operator."""


# The credential statements are built once: a request that reads a credential (most do, a
# person asking every few seconds is rarely in the principal cache) spends no CPU building
# them or their cache keys, and reads plain columns rather than whole rows as entities.
_USER_CREDENTIAL = (
    select(
        User.id,
        User.tenant_id,
        User.role,
        User.is_active,
        User.token_generation,
        exists().where(RevokedToken.jti == bindparam("token_id")),
        *_TENANT_TERMS,
    )
    .outerjoin(Tenant, Tenant.id == User.tenant_id)
    .where(User.id == bindparam("user_id"))
)


async def user_with_tenant(
    session: AsyncSession, user_id: UUID, token_id: str
) -> UserCredential | None:
    """The user, their firm's plan terms and whether this token was signed out, in one
    query."""
    values = {"user_id": user_id, "token_id": token_id}
    row = (await session.execute(_USER_CREDENTIAL, values)).first()
    if row is None:
        return None
    id_, tenant_id, role, is_active, generation, signed_out, *terms = row
    return UserCredential(
        id_, tenant_id, role, is_active, generation, bool(signed_out), _tenant_terms(terms)
    )


async def user_for_update(session: AsyncSession, user_id: UUID) -> User | None:
    return await session.get(User, user_id, with_for_update=True)


async def revoke_token(
    session: AsyncSession, token_id: str, expires_at: datetime, now: datetime
) -> None:
    """Deny the token until it expires; tokens expired anyway are forgotten meanwhile."""
    await session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
    await session.execute(
        insert(RevokedToken)
        .values(jti=token_id, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=[RevokedToken.jti])
    )


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    found: User | None = await session.scalar(select(User).where(User.email == email.lower()))
    return found


async def tenant_user(session: AsyncSession, tenant_id: UUID, user_id: UUID) -> User | None:
    return await session.scalar(select(User).where(User.tenant_id == tenant_id, User.id == user_id))


def tenant_users(tenant_id: UUID) -> Select[User]:
    return select(User).where(User.tenant_id == tenant_id).order_by(User.created_at, User.id)


async def active_admin_emails(session: AsyncSession, tenant_id: UUID) -> list[str]:
    query = select(User.email).where(
        User.tenant_id == tenant_id, User.role == Role.ADMIN, User.is_active.is_(True)
    )
    return list(await session.scalars(query))


@dataclass(frozen=True, slots=True)
class KeyCredential:
    """What an integrator key's checks read of it, with its firm's plan terms."""

    id: UUID
    tenant_id: UUID
    scopes: list[str]
    tenant: TenantTerms | None


_KEY_CREDENTIAL = (
    select(ApiKey.id, ApiKey.tenant_id, ApiKey.scopes, *_TENANT_TERMS)
    .outerjoin(Tenant, Tenant.id == ApiKey.tenant_id)
    .where(ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None))
)


async def usable_api_key_with_tenant(session: AsyncSession, key_hash: str) -> KeyCredential | None:
    """The unrevoked key with this hash, and its firm's plan terms, in one query."""
    row = (await session.execute(_KEY_CREDENTIAL, {"key_hash": key_hash})).first()
    if row is None:
        return None
    id_, tenant_id, scopes, *terms = row
    return KeyCredential(id_, tenant_id, scopes, _tenant_terms(terms))


async def tenant_api_key(session: AsyncSession, tenant_id: UUID, key_id: UUID) -> ApiKey | None:
    return await session.scalar(
        select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
    )


async def api_key_by_id(session: AsyncSession, key_id: UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def mark_api_key_used(session: AsyncSession, key_id: UUID, now: datetime) -> None:
    """Set the key's last use unless it was set within the minute. A row another request is
    updating is skipped rather than waited for: that request records the same minute."""
    unmarked = (
        select(ApiKey.id)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - _A_MINUTE),
        )
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        update(ApiKey).where(ApiKey.id.in_(unmarked.scalar_subquery())).values(last_used_at=now)
    )


_A_MINUTE = timedelta(minutes=1)


def audit_events(tenant_id: UUID, kind: AuditKind | None) -> Select[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if kind is not None:
        query = query.where(AuditEvent.kind == kind)
    return query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())


def tenant_api_keys(tenant_id: UUID) -> Select[ApiKey]:
    return (
        select(ApiKey)
        .where(ApiKey.tenant_id == tenant_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )


async def karbon_connected(session: AsyncSession, tenant_id: UUID) -> bool:
    query = select(KarbonConnection.tenant_id).where(
        KarbonConnection.tenant_id == tenant_id, KarbonConnection.is_connected
    )
    return await session.scalar(query) is not None


async def connection(
    session: AsyncSession, tenant_id: UUID, *, for_update: bool = False
) -> KarbonConnection | None:
    query = select(KarbonConnection).where(KarbonConnection.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def connections_by_tenant(
    session: AsyncSession, tenant_ids: Sequence[UUID]
) -> dict[UUID, KarbonConnection]:
    rows = await session.scalars(
        select(KarbonConnection).where(KarbonConnection.tenant_id.in_(tenant_ids))
    )
    return {row.tenant_id: row for row in rows}


async def connected_tenant_ids(session: AsyncSession) -> list[UUID]:
    query = select(KarbonConnection.tenant_id).where(KarbonConnection.is_connected)
    return list(await session.scalars(query))


async def connections_with_keys(session: AsyncSession) -> Sequence[KarbonConnection]:
    rows = await session.scalars(
        select(KarbonConnection).where(KarbonConnection.is_connected).with_for_update()
    )
    return rows.all()
