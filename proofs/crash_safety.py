"""Crash safety: a worker killed at random points of a first sync loses and repeats nothing.

Two deployments sync the same sandbox firm at once, each with its own database, Redis
prefix, Karbon sandbox process and `reckonry worker` process. One is left alone (the clean
run). The other's worker is SIGKILLed at random moments of its sync and started again at
once, each time; the run must resume by itself (the worker's orphan check) within 30 s of
its lock expiring, and end `succeeded` with every normalized table and every raw response
equal to the clean run's, having asked Karbon for at most one page's requests more per kill.
"""

import asyncio
import random
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from redis.asyncio import Redis

from app.embedded import resolve_service_urls
from app.settings import Settings
from proofs import Outcome, Proof
from proofs._karbon_runs import (
    KARBON_PAGE_SIZE,
    Deployment,
    KarbonSandbox,
    RunState,
    compare,
    until,
)
from tests.services import scratch_database

RESUME_TARGET_SECONDS = 30.0
RUN_END_WAIT_SECONDS = 1800.0
"""How long the proof waits for a run to end before calling it stuck (a busy machine is slow)."""
REQUESTS_PER_KILL = 1 + KARBON_PAGE_SIZE
"""One page's requests: the list request and a detail call for each of its records."""


async def prove(long: bool) -> Outcome:
    size, kills, gaps = ("small", 20, (1.0, 20.0)) if long else ("tiny", 2, (2.0, 8.0))
    seed = random.randrange(10**6)
    outcome = Outcome()
    outcome.measure("firm", f"sandbox {size}, kill points seeded {seed}")
    with tempfile.TemporaryDirectory(prefix="proof-crash-") as folder:
        async with AsyncExitStack() as stack:
            clean, crashed = await _deployments(stack, Path(folder), size)
            await _kill_repeatedly(crashed, kills, gaps, random.Random(seed), outcome)
            crashed_end = await crashed.run_end(RUN_END_WAIT_SECONDS)
            clean_end = await clean.run_end(RUN_END_WAIT_SECONDS)
            _check_ends(outcome, clean=clean_end, crashed=crashed_end)
            differences = compare(await clean.snapshot(), await crashed.snapshot())
            outcome.measure(
                "rows compared (clean run, raw versions included)", differences.compared
            )
            for name in ("missing", "extra", "duplicated", "different"):
                value = getattr(differences, name)
                outcome.measure(f"rows {name}", value, "0", held=value == 0)
            outcome.failures.extend(differences.where)
            await _measure_requests(outcome, clean, crashed)
    return outcome


async def _deployments(
    stack: AsyncExitStack, folder: Path, size: str
) -> tuple[Deployment, Deployment]:
    """Both deployments syncing (the crashed one's first worker started), sandboxes ready."""
    servers = resolve_service_urls(Settings())
    today = datetime.now(UTC).date()
    deployments = []
    for name in ("clean", "crashed"):
        sandbox = KarbonSandbox(size, today, folder / f"{name}-karbon.log")
        stack.callback(sandbox.stop)
        database = await stack.enter_async_context(scratch_database(servers.database_url))
        deployment = Deployment(name, database, servers.redis_url, sandbox, folder)
        stack.callback(deployment.stop_workers)
        await deployment.start_first_sync(*await sandbox.ready())
        deployment.start_worker()
        deployments.append(deployment)
    return deployments[0], deployments[1]


