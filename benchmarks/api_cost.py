"""CPU per API request of each kind the load proof sends, in process, without wall time.

    uv run python benchmarks/api_cost.py [options]

Options:
    --requests N        requests of each kind (default 300; sign-ins a tenth, shed
                        sign-ins a thirtieth of it)
    --people N          people of the firm whose sign-in tokens the requests take in turn
                        (default 200, as the load proof)
    --pace S            seconds between requests, slept (not counted as CPU): the pace of
                        one API process in the load proof (default 0.04, 25 requests a second)
    --kinds K,K         only these kinds (as printed: sync, profitability, summary, sign-in,
                        sign-in shed)
    --profile KIND      also run the requests of KIND under cProfile and print their own CPU
                        by package and the top functions
    --baseline DIR      run this script in the checkout DIR too (with DIR's `.venv`), then
                        in this one, `--rounds` times in turn, and print both side by side
    --rounds N          with `--baseline`: alternations (default 2)

The world is the load proof's (`proofs/load.py`): a tiny sandbox firm synced into a scratch
database and its reports refreshed, one member per person. The app is the production app
(`RECKONRY_ENV=production`, log level WARNING as the proof runs it) over the ASGI transport,
so this process's CPU is the API's plus its client's (under a millisecond a request). The
requests are the proof's: `GET /api/v1/sync`, the client profitability report and the
summary over its window, a sign-in, and a sign-in shed (every password slot held meanwhile,
so it waits its 2 s for one and is refused with 503). Each person's token is used once every
`--people` requests, so, as in the proof, credentials kept in process for a second are
rarely found there, while the report context and pages kept per refresh are.

For each kind it prints the CPU per request of this process and of the PostgreSQL backends
serving the scratch database (from /proc: only when PostgreSQL runs on this host), and the
statements SQLAlchemy sent per request (BEGIN and COMMIT included, the pool's pre-ping not).
CPU is what this measures: a request costs more of it when the process sleeps between
requests (the pace) than back to back, so compare figures of one pace and one run.

Uses `DATABASE_URL` / `REDIS_URL` when set, the embedded servers otherwise.

Last measured (`--baseline` at the code before the summary was served per refresh, sign-ins
waited in `flock` and credentials were read as columns; 2 cores, other work running: load
average 2.4 to 4.8), API ms per request, before (two rounds) / after (two rounds):

    sync             8.4  8.9 /   7.6  8.3
    profitability    6.4  6.8 /   5.5  5.8
    summary         17.2 19.5 /   5.3  5.3
    sign-in          182  203 /   176  186
    sign-in shed    45.2 46.2 /   6.3  6.4
"""

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
from httpx import ASGITransport, AsyncClient, Response
from sqlalchemy import event, select
from sqlalchemy.engine import make_url

from app import event_loops
from app.api.app import create_app
from app.db import create_engine, create_sessionmaker, unit_of_work
from app.models import User
from app.observability import configure_logging
from app.secrets import resolve_secrets
from app.tenancy import password_work
from app.tenancy.security import issue_token
from proofs._world import Scratch, sandbox_of, scratch_services, sync_sandbox_firms
from proofs.load import PASSWORD, REPORTS, WINDOW, _people

KINDS = ("sync", "profitability", "summary", "sign-in", "sign-in shed")
SHED = 503
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Cost:
    kind: str
    requests: int
    api_ms: float
    """CPU of this process per request (the API and its client)."""
    postgres_ms: float | None
    """CPU of the scratch database's PostgreSQL backends per request."""
    statements: float


async def _tokens(scratch: Scratch, people: int) -> tuple[list[str], list[str]]:
    """The people's e-mails and a sign-in token of each."""
    keys = resolve_secrets(scratch.settings).signing_keys
    engine = create_engine(scratch.urls.database_url, pool_size=1)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            rows = (
                await session.execute(
                    select(User.id, User.email).where(User.email.like("person-%"))
                )
            ).all()
    finally:
        await engine.dispose()
    return [email for _, email in rows], [issue_token(keys, id_, 0).token for id_, _ in rows]


def _plain_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


