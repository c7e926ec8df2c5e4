"""Per-process caches of report results: they change only when a refresh lands.

Results are keyed by the tenant's refresh version, so a refresh makes earlier entries
unreachable (the LRU bound drops them later). The version itself comes with the report
context, which each process keeps for at most `CONTEXT_TTL_SECONDS`: a refresh run in this
process forgets it at once; a refresh run by a worker elsewhere is seen within that time.
"""

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar
from uuid import UUID

from app.caching import TtlCache

T = TypeVar("T")

CONTEXT_TTL_SECONDS = 1.0


class LruCache(Generic[T]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, T] = OrderedDict()

    def get(self, key: Hashable) -> T | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Hashable, value: T) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


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
