"""Load: many people at once get their reports and sync status quickly, sign-ins included,
and a worker syncing a hundred firms at once keeps each firm's Karbon budget.

The API runs as production runs it: `reckonry api --workers N` in production mode, over
HTTP, on a database holding a synced sandbox firm. Each client is a person of the firm, on a
connection of their own. They arrive at random over the first seconds and sign in; a sign-in
the API sheds (429 or 503 with `Retry-After`) is tried again after about the time it says.
Then, for the measured time, each person at the dashboard waits a think time after every
answer before asking for a report (client profitability or summary) or the sync status, and
now and then signs in again. Every answer must be a 200 but the sign-ins shed on purpose;
the latency of each kind is measured from the clients. The long run holds reports and sync
status to a p99 under one second; the fast run, on whatever machine runs the tests, only
reports them. A short closed loop without think time or sign-ins follows, for information:
the most the deployment answers on this machine.

Then `benchmarks/sync_engine.py tenants` syncs sandbox firms at once, as a worker does, and
each firm's busiest 10 s and 60 s as the stand-in counted them at arrival must stay within
its budget.
"""

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from app.db import create_engine, create_sessionmaker, unit_of_work
from app.models import Role, User
from app.tenancy.security import hash_password
from proofs import Outcome, Proof
from proofs._world import (
    SIGNING_KEY,
    Scratch,
    free_port,
    sandbox_of,
    scratch_services,
    sync_sandbox_firms,
)


@dataclass(frozen=True)
class Size:
    clients: int
    seconds: float
    processes: int
    arrival: float
    """Clients arrive (and sign in) at uniformly random times over this many first seconds."""
    think: tuple[float, float]
    """A person waits uniformly between these many seconds after each answer."""
    stress_seconds: float
    firms: int
    """Sandbox firms the worker syncs at once."""
    firm_seconds: float


LONG = Size(
    clients=200,
    seconds=60,
    processes=max(2, os.cpu_count() or 1),
    arrival=30,
    think=(1.0, 5.0),
    stress_seconds=20,
    firms=100,
    firm_seconds=60,
)
FAST = Size(
    clients=20,
    seconds=8,
    processes=2,
    arrival=2,
    think=(0.2, 1.0),
    stress_seconds=3,
    firms=3,
    firm_seconds=12,
)
KINDS = ("report", "sync status", "sign-in")
SIGN_IN_GRACE = 120.0
"""How long after the last arrival a person may still be getting in (their sign-ins shed)."""
RE_SIGN_IN = 0.05
"""The share of a person's requests that are a new sign-in (another tab, an expired token)."""
SIGN_IN_SHED = {429, 503}
P99_TARGET = 1.0
BUSIEST = {"10s": 20, "60s": 108}
"""The most requests a firm may make in any 10 s and 60 s: its 1.8 req/s budget (18, 108),
with 2 in 10 s for the stand-in stamping together requests that arrived while it was busy."""
PASSWORD = "load horse battery staple"
WINDOW = {"from": "2026-01-01", "to": "2026-11-02"}
REPORTS = ("/api/v1/reports/client-profitability", "/api/v1/reports/summary")
BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "sync_engine.py"


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    shed: int = 0

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values()) + len(self.errors)


@dataclass(frozen=True)
class Phase:
    """What one phase of clients measured, with the load it ran under."""

    tally: Tally
    elapsed: float
    generator_cpu: float
    """CPU seconds this process (the load generator) used."""
    api_cpu: float | None
    """CPU seconds the API's processes used, where /proc tells."""
    load: tuple[float, float]
    """The machine's 1-minute load average at the start and the end."""


async def _people(scratch: Scratch, tenant_id: UUID, count: int) -> list[str]:
    """Members of the firm who sign in with `PASSWORD`, one per client."""
    engine = create_engine(scratch.urls.database_url, pool_size=1)
    emails = [f"person-{n}@load.example" for n in range(count)]
    password_hash = await asyncio.to_thread(hash_password, PASSWORD)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            for email in emails:
                session.add(
                    User(
                        tenant_id=tenant_id,
                        email=email,
                        password_hash=password_hash,
                        role=Role.MEMBER,
                    )
                )
    finally:
        await engine.dispose()
    return emails


