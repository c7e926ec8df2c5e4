"""Service faults: PostgreSQL or Redis restarted under a sync, and Karbon misbehaving, cost
nothing.

Each scenario is its own deployment (database, Redis prefix, Karbon sandbox process, a
`reckonry worker` process) syncing the same sandbox firm as a clean deployment beside it.
PostgreSQL and Redis are stopped and started only where the proof runs its own servers on
free ports; the machine's shared servers are never touched. Karbon's faults come from the
sandbox: 5xx, 429 bursts, timeouts (long run), dropped connections, truncated bodies and
malformed JSON, at ten times the rates assumed of the real service, plus one of each kind at
the start. Every run must end `succeeded` with data equal to the clean run's, or `failed`
with a clear error and nothing wrong stored, and then succeed when asked again.
"""

import asyncio
import random
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.embedded import resolve_service_urls
from app.settings import Settings
from proofs import Outcome, Proof
from proofs._karbon_runs import (
    Deployment,
    Differences,
    KarbonSandbox,
    RunState,
    Snapshot,
    ThrowawayPostgres,
    ThrowawayRedis,
    compare,
    error_answers_kept,
)
from tests.services import scratch_database

REAL_FAULT_RATES = {
    "error_500_rate": 0.002,
    "error_503_rate": 0.002,
    "burst_429_rate": 0.001,
    "timeout_rate": 0.0005,
    "drop_rate": 0.001,
    "truncate_rate": 0.0005,
    "malformed_rate": 0.0005,
}
"""What the proof assumes of Karbon on an ordinary day, per request; it injects ten times as
many. A timeout is an answer held past the client's 60 s read timeout, so the fast run
leaves timeouts out."""
ONE_OF_EACH = ["500", "ok", "503", "ok", "429", "ok", "drop", "ok", "truncate", "ok", "malformed"]
"""Queued at the start, so every kind happens at least once however few requests a run has
(a timeout too in the long run)."""


@dataclass
class Scenario:
    name: str
    deployment: Deployment
    disturb: Callable[[], Awaitable[str]] | None = None
    """Breaks something under the running sync; says when it did."""
    disturbed: str = ""
    ends: list[str] = field(default_factory=list)
    """How each of its runs ended, in order."""
    differences: Differences | None = None
    seconds: float = 0.0
    """Its runs' time, from each one's request to its end."""


async def prove(long: bool) -> Outcome:
    size = "small" if long else "tiny"
    outcome = Outcome()
    outcome.measure("firm", f"sandbox {size}")
    with tempfile.TemporaryDirectory(prefix="proof-faults-") as name:
        folder = Path(name)
        async with AsyncExitStack() as stack:
            clean, scenarios = await _scenarios(stack, folder, size, long)
            await asyncio.gather(*(_disturb(s) for s in scenarios))
            deadline = 1800  # a stuck run; a busy machine takes minutes for a tiny firm
            clean_end = await clean.run_end(deadline)
            reference = await clean.snapshot()
            ends = [_settle(s, reference, deadline) for s in scenarios]
            await asyncio.gather(*ends)
            await _report(outcome, clean, clean_end, scenarios)
    return outcome


async def _scenarios(
    stack: AsyncExitStack, folder: Path, size: str, long: bool
) -> tuple[Deployment, list[Scenario]]:
    shared = resolve_service_urls(Settings())
    postgres = ThrowawayPostgres(folder)
    postgres.start()
    stack.callback(postgres.stop_if_running)
    redis = ThrowawayRedis(folder)
    redis.start()
    stack.callback(redis.stop)
    today = datetime.now(UTC).date()
    rng = random.Random()

    async def deploy(name: str, database_server: str, redis_url: str) -> Deployment:
        karbon = KarbonSandbox(size, today, folder / f"{name}-karbon.log")
        stack.callback(karbon.stop)
        await karbon.ready()
        database = await stack.enter_async_context(scratch_database(database_server))
        deployment = Deployment(name.replace(" ", "-"), database, redis_url, karbon, folder)
        stack.callback(deployment.stop_workers)
        return deployment

    clean = await deploy("clean", shared.database_url, shared.redis_url)
    on_own_postgres = await deploy("postgres restart", postgres.url, shared.redis_url)
    on_own_redis = await deploy("redis restart", shared.database_url, redis.url)
    faulty = await deploy("karbon faults", shared.database_url, shared.redis_url)
    outage = 20.0 if long else 5.0
    # Long: Redis stays away beyond the sync lock's 30 s, so the run also loses its lock.
    redis_outage = 45.0 if long else 5.0

    async def restart_postgres() -> str:
        when = await _into_the_run(on_own_postgres, rng)
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(outage)
        await asyncio.to_thread(postgres.start)
        return f"stopped {when} for {outage:.0f} s"

    async def restart_redis() -> str:
        when = await _into_the_run(on_own_redis, rng)
        await asyncio.to_thread(redis.stop)
        await asyncio.sleep(redis_outage)
        await asyncio.to_thread(redis.start)
        return f"stopped {when} for {redis_outage:.0f} s"

    rates = {kind: rate * 10 for kind, rate in REAL_FAULT_RATES.items()}
    if not long:
        rates["timeout_rate"] = 0.0
    await faulty.karbon.configure(
        {
            "faults": {
                **rates,
                "burst_429_length": 3,
                "burst_429_retry_after": 2,
                "timeout_seconds": 65,
            }
        }
    )
    await faulty.karbon.inject(ONE_OF_EACH + (["ok", "timeout"] if long else []))
    scenarios = [
        Scenario("PostgreSQL restarted", on_own_postgres, restart_postgres),
        Scenario("Redis restarted", on_own_redis, restart_redis),
        Scenario("Karbon faults", faulty),
    ]
    for deployment in (clean, *(s.deployment for s in scenarios)):
        await deployment.start_first_sync(*await deployment.karbon.ready())
        deployment.start_worker()
    return clean, scenarios


