"""Check pasted Karbon keys: are they accepted, and may their API application read each of
the six endpoints the product reads?

Karbon grants endpoints to each API application one by one, so keys that read ``/v3/Users``
may still be refused ``/v3/Invoices``. A 401 is the keys themselves; a 403 is a missing
permission on that endpoint.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from app.sync.karbon.budget import TenantBudget
from app.sync.karbon.client import DEFAULT_BASE_URL, KarbonClient, KarbonResponse
from app.sync.karbon.endpoints import RESOURCES, USERS, Resource
from app.sync.karbon.errors import KarbonError, KarbonPermissionError
from app.sync.karbon.retry import RetryPolicy

# A person is waiting on the answer: retry a throttled or flaky Karbon briefly, then report.
VALIDATION_RETRY = RetryPolicy(max_attempts=3, max_retry_after=15.0)


@dataclass(frozen=True)
class CredentialCheck:
    error: KarbonError | None = None
    """Why the keys could not be checked or were refused: ``KarbonAuthError.rejected_key``
    says which key Karbon rejected."""
    denied: tuple[str, ...] = ()
    """The list endpoints (``/v3/Invoices``) this API application may not read."""
    user_count: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.denied


async def validate_credentials(
    base_url: str,
    access_key: str,
    bearer_token: str,
    *,
    budget: TenantBudget,
    transport: httpx.AsyncBaseTransport | None = None,
) -> CredentialCheck:
    """``GET <endpoint>?$top=1`` on each endpoint the product reads, Users first (a rejected
    key is then told after one request); never raises a Karbon error, returns it.

    ``budget`` is the tenant's: the check's requests take their turns with its syncs'.
    """
    client = KarbonClient(
        access_key,
        bearer_token,
        budget=budget,
        base_url=base_url or DEFAULT_BASE_URL,
        retry=VALIDATION_RETRY,
        transport=transport,
    )
    others = [resource for resource in RESOURCES if resource is not USERS]
    async with client:
        try:
            users = await _readable(client, USERS)
        except KarbonError as exc:
            return CredentialCheck(error=exc)
        # Every check finishes before the client closes; the first failure is the answer.
        answers = await asyncio.gather(
            *(_readable(client, r) for r in others), return_exceptions=True
        )
    for answer in answers:
        if isinstance(answer, BaseException):
            if isinstance(answer, KarbonError):
                return CredentialCheck(error=answer)
            raise answer
    denied = tuple(
        resource.list_path
        for resource, answer in zip((USERS, *others), (users, *answers), strict=True)
        if answer is None
    )
    count = users.body_json.get("@odata.count") if users is not None else None
    return CredentialCheck(denied=denied, user_count=count if isinstance(count, int) else None)


async def _readable(client: KarbonClient, resource: Resource) -> KarbonResponse | None:
    """The first record of ``resource``'s list, or None when the application may not read it."""
    try:
        return await client.get(resource.list_path, {"$top": 1})
    except KarbonPermissionError:
        return None
