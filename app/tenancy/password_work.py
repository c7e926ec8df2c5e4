"""Password hashing and checking, bounded host-wide to half the machine's cores.

argon2 spends about a hundred milliseconds of one core per call, on purpose. Bounding it per
process was not enough: `reckonry api --workers N` runs N processes, and each let as many
calls run as there are cores, so a sign-in storm ran N times the cores' worth of argon2 and
reports and sync status waited behind it for seconds. Here every process of a host takes a
slot before it hashes: a slot is a file under one directory, held by an exclusive `flock`,
so the bound is shared by every process that uses the directory and a process that dies
frees its slots with it. A call waits for a slot at most `SLOT_WAIT_SECONDS`, and only a few
may wait in each process; past either, the sign-in is refused at once with a 503 and
`Retry-After`, and the rest of the API keeps its CPU. A waiting call waits in a thread
blocked in `flock`, woken by the kernel when the slot is freed: polling for it every 10 ms
cost a sign-in shed after its 2 s wait about 40 ms of CPU, more than a report.

The hashing threads also run at a lower CPU priority, so on a host busy with other work too
the scheduler serves requests first and sign-ins are the ones that slow down and are shed.

Half the cores (at least one) may hash at once: the other half serves reports, sync status
and the database on the same host. On two cores that is one check at a time, about seven
sign-ins a second, far above what the people of a firm ask for.
"""

import asyncio
import contextlib
import fcntl
import itertools
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from app.kit.problems import ProblemError
from app.tenancy.security import hash_password, verify_password

T = TypeVar("T")

WAITING_PER_SLOT = 4
SLOT_WAIT_SECONDS = 2.0
"""How long a call waits for a free slot before it is refused."""
RETRY_AFTER_SECONDS = 2


def usable_cores() -> int:
    """The cores this process may run on (a container's or a `taskset`'s share)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def host_slots() -> int:
    return max(1, usable_cores() // 2)


def default_slot_directory() -> Path:
    """Shared by every process of this user on this host."""
    return Path(tempfile.gettempdir()) / f"reckonry-password-slots-{os.getuid()}"


Held = int
"""A slot held: the open file whose `flock` holds it."""


class HostSlots:
    """At most `count` holders at once among all processes that use `directory`. Each take
    opens its slot's file anew: a `flock` belongs to an open file, so two calls of one
    process exclude each other as calls of two processes do."""

    def __init__(self, directory: Path, count: int) -> None:
        self._directory = directory
        self._count = count
        self._made = False

    def try_take(self) -> Held | None:
        """A free slot, now held by the caller; None when every slot is held."""
        for slot in range(self._count):
            held = self._open(slot)
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(held)
                continue
            return held
        return None

    def take(self, slot: int) -> Held:
        """Slot `slot` (modulo the count), once it is free: blocks the calling thread."""
        held = self._open(slot % self._count)
        try:
            fcntl.flock(held, fcntl.LOCK_EX)
        except BaseException:
            os.close(held)
            raise
        return held

    def give_back(self, held: Held) -> None:
        os.close(held)  # closing the file releases its lock

    def _open(self, slot: int) -> int:
        if not self._made:
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._made = True
        return os.open(self._directory / f"slot-{slot}", os.O_RDWR | os.O_CREAT, 0o600)


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


class _Turn:
    """A call's claim to run once its thread holds a slot, given up when it waited too long
    (or its request was cancelled) before it started."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._state = "waiting"
        self.started = asyncio.Event()

    def start(self) -> bool:
        """From the thread holding a slot: whether the call still wants to run."""
        with self._lock:
            if self._state == "given up":
                return False
            self._state = "started"
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(self.started.set)
        return True

    def give_up(self) -> bool:
        """False when the call has started already (it runs to its end)."""
        with self._lock:
            if self._state == "started":
                return False
            self._state = "given up"
            return True

    @property
    def given_up(self) -> bool:
        return self._state == "given up"


class PasswordWork:
    def __init__(self, slots: HostSlots, count: int, *, wait: float = SLOT_WAIT_SECONDS) -> None:
        self._slots = slots
        self._limit = count * (1 + WAITING_PER_SLOT)
        # A thread per call admitted: each waits for its slot blocked in `flock` (no CPU
        # spent polling), then hashes in it.
        self._executor = ThreadPoolExecutor(
            max_workers=self._limit, thread_name_prefix="passwords", initializer=_yield_to_the_rest
        )
        self._wait = wait
        self._admitted = 0
        self._turns = itertools.count()

    async def run(self, work: Callable[..., T], *args: object) -> T:
        if self._admitted >= self._limit:
            raise _busy()
        self._admitted += 1
        try:
            return await self._in_a_slot(work, args)
        finally:
            self._admitted -= 1

    async def _in_a_slot(self, work: Callable[..., T], args: tuple[object, ...]) -> T:
        loop = asyncio.get_running_loop()
        turn = _Turn(loop)
        slot = next(self._turns)  # waiting calls spread over the slots
        ran = loop.run_in_executor(self._executor, self._when_free, turn, slot, work, args)
        try:
            await asyncio.wait_for(turn.started.wait(), self._wait)
        except TimeoutError:
            if turn.give_up():
                ran.add_done_callback(_retrieved)
                raise _busy() from None
        except BaseException:
            if turn.give_up():
                ran.add_done_callback(_retrieved)
            raise
        return await ran

    def _when_free(
        self, turn: _Turn, slot: int, work: Callable[..., T], args: tuple[object, ...]
    ) -> T:
        """In a thread of its own: the call, once a slot is free, unless it was given up
        meanwhile (its thread then takes the slot when it comes and gives it back at once)."""
        if turn.given_up:
            raise _GivenUpError
        held = self._slots.try_take()
        if held is None:
            held = self._slots.take(slot)
        try:
            if not turn.start():
                raise _GivenUpError
            return work(*args)
        finally:
            self._slots.give_back(held)


class _GivenUpError(Exception):
    """The call was given up before it started."""


def _retrieved(ran: "asyncio.Future[Any]") -> None:
    """A given-up call's outcome, read so that asyncio does not log it as never retrieved."""
    if not ran.cancelled():
        ran.exception()


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
