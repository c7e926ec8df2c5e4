"""One request budget per tenant: 1.8 requests/second, shared by every request of that tenant.

What the budget promises, at the moment each request starts to leave (``slot``):
- at most 18 requests in any 10 seconds (1.8/s) and at most 2 in any second (the rate
  rounded up; Karbon's published ceiling is 2/s), each window held 2% longer than Karbon
  counts it, so network jitter bunching requests on their way still cannot put one more in
  Karbon's window;
- requests paced at 1.8/s by an aiolimiter bucket, so they are spread out, never a burst.

The windows are the hard limit; the pacing may run a little ahead of them. That lets a
request that left late (its task resumed late on a busy worker's event loop) be made up by
the ones after it, as long as no window overfills: the budget a busy worker loses is what
the windows cannot give back, not every late start.

A semaphore allows a few requests in flight, so a slow Karbon answer does not idle the budget;
a tenant-wide pause, set when Karbon answers 429, is waited out by every request.

aiolimiter works in one process and one event loop, so budgets are kept per event loop
(``BudgetRegistry``). The clock is the event loop's, which lets tests run on virtual time.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from aiolimiter import AsyncLimiter

from app.settings import KARBON_REQUESTS_PER_SECOND

DEFAULT_MAX_IN_FLIGHT = 6
RATE_WINDOW_SECONDS = 60.0
_WINDOW_MARGIN = 1.02
"""Each window is held 2% longer than Karbon counts it: 18 in 10.2 s, 2 in 1.02 s. Over the
long run that leaves 1.765 of the 1.8 requests/second."""
_CATCH_UP_SECONDS = 0.5
"""How far the pacing lets requests after a late one follow sooner."""


class SlidingWindow:
    """At most `limit` sends in any `seconds`: the times of the last `limit` sends."""

    def __init__(self, limit: int, seconds: float) -> None:
        self._seconds = seconds
        self._sent: deque[float] = deque(maxlen=limit)

    def opens_in(self, now: float) -> float:
        """Seconds until one more send fits (0 when it fits now)."""
        if len(self._sent) < (self._sent.maxlen or 0):
            return 0.0
        return max(0.0, self._sent[0] + self._seconds - now)

    def record(self, now: float) -> None:
        self._sent.append(now)


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


class TenantBudget:
    """The shared request budget of one tenant in one event loop."""

    def __init__(
        self,
        rate_per_second: float = KARBON_REQUESTS_PER_SECOND,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        window_seconds: float = RATE_WINDOW_SECONDS,
    ) -> None:
        self.rate_per_second = rate_per_second
        self.max_in_flight = max_in_flight
        # A bucket of 1 + catch-up * rate, draining at the rate (GCRA with that tolerance).
        bucket = 1 + _CATCH_UP_SECONDS * rate_per_second
        self._limiter = AsyncLimiter(bucket, bucket / rate_per_second)
        self._windows = (
            SlidingWindow(max(1, math.floor(rate_per_second * 10 + 1e-9)), 10 * _WINDOW_MARGIN),
            SlidingWindow(math.ceil(rate_per_second), 1 * _WINDOW_MARGIN),
        )
        self._turn = asyncio.Lock()
        self._in_flight = asyncio.Semaphore(max_in_flight)
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
    async def slot(self) -> AsyncIterator[Callable[[], None]]:
        """Hold the right to send exactly one request now.

        Call the function it gives as the request starts to leave: the windows count the
        request from that moment, and the next request's turn waits for it. Counting from the
        turn instead would let requests that left late (a busy process, a connection still
        opening) bunch up with the ones after them at Karbon. A request that never says so
        (its transport reports nothing, or it failed first) is counted when the slot ends.
        """
        async with self._in_flight:
            await self._turn.acquire()  # one request at a time takes its turn
            try:
                await self._wait_for_turn()
            except BaseException:
                self._turn.release()
                raise
            send = _OneSend(self._count_send_and_pass_turn)
            self._active += 1
            try:
                yield send.leaving
            finally:
                self._active -= 1
                send.leaving()

    async def _wait_for_turn(self) -> None:
        while True:
            await self._wait_out_pause()
            await self._wait_for_windows()
            await self._limiter.acquire()
            if self._now() >= self._resume_at:  # no 429 arrived while we queued
                return

    async def _wait_for_windows(self) -> None:
        # Only the request holding the turn sends, so a window that opened stays open; the loop
        # only covers a timer that fires a hair early.
        while (wait := max(window.opens_in(self._now()) for window in self._windows)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)

    async def _wait_out_pause(self) -> None:
        # A loop, not an Event: another 429 may extend the pause while we sleep.
        while (remaining := self._resume_at - self._now()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)

    def _count_send_and_pass_turn(self) -> None:
        now = self._now()
        for window in self._windows:
            window.record(now)
        self._sent_at.append(now)
        self._requests_sent += 1
        while self._sent_at and self._sent_at[0] <= now - self._window:
            self._sent_at.popleft()
        self._turn.release()

    def pause(self, seconds: float) -> None:
        """Karbon said 429: hold every request of this tenant for ``seconds``."""
        self._throttled += 1
        self._resume_at = max(self._resume_at, self._now() + seconds)

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
    """Counts one request once: when it starts to leave, or when its slot ends."""

    def __init__(self, count: Callable[[], None]) -> None:
        self._count: Callable[[], None] | None = count

    def leaving(self) -> None:
        if self._count is not None:
            count, self._count = self._count, None
            count()


class BudgetRegistry:
    """Budgets of this process: one per tenant per event loop, created on first use."""

    def __init__(
        self,
        rate_per_second: float = KARBON_REQUESTS_PER_SECOND,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._rate = rate_per_second
        self._max_in_flight = max_in_flight
        self._budgets: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, TenantBudget]] = (
            WeakKeyDictionary()
        )

    def for_tenant(
        self, tenant_id: str, loop: asyncio.AbstractEventLoop | None = None
    ) -> TenantBudget:
        """The tenant's budget on ``loop``, the loop its requests are sent from (the caller's
        by default)."""
        per_loop = self._budgets.setdefault(loop or asyncio.get_running_loop(), {})
        if tenant_id not in per_loop:
            per_loop[tenant_id] = TenantBudget(self._rate, self._max_in_flight)
        return per_loop[tenant_id]
