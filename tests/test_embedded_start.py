"""The newcomer's start: `reckonry up` with no DATABASE_URL/REDIS_URL."""

import asyncio
import os
import signal
import subprocess
from contextlib import AbstractContextManager
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.cli_helpers import command, environment
from tests.processes import free_port, serving, wait_until_ready


def _start_up(workdir: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`reckonry up ARGS` on embedded servers (no DATABASE_URL/REDIS_URL)."""
    return subprocess.Popen(
        command("up", *args),
        cwd=workdir,
        env=environment(DATABASE_URL=None, REDIS_URL=None, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _reckonry_up(workdir: Path) -> AbstractContextManager[str]:
    env = environment(DATABASE_URL=None, REDIS_URL=None)
    return serving(command("up"), cwd=workdir, env=env, stop_signal=signal.SIGINT)


def _processes_using(data_dir: Path) -> list[str]:
    """Processes whose command line or working directory names `data_dir`: the embedded
    PostgreSQL runs with `-D <data dir>/postgres`, redis-server in `<data dir>/redis`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if str(data_dir) in cmdline or cwd.startswith(str(data_dir)):
            found.append(f"{proc.name}: {cmdline} (in {cwd})")
    return found


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_up_and_its_embedded_servers(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_port()
    # --port wins over the environment's port.
    process = _start_up(tmp_path, "--port", str(port), RECKONRY_API_PORT=str(free_port()))
    data_dir = (tmp_path / ".data").resolve()
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", process)
        running = " ".join(_processes_using(data_dir))
        assert "postgres -D" in running and "redis-server" in running
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert _processes_using(data_dir) == []


async def _fetch(pgdata: Path, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(f"postgresql://postgres@/postgres?host={pgdata}")
    try:
        return list(await connection.fetch(sql))
    finally:
        await connection.close()


def _execute(pgdata: Path, sql: str) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(pgdata, sql))


def test_up_serves_ready_on_embedded_services_and_keeps_data(tmp_path: Path) -> None:
    pgdata = tmp_path / ".data" / "postgres"
    with _reckonry_up(tmp_path) as base:
        assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
        _execute(
            pgdata,
            "INSERT INTO tenants (id, name) VALUES (gen_random_uuid(), 'Kept Across Restarts LLP')",
        )

    with _reckonry_up(tmp_path) as base:
        assert httpx.get(f"{base}/readyz").status_code == 200
        rows = _execute(pgdata, "SELECT name FROM tenants")
        assert [row["name"] for row in rows] == ["Kept Across Restarts LLP"]
