"""Sign-in attempts limited per account and per client address (fixed windows in Redis)."""

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis

from app.kit.problems import ProblemError


@dataclass(frozen=True)
class Limit:
    attempts: int
    window_seconds: int


ATTEMPTS_PER_ACCOUNT = Limit(attempts=10, window_seconds=15 * 60)
ATTEMPTS_PER_ADDRESS = Limit(attempts=50, window_seconds=15 * 60)


def _digest(value: str) -> str:
    # Keys name neither the e-mail nor the address in clear.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class SignInLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:sign-in"

    async def register_attempt(self, email: str, address: str) -> None:
        """Count one attempt; 429 when the account or the address has used its window."""
        checks = (
            (f"{self._prefix}:account:{_digest(email.lower())}", ATTEMPTS_PER_ACCOUNT, "account"),
            (f"{self._prefix}:address:{_digest(address)}", ATTEMPTS_PER_ADDRESS, "address"),
        )
        for key, limit, scope in checks:
            count, ttl = await self._count(key, limit)
            if count > limit.attempts:
                raise ProblemError(
                    429,
                    "too-many-sign-in-attempts",
                    f"Too many sign-in attempts for this {scope}. "
                    f"Try again in {ttl} seconds, or reset your password "
                    "(POST /api/v1/auth/password-reset).",
                    title="Too many sign-in attempts",
                    headers={"Retry-After": str(ttl)},
                    retry_after_seconds=ttl,
                )

    async def forget_account(self, email: str) -> None:
        """A successful sign-in clears the account's count (not the address's)."""
        await self._redis.delete(f"{self._prefix}:account:{_digest(email.lower())}")

    async def _count(self, key: str, limit: Limit) -> tuple[int, int]:
        # One script, so the window starts with the first attempt and never slides; it runs on
        # Redis 6 too (the embedded server), which has no `EXPIRE ... NX`.
        count, ttl = await self._redis.eval(  # type: ignore[misc]
            _COUNT_IN_WINDOW, 1, key, str(limit.window_seconds)
        )
        return int(count), max(int(ttl), 1)


_COUNT_IN_WINDOW = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""
