"""One request budget per tenant: 1.8 requests/second across every process, never faster at Karbon.

Every request of a tenant, a sync's list or detail call in any worker or the API's key check,
first reserves a send time on the tenant's one schedule. The schedule is kept in Redis
(``RedisSchedule``: atomic scripts on Redis's clock), so every process of the deployment
draws from it; ``LocalSchedule`` is the same schedule for one process (tests, tools without
Redis). A 429 pauses the schedule: reservations start after the pause, and a request whose
reserved time a pause has since covered reserves again.

The schedule keeps Karbon's own limit, counted the way Karbon counts it: in every window, as
requests arrive. A reservation is the earliest time at which
- at most 108 reservations (1.8/s) fall in any 60 s plus the margin, and at most 19 in any
  10 s plus the margin (Karbon allows 120 a minute; we never send 20 in 10 s);
- it is at least half a second after the one before (never more than 2 a second leave).
The margin is why this holds as requests arrive: a request leaves at most ``SEND_TOLERANCE``
after its reserved time (one later than that, its connection still opening or its loop busy,
reserves a new time before its first byte leaves), and its trip may take up to
``ARRIVAL_JITTER`` longer than another's. Any 109 reservations span 60.3 s or more, so they
arrive 60 s apart or more. That leaves 108 / 60.3 s = 1.791 requests/second, 99.5% of 1.8.

Windows rather than a fixed interval: a moment with nothing to send (a sync waiting for its
first answer, a page being written, a request that took a new turn) is made up within the
minute, as long as no window overfills; a fixed interval loses it for good. A schedule
that has been idle longer than the minute starts as if it had been sending one request every
60.3 s / 108 until then, so no run of requests, counted from its first, goes faster than that:
the time made up is only ever time lost within the minute.

Each budget lets a few requests reserve ahead (``reserve_ahead``), so the next reservation is
always made before the schedule reaches it, and allows ``max_in_flight`` requests at once, so
slow answers do not idle the schedule. A request may be sent in the background: it takes a
turn only when no other request of the budget wants it, so a sync's detail calls fill the
turns its list paging leaves idle, holding a page back by the one turn already reserved at
most.

The budget's own clock is its event loop's, which lets tests run on virtual time; budgets are
kept per event loop (``BudgetRegistry``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol
from weakref import WeakKeyDictionary

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.redis_pool import create_redis
from app.settings import KARBON_REQUESTS_PER_SECOND

logger = logging.getLogger(__name__)

DEFAULT_MAX_IN_FLIGHT = 10
"""Enough that answers taking up to 3 s (1 to 2 s, an ``$expand`` half as long again) keep a
reservation waiting at every turn: 3 s at 2 a second sent, plus those reserved ahead."""
RESERVED_AHEAD = 2
"""Requests of one budget holding a reservation they have not yet sent on: one waits at each
turn while the next reserves, and a newcomer waits at most this many turns behind each busy
process."""
RATE_WINDOW_SECONDS = 60.0
SEND_TOLERANCE = 0.1
"""How long after its reserved time a request may still leave on it."""
ARRIVAL_JITTER = 0.2
"""How much longer one request's trip to Karbon may take than another's."""
_MARGIN = SEND_TOLERANCE + ARRIVAL_JITTER
_SCHEDULE_RETRY_FIRST = 0.5
_SCHEDULE_RETRY_MOST = 5.0
"""Backoff while the schedule's Redis cannot be reached (a restart, a failover)."""
_SCHEDULE_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)
"""Redis gone, slow, or a replica that cannot write (a connection left on it by a failover):
the schedule is out of reach until Redis is itself again."""
FOREGROUND_GRACE = 0.25
"""How long after a request leaves its slot the places it may want next are still kept from
background requests: a paging stream asks for its next page as soon as one lands."""
_KEY_IDLE_SECONDS = 600
"""A tenant's schedule in Redis is dropped this long after its last request or pause."""


