"""The newcomer's start: `reckonry up` with no DATABASE_URL/REDIS_URL."""

import asyncio
import os
import signal
import sys
from contextlib import AbstractContextManager
from pathlib import Path

import asyncpg
import httpx

from tests.processes import serving


def _reckonry_up(workdir: Path) -> AbstractContextManager[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    return serving(
        [sys.executable, "-c", "from app.cli import main; main()", "up"],
        cwd=workdir,
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        stop_signal=signal.SIGINT,
    )


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
            "INSERT INTO tenants (id, name, subscription_active) "
            "VALUES (gen_random_uuid(), 'Kept Across Restarts LLP', false)",
        )

    with _reckonry_up(tmp_path) as base:
        assert httpx.get(f"{base}/readyz").status_code == 200
        rows = _execute(pgdata, "SELECT name FROM tenants")
        assert [row["name"] for row in rows] == ["Kept Across Restarts LLP"]
