"""First syncs of a sandbox firm by real worker processes, for the proofs that break things.

A `Deployment` is what production runs, shrunk to one firm: a database, a Redis prefix, the
Karbon it reads (a `KarbonSandbox`, its own server process) and `reckonry worker` processes
that can be killed and started again. `snapshot` reads back everything a sync stored, with
what legitimately differs between two runs of the same firm left out (ids of runs, times, the
sandbox's address), and `compare` counts the rows one run lost, added, duplicated or changed
against another.
"""

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg  # type: ignore[import-untyped]
import httpx
from arq.connections import ArqRedis
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from app.db import create_engine, create_sessionmaker, unit_of_work
from app.models import KarbonConnection, SyncKind, SyncTrigger, Tenant
from app.secrets import resolve_secrets
from app.settings import Settings
from app.sync.control import request_sync
from app.sync.lock import tenant_sync_lock_key
from app.sync.raw_versions import read_version
from app.tenancy.crypto import CredentialCipher, mask
from sandbox.process import free_port

SANDBOX_TENANT = "Demo firm"
"""The name `python -m sandbox serve` gives its one tenant."""
KARBON_PAGE_SIZE = 100
"""Karbon's page: one page's requests are its list request and its records' detail calls."""
BUDGET = "2.0"
"""Karbon's own limit, the fastest a worker may be set to read: the proofs are about what
survives, not about pace, and the sandbox is not rate limited for them."""

T = TypeVar("T")


def reckonry_command() -> list[str]:
    """The installed `reckonry` console script of this environment."""
    return [str(Path(sys.executable).with_name("reckonry"))]


async def until(
    condition: Callable[[], Awaitable[T | None]], seconds: float, every: float = 0.2
) -> T | None:
    """The condition's first truthy value within `seconds`, else None."""
    deadline = time.monotonic() + seconds
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(every)


# -- Karbon ------------------------------------------------------------------------------


