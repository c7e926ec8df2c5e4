"""Sign-in throttling (growing delays after failed attempts, never a lock-out) and the limits
on password-reset requests.

A hard lock after N failures let anyone lock a person out of their own account by typing
wrong passwords for it. Here failures are counted per account and client address together,
per address, and per account; past a few free failures each further one makes that key wait
before the next attempt, the wait doubling up to its cap. An attacker guessing from one
address is slowed to one guess per `cap` seconds, spraying many accounts from one address is
slowed the same way, and the owner, signing in from their own address, waits at most the
account-wide cap (a minute) however hard the account is attacked from elsewhere. Failures
are forgotten an hour after the last one; a successful sign-in forgets the account's.
"""

import hashlib
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from app.kit.problems import ProblemError

FORGET_AFTER_SECONDS = 3600


@dataclass(frozen=True)
class Throttle:
    free_failures: int
    max_wait_seconds: float
    first_wait_seconds: float = 1.0

    def wait_after(self, failures: int) -> float:
        """Seconds the next attempt must wait after this many failures."""
        beyond = failures - self.free_failures
        if beyond <= 0:
            return 0.0
        return min(self.max_wait_seconds, self.first_wait_seconds * (1 << min(beyond - 1, 30)))


PER_ACCOUNT_AND_ADDRESS = Throttle(free_failures=5, max_wait_seconds=15 * 60)
PER_ADDRESS = Throttle(free_failures=50, max_wait_seconds=15 * 60)
PER_ACCOUNT = Throttle(free_failures=20, max_wait_seconds=60)


def _digest(value: str) -> str:
    # Keys name neither the e-mail nor the address in clear.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class SignInLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:sign-in"

    def _keys(self, email: str, address: str) -> list[tuple[str, Throttle, str]]:
        account, client = _digest(email.lower()), _digest(address)
        return [
            (f"{self._prefix}:pair:{account}:{client}", PER_ACCOUNT_AND_ADDRESS, "account"),
            (f"{self._prefix}:address:{client}", PER_ADDRESS, "address"),
            (f"{self._prefix}:account:{account}", PER_ACCOUNT, "account"),
        ]

    async def check(self, email: str, address: str) -> None:
        """429 with `Retry-After` while an earlier failure makes this attempt wait."""
        now = time.time()
        keys = self._keys(email, address)
        async with self._redis.pipeline(transaction=False) as reads:  # one round trip
            for key, _, _ in keys:
                reads.hget(key, "until")
            untils = await reads.execute()
        for (_, _, scope), until in zip(keys, untils, strict=True):
            if until is not None and float(until) > now:
                wait = math.ceil(float(until) - now)
                raise ProblemError(
                    429,
                    "too-many-sign-in-attempts",
                    f"Too many failed sign-ins for this {scope}. Try again in {wait} seconds, "
                    "or reset your password (POST /api/v1/auth/password-reset).",
                    title="Too many sign-in attempts",
                    headers={"Retry-After": str(wait)},
                    retry_after_seconds=wait,
                )

    async def failed(self, email: str, address: str) -> None:
        now = time.time()
        for key, throttle, _ in self._keys(email, address):
            failures = int(await self._redis.hincrby(key, "failures", 1))  # type: ignore[misc]
            wait = throttle.wait_after(failures)
            if wait:
                await self._redis.hset(key, "until", str(now + wait))  # type: ignore[misc]
            await self._redis.expire(key, FORGET_AFTER_SECONDS)

    async def succeeded(self, email: str, address: str) -> None:
        """The account's failures are forgotten (the address's are not)."""
        account_keys = [key for key, _, scope in self._keys(email, address) if scope == "account"]
        await self._redis.delete(*account_keys)


RESET_MAILS_PER_ACCOUNT = 3
"""Reset e-mails one account receives per `RESET_WINDOW_SECONDS`: more would let anyone flood
a person's mailbox. Requests beyond it are answered as usual and send nothing, so the answer
still says nothing about whether the address has an account."""
RESET_REQUESTS_PER_ADDRESS = 20
"""Reset requests one client address makes per window, whatever the accounts: beyond it a 429,
so nobody uses the product to send mail to many addresses."""
RESET_WINDOW_SECONDS = 3600


class ResetLimiter:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:password-reset"

    async def check_address(self, address: str) -> None:
        """429 with `Retry-After` once this address has asked too often in the window."""
        key = f"{self._prefix}:address:{_digest(address)}"
        if await self._count(key) <= RESET_REQUESTS_PER_ADDRESS:
            return
        wait = max(1, int(await self._redis.ttl(key)))
        raise ProblemError(
            429,
            "too-many-reset-requests",
            f"Too many password-reset requests from this address. Try again in {wait} seconds.",
            title="Too many reset requests",
            headers={"Retry-After": str(wait)},
            retry_after_seconds=wait,
        )

    async def may_mail(self, email: str) -> bool:
        """Whether this account may be sent one more reset e-mail in the window."""
        key = f"{self._prefix}:account:{_digest(email.lower())}"
        return await self._count(key) <= RESET_MAILS_PER_ACCOUNT

    async def _count(self, key: str) -> int:
        """Counts this request in the key's window, which starts with its first request; one
        script, so a counter never outlives its window for want of its expiry."""
        count = await self._redis.eval(_COUNT_IN_WINDOW, 1, key, str(RESET_WINDOW_SECONDS))  # type: ignore[misc]
        return int(count)


_COUNT_IN_WINDOW = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
