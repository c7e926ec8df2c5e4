"""The Karbon connection: format checks, the live key check, encrypted storage, sync errors.

The sync engine reads credentials with `load_karbon_credentials` and reports failures with
`record_sync_error` / `clear_sync_error`. Keys never appear in logs, errors or responses:
only their masked forms leave this module.
"""

import re
import string
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.problems import ProblemError
from app.models import KarbonConnection, SyncKind, SyncTrigger, Tenant
from app.secrets import Secrets
from app.settings import Settings
from app.sync.control import request_sync, stop_syncing
from app.sync.karbon import (
    BudgetRegistry,
    KarbonAuthError,
    KarbonError,
    KarbonUnavailable,
    validate_credentials,
)
from app.sync.karbon.errors import REJECTIONS, WHERE_TO_FIND_KEYS, grant_steps
from app.tenancy import repository
from app.tenancy.crypto import CredentialCipher, mask
from app.tenancy.plan import PlanTerms, plan_state, subscription_required
from app.tenancy.schemas import (
    GUID_PATTERN,
    JWT_PATTERN,
    Connection,
    PastedCredentials,
    SyncError,
    Trial,
)

_JWT = re.compile(JWT_PATTERN)
_GUID = re.compile(GUID_PATTERN)
_BEARER_SCHEME = re.compile(r"^bearer\s+", re.IGNORECASE)


@dataclass(frozen=True)
class KarbonCredentials:
    access_key: str
    bearer_token: str

    def __repr__(self) -> str:
        return (
            f"KarbonCredentials(access_key={mask(self.access_key)!r}, "
            f"bearer_token={mask(self.bearer_token)!r})"
        )


def _looks_like_jwt(value: str) -> bool:
    return bool(_JWT.fullmatch(value))


def _looks_like_guid(value: str) -> bool:
    return bool(_GUID.fullmatch(value))


def normalised(pasted: PastedCredentials) -> KarbonCredentials:
    """What people paste: stray spaces, a `Bearer ` scheme, a GUID in braces."""
    bearer = _BEARER_SCHEME.sub("", pasted.bearer_token.strip()).strip("{}" + string.whitespace)
    return KarbonCredentials(pasted.access_key.strip(), bearer)


def format_errors(credentials: KarbonCredentials) -> list[dict[str, str]]:
    access_key, bearer_token = credentials.access_key, credentials.bearer_token
    errors = []
    if not _looks_like_jwt(access_key):
        message = "The AccessKey must be a JWT: three dot-separated parts starting `eyJ`."
        if _looks_like_guid(access_key):
            message += " This value is a GUID, so it looks like the Bearer token."
        errors.append({"field": "access_key", "message": message})
    if not _looks_like_guid(bearer_token):
        message = "The Bearer token must be a GUID such as `550e8400-e29b-41d4-a716-446655440000`."
        if _looks_like_jwt(bearer_token):
            message += " This value is a JWT, so it looks like the AccessKey."
        errors.append({"field": "bearer_token", "message": message})
    return errors


def check_format(credentials: KarbonCredentials) -> None:
    errors = format_errors(credentials)
    if not errors:
        return
    swapped = _looks_like_guid(credentials.access_key) and _looks_like_jwt(credentials.bearer_token)
    detail = (
        "The AccessKey and the Bearer token look swapped: paste the JWT (starting `eyJ`) as "
        "`access_key` and the GUID as `bearer_token`."
        if swapped
        else "The Karbon keys are not in the expected format; see `errors` for each field. "
        + WHERE_TO_FIND_KEYS
    )
    raise ProblemError(
        422,
        "invalid-credentials-format",
        detail,
        title="Karbon keys are not in the expected format",
        errors=errors,
        swapped=swapped,
    )


def _rejection(error: KarbonAuthError) -> ProblemError:
    rejection = REJECTIONS[error.rejected_key]
    extra: dict[str, Any] = {"karbon_message": error.karbon_message}
    if rejection.field:
        extra["errors"] = [{"field": rejection.field, "message": "Rejected by Karbon"}]
    return ProblemError(
        422, rejection.slug, rejection.when_pasted, title="Karbon rejected the keys", **extra
    )


def _permissions_missing(denied: tuple[str, ...]) -> ProblemError:
    return ProblemError(
        422,
        "karbon-permission-missing",
        "Karbon accepted the keys, but their API application may not read "
        f"{', '.join(denied)}, which Reckonry needs. {grant_steps(denied)} Then paste the keys "
        "again; nothing was stored and the trial has not started.",
        title="Karbon API application lacks permissions",
        denied_endpoints=list(denied),
    )


