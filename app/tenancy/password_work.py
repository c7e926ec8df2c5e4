"""Password hashing and checking, bounded host-wide to half the machine's cores.

argon2 spends about a hundred milliseconds of one core per call, on purpose. Bounding it per
process was not enough: `reckonry api --workers N` runs N processes, and each let as many
calls run as there are cores, so a sign-in storm ran N times the cores' worth of argon2 and
reports and sync status waited behind it for seconds. Here every process of a host takes a
slot before it hashes: a slot is a file under one directory, held by an exclusive `flock`,
so the bound is shared by every process that uses the directory and a process that dies
frees its slots with it. A call waits for a slot at most `SLOT_WAIT_SECONDS`, and only a few
may wait in each process; past either, the sign-in is refused at once with a 503 and
`Retry-After`, and the rest of the API keeps its CPU.

The hashing threads also run at a lower CPU priority, so on a host busy with other work too
the scheduler serves requests first and sign-ins are the ones that slow down and are shed.

Half the cores (at least one) may hash at once: the other half serves reports, sync status
and the database on the same host. On two cores that is one check at a time, about seven
sign-ins a second, far above what the people of a firm ask for.
"""

import asyncio
import contextlib
import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from app.kit.problems import ProblemError
from app.tenancy.security import hash_password, verify_password

T = TypeVar("T")

WAITING_PER_SLOT = 4
SLOT_WAIT_SECONDS = 2.0
"""How long a call waits for a free slot before it is refused."""
RETRY_AFTER_SECONDS = 2
_POLL_SECONDS = 0.01


def usable_cores() -> int:
    """The cores this process may run on (a container's or a `taskset`'s share)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def host_slots() -> int:
    return max(1, usable_cores() // 2)


def default_slot_directory() -> Path:
    """Shared by every process of this user on this host."""
    return Path(tempfile.gettempdir()) / f"reckonry-password-slots-{os.getuid()}"


class HostSlots:
    """At most `count` holders at once among all processes that use `directory`."""

    def __init__(self, directory: Path, count: int) -> None:
        self._directory = directory
        self._count = count
        self._files: dict[int, int] = {}
        self._held: set[int] = set()
        # A lock is per open file: this process's own holders are told apart here.
        self._guard = threading.Lock()

    def try_take(self) -> int | None:
        """A free slot, now held by the caller; None when every slot is held."""
        with self._guard:
            for slot in range(self._count):
                if slot in self._held:
                    continue
                try:
                    fcntl.flock(self._file(slot), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                self._held.add(slot)
                return slot
        return None

    def give_back(self, slot: int) -> None:
        with self._guard:
            fcntl.flock(self._files[slot], fcntl.LOCK_UN)
            self._held.discard(slot)

    def _file(self, slot: int) -> int:
        if slot not in self._files:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            path = self._directory / f"slot-{slot}"
            self._files[slot] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._files[slot]


PASSWORD_NICENESS = 10


def _yield_to_the_rest() -> None:
    """Hashing threads run at a lower CPU priority than the rest of the process: on a busy
    host the scheduler gives reports and sync status the CPU first, and sign-ins slow down
    (and are shed) instead. Linux sets a thread's priority by its id; elsewhere it stays."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PASSWORD_NICENESS)


def _busy() -> ProblemError:
    return ProblemError(
        503,
        "sign-in-busy",
        "Too many sign-ins and password changes at once; try again in a moment.",
        title="Busy",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class PasswordWork:
    def __init__(self, slots: HostSlots, count: int, *, wait: float = SLOT_WAIT_SECONDS) -> None:
        self._slots = slots
        self._executor = ThreadPoolExecutor(
            max_workers=count, thread_name_prefix="passwords", initializer=_yield_to_the_rest
        )
        self._limit = count * (1 + WAITING_PER_SLOT)
        self._wait = wait
        self._admitted = 0

    async def run(self, work: Callable[..., T], *args: object) -> T:
        if self._admitted >= self._limit:
            raise _busy()
        self._admitted += 1
        try:
            slot = await self._take_slot()
            try:
                return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
            finally:
                self._slots.give_back(slot)
        finally:
            self._admitted -= 1

    async def _take_slot(self) -> int:
        deadline = time.monotonic() + self._wait
        while (slot := self._slots.try_take()) is None:
            if time.monotonic() >= deadline:
                raise _busy()
            await asyncio.sleep(_POLL_SECONDS)
        return slot


_work: PasswordWork | None = None


def use_slot_directory(directory: Path) -> None:
    """Share the bound with the processes that use `directory` (by default the temporary
    directory's, which `TMPDIR` moves: containers of one host can share one mounted there)."""
    global _work
    count = host_slots()
    _work = PasswordWork(HostSlots(directory, count), count)


def _host_work() -> PasswordWork:
    if _work is None:
        use_slot_directory(default_slot_directory())
    assert _work is not None
    return _work


async def hashed(password: str) -> str:
    return await _host_work().run(hash_password, password)


async def verified(password_hash: str | None, password: str) -> bool:
    return await _host_work().run(verify_password, password_hash, password)
