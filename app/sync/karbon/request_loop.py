"""An event loop of its own, in a thread, where Karbon requests are paced and sent.

A worker syncing many tenants spends its main event loop on CPU work: decoding pages, building
rows, talking to PostgreSQL. A request whose turn in the budget comes up waits behind that work
before it can leave, 100-300 ms on a busy worker, and the budget's windows then count it from
when it actually left: every late request is budget lost for good. On a loop that does nothing
but wait for turns and move bytes, the request leaves within a thread switch of its turn.

Only the budget and the HTTP exchange run here. The caller's loop keeps everything else, and
every budget call goes through ``run``, so a budget is only ever touched by this loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from app import event_loops

T = TypeVar("T")

_START_TIMEOUT_SECONDS = 10.0


class RequestLoop:
    """An event loop in a daemon thread, started on first use, running coroutines for callers
    on other loops. A caller cancelled while its coroutine runs here waits for it to unwind, so
    nothing it started outlives it."""

    def __init__(self, name: str = "karbon-requests") -> None:
        self._name = name
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop, started if it was not yet."""
        with self._start_lock:
            if self._loop is None:
                self._start()
            assert self._loop is not None
            return self._loop

    async def run(self, function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run ``function(*args)`` on this loop and return (or raise) what it does."""
        loop, caller = self.loop, asyncio.get_running_loop()
        outcome: asyncio.Future[T] = caller.create_future()
        started: list[asyncio.Task[T]] = []

        def start() -> None:
            task = loop.create_task(function(*args))
            task.add_done_callback(lambda done: _report(caller, outcome, done))
            started.append(task)

        loop.call_soon_threadsafe(start)
        try:
            return await asyncio.shield(outcome)
        except asyncio.CancelledError:
            # `start` was queued first, so the task exists by the time this runs.
            loop.call_soon_threadsafe(lambda: started[0].cancel())
            await asyncio.wait([outcome])
            outcome.exception()  # retrieved and dropped: the caller raises its cancellation
            raise

    def close(self, last: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Stop the loop, cancelling what still runs on it, and wait for its thread to end.
        ``last`` runs on the loop first (closing what belongs to it); its failure is ignored."""
        with self._start_lock:
            thread, loop, stop = self._thread, self._loop, self._stop
            self._thread = self._loop = self._stop = None
        if thread is None or loop is None or stop is None:
            return
        if last is not None:
            done = asyncio.run_coroutine_threadsafe(last(), loop)
            with contextlib.suppress(Exception):
                done.result(_START_TIMEOUT_SECONDS)
        loop.call_soon_threadsafe(stop.set)
        thread.join()

    def _start(self) -> None:
        ready = threading.Event()

        async def serve() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            ready.set()
            await self._stop.wait()

        # `run` cancels whatever is left on the loop once `serve` returns.
        self._thread = threading.Thread(target=event_loops.run, args=(serve(),), name=self._name)
        self._thread.daemon = True
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_SECONDS):
            raise RuntimeError(f"the {self._name} event loop did not start")


def _report(
    caller: asyncio.AbstractEventLoop, outcome: asyncio.Future[T], task: asyncio.Task[T]
) -> None:
    """Hand a finished task's result to the caller's loop (called on the request loop)."""
    # RuntimeError: the caller's loop has closed, nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        caller.call_soon_threadsafe(_settle, outcome, task)


def _settle(outcome: asyncio.Future[T], task: asyncio.Task[T]) -> None:
    if outcome.done():
        return
    if task.cancelled():
        outcome.set_exception(RuntimeError("the request loop stopped before the request ended"))
    elif (error := task.exception()) is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(task.result())
