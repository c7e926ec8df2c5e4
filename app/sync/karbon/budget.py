"""One request budget per tenant: 1.8 requests/second, shared by every request of that tenant.

Three things make up a budget:
- an aiolimiter bucket just over size 1, so requests leave ``1 / rate`` seconds apart (a
  request that left late lets the next one catch up by at most 0.1 s) and no burst ever
  exceeds the rate (a bucket of size ``rate`` would let ``rate`` requests out at once);
- a semaphore allowing a few requests in flight, so a slow Karbon answer does not idle the budget;
- a tenant-wide pause, set when Karbon answers 429, that every request of the tenant waits out.

aiolimiter works in one process and one event loop, so budgets are kept per event loop
(``BudgetRegistry``). The clock is the event loop's, which lets tests run on virtual time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from weakref import WeakKeyDictionary

from aiolimiter import AsyncLimiter

KARBON_RATE_PER_SECOND = 1.8
DEFAULT_MAX_IN_FLIGHT = 6
RATE_WINDOW_SECONDS = 60.0
# Spacing is stretched by 2% (about 200 ms over 10 s) so that network and scheduling jitter,
# which can bunch requests up on their way (more so on a busy machine), still never lands 19
# in any 10 s window at Karbon. It costs 2% of the budget: 1.765 of 1.8 requests/second.
_SPACING_MARGIN = 1.02
# A request that leaves late (its task resumed late on a busy event loop) lets the next one
# follow sooner, by up to this much, so a busy worker does not lose budget to scheduling. Any
# window of W seconds then holds at most 1 + (W + catch-up) / spacing requests: 17.8, so 18,
# in 10 s, with 0.1 s of the margin left for jitter on the way.
_CATCH_UP_SECONDS = 0.1


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
        rate_per_second: float = KARBON_RATE_PER_SECOND,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        window_seconds: float = RATE_WINDOW_SECONDS,
    ) -> None:
        self.rate_per_second = rate_per_second
        self.max_in_flight = max_in_flight
        spacing = _SPACING_MARGIN / rate_per_second
        # A bucket of 1 + catch-up/spacing, draining one request per spacing (GCRA with that
        # tolerance): a token bucket of size `rate` would let `rate` requests out at once.
        bucket = 1 + _CATCH_UP_SECONDS / spacing
        self._limiter = AsyncLimiter(bucket, bucket * spacing)
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
    async def slot(self) -> AsyncIterator[None]:
        """Hold the right to send exactly one request now."""
        async with self._in_flight:
            await self._wait_for_turn()
            self._record_send()
            self._active += 1
            try:
                yield
            finally:
                self._active -= 1

    async def _wait_for_turn(self) -> None:
        while True:
            await self._wait_out_pause()
            await self._limiter.acquire()
            if self._now() >= self._resume_at:  # no 429 arrived while we queued
                return

    async def _wait_out_pause(self) -> None:
        # A loop, not an Event: another 429 may extend the pause while we sleep.
        while (remaining := self._resume_at - self._now()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)

    def _record_send(self) -> None:
        now = self._now()
        self._sent_at.append(now)
        self._requests_sent += 1
        while self._sent_at and self._sent_at[0] <= now - self._window:
            self._sent_at.popleft()

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


class BudgetRegistry:
    """Budgets of this process: one per tenant per event loop, created on first use."""

    def __init__(
        self,
        rate_per_second: float = KARBON_RATE_PER_SECOND,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._rate = rate_per_second
        self._max_in_flight = max_in_flight
        self._budgets: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, TenantBudget]] = (
            WeakKeyDictionary()
        )

    def for_tenant(self, tenant_id: str) -> TenantBudget:
        per_loop = self._budgets.setdefault(asyncio.get_running_loop(), {})
        if tenant_id not in per_loop:
            per_loop[tenant_id] = TenantBudget(self._rate, self._max_in_flight)
        return per_loop[tenant_id]


budgets = BudgetRegistry()
"""The process-wide registry the sync engine uses."""
