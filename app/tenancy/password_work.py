"""Password hashing and checking, bounded to the machine's cores.

argon2 spends tens of milliseconds of CPU per call on purpose. On asyncio's default
executor a sign-in storm queued without limit and held the threads and cores that reports
and sync status need too. Here at most one call per core runs at a time and a few per core
may wait their turn; past that a sign-in is refused at once with a 503 and `Retry-After`,
and the rest of the API keeps its CPU.
"""

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from app.kit.problems import ProblemError
from app.tenancy.security import hash_password, verify_password

T = TypeVar("T")

WAITING_PER_CORE = 4
RETRY_AFTER_SECONDS = 2


class PasswordWork:
    def __init__(self, workers: int, waiting: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="passwords")
        self._limit = workers + waiting
        self._admitted = 0

    async def run(self, work: Callable[..., T], *args: object) -> T:
        if self._admitted >= self._limit:
            raise ProblemError(
                503,
                "sign-in-busy",
                "Too many sign-ins and password changes at once; try again in a moment.",
                title="Busy",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self._admitted -= 1


_cores = os.cpu_count() or 1
_work = PasswordWork(workers=_cores, waiting=WAITING_PER_CORE * _cores)


async def hashed(password: str) -> str:
    return await _work.run(hash_password, password)


async def verified(password_hash: str | None, password: str) -> bool:
    return await _work.run(verify_password, password_hash, password)
