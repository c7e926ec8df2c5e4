"""One request budget per tenant: 1.8 requests/second across every process, never faster at Karbon.

Every request of a tenant, a sync's list or detail call in any worker or the API's key check,
first reserves the next send time on the tenant's one schedule: one interval after the
previous reservation, or now when the schedule is idle (GCRA with no burst allowance). The
schedule is kept in Redis (``RedisSchedule``: atomic scripts on Redis's clock), so every
process of the deployment draws from it; ``LocalSchedule`` is the same schedule for one
process (tests and tools without Redis). A 429 pauses the schedule: reservations start after
the pause, and a request whose reserved time a pause has since covered reserves again.

Why the interval is a little longer than 1/1.8 s: Karbon counts requests as they arrive, and
some arrive later than others. A request leaves at most ``SEND_TOLERANCE`` after its reserved
time (a request later than that, its connection still opening or its loop busy, reserves a new
time before its first byte leaves) and its trip may take up to ``ARRIVAL_JITTER`` longer than
another's. Reserving 108 intervals in (60 + both) seconds, any 109 requests are reserved at
least 60.4 s apart and so arrive at least 60 s apart: never more than 108 in a minute (1.8/s),
and never 20 in 10 s. That leaves 1.788 requests/second, 99.3% of 1.8.

Each budget lets a few requests reserve ahead (``RESERVED_AHEAD``), so the next reservation is
always made before the schedule reaches it, and allows ``max_in_flight`` requests at once, so
slow answers do not idle the schedule. The budget's own clock is its event loop's, which lets
tests run on virtual time; budgets are kept per event loop (``BudgetRegistry``).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol
from weakref import WeakKeyDictionary

from redis.asyncio import Redis

from app.redis_pool import create_redis
from app.settings import KARBON_REQUESTS_PER_SECOND

DEFAULT_MAX_IN_FLIGHT = 10
"""Enough that answers taking up to 3 s (1.5 to 2 s, or an ``$expand`` half as long again)
keep a reservation waiting at every turn: 3 s / 0.56 s sent, plus those reserved ahead."""
RESERVED_AHEAD = 2
"""Requests of one budget holding a reservation they have not yet sent on: one waits at each
turn while the next reserves, and a newcomer (a key check) waits at most this many turns
behind each busy process."""
RATE_WINDOW_SECONDS = 60.0
SEND_TOLERANCE = 0.15
"""How long after its reserved time a request may still leave on it."""
ARRIVAL_JITTER = 0.25
"""How much longer one request's trip to Karbon may take than another's."""
PER_MINUTE = 60.0
_KEY_IDLE_SECONDS = 600
"""A tenant's schedule in Redis is dropped after this long without a request."""


def send_interval(rate_per_second: float) -> float:
    """Seconds between reservations: ``rate * 60`` of them in 60 s plus the margin."""
    return (PER_MINUTE + SEND_TOLERANCE + ARRIVAL_JITTER) / (rate_per_second * PER_MINUTE)


@dataclass(frozen=True)
class Reservation:
    wait: float
    """Seconds from when the schedule answered until the reserved time."""
    at: float
    """The reserved time on the schedule's clock, to tell whether a pause came over it."""


class Schedule(Protocol):
    """One tenant's send times, shared by every budget of that tenant."""

    async def reserve(self) -> Reservation:
        """The next send time; nobody else gets it."""
        ...

    async def still_clear(self, reservation: Reservation) -> bool:
        """False when a pause has since come over the reserved time."""
        ...

    async def pause(self, seconds: float) -> None:
        """Karbon said 429: no reservation before ``seconds`` from now."""
        ...


def _running_loop_time() -> float:
    return asyncio.get_running_loop().time()


class LocalSchedule:
    """The schedule in this process's memory; the clock is the calling loop's by default."""

    def __init__(self, interval: float, clock: Callable[[], float] = _running_loop_time) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()  # budgets on several loops (threads) may share it
        self._next = -math.inf
        self._paused_until = -math.inf

    async def reserve(self) -> Reservation:
        now = self._clock()
        with self._lock:
            at = max(now, self._next, self._paused_until)
            self._next = at + self._interval
        return Reservation(wait=at - now, at=at)

    async def still_clear(self, reservation: Reservation) -> bool:
        return self._paused_until <= reservation.at

    async def pause(self, seconds: float) -> None:
        now = self._clock()
        with self._lock:
            self._paused_until = max(self._paused_until, now + seconds)


