"""Load: many people at once get their reports and sync status quickly, sign-ins included.

The API runs as production runs it: `reckonry api --workers N` in production mode, over
HTTP, on a database holding a synced sandbox firm. Concurrent clients, each on its own
connection, loop for a fixed time over a mix of reports (client profitability, summary),
sync status and sign-ins (a right password). Every answer must be a 200 but the sign-ins the
API sheds on purpose (429 or 503 with `Retry-After`); the latency of each kind is measured
from the clients. The long run holds reports and sync status to a p99 under one second; the
fast run, on whatever machine runs the tests, only reports them.
"""

import asyncio
import os
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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


LONG = Size(clients=200, seconds=60, processes=max(2, os.cpu_count() or 1))
FAST = Size(clients=20, seconds=5, processes=2)
MIX = {"report": 4, "sync status": 4, "sign-in": 2}
"""How often each kind of request is made, relative to the others."""
SIGN_IN_SHED = {429, 503}
P99_TARGET = 1.0
PASSWORD = "load horse battery staple"
PEOPLE = 10
WINDOW = {"from": "2026-01-01", "to": "2026-11-02"}
REPORTS = ("/api/v1/reports/client-profitability", "/api/v1/reports/summary")


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    shed: int = 0
    logged: list[str] = field(default_factory=list)
    """The API's ERROR log lines."""


async def _people(scratch: Scratch, tenant_id: UUID) -> list[str]:
    """Members of the firm who sign in with `PASSWORD`."""
    engine = create_engine(scratch.urls.database_url, pool_size=1)
    emails = [f"person-{n}@load.example" for n in range(PEOPLE)]
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


@asynccontextmanager
async def _production_api(
    scratch: Scratch, processes: int, errors: list[str]
) -> AsyncIterator[str]:
    """`reckonry api --workers N` on a free port, until it is ready; its base URL. The
    processes' ERROR log lines are added to `errors` when they stop."""
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
            await _ready(base, process, output)
            yield base
        finally:
            if process.returncode is None:
                process.terminate()
                await process.wait()
            output.seek(0)
            logged = output.read().decode(errors="replace").splitlines()
            errors += [line[:3000] for line in logged if '"level": "ERROR"' in line][:5]


async def _ready(base: str, process: asyncio.subprocess.Process, output: object) -> None:
    """Until every process answers: /readyz 200 several times over, fresh connections."""
    deadline = time.monotonic() + 300  # each process imports the app: slow on a busy machine
    answered = 0
    while answered < 10:
        if process.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"`reckonry api` did not become ready: exit {process.returncode}")
        try:
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                answered = answered + 1 if (await client.get("/readyz")).is_success else 0
        except httpx.TransportError:
            answered = 0
        await asyncio.sleep(0.2)


async def _client(
    base: str, admin: dict[str, str], emails: list[str], until: float, tally: Tally, seed: int
) -> None:
    chooser = random.Random(seed)
    kinds, weights = zip(*MIX.items(), strict=True)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < until:
            kind = chooser.choices(kinds, weights)[0]
            started = time.perf_counter()
            try:
                answer = await _request(client, kind, admin, chooser.choice(emails), chooser)
            except httpx.HTTPError as error:
                tally.errors.append(f"{kind}: {type(error).__name__} {error}")
                continue
            tally.latencies[kind].append(time.perf_counter() - started)
            tally.statuses[f"{kind} {answer.status_code}"] += 1
            if answer.status_code == 200:
                continue
            if _shed(kind, answer):
                tally.shed += 1
                continue
            tally.errors.append(f"{kind}: {answer.status_code} {answer.text[:200]}")


async def _warm_up(
    base: str, admin: dict[str, str], emails: list[str], clients: int, tally: Tally
) -> None:
    """A round of every kind from several connections at once, unmeasured, so each process
    has opened its connections and prepared its statements (as a running deployment has)
    before the clock starts."""

    async def one_round() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            for kind in MIX:
                answer = await _request(client, kind, admin, emails[0], random.Random(0))
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
    admin: dict[str, str],
    email: str,
    chooser: random.Random,
) -> httpx.Response:
    if kind == "report":
        return await client.get(chooser.choice(REPORTS), headers=admin, params=WINDOW)
    if kind == "sync status":
        return await client.get("/api/v1/sync", headers=admin)
    return await client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def _run(long: bool) -> Outcome:
    size = LONG if long else FAST
    async with scratch_services() as scratch:
        (firm,) = await sync_sandbox_firms(scratch, sandbox_of(("Demo firm", 3)))
        emails = await _people(scratch, firm.tenant_id)
        tally = Tally()
        async with _production_api(scratch, size.processes, tally.logged) as base:
            await _warm_up(base, firm.admin, emails, size.clients, tally)
            started = time.monotonic()
            until = started + size.seconds
            await asyncio.gather(
                *(
                    _client(base, firm.admin, emails, until, tally, seed)
                    for seed in range(size.clients)
                )
            )
            elapsed = time.monotonic() - started
    return _outcome(size, tally, elapsed, long)


def _outcome(size: Size, tally: Tally, elapsed: float, long: bool) -> Outcome:
    outcome = Outcome()
    requests = sum(len(values) for values in tally.latencies.values()) + len(tally.errors)
    outcome.measure(
        "API processes, clients, seconds", f"{size.processes}, {size.clients}, {elapsed:.1f}"
    )
    outcome.measure("requests", requests)
    outcome.measure("requests per second", f"{requests / elapsed:.1f}")
    outcome.measure("errors", len(tally.errors), "0", held=not tally.errors)
    outcome.measure("sign-ins shed (429/503 with Retry-After)", tally.shed)
    for kind in MIX:
        values = tally.latencies[kind]
        p50, p95, p99 = (_percentile(values, share) * 1000 for share in (0.5, 0.95, 0.99))
        bounded = long and kind != "sign-in"
        outcome.measure(
            f"{kind}: n, p50 / p95 / p99 ms",
            f"{len(values)}, {p50:.0f} / {p95:.0f} / {p99:.0f}",
            f"p99 < {P99_TARGET * 1000:.0f} ms" if bounded else "",
            held=not bounded or p99 < P99_TARGET * 1000,
        )
        if not values:
            outcome.failures.append(f"no {kind} was answered")
    outcome.failures += sorted(set(tally.errors))[:20]
    outcome.failures += [f"the API logged: {line}" for line in tally.logged]
    return outcome


PROOF = Proof(
    name="load",
    claim="With many clients at once mixing reports, sync status and sign-ins against the API "
    "run as in production (several processes), every answer is a 200 but deliberately shed "
    "sign-ins, and reports and sync status answer with a p99 under one second.",
    run=_run,
)