def _environment(scratch: Scratch, port: int) -> dict[str, str]:
    settings = scratch.settings
    return {
        **os.environ,
        "RECKONRY_ENV": "production",
        "DATABASE_URL": scratch.urls.database_url,
        "REDIS_URL": scratch.urls.redis_url,
        "RECKONRY_REDIS_PREFIX": settings.redis_key_prefix,
        "RECKONRY_SECRET_KEY": SIGNING_KEY,
        "RECKONRY_ENCRYPTION_KEYS": settings.encryption_keys or "",
        "RECKONRY_API_HOST": "127.0.0.1",
        "RECKONRY_API_PORT": str(port),
        "RECKONRY_LOG_LEVEL": "WARNING",
    }


@dataclass(frozen=True)
class Api:
    base: str
    pid: int


@asynccontextmanager
async def _production_api(
    scratch: Scratch, processes: int, errors: list[str]
) -> AsyncIterator[Api]:
    """`reckonry api --workers N` on a free port, until it is ready. The processes' ERROR log
    lines are added to `errors` when they stop."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", "from app.cli import main; main()"]
    with tempfile.TemporaryFile() as output:
        process = await asyncio.create_subprocess_exec(
            *command,
            "api",
            "--workers",
            str(processes),
            env=_environment(scratch, port),
            stdout=output,
            stderr=output,
        )
        try:
            await _ready(base, process)
            yield Api(base, process.pid)
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()
            output.seek(0)
            logged = output.read().decode(errors="replace").splitlines()
            errors += [line[:3000] for line in logged if '"level": "ERROR"' in line][:5]


async def _ready(base: str, process: asyncio.subprocess.Process) -> None:
    """Until every process answers: /readyz 200 several times over, fresh connections."""
    deadline = time.monotonic() + 300  # each process imports the app: slow on a busy machine
    answered = 0
    while answered < 10:
        if process.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"`reckonry api` did not become ready: exit {process.returncode}")
        try:
            async with _client(base, 5) as client:
                answered = answered + 1 if (await client.get("/readyz")).is_success else 0
        except httpx.TransportError:
            answered = 0
        await asyncio.sleep(0.2)


_TICKS = os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int) -> float | None:
    """CPU seconds used so far by a process and its children, where /proc tells."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    own = (int(stat[11]) + int(stat[12])) / _TICKS
    return own + sum(_tree_cpu(int(child)) or 0.0 for child in children)


@asynccontextmanager
async def _measured(api: Api, tally: Tally) -> AsyncIterator[list[Phase]]:
    """Measures the clients run inside, counting into `tally`: yields a list that holds the
    `Phase` afterwards."""
    phases: list[Phase] = []
    started, cpu, api_cpu = time.monotonic(), time.process_time(), _tree_cpu(api.pid)
    load = os.getloadavg()[0]
    yield phases
    api_after = _tree_cpu(api.pid)
    phases.append(
        Phase(
            tally,
            time.monotonic() - started,
            time.process_time() - cpu,
            None if api_cpu is None or api_after is None else api_after - api_cpu,
            (load, os.getloadavg()[0]),
        )
    )


def _client(base: str, timeout: float) -> httpx.AsyncClient:
    """A client of its own. Plain HTTP: no certificates to load, which otherwise costs the
    load generator, on the same cores as the API, tens of milliseconds per client."""
    return httpx.AsyncClient(base_url=base, timeout=timeout, verify=False)