class KarbonSandbox:
    """A simulated Karbon serving one firm from its own process (`python -m sandbox serve`)."""

    def __init__(self, size: str, today: date, log: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "sandbox", "serve", "--size", size, "--seed", "0"]
        command += ["--today", today.isoformat(), "--port", str(self.port), "--no-rate-limit"]
        command += ["--latency", "constant", "--latency-median", "0.05"]
        self._log = log.open("wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    async def ready(self, seconds: float = 60) -> tuple[str, str]:
        """The tenant's AccessKey and Bearer token, once the server answers."""

        async def tenants() -> list[dict[str, Any]] | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Karbon sandbox exited: see {self._log.name}")
            try:
                return (await self._admin("GET", "/_sandbox/tenants")).json()  # type: ignore[no-any-return]
            except httpx.TransportError:
                return None

        listed = await until(tenants, seconds)
        if not listed:
            raise RuntimeError(f"the Karbon sandbox did not start within {seconds:.0f} s")
        return listed[0]["access_key"], listed[0]["bearer_token"]

    async def counters(self) -> dict[str, Any]:
        return (await self._admin("GET", f"/_sandbox/tenants/{SANDBOX_TENANT}/counters")).json()  # type: ignore[no-any-return]

    async def configure(self, changes: dict[str, Any]) -> None:
        (await self._admin("PATCH", "/_sandbox/config", json=changes)).raise_for_status()

    async def inject(self, faults: list[str]) -> None:
        path = f"/_sandbox/tenants/{SANDBOX_TENANT}/faults"
        (await self._admin("POST", path, json={"faults": faults})).raise_for_status()

    async def _admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
            return await client.request(method, path, **kwargs)

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


def stop_process(process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=seconds)


# -- a deployment ------------------------------------------------------------------------


@dataclass
class RunState:
    state: str
    error_code: str | None
    error_message: str | None
    seconds: float | None
    """From the run's request to its end."""
    pages: int
    """List pages committed so far."""

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")


@dataclass
class Deployment:
    """One firm's database, Redis prefix and Karbon, and the worker processes syncing it."""

    name: str
    database_url: str
    redis_url: str
    karbon: KarbonSandbox
    workdir: Path
    prefix: str = field(default_factory=lambda: f"proof-{uuid.uuid4().hex[:10]}")
    encryption_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tenant_id: UUID | None = None
    run_id: UUID | None = None

    def settings(self) -> Settings:
        return Settings(_env_file=None, **self._variables())  # type: ignore[arg-type]

    def _variables(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "RECKONRY_ENV": "test",
            "RECKONRY_REDIS_PREFIX": self.prefix,
            "RECKONRY_SECRET_KEY": "proof-signing-key-" + "x" * 32,
            "RECKONRY_ENCRYPTION_KEYS": self.encryption_key,
            "RECKONRY_DATA_DIR": str(self.workdir / "data"),
            "RECKONRY_WORKER_METRICS_PORT": "0",
            "RECKONRY_LOG_LEVEL": "WARNING",
            "KARBON_BASE_URL": self.karbon.base_url,
            "KARBON_REQUESTS_PER_SECOND": BUDGET,
        }

    @property
    def worker_log(self) -> Path:
        return self.workdir / f"{self.name}-worker.log"

    def start_worker(self) -> None:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RECKONRY_", "KARBON_", "SMTP_"))
        }
        environment.update(self._variables())
        with self.worker_log.open("ab") as log:
            self.workers.append(
                subprocess.Popen(
                    [*reckonry_command(), "worker"],
                    cwd=self.workdir,
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def kill_worker(self) -> None:
        """SIGKILL: the worker gets no chance to finish anything."""
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)

    def stop_workers(self) -> None:
        for process in self.workers:
            stop_process(process)

    @property
    def health_key(self) -> str:
        """Where a worker of this deployment notes it polls the queue (arq's health check)."""
        return f"{self.settings().queue_name}:health-check"

    @property
    def lock_key(self) -> str:
        return tenant_sync_lock_key(self.prefix, self.tenant_id)

    async def start_first_sync(self, access_key: str, bearer_token: str) -> None:
        """A connected firm and its first sync queued, as connecting Karbon leaves them."""
        settings = self.settings()
        cipher = CredentialCipher(resolve_secrets(settings))
        engine = create_engine(self.database_url, pool_size=1)
        redis = ArqRedis.from_url(self.redis_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                now = datetime.now(UTC)
                tenant = Tenant(name=f"Proof firm {self.name}", trial_started_at=now)
                session.add(tenant)
                await session.flush()
                session.add(
                    KarbonConnection(
                        tenant_id=tenant.id,
                        access_key_encrypted=cipher.encrypt(access_key),
                        bearer_token_encrypted=cipher.encrypt(bearer_token),
                        access_key_masked=mask(access_key),
                        bearer_token_masked=mask(bearer_token),
                        validated_at=now,
                        connected_at=now,
                    )
                )
                request = await request_sync(session, redis, settings, tenant.id)
                self.tenant_id, self.run_id = tenant.id, request.run.id
        finally:
            await redis.aclose()
            await engine.dispose()

    async def request_again(self) -> None:
        """What an admin does after a failed run: ask for a sync (a full one) again."""
        settings = self.settings()
        assert self.tenant_id is not None
        engine = create_engine(self.database_url, pool_size=1)
        redis = ArqRedis.from_url(self.redis_url)
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                request = await request_sync(
                    session,
                    redis,
                    settings,
                    self.tenant_id,
                    kind=SyncKind.FULL,
                    trigger=SyncTrigger.MANUAL,
                )
                self.run_id = request.run.id
        finally:
            await redis.aclose()
            await engine.dispose()

    async def run_state(self) -> RunState | None:
        """The run's state, or None while the database cannot be reached."""
        try:
            connection = await asyncpg.connect(plain_dsn(self.database_url), timeout=5)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        try:
            row = await connection.fetchrow(
                "SELECT state, error_code, error_message, "
                "extract(epoch FROM finished_at - requested_at) AS seconds, "
                "(SELECT coalesce(sum((value ->> 'pages_done')::int), 0) "
                " FROM jsonb_each(progress)) AS pages "
                "FROM sync_runs WHERE id = $1",
                self.run_id,
            )
        except (OSError, asyncpg.PostgresError):
            return None
        finally:
            await connection.close()
        assert row is not None
        seconds = None if row["seconds"] is None else float(row["seconds"])
        return RunState(
            row["state"], row["error_code"], row["error_message"], seconds, int(row["pages"])
        )

    async def run_going(self, seconds: float = 180) -> RunState | None:
        """The run's state once a worker has started it and committed a page."""

        async def going() -> RunState | None:
            state = await self.run_state()
            return state if state is not None and state.state == "running" and state.pages else None

        return await until(going, seconds, every=0.2)

    async def run_end(self, seconds: float) -> RunState | None:
        """The run's final state, or None if it is still active after `seconds`."""

        async def ended() -> RunState | None:
            state = await self.run_state()
            return state if state is not None and not state.active else None

        return await until(ended, seconds, every=0.5)

    async def snapshot(self) -> "Snapshot":
        return await snapshot(self.database_url, self.tenant_id, self.karbon.base_url)


def plain_dsn(database_url: str) -> str:
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


# -- what a sync stored, and how two runs differ ----------------------------------------

COMPARED_TABLES = (
    "staff",
    "clients",
    "work_items",
    "timesheets",
    "time_entries",
    "invoices",
    "invoice_lines",
    "data_quality_issues",
    "stream_states",
    "pending_details",
)
RUN_SPECIFIC = frozenset(
    {
        "tenant_id",
        "synced_at",
        "last_seen_run_id",
        "run_id",
        "first_seen_at",
        "last_seen_at",
        "updated_at",
        "enqueued_at",
    }
)
"""Columns that name the run or the moment, not what Karbon said."""
KARBON_ADDRESS = "https://karbon.example"

Snapshot = dict[str, list[tuple[str, str]]]
"""Per table, each row as (its key, everything else), both as canonical JSON text."""


async def snapshot(database_url: str, tenant_id: UUID | None, karbon_url: str) -> Snapshot:
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        tables: Snapshot = {}
        for table in COMPARED_TABLES:
            key_columns = await _primary_key(connection, table)
            rows = await connection.fetch(
                f"SELECT to_jsonb(t)::text AS row FROM {table} AS t WHERE tenant_id = $1",
                tenant_id,
            )
            tables[table] = [
                _keyed(json.loads(row["row"]), key_columns, karbon_url) for row in rows
            ]
        tables["raw_responses"] = await _raw_versions(
            connection, database_url, tenant_id, karbon_url
        )
        return tables
    finally:
        await connection.close()


async def _primary_key(connection: asyncpg.Connection, table: str) -> list[str]:
    rows = await connection.fetch(
        """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = $1::regclass AND i.indisprimary
        """,
        table,
    )
    return sorted(row["attname"] for row in rows if row["attname"] != "tenant_id")


def _keyed(row: dict[str, Any], key_columns: list[str], karbon_url: str) -> tuple[str, str]:
    row["deleted_at"] = row.get("deleted_at") is not None if "deleted_at" in row else None
    key = {column: row.pop(column) for column in key_columns}
    kept = {column: value for column, value in row.items() if column not in RUN_SPECIFIC}
    return _canonical(key, karbon_url), _canonical(kept, karbon_url)


def _canonical(value: Any, karbon_url: str) -> str:
    return json.dumps(value, sort_keys=True, default=str).replace(karbon_url, KARBON_ADDRESS)


_ANSWER_USED = "status BETWEEN 200 AND 299 AND body IS NOT NULL"
"""The answers a sync read its data from. The others (a 5xx, a 429, a body that could not be
read) are kept too, as the history of what Karbon answered, but only a run that met them has
them: `error_answers_kept` counts them."""


async def error_answers_kept(database_url: str, tenant_id: UUID | None) -> int:
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        query = f"SELECT count(*) FROM raw_responses WHERE tenant_id = $1 AND NOT ({_ANSWER_USED})"
        return int(await connection.fetchval(query, tenant_id))
    finally:
        await connection.close()


async def _raw_versions(
    connection: asyncpg.Connection, database_url: str, tenant_id: UUID | None, karbon_url: str
) -> list[tuple[str, str]]:
    """Each kept raw version as (stream, kind, URL) and (status, body digest), its body read
    back whole by the product's own reader: how a version is kept (a detail as what it adds to
    its listed record, a page as the ids of its records' versions) depends on what was kept
    before it, which a run that met faults or kills reached in another order."""
    rows = await connection.fetch(
        "SELECT id, stream, kind, url, status FROM raw_responses "
        f"WHERE tenant_id = $1 AND {_ANSWER_USED} ORDER BY id",
        tenant_id,
    )
    engine = create_engine(database_url, pool_size=1)
    versions: list[tuple[str, str]] = []
    try:
        async with create_sessionmaker(engine)() as session:
            for row in rows:
                body = await read_version(session, row["id"])
                digest = hashlib.sha256(_canonical(body, karbon_url).encode()).hexdigest()
                request = [row["stream"], row["kind"], row["url"]]
                versions.append(
                    (_canonical(request, karbon_url), json.dumps([row["status"], digest]))
                )
    finally:
        await engine.dispose()
    return versions


@dataclass
class Differences:
    compared: int = 0
    """Rows of the reference run looked for."""
    missing: int = 0
    extra: int = 0
    duplicated: int = 0
    different: int = 0
    where: list[str] = field(default_factory=list)
    """A few examples, to start looking from."""

    @property
    def total(self) -> int:
        return self.missing + self.extra + self.duplicated + self.different

    def note(self, table: str, what: str, key: str) -> None:
        if len(self.where) < 8:
            self.where.append(f"{table}: {what} {key[:160]}")


def compare(reference: Snapshot, other: Snapshot, *, partial: bool = False) -> Differences:
    """How `other` differs from `reference`, row by row. `partial`: `other` may lack rows
    (a run that stopped part way), and may hold a record from its list alone while its
    detail is still owed (queued in `pending_details`), but what it has must be right."""
    found = Differences()
    owed = _owed_record_keys(other) if partial else set()
    for table, rows in reference.items():
        if partial and table == "pending_details":
            continue  # what a stopped run still owes: its queue, not its data
        expected = _grouped(rows)
        actual = _grouped(other.get(table, []))
        found.compared += len(rows)
        for key, values in expected.items():
            have = actual.get(key)
            if have is None:
                if not partial:
                    found.missing += len(values)
                    found.note(table, "missing", key)
            elif sorted(set(have)) != sorted(set(values)) and not _names_any(key, owed):
                found.different += 1
                found.note(table, "different", key)
        for key, values in actual.items():
            if key not in expected:
                found.extra += len(values)
                found.note(table, "extra", key)
            surplus = sum((Counter(values) - Counter(expected.get(key, []))).values())
            repeated = sum(n - 1 for n in Counter(values).values() if n > 1)
            if key in expected and min(surplus, repeated):
                found.duplicated += min(surplus, repeated)
                found.note(table, "duplicated", key)
    return found


def _owed_record_keys(snapshot: Snapshot) -> set[str]:
    return {json.loads(key)["record_key"] for key, _ in snapshot.get("pending_details", [])}


def _names_any(key: str, record_keys: set[str]) -> bool:
    return any(value in record_keys for value in json.loads(key).values())


def _grouped(rows: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in rows:
        grouped.setdefault(key, []).append(value)
    return grouped


# -- servers of the proof's own, to stop and start -------------------------------------


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: then its commands run as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class ThrowawayPostgres:
    """A PostgreSQL server of the proof's own on a free port, which it may stop and start."""

    def __init__(self, folder: Path) -> None:
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not binaries:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self._bin = binaries[-1].parent
        self.port = free_port()
        self.data = folder / "postgres"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            folder.chmod(0o755)
            subprocess.run(["chown", "-R", "postgres", str(self.data)], check=True)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.data / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop_if_running(self) -> None:
        status = subprocess.run(
            _as_postgres_user([str(self._bin / "pg_ctl"), "-D", str(self.data), "status"]),
            capture_output=True,
        )
        if status.returncode == 0:
            self.stop()

    def _run(self, program: str, *arguments: str) -> None:
        subprocess.run(
            _as_postgres_user([str(self._bin / program), *arguments]),
            check=True,
            capture_output=True,
        )


class ThrowawayRedis:
    """A redis-server of the proof's own on a free port that keeps its data across a restart
    (append-only, as a production Redis would)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = folder / "redis"
        self._folder.mkdir(parents=True)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "yes", "--dir", str(self._folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
            ).stdout.strip()
            != b"PONG"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
