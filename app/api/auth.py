"""Who is calling: a signed-in person or an integrator key, and what each may reach.

Every tenant route takes one of the dependencies below and scopes its queries to
`principal.tenant_id`. Integrator keys pass only `ReportReader` and `SyncStatusReader`, each
when created with its scope (`reports:read`, `sync:read`); platform operators (users without a
tenant) pass only `PlatformOperator` and `SignedInUser`. Per-person pay and cost are shown
only to principals whose `sees_pay` is true: admins, and keys created with `pay:read`.

The principal is read with its tenant in one query, so the trial check that report routes add
finds the tenant in the session instead of asking the database again. Principals are kept in
this process for a second (`app.tenancy.principal_cache`): revoking a key, deactivating a
member, signing a token out, changing a password or a firm's plan empties that cache on
commit, so this process applies it at once and others within the second.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import SessionDep
from app.kit.problems import ProblemError
from app.models import ApiScope, Role
from app.secrets import Secrets, resolve_secrets
from app.tenancy import key_use, repository
from app.tenancy.audit import Actor
from app.tenancy.plan import plan_state, subscription_required
from app.tenancy.principal_cache import principals
from app.tenancy.repository import TenantTerms
from app.tenancy.security import TokenClaims, hash_api_key, is_api_key, read_token

TOKEN_URL = "/api/v1/auth/token"
_PRINCIPAL_TENANT = "principal_tenant"

_password_flow = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    description="Sign in with your e-mail and password (`POST /api/v1/auth/token`).",
)
_integrator_key = HTTPBearer(
    auto_error=False,
    scheme_name="IntegratorKey",
    description="An integrator API key (`rk_live_...`): reads what its scopes name "
    "(`reports:read`, `sync:read`, `pay:read`).",
)


@dataclass(frozen=True)
class Principal:
    tenant_id: UUID | None
    user_id: UUID | None
    api_key_id: UUID | None
    role: Role | None
    kind: Literal["user", "api_key"]
    scopes: frozenset[ApiScope] = frozenset()
    """An integrator key's scopes; a person's role decides for them instead."""
    token: TokenClaims | None = None
    """The sign-in token's claims (for signing it out); None for an integrator key."""


@dataclass(frozen=True)
class TenantPrincipal:
    """A principal of one firm (a member or one of its integrator keys): its tenant is known."""

    tenant_id: UUID
    user_id: UUID | None
    api_key_id: UUID | None
    role: Role | None
    kind: Literal["user", "api_key"]
    scopes: frozenset[ApiScope] = frozenset()

    @property
    def sees_pay(self) -> bool:
        """Compensation and per-person hourly cost or cost: admins and `pay:read` keys only."""
        if self.kind == "api_key":
            return ApiScope.PAY_READ in self.scopes
        return self.role == Role.ADMIN


def actor_of(principal: Principal | TenantPrincipal) -> Actor:
    """Who the audit record names for this caller's changes."""
    return Actor.of(principal.role, principal.user_id, principal.api_key_id)


async def get_secrets(request: Request) -> Secrets:
    """Resolved once per application: the local secrets file is read only on first use."""
    cached: Secrets | None = getattr(request.app.state, "secrets", None)
    if cached is None:
        cached = resolve_secrets(request.app.state.settings)
        request.app.state.secrets = cached
    return cached


SecretsDep = Annotated[Secrets, Depends(get_secrets)]


def _unauthenticated(detail: str, type_: str = "not-authenticated") -> ProblemError:
    return ProblemError(
        401, type_, detail, title="Not authenticated", headers={"WWW-Authenticate": "Bearer"}
    )


def _forbidden(type_: str, detail: str) -> ProblemError:
    return ProblemError(403, type_, detail, title="Forbidden")


@dataclass(frozen=True, slots=True)
class _Known:
    principal: Principal
    tenant: TenantTerms | None


async def get_principal(
    session: SessionDep,
    secrets: SecretsDep,
    password_token: Annotated[str | None, Depends(_password_flow)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_integrator_key)],
) -> Principal:
    token = password_token or (bearer.credentials if bearer else None)
    if not token:
        raise _unauthenticated("Send `Authorization: Bearer <token or integrator key>`.")
    known = await _known_principal(session, secrets, token)
    session.info[_PRINCIPAL_TENANT] = known.tenant
    if known.principal.api_key_id is not None:
        await key_use.mark_used(session, known.principal.api_key_id, datetime.now(UTC))
    return known.principal


async def _known_principal(session: AsyncSession, secrets: Secrets, token: str) -> _Known:
    """From this process's cache (see `app.tenancy.principal_cache`), else the database."""
    api_key = is_api_key(token)
    claims = None if api_key else read_token(secrets.signing_keys, token)
    if not api_key and claims is None:
        raise _invalid_token()
    # Per token, not per user: one of a person's tokens may be signed out and not the others.
    cache_key = hash_api_key(token) if claims is None else f"token:{claims.token_id}"
    known: _Known | None = principals.get(cache_key)
    if known is None:
        if claims is None:
            known = await _api_key_principal(session, cache_key)
        else:
            known = await _user_principal(session, claims)
        principals.put(cache_key, known)
    return known


