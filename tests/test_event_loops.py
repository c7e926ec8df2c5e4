"""Long-running processes run on uvloop's event loop where it is installed."""

import asyncio

import uvloop

from app import event_loops


def test_new_loops_are_uvloops() -> None:
    loop = event_loops.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_run_runs_a_coroutine_on_a_uvloop_and_closes_it() -> None:
    async def running_loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    loop = event_loops.run(running_loop())
    assert isinstance(loop, uvloop.Loop)
    assert loop.is_closed()