_NOW_US = """
local function now_us()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function set(field, value)
  redis.call('HSET', KEYS[1], field, string.format('%.0f', value))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
end
"""
_RESERVE = (
    _NOW_US
    + """
local now = now_us()
local state = redis.call('HMGET', KEYS[1], 'next', 'paused_until')
local at = math.max(now, tonumber(state[1]) or 0, tonumber(state[2]) or 0)
set('next', at + tonumber(ARGV[2]))
return {at - now, at}
"""
)
_PAUSE = (
    _NOW_US
    + """
local now = now_us()
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
set('paused_until', math.max(paused, now + tonumber(ARGV[2])))
return 1
"""
)
_MICRO = 1_000_000


class RedisSchedule:
    """The schedule in Redis, one hash per tenant (``next``, ``paused_until``, in whole
    microseconds). Times are Redis's own (``TIME``): one clock for every process, slewed, not
    stepped, by NTP; a reservation's wait is measured on that clock and slept on the caller's,
    so neither clock's offset matters. ``clock`` replaces ``TIME`` in tests."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        interval: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = redis
        self._key = key
        self._interval_us = math.ceil(interval * _MICRO)
        self._clock = clock
        self._reserve = redis.register_script(_RESERVE)
        self._pause = redis.register_script(_PAUSE)

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * _MICRO))

    async def reserve(self) -> Reservation:
        args: list[str | int] = [self._now_arg(), self._interval_us, _KEY_IDLE_SECONDS]
        wait_us, at_us = await self._reserve(keys=[self._key], args=args)
        return Reservation(wait=int(wait_us) / _MICRO, at=int(at_us) / _MICRO)

    async def still_clear(self, reservation: Reservation) -> bool:
        paused = await self._redis.hget(self._key, "paused_until")  # type: ignore[misc]
        return paused is None or int(paused) / _MICRO <= reservation.at

    async def pause(self, seconds: float) -> None:
        args: list[str | int] = [self._now_arg(), math.ceil(seconds * _MICRO), _KEY_IDLE_SECONDS]
        await self._pause(keys=[self._key], args=args)


def schedule_key(prefix: str, tenant_id: str) -> str:
    return f"{prefix}:karbon-budget:{tenant_id}"


@dataclass(frozen=True)
class BudgetStats:
    """A snapshot for progress reporting."""

    requests_sent: int
    throttled: int
    retries: int
    in_flight: int
    rate_per_second: float
    window_seconds: float
    paused_for_seconds: float
    """Left of the last pause this budget's own requests met."""


Leaving = Callable[[], Awaitable[None]]


