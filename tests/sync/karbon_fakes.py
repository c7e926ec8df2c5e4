"""Fakes for Karbon client tests: fake Karbon answers and a virtual-time event loop."""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

from app.sync.karbon import KarbonClient, RetryPolicy, TenantBudget

BASE = "https://karbon.test"
ACCESS_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJ0ZW5hbnQiOiJzZWNyZXQifQ.c2lnbmF0dXJlLXNlY3JldA"
BEARER = "550e8400-e29b-41d4-a716-446655440000"

T = TypeVar("T")
_TICK = 1e-6


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps straight to the next timer when nothing else is ready.

    Sleeps, budget spacing and Retry-After pauses take no real time, and every timing is
    exact and deterministic. Only usable without real I/O (respx mocks all HTTP).
    """

    def __init__(self) -> None:
        super().__init__(selectors.DefaultSelector())
        self._virtual_now = 0.0
        real_select = self._selector.select  # type: ignore[attr-defined]

        def select(timeout: float | None = None) -> list[Any]:
            events = real_select(0)
            if events:
                return events  # type: ignore[no-any-return]
            if timeout is None:
                stuck = [t.get_stack() for t in asyncio.all_tasks(self)]
                raise RuntimeError(f"deadlock: nothing scheduled, tasks waiting: {stuck}")
            # A timer due "now" that re-arms itself for "now" (a pacer may, when float
            # rounding leaves a sliver of level) needs the clock to move, as a real one does.
            self._virtual_now += timeout or (0.0 if self._ready else _TICK)  # type: ignore[attr-defined]
            return []

        self._selector.select = select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self._virtual_now

    def stall(self, seconds: float) -> None:
        """As if the callback now running kept the loop busy for `seconds`: timers falling due
        meanwhile fire late."""
        self._virtual_now += seconds


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def make_client(
    budget: TenantBudget | None = None, retry: RetryPolicy | None = None, **kwargs: Any
) -> KarbonClient:
    return KarbonClient(
        ACCESS_KEY,
        BEARER,
        budget=budget or TenantBudget(),
        base_url=BASE,
        retry=retry or RetryPolicy(),
        **kwargs,
    )
