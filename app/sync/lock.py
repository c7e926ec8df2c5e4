"""A per-tenant lock in Redis, so at most one sync per tenant runs across all workers.

The lock expires unless its holder keeps renewing it, so a crashed worker's lock frees
itself within `ttl_seconds`. Renewal and release only touch the lock when the token still
matches: a holder that lost the lock never frees someone else's.
"""

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
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


@asynccontextmanager
async def hold_lock(
    redis: Redis, key: str, *, ttl_seconds: float = 30.0
) -> AsyncIterator[asyncio.Event | None]:
    """Yield an event that is set if the lock is lost, or None if another holder has it."""
    token = secrets.token_hex(16)
    ttl_ms = int(ttl_seconds * 1000)
    if not await redis.set(key, token, nx=True, px=ttl_ms):
        yield None
        return
    lost = asyncio.Event()

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl_seconds / 3)
            if not await redis.eval(_RENEW, 1, key, token, str(ttl_ms)):  # type: ignore[misc]
                lost.set()
                return

    renewer = asyncio.create_task(renew())
    try:
        yield lost
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        await redis.eval(_RELEASE, 1, key, token)  # type: ignore[misc]