async def _into_the_run(deployment: Deployment, rng: random.Random) -> str:
    """Waits for a random moment of the running sync, after its first page; says which."""
    going = await deployment.run_going()
    if going is None:
        return "before the run started (it never did)"
    await asyncio.sleep(rng.uniform(0.5, 5))
    now = await deployment.run_state()
    pages = now.pages if now is not None else going.pages
    return f"while the run was {now.state if now else '?'}, {pages} pages in"


async def _disturb(scenario: Scenario) -> None:
    if scenario.disturb is not None:
        scenario.disturbed = await scenario.disturb()


async def _settle(scenario: Scenario, reference: Snapshot, deadline: float) -> None:
    """Wait for the scenario's run to end; a failed one is asked again, once."""
    deployment = scenario.deployment
    end = await deployment.run_end(deadline)
    scenario.seconds += _seconds(end)
    scenario.ends.append(_describe(end))
    if end is not None and end.state == "failed":
        partial = compare(reference, await deployment.snapshot(), partial=True)
        if partial.total:
            scenario.ends.append(f"corrupted before the new run: {partial.where}")
        await deployment.request_again()
        end = await deployment.run_end(deadline)
        scenario.ends.append(_describe(end))
        scenario.seconds += _seconds(end)
    scenario.differences = compare(reference, await deployment.snapshot())


def _seconds(end: RunState | None) -> float:
    return end.seconds or 0.0 if end is not None else 0.0


def _describe(end: RunState | None) -> str:
    if end is None:
        return "still running"
    if end.state == "failed":
        return f"failed ({end.error_code}: {end.error_message})"
    return end.state


def _clear(ending: str) -> bool:
    """A failure says what went wrong, in words: not empty, not a traceback."""
    return ending.startswith("failed (") and "None" not in ending and "Traceback" not in ending


async def _report(
    outcome: Outcome, clean: Deployment, clean_end: RunState | None, scenarios: list[Scenario]
) -> None:
    outcome.measure(
        "clean run", _describe(clean_end), "succeeded", held=_describe(clean_end) == "succeeded"
    )
    baseline = (await clean.karbon.counters())["requests"]
    outcome.measure("runs", sum(len(s.ends) for s in scenarios))
    compared = differences = 0
    for scenario in scenarios:
        final = scenario.ends[-1]
        earlier = scenario.ends[:-1]
        held = final == "succeeded" and all(_clear(e) for e in earlier)
        if scenario.disturbed:
            outcome.measure(f"{scenario.name}: server", scenario.disturbed)
        outcome.measure(
            f"{scenario.name}: outcomes", " -> ".join(scenario.ends), "succeeded", held=held
        )
        found = scenario.differences or Differences()
        compared += found.compared
        differences += found.total
        outcome.failures.extend(f"{scenario.name}: {where}" for where in found.where)
        deployment = scenario.deployment
        counters = await deployment.karbon.counters()
        faults = counters["faults_injected"]
        kept = await error_answers_kept(deployment.database_url, deployment.tenant_id)
        outcome.measure(
            f"{scenario.name}: Karbon requests (clean run {baseline})",
            f"{counters['requests']} in {scenario.seconds:.0f} s (clean run "
            f"{_seconds(clean_end):.0f} s); faults injected {sum(faults.values())} {faults}; "
            f"error answers kept in the raw history {kept}",
        )
    outcome.measure("rows compared", compared)
    outcome.measure(
        "differences (missing, extra, duplicated, different)",
        differences,
        "0",
        held=differences == 0,
    )


PROOF = Proof(
    name="service_faults",
    claim=(
        "With PostgreSQL or Redis stopped and restarted during a sync, and Karbon answering "
        "5xx, 429 bursts, timeouts, dropped connections, truncated and malformed bodies at ten "
        "times real rates, every run ends succeeded with data identical to a clean run, or "
        "failed with a clear error and nothing wrong stored, and then resumes to success."
    ),
    run=prove,
)
