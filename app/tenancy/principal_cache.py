"""Who a credential belongs to, kept in this process for a second.

A signed-in request would otherwise read its user (or key) and tenant from the database each
time, which is most of what a cached report costs. A change that refuses a credential (a
member deactivated, a key revoked) empties this cache once its transaction commits, so this
process refuses it at once; other processes do within `PRINCIPAL_TTL_SECONDS`. A trial's end
needs no such step: the trial check computes it from the start date at every request.
"""

from typing import Any

from app.caching import TtlCache

PRINCIPAL_TTL_SECONDS = 1.0

principals: TtlCache[str, Any] = TtlCache(PRINCIPAL_TTL_SECONDS)
"""Keyed by `user:<id>` or an API key's hash; the values are `app.api.auth`'s."""


async def forget_principals() -> None:
    principals.clear()
