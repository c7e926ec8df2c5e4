"""The request loop: Karbon requests paced and sent from an event loop of their own."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import respx
import uvloop

from app.sync.karbon import USERS, TenantBudget
from app.sync.karbon.request_loop import RequestLoop
from tests.sync.karbon_fakes import BASE, make_client

LIVENESS_TIMEOUT = 30.0
"""Generous: these tests check what happens, never how fast."""


@pytest.fixture
def request_loop() -> Iterator[RequestLoop]:
    loop = RequestLoop(name="test-requests")
    yield loop
    loop.close()


async def _thread_of(value: int) -> tuple[int, int]:
    return threading.get_ident(), value


async def _fail() -> None:
    raise LookupError("from the request loop")


async def test_runs_on_a_uvloop_in_its_own_thread_and_hands_back_results_and_errors(
    request_loop: RequestLoop,
) -> None:
    thread, value = await request_loop.run(_thread_of, 7)
    assert value == 7
    assert thread != threading.get_ident()
    assert isinstance(request_loop.loop, uvloop.Loop)
    with pytest.raises(LookupError, match="from the request loop"):
        await request_loop.run(_fail)


async def test_keeps_its_timers_while_the_callers_loop_is_blocked(
    request_loop: RequestLoop,
) -> None:
    # The reason it exists: a caller's loop busy with CPU work does not hold requests back.
    woke = threading.Event()

    async def sleep_then_signal() -> None:
        await asyncio.sleep(0.05)
        woke.set()

    caller = asyncio.ensure_future(request_loop.run(sleep_then_signal))
    await asyncio.sleep(0)  # the coroutine is handed over
    deadline = time.monotonic() + LIVENESS_TIMEOUT
    while not woke.is_set() and time.monotonic() < deadline:
        sum(range(10_000))  # this loop stays blocked, doing Python work, the whole time
    assert woke.is_set()
    await caller


async def test_a_cancelled_caller_waits_until_its_coroutine_has_unwound(
    request_loop: RequestLoop,
) -> None:
    started, unwound = threading.Event(), threading.Event()

    async def hang() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.05)  # cleanup that itself awaits
            unwound.set()

    caller = asyncio.ensure_future(request_loop.run(hang))
    await asyncio.to_thread(started.wait, LIVENESS_TIMEOUT)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert unwound.is_set()


async def test_close_cancels_what_still_runs_and_ends_the_thread() -> None:
    request_loop = RequestLoop(name="test-requests")
    started = threading.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(3600)

    caller = asyncio.ensure_future(request_loop.run(hang))
    await asyncio.to_thread(started.wait, LIVENESS_TIMEOUT)
    threads = {t.name for t in threading.enumerate()}
    assert "test-requests" in threads
    await asyncio.to_thread(request_loop.close)
    assert "test-requests" not in {t.name for t in threading.enumerate()}
    with pytest.raises(RuntimeError, match="request loop stopped"):
        await caller


async def test_a_client_sends_and_keeps_its_budget_on_the_request_loop(
    request_loop: RequestLoop,
) -> None:
    sender_threads: set[int] = set()
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}, json={})])

    def answer(request: httpx.Request) -> httpx.Response:
        sender_threads.add(threading.get_ident())
        return next(answers, httpx.Response(200, json={"Id": "u"}))

    with respx.mock(base_url=BASE) as karbon:
        karbon.get(path__regex=r"/v3/Users/\w+").mock(side_effect=answer)
        budget = TenantBudget()
        async with make_client(budget=budget, request_loop=request_loop) as client:
            response = await client.get_detail(USERS, "u1")
            stats = await client.budget_stats()

    assert response.body_json == {"Id": "u"}
    assert sender_threads and threading.get_ident() not in sender_threads
    assert (stats.requests_sent, stats.throttled, stats.retries) == (2, 1, 1)


async def test_close_runs_the_last_coroutine_on_the_loop_before_it_stops() -> None:
    request_loop = RequestLoop(name="test-requests")
    loop = request_loop.loop
    ran_on: list[asyncio.AbstractEventLoop] = []

    async def last() -> None:
        ran_on.append(asyncio.get_running_loop())

    await asyncio.to_thread(request_loop.close, last)
    assert ran_on == [loop]
