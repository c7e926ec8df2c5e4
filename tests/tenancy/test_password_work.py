"""Password hashing runs at most one call per core, a few more wait, the rest are refused at
once (503 with Retry-After) instead of queueing without limit."""

import asyncio
import threading

import pytest

from app.kit.problems import ProblemError
from app.tenancy.password_work import PasswordWork


async def test_work_beyond_the_running_and_waiting_calls_is_refused_at_once() -> None:
    work = PasswordWork(workers=1, waiting=1)
    release = threading.Event()
    running = [asyncio.create_task(work.run(release.wait, 5)) for _ in range(2)]
    await asyncio.sleep(0.05)  # one runs, one waits for the worker
    with pytest.raises(ProblemError) as refused:
        await work.run(release.wait, 5)
    assert refused.value.status == 503
    assert refused.value.type_ == "sign-in-busy"
    assert refused.value.headers == {"Retry-After": "2"}
    release.set()
    assert await asyncio.gather(*running) == [True, True]
    assert await work.run(lambda: "free again") == "free again"


async def test_no_more_calls_run_at_once_than_there_are_workers() -> None:
    work = PasswordWork(workers=2, waiting=8)
    lock = threading.Lock()
    at_once = peak = 0

    def busy() -> None:
        nonlocal at_once, peak
        with lock:
            at_once += 1
            peak = max(peak, at_once)
        threading.Event().wait(0.02)
        with lock:
            at_once -= 1

    await asyncio.gather(*(work.run(busy) for _ in range(10)))
    assert peak == 2