async def _kill_repeatedly(
    crashed: Deployment, kills: int, gaps: tuple[float, float], rng: random.Random, outcome: Outcome
) -> None:
    redis = Redis.from_url(crashed.redis_url)
    delays: list[float] = []
    starts: list[float] = []
    try:
        if not await _lock_taken(crashed, redis, 300):
            outcome.failures.append("the first sync never started")
            return
        for _ in range(kills):
            if not await _still_running_after(crashed, rng.uniform(*gaps)):
                break
            crashed.kill_worker()
            killed = time.monotonic()
            await redis.delete(crashed.health_key)  # the dead worker's
            crashed.start_worker()
            expired, up = await asyncio.gather(
                _when(redis, crashed.lock_key, present=False),
                _when(redis, crashed.health_key, present=True),
            )
            resumed = await _lock_taken(crashed, redis, 300)
            if resumed is None:
                outcome.failures.append(
                    f"the run did not resume within 300 s of kill {len(delays) + 1}"
                )
            if resumed is not True:  # it had ended just before the kill: no more to kill
                break
            delays.append(time.monotonic() - max(expired, up))
            starts.append(up - killed)
    finally:
        await redis.aclose()
    outcome.measure("kills", len(delays), f">= {kills}", held=len(delays) >= kills)
    worst = max(delays, default=0.0)
    outcome.measure(
        "restarted worker up after the kill, per kill (s)", ", ".join(f"{s:.1f}" for s in starts)
    )
    outcome.measure(
        "resume delay after the lock expired and the restarted worker was up, per kill (s)",
        ", ".join(f"{d:.1f}" for d in delays),
    )
    outcome.measure(
        "longest resume delay (s)",
        f"{worst:.1f}",
        f"<= {RESUME_TARGET_SECONDS:.0f}",
        held=worst <= RESUME_TARGET_SECONDS,
    )


async def _lock_taken(deployment: Deployment, redis: Redis, seconds: float) -> bool | None:
    """True once a worker holds the firm's sync lock, False if the run ended first, None if
    neither happened within `seconds`."""

    async def taken() -> str | None:
        if await redis.exists(deployment.lock_key):
            return "taken"
        state = await deployment.run_state()
        return "ended" if state is not None and not state.active else None

    found = await until(taken, seconds, every=0.1)
    return None if found is None else found == "taken"


async def _when(redis: Redis, key: str, *, present: bool, seconds: float = 300) -> float:
    """When (monotonic clock) the key appeared or went away: the dead worker's lock expiring,
    or the restarted worker's first health check (arq writes it once it polls the queue)."""

    async def changed() -> bool:
        return bool(await redis.exists(key)) == present

    await until(changed, seconds, every=0.05)
    return time.monotonic()


async def _still_running_after(deployment: Deployment, seconds: float) -> bool:
    await asyncio.sleep(seconds)
    state = await deployment.run_state()
    return state is not None and state.active


def _check_ends(outcome: Outcome, *, clean: RunState | None, crashed: RunState | None) -> None:
    for name, end in (("clean", clean), ("crashed", crashed)):
        state = end.state if end is not None else "still running"
        took = f" after {end.seconds:.0f} s" if end is not None and end.seconds else ""
        outcome.measure(
            f"{name} run ended", f"{state}{took}", "succeeded", held=state == "succeeded"
        )


async def _measure_requests(outcome: Outcome, clean: Deployment, crashed: Deployment) -> None:
    made = (await crashed.karbon.counters())["requests"]
    baseline = (await clean.karbon.counters())["requests"]
    kills = int(next(f.value for f in outcome.figures if f.name == "kills"))
    bound = baseline + kills * REQUESTS_PER_KILL
    outcome.measure("Karbon requests, clean run", baseline)
    outcome.measure(
        "Karbon requests, killed run",
        f"{made} (+{made - baseline}, {(made - baseline) / max(kills, 1):.0f} per kill)",
        f"<= {bound} (clean + {REQUESTS_PER_KILL} per kill)",
        held=made <= bound,
    )


PROOF = Proof(
    name="crash_safety",
    claim=(
        "A worker SIGKILLed at random points of a first sync (20 times; 2 in the fast run) "
        "and restarted resumes within 30 s of its lock expiring, and the run ends succeeded "
        "with every normalized table and raw response equal to an uninterrupted run's: 0 rows "
        "missing, extra, duplicated or different; Karbon requests at most the clean run's plus "
        "one page's (101) per kill."
    ),
    run=prove,
)