def _invalid_token() -> ProblemError:
    return _unauthenticated("The token is invalid or has expired: sign in again.", "invalid-token")


async def _api_key_principal(session: AsyncSession, key_hash: str) -> _Known:
    key = await repository.usable_api_key_with_tenant(session, key_hash)
    if key is None:
        raise _unauthenticated("This API key is unknown or revoked.", "invalid-api-key")
    principal = Principal(key.tenant_id, None, key.id, None, "api_key", _scopes(key.scopes))
    return _Known(principal, key.tenant)


_SCOPES = {scope.value: scope for scope in ApiScope}


def _scopes(names: list[str]) -> frozenset[ApiScope]:
    """The key's scopes this code knows; an unknown stored name grants nothing."""
    return frozenset(_SCOPES[name] for name in names if name in _SCOPES)


async def _user_principal(session: AsyncSession, claims: TokenClaims) -> _Known:
    user = await repository.user_with_tenant(session, claims.user_id, claims.token_id)
    if user is None:
        raise _invalid_token()
    if user.signed_out or not user.is_active or user.token_generation != claims.generation:
        raise _invalid_token()
    principal = Principal(user.tenant_id, user.id, None, user.role, "user", token=claims)
    return _Known(principal, user.tenant)


async def principal_tenant(session: AsyncSession, tenant_id: UUID) -> TenantTerms | None:
    """The tenant's plan terms, read with the principal when it is the principal's own."""
    terms = session.info.get(_PRINCIPAL_TENANT)
    if isinstance(terms, TenantTerms) and terms.id == tenant_id:
        return terms
    return await repository.tenant_terms(session, tenant_id)


AnyPrincipal = Annotated[Principal, Depends(get_principal)]


async def _signed_in_user(principal: AnyPrincipal) -> Principal:
    if principal.kind != "user":
        raise _forbidden(
            "api-key-not-allowed",
            "Integrator API keys may only read reports and sync status.",
        )
    return principal


SignedInUser = Annotated[Principal, Depends(_signed_in_user)]


def _in_tenant(principal: Principal) -> TenantPrincipal:
    if principal.tenant_id is None:
        raise _forbidden(
            "tenant-access-only", "Platform operators see only the /api/v1/ops endpoints."
        )
    return TenantPrincipal(
        principal.tenant_id,
        principal.user_id,
        principal.api_key_id,
        principal.role,
        principal.kind,
        principal.scopes,
    )


async def _tenant_member(principal: SignedInUser) -> TenantPrincipal:
    return _in_tenant(principal)


TenantMember = Annotated[TenantPrincipal, Depends(_tenant_member)]


async def _tenant_admin(principal: TenantMember) -> TenantPrincipal:
    if principal.role != Role.ADMIN:
        raise _forbidden("admin-required", "Only the firm's admins may do this.")
    return principal


TenantAdmin = Annotated[TenantPrincipal, Depends(_tenant_admin)]


async def _tenant_reader(principal: AnyPrincipal) -> TenantPrincipal:
    return _in_tenant(principal)


TenantReader = Annotated[TenantPrincipal, Depends(_tenant_reader)]


def _with_scope(principal: TenantPrincipal, scope: ApiScope) -> TenantPrincipal:
    if principal.kind == "api_key" and scope not in principal.scopes:
        raise _forbidden(
            "scope-required",
            f"This integrator key was not created with the `{scope}` scope. An admin can "
            f"create a key that has it (`POST /api/v1/api-keys`).",
        )
    return principal


async def _report_reader(principal: TenantReader) -> TenantPrincipal:
    return _with_scope(principal, ApiScope.REPORTS_READ)


async def _sync_status_reader(principal: TenantReader) -> TenantPrincipal:
    return _with_scope(principal, ApiScope.SYNC_READ)


ReportReader = Annotated[TenantPrincipal, Depends(_report_reader)]
"""A tenant's user or one of its integrator keys with `reports:read`."""
SyncStatusReader = Annotated[TenantPrincipal, Depends(_sync_status_reader)]
"""A tenant's user or one of its integrator keys with `sync:read`."""

INTEGRATOR_DEPENDENCIES = (_report_reader, _sync_status_reader)
"""The only dependencies integrator keys pass; tests check every other route refuses them."""
TENANT_DEPENDENCIES = (_tenant_member, _tenant_reader)
"""Every route that reads or changes a firm's data depends on one of these."""


async def _platform_operator(principal: SignedInUser) -> Principal:
    if principal.role != Role.OPERATOR:
        raise _forbidden("operator-required", "Only platform operators may do this.")
    return principal


PlatformOperator = Annotated[Principal, Depends(_platform_operator)]


async def _active_trial_or_subscription(
    principal: ReportReader, session: SessionDep
) -> TenantPrincipal:
    tenant = await principal_tenant(session, principal.tenant_id)
    if tenant is None:
        raise _unauthenticated("This firm no longer exists.", "invalid-token")
    state = plan_state(tenant, datetime.now(UTC))
    if not state.allows_reports_and_syncs:
        raise subscription_required(state, "reports and scheduled syncs")
    return principal


ActiveTrialOrSubscription = Annotated[TenantPrincipal, Depends(_active_trial_or_subscription)]
"""A `ReportReader` whose firm is in its trial or subscribed; 402 otherwise."""
