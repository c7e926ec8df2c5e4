"""The firm's Karbon connection: paste keys, see the connection, disconnect."""

from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import SecretsDep, TenantAdmin, TenantMember, TenantPrincipal, actor_of
from app.api.deps import KarbonBudgetsDep, RedisDep, SessionDep, SettingsDep
from app.api.responses import ADMIN, MEMBER, problems
from app.models import AuditKind
from app.sync import connection
from app.tenancy import audit, repository
from app.tenancy.schemas import Connection, PastedCredentials

router = APIRouter(prefix="/api/v1/karbon", tags=["karbon"])


@router.put(
    "/credentials",
    summary="Connect Karbon: check and store the AccessKey and Bearer token (admins)",
    description=(
        "Generate both keys in Karbon under Settings → Developer. First each key's format is "
        "checked; then `GET /v3/Users?$top=1` is made against Karbon with them and, when Karbon "
        "accepts the keys, the same one-record read of each of the other five endpoints "
        "Reckonry reads (Karbon grants endpoints to each API application one by one). When "
        "Karbon accepts them and every endpoint is readable they are stored encrypted, the "
        "7-day trial starts (only the first time) and the initial sync starts. When Karbon "
        "refuses them, or an endpoint is not granted, nothing is stored. Pasting new "
        "keys later replaces the old ones and never restarts the trial. "
        "The keys are never returned, only masked."
    ),
    responses=problems(
        {
            **ADMIN,
            422: "`invalid-credentials-format`: a key is not in its expected format; `errors` "
            "names `access_key` and/or `bearer_token`, and `swapped` is true when they were "
            "pasted the wrong way round. `karbon-rejected-access-key` / "
            "`karbon-rejected-bearer-token`: Karbon rejected that key (`errors` names it). "
            "`karbon-rejected-unknown`: Karbon rejected the keys without saying which (a 401). "
            "`karbon-permission-missing`: the keys work but their API application may not "
            "read the endpoints in `denied_endpoints` (a 403); `detail` names the Karbon "
            "setting to change. Nothing is stored. "
            "`validation-error`: a field is missing.",
            502: "`karbon-unexpected-response`: Karbon's answer was not understood; nothing "
            "was stored. Retryable.",
            503: "`karbon-unavailable`: Karbon was unreachable or rate limiting; nothing was "
            "stored. Retry in a minute.",
        }
    ),
)
async def connect_karbon(
    principal: TenantAdmin,
    body: PastedCredentials,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    secrets: SecretsDep,
    budgets: KarbonBudgetsDep,
) -> Connection:
    connected = await connection.connect(
        session, redis, settings, secrets, budgets, principal.tenant_id, body, datetime.now(UTC)
    )
    detail = (
        f"access key {connected.access_key_masked}, bearer token {connected.bearer_token_masked}"
    )
    await _record(session, principal, "karbon_keys.connected", detail)
    return connected


@router.get(
    "/connection",
    summary="Connected or not, masked keys, trial, last sync error with what to do",
    responses=problems(MEMBER),
)
async def get_karbon_connection(principal: TenantMember, session: SessionDep) -> Connection:
    tenant = await repository.tenant(session, principal.tenant_id)
    assert tenant is not None
    row = await repository.connection(session, principal.tenant_id)
    return connection.connection_view(tenant, row, datetime.now(UTC))


@router.delete(
    "/credentials",
    summary="Disconnect Karbon (admins)",
    description="Forgets the keys and stops syncing at once (a running sync is cancelled). "
    "Everything already synced stays available to the reports. Harmless when not connected.",
    responses=problems(ADMIN),
)
async def disconnect_karbon(
    principal: TenantAdmin, session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> Connection:
    tenant = await repository.tenant(session, principal.tenant_id)
    assert tenant is not None
    row = await repository.connection(session, principal.tenant_id)
    was_connected = row is not None and row.is_connected
    disconnected = await connection.disconnect(session, redis, settings, tenant, datetime.now(UTC))
    if was_connected:
        await _record(session, principal, "karbon_keys.disconnected", "the keys were forgotten")
    return disconnected


async def _record(
    session: AsyncSession, principal: TenantPrincipal, action: str, detail: str
) -> None:
    await audit.record(
        session,
        principal.tenant_id,
        actor_of(principal),
        AuditKind.KARBON_KEYS,
        action,
        "Karbon keys",
        detail,
    )
