"""The newcomer's start: `reckonry up` with no DATABASE_URL/REDIS_URL."""

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.cli_helpers import command, environment


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_up(workdir: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`reckonry up ARGS` on embedded servers (no DATABASE_URL/REDIS_URL)."""
    return subprocess.Popen(
        command("up", *args),
        cwd=workdir,
        env=environment(DATABASE_URL=None, REDIS_URL=None, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@contextmanager
def _reckonry_up(workdir: Path, port: int) -> Iterator[str]:
    process = _start_up(workdir, RECKONRY_API_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(base, process)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


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
    port = _free_port()
    # --port wins over the environment's port.
    process = _start_up(tmp_path, "--port", str(port), RECKONRY_API_PORT=str(_free_port()))
    data_dir = (tmp_path / ".data").resolve()
    try:
        _wait_until_ready(f"http://127.0.0.1:{port}", process)
        running = " ".join(_processes_using(data_dir))
        assert "postgres -D" in running and "redis-server" in running
        process.send_signal(stop)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    assert _processes_using(data_dir) == []


def _wait_until_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"reckonry up exited early:\n{output}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("reckonry up did not become ready within 60 s")


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
    with _reckonry_up(tmp_path, _free_port()) as base:
        assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
        _execute(
            pgdata,
            "INSERT INTO tenants (id, name, subscription_active) "
            "VALUES (gen_random_uuid(), 'Kept Across Restarts LLP', false)",
        )

    with _reckonry_up(tmp_path, _free_port()) as base:
        assert httpx.get(f"{base}/readyz").status_code == 200
        rows = _execute(pgdata, "SELECT name FROM tenants")
        assert [row["name"] for row in rows] == ["Kept Across Restarts LLP"]