def _unavailable() -> ProblemError:
    return ProblemError(
        503,
        "karbon-unavailable",
        "Karbon could not be reached or is rate limiting us right now, so the keys were not "
        "checked and nothing was stored. Try again in a minute.",
        title="Karbon is unavailable",
        retryable=True,
    )


def _unexpected() -> ProblemError:
    return ProblemError(
        502,
        "karbon-unexpected-response",
        "Karbon answered the key check in a way we do not understand, so nothing was stored. "
        "Try again later; if it keeps happening, tell us.",
        title="Unexpected answer from Karbon",
        retryable=True,
    )


async def verify_with_karbon(
    settings: Settings, budgets: BudgetRegistry, tenant_id: UUID, credentials: KarbonCredentials
) -> None:
    """One live `$top=1` read of each endpoint the product reads, with the keys. The reads
    take their turns on the tenant's one schedule, with its syncs in the workers."""
    check = await validate_credentials(
        settings.karbon_base_url,
        credentials.access_key,
        credentials.bearer_token,
        budget=budgets.for_tenant(str(tenant_id)),
    )
    if check.ok:
        return
    error: KarbonError | None = check.error
    if error is None:
        raise _permissions_missing(check.denied)
    if isinstance(error, KarbonAuthError):
        raise _rejection(error)
    if isinstance(error, KarbonUnavailable):
        raise _unavailable()
    raise _unexpected()


async def start_initial_sync(
    session: AsyncSession, redis: ArqRedis, settings: Settings, tenant_id: UUID
) -> None:
    """Hand the newly connected tenant to the sync engine (queued once the request commits)."""
    await request_sync(
        session, redis, settings, tenant_id, kind=SyncKind.INITIAL, trigger=SyncTrigger.CONNECT
    )


async def stop_tenant_syncs(
    session: AsyncSession, redis: ArqRedis, settings: Settings, tenant_id: UUID
) -> None:
    """Stop the tenant's syncs now: nothing new starts, a running one is cancelled."""
    await stop_syncing(session, redis, settings, tenant_id)


async def connect(
    session: AsyncSession,
    redis: ArqRedis,
    settings: Settings,
    secrets: Secrets,
    budgets: BudgetRegistry,
    tenant_id: UUID,
    pasted: PastedCredentials,
    now: datetime,
) -> Connection:
    credentials = normalised(pasted)
    check_format(credentials)
    await verify_with_karbon(settings, budgets, tenant_id, credentials)

    tenant = await repository.tenant(session, tenant_id, for_update=True)
    assert tenant is not None
    row = await repository.connection(session, tenant_id, for_update=True)
    if row is None:
        row = KarbonConnection(tenant_id=tenant_id)
        session.add(row)
    _store_keys(row, CredentialCipher(secrets), credentials, now)
    _clear_error(row)
    if tenant.trial_started_at is None:
        tenant.trial_started_at = now
    await session.flush()
    await start_initial_sync(session, redis, settings, tenant_id)
    return connection_view(tenant, row, now)


def _store_keys(
    row: KarbonConnection, cipher: CredentialCipher, credentials: KarbonCredentials, now: datetime
) -> None:
    if not row.is_connected:
        row.connected_at = now
    row.access_key_encrypted = cipher.encrypt(credentials.access_key)
    row.bearer_token_encrypted = cipher.encrypt(credentials.bearer_token)
    row.access_key_masked = mask(credentials.access_key)
    row.bearer_token_masked = mask(credentials.bearer_token)
    row.validated_at = now
    row.disconnected_at = None


async def disconnect(
    session: AsyncSession,
    redis: ArqRedis,
    settings: Settings,
    tenant: Tenant,
    now: datetime,
) -> Connection:
    """Forget the keys and stop syncing; every synced row stays for the reports."""
    row = await repository.connection(session, tenant.id, for_update=True)
    if row is not None and row.is_connected:
        row.access_key_encrypted = row.bearer_token_encrypted = None
        row.access_key_masked = row.bearer_token_masked = None
        row.disconnected_at = now
        await session.flush()
    await stop_tenant_syncs(session, redis, settings, tenant.id)
    return connection_view(tenant, row, now)