@dataclass(frozen=True)
class Limits:
    """What a schedule keeps at ``rate`` requests/second: ``windows`` as (most reservations,
    in seconds), margin included, and the least ``spacing`` between two."""

    windows: tuple[tuple[int, float], ...]
    spacing: float

    @classmethod
    def at(cls, rate_per_second: float) -> Limits:
        per_minute = max(1, math.floor(rate_per_second * 60 + 1e-9))
        per_ten_seconds = math.floor(rate_per_second * 10 + 1e-9) + 1
        return cls(
            windows=((per_minute, 60 + _MARGIN), (per_ten_seconds, 10 + _MARGIN)),
            spacing=1 / math.ceil(rate_per_second),
        )

    @property
    def kept(self) -> int:
        """How many past reservations the windows look at."""
        return max(count for count, _ in self.windows)

    @property
    def interval(self) -> float:
        """Seconds per request with one always waiting: the minute's window, margin and all."""
        count, seconds = self.windows[0]
        return seconds / count

    def earliest(self, now: float, reserved: deque[float], paused_until: float) -> float:
        """The earliest time for the next reservation after ``reserved`` (oldest first, at
        most ``kept``), which it rewrites when it is empty or older than every window."""
        at = max(now, paused_until)
        if not reserved or reserved[-1] + self.windows[0][1] <= now:
            reserved.clear()
            reserved.extend(at - back * self.interval for back in range(self.kept, 0, -1))
            return at
        at = max(at, reserved[-1] + self.spacing)
        for count, seconds in self.windows:
            if len(reserved) >= count:
                at = max(at, reserved[-count] + seconds)
        return at


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

    def __init__(self, limits: Limits, clock: Callable[[], float] = _running_loop_time) -> None:
        self._limits = limits
        self._clock = clock
        self._lock = threading.Lock()  # budgets on several loops (threads) may share it
        self._reserved: deque[float] = deque(maxlen=limits.kept)
        self._paused_until = -math.inf

    async def reserve(self) -> Reservation:
        now = self._clock()
        with self._lock:
            at = self._limits.earliest(now, self._reserved, self._paused_until)
            self._reserved.append(at)
        return Reservation(wait=at - now, at=at)

    async def still_clear(self, reservation: Reservation) -> bool:
        return self._paused_until <= reservation.at

    async def pause(self, seconds: float) -> None:
        now = self._clock()
        with self._lock:
            self._paused_until = max(self._paused_until, now + seconds)


# ``Limits.earliest`` in Lua, on whole microseconds. KEYS: the reservations (a list, oldest
# first) and the pause's end. ARGV: now ('' for Redis's clock), seconds to keep the keys,
# the spacing, then each window's count and length (the minute's first).
_NOW = """
local function now_us()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local now = now_us()
"""
_RESERVE = (
    _NOW
    + """
local at = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0'))
local kept = 1
for i = 4, #ARGV, 2 do kept = math.max(kept, tonumber(ARGV[i])) end
local last = redis.call('LINDEX', KEYS[1], -1)
local minute, minute_us = tonumber(ARGV[4]), tonumber(ARGV[5])
if (not last) or tonumber(last) + minute_us <= now then
  local past = {}
  for back = kept, 1, -1 do
    past[#past + 1] = string.format('%.0f', at - math.floor(back * minute_us / minute + 0.5))
  end
  redis.call('DEL', KEYS[1])
  redis.call('RPUSH', KEYS[1], unpack(past))
else
  at = math.max(at, tonumber(last) + tonumber(ARGV[3]))
  for i = 4, #ARGV, 2 do
    local oldest = redis.call('LINDEX', KEYS[1], -tonumber(ARGV[i]))
    if oldest then at = math.max(at, tonumber(oldest) + tonumber(ARGV[i + 1])) end
  end
end
redis.call('RPUSH', KEYS[1], string.format('%.0f', at))
redis.call('LTRIM', KEYS[1], -kept, -1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return {at - now, at}
"""
)
_PAUSE = (
    _NOW
    + """
local until_us = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now + tonumber(ARGV[3]))
local keep = tonumber(ARGV[2]) + math.ceil((until_us - now) / 1000000)
redis.call('SET', KEYS[2], string.format('%.0f', until_us), 'EX', keep)
return 1
"""
)
_MICRO = 1_000_000