class Person:
    """A member of the firm at the dashboard, on a connection of their own."""

    def __init__(self, client: httpx.AsyncClient, email: str, seed: int) -> None:
        self._client = client
        self._email = email
        self._chooser = random.Random(seed)
        self.tally = Tally()
        """Where the person's requests are counted; each phase gives its own."""
        self.headers: dict[str, str] | None = None

    async def arrive(self, size: Size, until: float) -> None:
        await asyncio.sleep(self._chooser.uniform(0, size.arrival))
        await self.sign_in(until)

    async def sign_in(self, until: float) -> None:
        """Until signed in. A shed sign-in is tried again after its `Retry-After`, give or
        take: people do not all click again at the same moment."""
        while time.monotonic() < until:
            answer = await self.ask("sign-in")
            if answer is None:
                return
            if answer.status_code == 200:
                self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
                return
            if not _shed("sign-in", answer):
                return
            await asyncio.sleep(float(answer.headers["retry-after"]) * self._chooser.uniform(1, 2))

    async def use(self, size: Size, until: float) -> None:
        """Thinks, then asks for a report or the sync status, or now and then signs in again."""
        while self.headers and time.monotonic() < until:
            await asyncio.sleep(self._chooser.uniform(*size.think))
            if time.monotonic() >= until:
                return
            if self._chooser.random() < RE_SIGN_IN:
                await self.sign_in(until)
            else:
                await self.ask(self._chooser.choice(("report", "sync status")))

    async def hurry(self, until: float) -> None:
        """Asks again as soon as they have their answer: no think time, no sign-ins."""
        while self.headers and time.monotonic() < until:
            await self.ask(self._chooser.choice(("report", "sync status")))

    async def ask(self, kind: str) -> httpx.Response | None:
        """One request, measured and counted; None when it failed to get an answer."""
        tally, started = self.tally, time.perf_counter()
        try:
            answer = await _request(
                self._client, kind, self.headers or {}, self._email, self._chooser
            )
        except httpx.HTTPError as error:
            tally.errors.append(f"{kind}: {type(error).__name__} {error}")
            return None
        tally.latencies[kind].append(time.perf_counter() - started)
        tally.statuses[f"{kind} {answer.status_code}"] += 1
        if _shed(kind, answer):
            tally.shed += 1
        elif answer.status_code != 200:
            tally.errors.append(f"{kind}: {answer.status_code} {answer.text[:200]}")
        return answer


@asynccontextmanager
async def _people_at(base: str, emails: list[str]) -> AsyncIterator[list[Person]]:
    async with AsyncExitStack() as stack:
        yield [
            Person(await stack.enter_async_context(_client(base, 30)), email, seed)
            for seed, email in enumerate(emails)
        ]


async def _phase(
    api: Api, people: list[Person], seconds: float, act: Callable[[Person, float], Awaitable[None]]
) -> Phase:
    """Every person acting at once for `seconds` (a person's act may finish its request)."""
    tally = Tally()
    for person in people:
        person.tally = tally
    async with _measured(api, tally) as phase:
        until = time.monotonic() + seconds
        await asyncio.gather(*(act(person, until) for person in people))
    return phase[0]


async def _warm_up(
    base: str, admin: dict[str, str], email: str, clients: int, tally: Tally
) -> None:
    """A round of every kind from several connections at once, unmeasured, so each process
    has opened its connections and prepared its statements (as a running deployment has)
    before the clock starts."""

    async def one_round() -> None:
        async with _client(base, 120) as client:
            for kind in KINDS:
                answer = await _request(client, kind, admin, email, random.Random(0))
                if answer.status_code != 200 and not _shed(kind, answer):
                    tally.errors.append(f"{kind} (warming up): {answer.status_code}")

    await asyncio.gather(*(one_round() for _ in range(min(clients, 20))))


def _shed(kind: str, answer: httpx.Response) -> bool:
    """A sign-in refused on purpose to keep CPU for the rest, saying when to come back."""
    return (
        kind == "sign-in" and answer.status_code in SIGN_IN_SHED and "retry-after" in answer.headers
    )


