"""The event loops long-running processes run on: uvloop's where it is installed.

uvloop implements the asyncio loop in C on libuv. A worker syncing many tenants spends a
large share of its CPU in the loop itself (socket writes and reads, selector calls, callbacks,
hand-overs between its two loops); uvloop cuts that share, which is what lets one worker keep
more tenants at their full request budget. asyncpg and uvicorn recommend it for the same
reason. Where it is not installed (it does not build on Windows), asyncio's own loop runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's if it is installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is installed wherever it builds
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a loop from ``new_event_loop``."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