def _last_error(row: KarbonConnection) -> SyncError | None:
    if row.last_error_code is None or row.last_error_at is None:
        return None
    return SyncError(
        code=row.last_error_code,
        message=row.last_error_message or "",
        likely_cause=row.last_error_likely_cause,
        steps=list(row.last_error_steps or []),
        occurred_at=row.last_error_at,
    )


def connection_view(tenant: Tenant, row: KarbonConnection | None, now: datetime) -> Connection:
    return Connection(
        connected=bool(row and row.is_connected),
        access_key_masked=row.access_key_masked if row else None,
        bearer_token_masked=row.bearer_token_masked if row else None,
        validated_at=row.validated_at if row else None,
        connected_at=row.connected_at if row else None,
        disconnected_at=row.disconnected_at if row else None,
        trial=Trial.from_state(plan_state(tenant, now).trial),
        last_error=_last_error(row) if row else None,
    )


async def load_karbon_credentials(
    session: AsyncSession, secrets: Secrets, tenant_id: UUID
) -> KarbonCredentials | None:
    """The tenant's decrypted keys; None when it is not connected."""
    row = await repository.connection(session, tenant_id)
    if row is None or row.access_key_encrypted is None or row.bearer_token_encrypted is None:
        return None
    cipher = CredentialCipher(secrets)
    return KarbonCredentials(
        cipher.decrypt(row.access_key_encrypted), cipher.decrypt(row.bearer_token_encrypted)
    )


async def record_sync_error(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    code: str,
    message: str,
    likely_cause: str | None,
    steps: list[str],
    occurred_at: datetime | None = None,
) -> None:
    """Show the error on the connection; a new kind of error re-arms the admin alert."""
    row = await repository.connection(session, tenant_id, for_update=True)
    if row is None:
        return
    if row.last_error_code != code:
        row.alerted_at = None
    row.last_error_code = code
    row.last_error_message = message
    row.last_error_likely_cause = likely_cause
    row.last_error_steps = steps
    row.last_error_at = occurred_at or datetime.now(UTC)
    await session.flush()


async def clear_sync_error(session: AsyncSession, tenant_id: UUID) -> None:
    row = await repository.connection(session, tenant_id, for_update=True)
    if row is not None:
        _clear_error(row)
        await session.flush()


async def mark_error_alerted(session: AsyncSession, tenant_id: UUID, at: datetime) -> None:
    """The admin was e-mailed about the current error; `alerted_at` dedups the next ones."""
    row = await repository.connection(session, tenant_id, for_update=True)
    if row is not None:
        row.alerted_at = at
        await session.flush()


def _clear_error(row: KarbonConnection) -> None:
    row.last_error_code = row.last_error_message = row.last_error_likely_cause = None
    row.last_error_steps = None
    row.last_error_at = row.alerted_at = None


async def reencrypt_credentials(session: AsyncSession, secrets: Secrets) -> int:
    """Re-encrypt every stored key with the newest encryption key; returns the rows done."""
    cipher = CredentialCipher(secrets)
    rows = await repository.connections_with_keys(session)
    for row in rows:
        assert row.access_key_encrypted is not None and row.bearer_token_encrypted is not None
        row.access_key_encrypted = cipher.reencrypt(row.access_key_encrypted)
        row.bearer_token_encrypted = cipher.reencrypt(row.bearer_token_encrypted)
    await session.flush()
    return len(rows)


async def tenant_may_sync(
    session: AsyncSession, tenant_id: UUID, now: datetime, *, terms: PlanTerms | None = None
) -> bool:
    """Connected, and in its trial or subscribed: scheduled syncs pause otherwise. `terms`:
    the tenant's plan terms, when the caller has read them already."""
    tenant = terms or await repository.tenant(session, tenant_id)
    if tenant is None or not plan_state(tenant, now).allows_reports_and_syncs:
        return False
    return await repository.karbon_connected(session, tenant_id)


async def require_syncable(session: AsyncSession, tenant_id: UUID) -> None:
    """Refuse a manual sync: 409 when Karbon is not connected, 402 after the trial."""
    row = await repository.connection(session, tenant_id)
    if row is None or not row.is_connected:
        raise ProblemError(
            409,
            "karbon-not-connected",
            "Karbon is not connected: paste the AccessKey and Bearer token first "
            "(PUT /api/v1/karbon/credentials).",
            title="Karbon not connected",
        )
    tenant = await repository.tenant(session, tenant_id)
    assert tenant is not None
    state = plan_state(tenant, datetime.now(UTC))
    if not state.allows_reports_and_syncs:
        raise subscription_required(state, "syncs")