class RedisSchedule:
    """The schedule in Redis: the tenant's last reservations and the end of its pause, in
    whole microseconds. Times are Redis's own (``TIME``): one clock for every process, slewed,
    not stepped, by NTP; a reservation's wait is measured on that clock and slept on the
    caller's, so neither clock's offset matters. ``clock`` replaces ``TIME`` in tests."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        limits: Limits,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = redis
        self._keys = [f"{key}:reserved", f"{key}:paused-until"]
        self._limits: list[str | int] = [math.ceil(limits.spacing * _MICRO)]
        for count, seconds in limits.windows:
            self._limits += [count, math.ceil(seconds * _MICRO)]
        self._clock = clock
        self._reserve = redis.register_script(_RESERVE)
        self._pause = redis.register_script(_PAUSE)

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(round(self._clock() * _MICRO))

    async def reserve(self) -> Reservation:
        args: list[str | int] = [self._now_arg(), _KEY_IDLE_SECONDS, *self._limits]
        wait_us, at_us = await self._reserve(keys=self._keys, args=args)
        return Reservation(wait=int(wait_us) / _MICRO, at=int(at_us) / _MICRO)

    async def still_clear(self, reservation: Reservation) -> bool:
        paused = await self._redis.get(self._keys[1])
        return paused is None or int(paused) / _MICRO <= reservation.at

    async def pause(self, seconds: float) -> None:
        args: list[str | int] = [self._now_arg(), _KEY_IDLE_SECONDS, math.ceil(seconds * _MICRO)]
        await self._pause(keys=self._keys, args=args)


def schedule_key(prefix: str, tenant_id: str) -> str:
    """Where a tenant's schedule lives; the braces keep its keys in one Redis Cluster slot,
    as a script touching both needs."""
    return f"{prefix}:karbon-budget:{{{tenant_id}}}"


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
        reserve_ahead: int = RESERVED_AHEAD,
        schedule_patience: float | None = None,
    ) -> None:
        """``schedule_patience``: how long a request waits for an unreachable schedule before
        its error is raised; None waits on (a sync, whose lock then expires and stops it)."""
        self.rate_per_second = rate_per_second
        self._patience = schedule_patience
        self.max_in_flight = max_in_flight
        self._schedule = schedule or LocalSchedule(Limits.at(rate_per_second))
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._ahead = asyncio.Semaphore(reserve_ahead)
        self._reserve_ahead = reserve_ahead
        self._holding = 0
        """Requests holding an in-flight place."""
        self._reserving = 0
        """Requests holding a reserve-ahead place: their turn is reserved, or being reserved."""
        self._foreground = 0
        """Requests not in the background, from entering `slot` to leaving it."""
        self._foreground_queued = 0
        """Of those, the ones still waiting for a place."""
        self._room = asyncio.Event()
        """Set whenever a place is given back: room for a background request, maybe."""
        self._foreground_left_at = -math.inf
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
    async def slot(self, *, background: bool = False) -> AsyncIterator[Leaving]:
        """Hold the right to send exactly one request, from its reserved time.

        Await the function it gives as the request starts to leave (httpcore's trace hook
        does, before the first byte is written): when the request is later than
        ``SEND_TOLERANCE`` (a new connection's handshake, a busy loop), it waits there for a
        new reserved time. A request whose transport never says so is counted when its slot
        ends; it left right after its reserved time.

        A ``background`` request enters only when no other request waits for a place and,
        while other requests are under way (or were, ``FOREGROUND_GRACE`` ago), it leaves
        one in-flight and one reserve-ahead place free: the next list page never waits
        behind a detail call for more than the one turn already reserved.
        """
        if background:
            await self._room_for_background()
        else:
            self._foreground += 1
            self._foreground_queued += 1
        queued = not background
        try:
            async with self._in_flight_place():
                try:
                    await self._ahead.acquire()
                finally:
                    queued = self._placed(queued)
                self._reserving += 1
                try:
                    due = await self._take_turn()
                except BaseException:
                    self._give_back_ahead()
                    raise
                send = _OneSend(self, due)
                self._active += 1
                try:
                    yield send.leaving
                finally:
                    self._active -= 1
                    send.count()
        finally:
            self._placed(queued)
            if not background:
                self._foreground_left()

    @asynccontextmanager
    async def _in_flight_place(self) -> AsyncIterator[None]:
        async with self._in_flight:
            self._holding += 1
            try:
                yield
            finally:
                self._holding -= 1
                self._room.set()

    def _placed(self, queued: bool) -> bool:
        """A foreground request stops waiting for places (it has them, or gave up)."""
        if queued:
            self._foreground_queued -= 1
            self._room.set()
        return False

    def _give_back_ahead(self) -> None:
        self._reserving -= 1
        self._ahead.release()
        self._room.set()

    def _foreground_left(self) -> None:
        self._foreground -= 1
        self._foreground_left_at = self._now()
        self._room.set()
        # The places it kept are free once the grace is over, if nothing else came.
        asyncio.get_running_loop().call_later(FOREGROUND_GRACE, self._room.set)

    def _has_room_for_background(self) -> bool:
        recent = self._now() - self._foreground_left_at < FOREGROUND_GRACE
        keep = 1 if self._foreground or recent else 0
        return (
            not self._foreground_queued
            and self.max_in_flight - self._holding > keep
            and self._reserve_ahead - self._reserving > keep
        )

    async def _room_for_background(self) -> None:
        """Returns when a background request may take its places at once, without waiting."""
        while not self._has_room_for_background():
            self._room.clear()
            await self._room.wait()

    async def _take_turn(self) -> float:
        """Wait for a reserved time; returns it on this loop's clock (a little early, never
        late, so lateness is never underestimated)."""
        backoff, waited = _SCHEDULE_RETRY_FIRST, 0.0
        while True:
            asked = self._now()
            try:
                reservation = await self._schedule.reserve()
                # Slept from the answer, so never before the reserved time.
                await asyncio.sleep(reservation.wait)
                if await self._schedule.still_clear(reservation):
                    return asked + reservation.wait
            except _SCHEDULE_UNAVAILABLE as error:
                # No turn without the schedule: wait for it. A run whose lock expires
                # meanwhile stops and is resumed; nothing is sent outside the budget.
                if self._patience is not None and waited >= self._patience:
                    raise
                logger.warning("request schedule unreachable, retrying: %s", error)
                await asyncio.sleep(backoff)
                waited += backoff
                backoff = min(backoff * 2, _SCHEDULE_RETRY_MOST)

    def _count_send(self) -> None:
        now = self._now()
        self._sent_at.append(now)
        self._requests_sent += 1
        while self._sent_at and self._sent_at[0] <= now - self._window:
            self._sent_at.popleft()
        self._give_back_ahead()

    async def pause(self, seconds: float) -> None:
        """Karbon said 429: hold every request of this tenant, in every process."""
        self._throttled += 1
        self._resume_at = max(self._resume_at, self._now() + seconds)
        try:
            await self._schedule.pause(seconds)
        except _SCHEDULE_UNAVAILABLE as error:
            # Nothing is sent until the schedule is back; its reservations then honour the
            # 429 again when Karbon repeats it.
            logger.warning("could not share a 429 pause: %s", error)

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

    budget_type: Callable[..., TenantBudget] = TenantBudget
    """What `for_tenant` creates: a tool may hand out budgets that behave otherwise."""

    def __init__(
        self,
        rate_per_second: float = KARBON_REQUESTS_PER_SECOND,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        *,
        redis_url: str | None = None,
        key_prefix: str = "reckonry",
        reserve_ahead: int = RESERVED_AHEAD,
        schedule_patience: float | None = None,
    ) -> None:
        self._rate = rate_per_second
        self._patience = schedule_patience
        self._max_in_flight = max_in_flight
        self._reserve_ahead = reserve_ahead
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
            per_loop[tenant_id] = self.budget_type(
                self._rate,
                self._max_in_flight,
                schedule=self._schedule(tenant_id, loop),
                reserve_ahead=self._reserve_ahead,
                schedule_patience=self._patience,
            )
        return per_loop[tenant_id]

    def _schedule(self, tenant_id: str, loop: asyncio.AbstractEventLoop) -> Schedule:
        limits = Limits.at(self._rate)
        if self._redis_url is None:
            return self._local.setdefault(tenant_id, LocalSchedule(limits))
        # A Redis connection belongs to the loop that opened it: one client per loop.
        if loop not in self._redis:
            self._redis[loop] = create_redis(self._redis_url)
        key = schedule_key(self._key_prefix, tenant_id)
        return RedisSchedule(self._redis[loop], key, limits)

    async def aclose(self) -> None:
        """Close the Redis connections of the running loop's budgets."""
        redis = self._redis.pop(asyncio.get_running_loop(), None)
        if redis is not None:
            await redis.aclose()