async def _request(
    client: httpx.AsyncClient,
    kind: str,
    headers: dict[str, str],
    email: str,
    chooser: random.Random,
) -> httpx.Response:
    if kind == "report":
        return await client.get(chooser.choice(REPORTS), headers=headers, params=WINDOW)
    if kind == "sync status":
        return await client.get("/api/v1/sync", headers=headers)
    return await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def _run(long: bool) -> Outcome:
    size = LONG if long else FAST
    logged: list[str] = []
    warming = Tally()
    async with scratch_services() as scratch:
        (firm,) = await sync_sandbox_firms(scratch, sandbox_of(("Demo firm", 3)))
        emails = await _people(scratch, firm.tenant_id, size.clients)
        async with (
            _production_api(scratch, size.processes, logged) as api,
            _people_at(api.base, emails) as people,
        ):
            await _warm_up(api.base, firm.admin, emails[0], size.clients, warming)
            arrival = await _phase(
                api, people, size.arrival + SIGN_IN_GRACE, lambda one, by: one.arrive(size, by)
            )
            here = [person for person in people if person.headers]
            dashboard = await _phase(api, here, size.seconds, lambda one, by: one.use(size, by))
            stress = await _phase(api, here, size.stress_seconds, Person.hurry)
    outcome = Outcome()
    _arrival_figures(outcome, size, arrival, len(here))
    _people_figures(outcome, size, dashboard, len(here), held_to_target=long)
    _stress_figures(outcome, stress)
    outcome.failures += sorted(set(warming.errors))[:5]
    outcome.failures += [f"the API logged: {line}" for line in logged]
    _firm_budgets(outcome, size, await asyncio.to_thread(_sync_firms, size))
    return outcome


def _load_figures(outcome: Outcome, label: str, phase: Phase) -> None:
    requests = phase.tally.requests
    outcome.measure(f"{label}: requests, per second", f"{requests}, {requests / phase.elapsed:.1f}")
    api = "n/a" if phase.api_cpu is None else f"{phase.api_cpu / phase.elapsed:.0%} of one core"
    per_request = (
        f", {1000 * phase.api_cpu / requests:.1f} ms per request"
        if phase.api_cpu is not None and requests
        else ""
    )
    outcome.measure(
        f"{label}: CPU of the API processes; of the load generator; load average at start, end",
        f"{api}{per_request}; {phase.generator_cpu / phase.elapsed:.0%} of one core; "
        f"{phase.load[0]:.1f}, {phase.load[1]:.1f} on {os.cpu_count()} cores",
    )


def _latencies(tally: Tally, kind: str) -> tuple[int, str, float]:
    values = tally.latencies[kind]
    p50, p95, p99 = (_percentile(values, share) * 1000 for share in (0.5, 0.95, 0.99))
    return len(values), f"{len(values)}, {p50:.0f} / {p95:.0f} / {p99:.0f}", p99


def _arrival_figures(outcome: Outcome, size: Size, phase: Phase, signed_in: int) -> None:
    tally = phase.tally
    outcome.measure(
        "arrival: people signed in, seconds until the last, arriving over",
        f"{signed_in} of {size.clients}, {phase.elapsed:.1f}, {size.arrival:g} s",
        f"all within {size.arrival + SIGN_IN_GRACE:g} s",
        held=signed_in == size.clients,
    )
    _load_figures(outcome, "arrival", phase)
    outcome.measure("arrival: errors", len(tally.errors), "0", held=not tally.errors)
    outcome.measure("arrival: sign-ins shed (429/503 with Retry-After)", tally.shed)
    outcome.measure("arrival: sign-in: n, p50 / p95 / p99 ms", _latencies(tally, "sign-in")[1])
    outcome.failures += sorted(set(tally.errors))[:10]


def _people_figures(
    outcome: Outcome, size: Size, phase: Phase, present: int, *, held_to_target: bool
) -> None:
    tally = phase.tally
    outcome.measure(
        "people: API processes, people at the dashboard (signed in), seconds, think time",
        f"{size.processes}, {present}, {phase.elapsed:.1f}, "
        f"{size.think[0]:g} to {size.think[1]:g} s",
    )
    _load_figures(outcome, "people", phase)
    outcome.measure("people: errors", len(tally.errors), "0", held=not tally.errors)
    outcome.measure("people: sign-ins shed (429/503 with Retry-After)", tally.shed)
    for kind in KINDS:
        answered, figure, p99 = _latencies(tally, kind)
        bounded = held_to_target and kind != "sign-in"
        outcome.measure(
            f"people: {kind}: n, p50 / p95 / p99 ms",
            figure,
            f"p99 < {P99_TARGET * 1000:.0f} ms" if bounded else "",
            held=not bounded or p99 < P99_TARGET * 1000,
        )
        if not answered and kind != "sign-in":
            outcome.failures.append(f"no {kind} was answered")
    outcome.failures += sorted(set(tally.errors))[:20]


