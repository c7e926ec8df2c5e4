"""Check pasted Karbon keys with one cheap read."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.sync.karbon.budget import TenantBudget
from app.sync.karbon.client import DEFAULT_BASE_URL, KarbonClient
from app.sync.karbon.endpoints import USERS
from app.sync.karbon.errors import KarbonError
from app.sync.karbon.retry import RetryPolicy

# A person is waiting on the answer: retry a throttled or flaky Karbon briefly, then report.
VALIDATION_RETRY = RetryPolicy(max_attempts=3, max_retry_after=15.0)


@dataclass(frozen=True)
class CredentialCheck:
    ok: bool
    error: KarbonError | None = None
    """Why not: ``KarbonAuthError.rejected_key`` says which key Karbon rejected."""
    user_count: int | None = None


async def validate_credentials(
    base_url: str,
    access_key: str,
    bearer_token: str,
    *,
    budget: TenantBudget | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> CredentialCheck:
    """``GET /v3/Users?$top=1`` with the pasted keys; never raises a Karbon error, returns it.

    Pass the tenant's budget when the tenant is known so the check counts against it.
    """
    client = KarbonClient(
        access_key,
        bearer_token,
        budget=budget or TenantBudget(),
        base_url=base_url or DEFAULT_BASE_URL,
        retry=VALIDATION_RETRY,
        transport=transport,
    )
    async with client:
        try:
            response = await client.get(USERS.list_path, {"$top": 1})
        except KarbonError as exc:
            return CredentialCheck(ok=False, error=exc)
    count = response.body_json.get("@odata.count")
    return CredentialCheck(ok=True, user_count=count if isinstance(count, int) else None)
