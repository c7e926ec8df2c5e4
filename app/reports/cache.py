"""Per-process caches of report results: they change only when a refresh lands.

Results are keyed by the tenant's refresh version, so a refresh makes earlier entries
unreachable (the LRU bound drops them later). The version itself comes with the report
context, which each process keeps for at most `CONTEXT_TTL_SECONDS`: a refresh run in this
process forgets it at once; a refresh run by a worker elsewhere is seen within that time.
"""

from typing import Any, TypeVar
from uuid import UUID

from app.caching import TtlCache

T = TypeVar("T")

CONTEXT_TTL_SECONDS = 1.0


_tenant_caches: list["TenantTtlCache[Any]"] = []


def forget_tenant(tenant_id: UUID) -> None:
    """A refresh landed: this process reads the tenant's report context again."""
    for cache in _tenant_caches:
        cache.forget(tenant_id)


class TenantTtlCache(TtlCache[UUID, T]):
    """One value per tenant, trusted for `ttl` seconds or until `forget_tenant`."""

    def __init__(self, ttl: float) -> None:
        super().__init__(ttl)
        _tenant_caches.append(self)