class TenantBudget:
    """One tenant's budget on one event loop, drawing from the tenant's shared schedule."""

    def __init__(
        self,
        rate_per_second: float = KARBON_REQUESTS_PER_SECOND,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        window_seconds: float = RATE_WINDOW_SECONDS,
        *,
        schedule: Schedule | None = None,
    ) -> None:
        self.rate_per_second = rate_per_second
        self.max_in_flight = max_in_flight
        self._schedule = schedule or LocalSchedule(send_interval(rate_per_second))
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._ahead = asyncio.Semaphore(RESERVED_AHEAD)
        self._window = window_seconds
        self._sent_at: deque[float] = deque()
        self._resume_at = 0.0
        self._requests_sent = 0
        self._throttled = 0
        self._retries = 0
        self._active = 0

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Leaving]:
        """Hold the right to send exactly one request, from its reserved time.

        Await the function it gives as the request starts to leave (httpcore's trace hook
        does, before the first byte is written): when the request is later than
        ``SEND_TOLERANCE`` (a new connection's handshake, a busy loop), it waits there for a
        new reserved time. A request whose transport never says so is counted when its slot
        ends; it left right after its reserved time.
        """
        async with self._in_flight:
            await self._ahead.acquire()
            try:
                due = await self._take_turn()
            except BaseException:
                self._ahead.release()
                raise
            send = _OneSend(self, due)
            self._active += 1
            try:
                yield send.leaving
            finally:
                self._active -= 1
                send.count()

    async def _take_turn(self) -> float:
        """Wait for a reserved time; returns it on this loop's clock (a little early, never
        late, so lateness is never underestimated)."""
        while True:
            asked = self._now()
            reservation = await self._schedule.reserve()
            # Slept from the answer, so never before the reserved time.
            await asyncio.sleep(reservation.wait)
            if await self._schedule.still_clear(reservation):
                return asked + reservation.wait

    def _count_send(self) -> None:
        now = self._now()
        self._sent_at.append(now)
        self._requests_sent += 1
        while self._sent_at and self._sent_at[0] <= now - self._window:
            self._sent_at.popleft()
        self._ahead.release()

    async def pause(self, seconds: float) -> None:
        """Karbon said 429: hold every request of this tenant, in every process."""
        self._throttled += 1
        self._resume_at = max(self._resume_at, self._now() + seconds)
        await self._schedule.pause(seconds)

    def note_retry(self) -> None:
        self._retries += 1

    def stats(self) -> BudgetStats:
        now = self._now()
        recent = sum(1 for sent in self._sent_at if sent > now - self._window)
        return BudgetStats(
            requests_sent=self._requests_sent,
            throttled=self._throttled,
            retries=self._retries,
            in_flight=self._active,
            rate_per_second=recent / self._window,
            window_seconds=self._window,
            paused_for_seconds=max(0.0, self._resume_at - now),
        )


class _OneSend:
    """One request's turn: counted once, as it leaves or when its slot ends."""

    def __init__(self, budget: TenantBudget, due: float) -> None:
        self._budget = budget
        self._due = due
        self._counted = False

    async def leaving(self) -> None:
        if self._counted:
            return
        if self._budget._now() - self._due > SEND_TOLERANCE:
            self._due = await self._budget._take_turn()  # its time has gone: a new one
        self.count()

    def count(self) -> None:
        if not self._counted:
            self._counted = True
            self._budget._count_send()


class BudgetRegistry:
    """Budgets of this process: one per tenant per event loop, created on first use.

    With ``redis_url`` every budget of a tenant, in this process and any other using the same
    Redis and ``key_prefix``, draws from the tenant's schedule in Redis; without it, from one
    schedule in this process."""

    def __init__(
        self,
        rate_per_second: float = KARBON_REQUESTS_PER_SECOND,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        *,
        redis_url: str | None = None,
        key_prefix: str = "reckonry",
    ) -> None:
        self._rate = rate_per_second
        self._max_in_flight = max_in_flight
        self._redis_url = redis_url
        self._key_prefix = key_prefix
        self._local: dict[str, LocalSchedule] = {}
        self._budgets: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, TenantBudget]] = (
            WeakKeyDictionary()
        )
        self._redis: WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = WeakKeyDictionary()

    def for_tenant(
        self, tenant_id: str, loop: asyncio.AbstractEventLoop | None = None
    ) -> TenantBudget:
        """The tenant's budget on ``loop``, the loop its requests are sent from (the caller's
        by default)."""
        loop = loop or asyncio.get_running_loop()
        per_loop = self._budgets.setdefault(loop, {})
        if tenant_id not in per_loop:
            per_loop[tenant_id] = TenantBudget(
                self._rate, self._max_in_flight, schedule=self._schedule(tenant_id, loop)
            )
        return per_loop[tenant_id]

    def _schedule(self, tenant_id: str, loop: asyncio.AbstractEventLoop) -> Schedule:
        interval = send_interval(self._rate)
        if self._redis_url is None:
            return self._local.setdefault(tenant_id, LocalSchedule(interval))
        # A Redis connection belongs to the loop that opened it: one client per loop.
        if loop not in self._redis:
            self._redis[loop] = create_redis(self._redis_url)
        key = schedule_key(self._key_prefix, tenant_id)
        return RedisSchedule(self._redis[loop], key, interval)

    async def aclose(self) -> None:
        """Close the Redis connections of the running loop's budgets."""
        redis = self._redis.pop(asyncio.get_running_loop(), None)
        if redis is not None:
            await redis.aclose()
