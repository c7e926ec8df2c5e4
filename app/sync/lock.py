"""A per-tenant lock in Redis, so at most one sync per tenant runs across all workers.

The lock expires unless its holder keeps renewing it, so a crashed worker's lock frees
itself within `ttl_seconds`. Renewal and release only touch the lock when the token still
matches: a holder that lost the lock never frees someone else's.

A process renews all the locks it holds in one Redis call (`LockKeeper`), not one call per
lock: on a worker busy with a hundred tenants every call waits turns of the event loop and
holds a pooled connection, and a hundred renewals due together once queued for 15 s (behind
redis-py's own pool, which `app.redis_pool` now replaces) until some locks expired while
their syncs were running. One call per worker keeps renewal independent of how many
tenants it syncs.
"""

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.metrics import SYNC_LOCK_CONTENDED, SYNC_LOCKS_HELD, SYNC_LOCKS_LOST

logger = logging.getLogger(__name__)

SYNC_LOCK_TTL = timedelta(seconds=30)
"""How long a tenant's sync lock outlives its holder's last renewal (renewed every 10 s)."""

_RENEW_ALL = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[2 * i - 1] then
    redis.call('pexpire', key, ARGV[2 * i])
  else
    table.insert(lost, i)
  end
end
return lost
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LockLostError(RuntimeError):
    """The lock expired or was taken while the holder was still working."""


def tenant_sync_lock_key(prefix: str, tenant_id: object) -> str:
    return f"{prefix}:sync-lock:{tenant_id}"


@dataclass
class _Held:
    token: str
    ttl_ms: int
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class LockKeeper:
    """Renews every lock held through one Redis client, each at a third of its TTL."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._held: dict[str, _Held] = {}
        self._renewer: asyncio.Task[None] | None = None

    def keep(self, key: str, held: _Held) -> None:
        self._held[key] = held
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_while_held(), name="renew-locks")

    async def forget(self, key: str, held: _Held) -> None:
        if self._held.get(key) is held:  # not a later holder's entry, if this one lost it
            del self._held[key]
        if not self._held and self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def _renew_while_held(self) -> None:
        while self._held:
            await asyncio.sleep(min(held.ttl_ms for held in self._held.values()) / 3000)
            try:
                await self._renew_all()
            except (RedisError, OSError) as error:
                # Retried at the next turn; a lock that expires meanwhile is reported lost then.
                logger.warning("could not renew the sync locks: %s", error)

    async def _renew_all(self) -> None:
        keys = list(self._held)
        pairs = [str(v) for key in keys for v in (self._held[key].token, self._held[key].ttl_ms)]
        lost_positions = await self._redis.eval(_RENEW_ALL, len(keys), *keys, *pairs)  # type: ignore[misc]
        for position in lost_positions:
            held = self._held.pop(keys[int(position) - 1], None)
            if held is not None:
                SYNC_LOCKS_LOST.inc()
                held.lost.set()


_keepers: "weakref.WeakKeyDictionary[Redis, LockKeeper]" = weakref.WeakKeyDictionary()


def _keeper(redis: Redis) -> LockKeeper:
    keeper = _keepers.get(redis)
    if keeper is None:
        keeper = _keepers[redis] = LockKeeper(redis)
    return keeper


@asynccontextmanager
async def hold_lock(
    redis: Redis, key: str, *, ttl_seconds: float = SYNC_LOCK_TTL.total_seconds()
) -> AsyncIterator[asyncio.Event | None]:
    """Yield an event that is set if the lock is lost, or None if another holder has it."""
    held = _Held(token=secrets.token_hex(16), ttl_ms=int(ttl_seconds * 1000))
    if not await redis.set(key, held.token, nx=True, px=held.ttl_ms):
        SYNC_LOCK_CONTENDED.inc()
        yield None
        return
    keeper = _keeper(redis)
    keeper.keep(key, held)
    SYNC_LOCKS_HELD.inc()
    try:
        yield held.lost
    finally:
        SYNC_LOCKS_HELD.dec()
        await keeper.forget(key, held)
        await redis.eval(_RELEASE, 1, key, held.token)  # type: ignore[misc]