async def _backend_pids(monitor: asyncpg.Connection) -> list[int]:
    rows = await monitor.fetch(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return [row["pid"] for row in rows]


def _cpu_of(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _postgres_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each backend this host shows (none when PostgreSQL runs elsewhere)."""
    return {pid: cpu for pid in pids if (cpu := _cpu_of(pid)) is not None}


class Requests:
    def __init__(self, client: AsyncClient, emails: list[str], tokens: list[str]) -> None:
        self._client = client
        self._emails = emails
        self._headers = [{"Authorization": f"Bearer {token}"} for token in tokens]
        self._turn = 0

    def _next(self) -> int:
        self._turn += 1
        return self._turn % len(self._headers)

    async def sync(self) -> Response:
        return await self._client.get("/api/v1/sync", headers=self._headers[self._next()])

    async def profitability(self) -> Response:
        headers = self._headers[self._next()]
        return await self._client.get(REPORTS[0], headers=headers, params=WINDOW)

    async def summary(self) -> Response:
        headers = self._headers[self._next()]
        return await self._client.get(REPORTS[1], headers=headers, params=WINDOW)

    async def sign_in(self) -> Response:
        email = self._emails[self._next()]
        return await self._client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        )

    def of(self, kind: str) -> Callable[[], Awaitable[Response]]:
        return {
            "sync": self.sync,
            "profitability": self.profitability,
            "summary": self.summary,
            "sign-in": self.sign_in,
            "sign-in shed": self.sign_in,
        }[kind]


async def _measure(
    kind: str,
    ask: Callable[[], Awaitable[Response]],
    count: int,
    pace: float,
    monitor: asyncpg.Connection,
    statements: list[int],
    profiler: cProfile.Profile | None,
) -> Cost:
    pids = await _backend_pids(monitor)
    postgres_before = _postgres_cpu(pids)
    sent_before = statements[0]
    cpu = time.process_time()
    for _ in range(count):
        if profiler:
            profiler.enable()
        answer = await ask()
        if profiler:
            profiler.disable()
        if answer.status_code != (SHED if kind == "sign-in shed" else 200):
            raise RuntimeError(f"{kind}: {answer.status_code} {answer.text[:300]}")
        await asyncio.sleep(pace)
    api = time.process_time() - cpu
    sent = statements[0] - sent_before
    pids = await _backend_pids(monitor)
    postgres_after = _postgres_cpu(pids)
    postgres = sum(cpu - postgres_before.get(pid, 0.0) for pid, cpu in postgres_after.items())
    on_host = bool(postgres_after)
    return Cost(
        kind,
        count,
        1000 * api / count,
        1000 * postgres / count if on_host else None,
        sent / count,
    )


def _count_statements(engine: Any) -> list[int]:
    sent = [0]

    def one(*_: Any) -> None:
        sent[0] += 1

    for name in ("before_cursor_execute", "begin", "commit"):
        event.listen(engine.sync_engine, name, one)
    return sent


COUNTS = {"sign-in": 10, "sign-in shed": 30}
"""Sign-ins are fewer: an argon2 check, or a 2 s wait for a slot, each."""


async def _run(arguments: argparse.Namespace) -> list[Cost]:
    configure_logging("WARNING")
    # Password checks take slots of this run's own: others' sign-ins on this host neither
    # slow these nor are shed by them.
    slot_directory = Path(tempfile.mkdtemp(prefix="api-cost-slots-"))
    password_work.use_slot_directory(slot_directory)
    async with scratch_services() as scratch:
        (firm,) = await sync_sandbox_firms(scratch, sandbox_of(("Demo firm", 3)))
        await _people(scratch, firm.tenant_id, arguments.people)
        emails, tokens = await _tokens(scratch, arguments.people)
        settings = scratch.settings.model_copy(
            update={"environment": "production", "log_level": "WARNING"}
        )
        app = create_app(settings, scratch.urls)
        monitor = await asyncpg.connect(_plain_dsn(scratch.urls.database_url))
        try:
            async with (
                app.router.lifespan_context(app),
                AsyncClient(transport=ASGITransport(app=app), base_url="http://api") as client,
            ):
                requests = Requests(client, emails, tokens)
                statements = _count_statements(app.state.engine)
                measure = Measure(arguments, monitor, statements, slot_directory)
                return [await measure.kind(kind, requests.of(kind)) for kind in arguments.kinds]
        finally:
            await monitor.close()


class Measure:
    def __init__(
        self,
        arguments: argparse.Namespace,
        monitor: asyncpg.Connection,
        statements: list[int],
        slot_directory: Path,
    ) -> None:
        self._arguments = arguments
        self._slot_directory = slot_directory
        self._monitor = monitor
        self._statements = statements

    async def kind(self, kind: str, ask: Callable[[], Awaitable[Response]]) -> Cost:
        count = max(1, self._arguments.requests // COUNTS.get(kind, 1))
        with _slots_held(self._slot_directory if kind == "sign-in shed" else None):
            for _ in range(min(count, 20)):  # warm-up
                await ask()
            profiler = (
                cProfile.Profile(time.process_time) if self._arguments.profile == kind else None
            )
            cost = await _measure(
                kind, ask, count, self._arguments.pace, self._monitor, self._statements, profiler
            )
        if profiler:
            _print_profile(profiler, count)
        return cost


@contextmanager
def _slots_held(directory: Path | None) -> Iterator[None]:
    """Every password slot of `directory` taken, so that sign-ins wait for one and are shed
    (503); nothing with None."""
    if directory is None:
        yield
        return
    slots = password_work.HostSlots(directory, password_work.host_slots())
    taken = [slots.try_take() for _ in range(password_work.host_slots())]
    try:
        yield
    finally:
        for slot in taken:
            if slot is not None:
                slots.give_back(slot)


def _print_profile(profiler: cProfile.Profile, count: int) -> None:
    """The functions' own CPU (cumulative times of coroutines count each resumption), and
    its sum per package: where a request's CPU goes."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    by_package: dict[str, float] = {}
    for (path, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package(path)] = by_package.get(_package(path), 0.0) + own
    print(
        f"own CPU per request by package (ms, under the profiler), {count} requests:",
        file=sys.stderr,
    )
    for package, own in sorted(by_package.items(), key=lambda item: -item[1]):
        print(f"  {package:<40} {1000 * own / count:6.2f}", file=sys.stderr)
    printed = io.StringIO()
    pstats.Stats(profiler, stream=printed).sort_stats("tottime").print_stats(50)
    print(printed.getvalue(), file=sys.stderr)


def _package(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/")[1].split("/")[0]
    if path.startswith("~") or path.startswith("<"):
        return "builtins"
    root = Path(__file__).resolve().parent.parent
    if path.startswith(str(root)):
        return "/".join(Path(path).relative_to(root).parts[:2])
    return "python"


def _line(cost: Cost) -> str:
    postgres = "n/a" if cost.postgres_ms is None else f"{cost.postgres_ms:6.2f}"
    return f"{cost.api_ms:7.2f} {postgres:>7} {cost.statements:5.1f}"


def _print(columns: dict[str, list[list[Cost]]]) -> None:
    """Each checkout's rounds: API ms, PostgreSQL ms and statements per request."""
    heading = "".join(
        f" | {name[-24:]:>24} r{n + 1}"
        for name, rounds in columns.items()
        for n in range(len(rounds))
    )
    print(f"{'kind':<14}{heading}")
    print(f"{'':<14}" + " | api ms   pg ms stmts" * sum(len(r) for r in columns.values()))
    first = next(iter(columns.values()))[0]
    for index, kind in enumerate(cost.kind for cost in first):
        cells = [_line(one[index]) for rounds in columns.values() for one in rounds]
        print(f"{kind:<14}" + "".join(f" | {cell}" for cell in cells))


def _in_checkout(directory: Path, arguments: argparse.Namespace) -> list[Cost]:
    python = directory / ".venv" / "bin" / "python"
    command = [
        str(python),
        str(Path(__file__).resolve()),
        *("--requests", str(arguments.requests)),
        *("--people", str(arguments.people)),
        *("--pace", str(arguments.pace)),
        *("--kinds", ",".join(arguments.kinds)),
        "--json",
    ]
    ran = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
    if ran.returncode:
        raise RuntimeError(f"{directory}: {ran.stderr[-3000:]}")
    return [Cost(**one) for one in json.loads(ran.stdout.strip().splitlines()[-1])]


def _kinds(value: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in value.split(","))
    if unknown := set(kinds) - set(KINDS):
        raise argparse.ArgumentTypeError(f"unknown kinds {sorted(unknown)}: {', '.join(KINDS)}")
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--pace", type=float, default=0.04)
    parser.add_argument("--kinds", type=_kinds, default=KINDS)
    parser.add_argument("--profile", choices=KINDS)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.baseline:
        here = Path(__file__).resolve().parent.parent
        columns: dict[str, list[list[Cost]]] = {str(arguments.baseline): [], str(here): []}
        for _ in range(arguments.rounds):
            for directory in (arguments.baseline, here):
                columns[str(directory)].append(_in_checkout(directory, arguments))
        _print(columns)
        return
    costs = event_loops.run(_run(arguments))
    if arguments.json:
        print(json.dumps([asdict(cost) for cost in costs]))
    else:
        _print({"this checkout": [costs]})


if __name__ == "__main__":
    main()