def _stress_figures(outcome: Outcome, phase: Phase) -> None:
    """For information: what the deployment answers when nobody pauses."""
    _load_figures(outcome, "closed loop, no pause", phase)
    outcome.measure("closed loop, no pause: errors (not held)", len(phase.tally.errors))
    for kind in ("report", "sync status"):
        _, figure, _ = _latencies(phase.tally, kind)
        outcome.measure(f"closed loop, no pause: {kind}: n, p50 / p95 / p99 ms", figure)


@dataclass(frozen=True)
class FirmSyncs:
    summary: dict[str, Any] | None
    printed: str


def _sync_firms(size: Size) -> FirmSyncs:
    """`benchmarks/sync_engine.py tenants`: the firms' first syncs at once, in a process of
    their own tuned as `reckonry worker` is, against the sandbox in another."""
    with tempfile.TemporaryDirectory() as directory:
        summary = Path(directory) / "summary.json"
        command = [
            *(sys.executable, str(BENCHMARK), "tenants", "--size", "small"),
            *("--tenants", str(size.firms), "--seconds", str(size.firm_seconds)),
            *("--summary", str(summary)),
        ]
        ran = subprocess.run(
            command, cwd=BENCHMARK.parent.parent, capture_output=True, text=True, check=False
        )
        printed = ran.stdout + (ran.stderr[-3000:] if ran.returncode else "")
        runs = json.loads(summary.read_text()) if summary.exists() else None
    return FirmSyncs(runs[0] if runs else None, printed)


def _firm_budgets(outcome: Outcome, size: Size, syncs: FirmSyncs) -> None:
    if syncs.summary is None:
        outcome.failures.append(f"the firms' syncs did not run: {syncs.printed}")
        return
    tenants = syncs.summary["tenants"]
    outcome.measure(
        "worker: firms syncing at once, seconds", f"{len(tenants)}, {size.firm_seconds:g}"
    )
    for window, most in BUSIEST.items():
        busiest = max(tenant["busiest"][window] for tenant in tenants)
        outcome.measure(
            f"worker: busiest {window} of any firm at the stand-in",
            busiest,
            f"<= {most}",
            held=busiest <= most,
        )
    refused = sum(tenant["rate_limited_429"] for tenant in tenants)
    outcome.measure("worker: 429s from the stand-in", refused, "0", held=refused == 0)
    rates = sorted(tenant["rate"] for tenant in tenants)
    outcome.measure(
        "worker: req/s per firm, slowest / mean; firms at >= 95% of 1.8",
        f"{rates[0]:.3f} / {sum(rates) / len(rates):.3f}; "
        f"{sum(rate >= 0.95 * 1.8 for rate in rates)}",
    )
    summary = syncs.summary
    per_request, busy = summary["worker_ms_per_request"], summary["machine_busy"]
    outcome.measure(
        "worker: CPU (ms per request); sandbox; PostgreSQL; machine busy",
        f"{summary['worker_cpu']} ({'n/a' if per_request is None else f'{per_request:.1f}'}); "
        f"{summary['sandbox_cpu']}; {summary['postgres_cpu']}; "
        f"{'n/a' if busy is None else f'{busy:.0%}'}",
    )
    outcome.measure("worker: event loop lag", summary["event_loop_lag"])
    outcome.measure("worker: syncs at the end", summary["syncs"])


PROOF = Proof(
    name="load",
    claim="With many people at once at the dashboard, mixing reports, sync status and "
    "sign-ins against the API run as in production (several processes), every answer is a "
    "200 but deliberately shed sign-ins, and reports and sync status answer with a p99 under "
    "one second; a worker syncing many firms at once keeps each firm's Karbon budget.",
    run=_run,
)
