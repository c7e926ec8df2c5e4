"""Password hashing runs at most half the host's cores' worth of calls at once across every
process of the host; a few more wait for a slot, the rest are refused (503 with Retry-After)
instead of queueing without limit."""

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.kit.problems import ProblemError
from app.tenancy.password_work import HostSlots, PasswordWork, host_slots


def _refusal(refused: pytest.ExceptionInfo[ProblemError]) -> tuple[int, str, dict[str, str]]:
    return refused.value.status, refused.value.type_, refused.value.headers or {}


async def test_work_beyond_the_running_and_waiting_calls_is_refused_at_once(
    tmp_path: Path,
) -> None:
    work = PasswordWork(HostSlots(tmp_path, 1), 1)
    release = threading.Event()
    admitted = [asyncio.create_task(work.run(release.wait, 5)) for _ in range(5)]
    await asyncio.sleep(0.05)  # one runs, four wait for the slot
    with pytest.raises(ProblemError) as refused:
        await work.run(release.wait, 5)
    assert _refusal(refused) == (503, "sign-in-busy", {"Retry-After": "2"})
    release.set()
    assert await asyncio.gather(*admitted) == [True] * 5
    assert await work.run(lambda: "free again") == "free again"


async def test_a_call_that_finds_no_free_slot_in_time_is_refused(tmp_path: Path) -> None:
    other_process = HostSlots(tmp_path, 1)
    held = other_process.try_take()
    assert held is not None
    work = PasswordWork(HostSlots(tmp_path, 1), 1, wait=0.05)
    ran: list[str] = []
    with pytest.raises(ProblemError) as refused:
        await work.run(ran.append, "given up")
    assert _refusal(refused) == (503, "sign-in-busy", {"Retry-After": "2"})
    other_process.give_back(held)
    assert await work.run(ran.append, "its turn") is None
    assert ran == ["its turn"]


async def test_a_call_cancelled_while_it_waits_for_a_slot_never_runs(tmp_path: Path) -> None:
    other_process = HostSlots(tmp_path, 1)
    held = other_process.try_take()
    assert held is not None
    work = PasswordWork(HostSlots(tmp_path, 1), 1)
    ran: list[str] = []
    waiting = asyncio.create_task(work.run(ran.append, "cancelled"))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    other_process.give_back(held)
    assert await work.run(ran.append, "next") is None
    assert ran == ["next"]


async def test_no_more_calls_run_at_once_than_there_are_slots(tmp_path: Path) -> None:
    work = PasswordWork(HostSlots(tmp_path, 2), 2)
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


# Each process makes as many calls at once as the machine has cores, once every process is
# ready; each call logs when it starts and ends.
_CALLS = """
import asyncio, os, sys, threading, time
from pathlib import Path
from app.kit.problems import ProblemError
from app.tenancy import password_work

log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)

def logged(password):
    os.write(log, b"+\\n")
    threading.Event().wait(0.2)
    os.write(log, b"-\\n")
    return "hashed"

async def one() -> None:
    try:
        await password_work.hashed("a password")
    except ProblemError:
        os.write(log, b"refused\\n")

async def calls() -> None:
    await asyncio.gather(*(one() for _ in range(os.cpu_count() or 1)))

password_work.hash_password = logged
Path(sys.argv[2]).touch()
while not Path(sys.argv[3]).exists():
    time.sleep(0.01)
asyncio.run(calls())
"""


def _most_at_once(lines: list[str]) -> int:
    at_once = peak = 0
    for line in lines:
        at_once += {"+": 1, "-": -1}.get(line, 0)
        peak = max(peak, at_once)
    return peak


def test_processes_of_one_host_share_the_bound(tmp_path: Path) -> None:
    log, go = tmp_path / "log", tmp_path / "go"
    log.touch()
    environment = {**os.environ, "TMPDIR": str(tmp_path)}  # the slots live under it
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CALLS, str(log), str(tmp_path / f"ready-{n}"), str(go)],
            env=environment,
        )
        for n in range(2)
    ]
    while not all((tmp_path / f"ready-{n}").exists() for n in range(2)):
        assert all(process.poll() is None for process in processes)
        time.sleep(0.05)
    go.touch()
    assert [process.wait(timeout=120) for process in processes] == [0, 0]
    lines = log.read_text().split()
    assert lines.count("+") + lines.count("refused") == 2 * (os.cpu_count() or 1)
    assert _most_at_once(lines) == host_slots()


async def test_hashing_runs_at_a_lower_cpu_priority_than_the_requests(tmp_path: Path) -> None:
    work = PasswordWork(HostSlots(tmp_path, 1), 1)

    def own_niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    assert await work.run(own_niceness) > own_niceness()
