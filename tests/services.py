"""Which PostgreSQL and Redis the tests use.

The same rule as the product: `DATABASE_URL` / `REDIS_URL` when set, embedded servers
otherwise. Under `CI=true` both must be configured: a missing service fails the run.
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

from app.embedded import ServiceUrls, resolve_service_urls
from app.migrations import upgrade_to_head
from app.settings import Settings


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def test_service_urls() -> ServiceUrls:
    settings = Settings()
    missing = [
        name
        for name, value in (
            ("DATABASE_URL", settings.database_url),
            ("REDIS_URL", settings.redis_url),
        )
        if value is None
    ]
    if missing and running_in_ci():
        raise RuntimeError(
            f"CI=true but {', '.join(missing)} is not set: CI must run the tests against real "
            "PostgreSQL and Redis servers (see .ci/run)."
        )
    return resolve_service_urls(settings)


def _plain_dsn(database_url: str, database: str) -> str:
    url = make_url(database_url).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def scratch_database(server_url: str, *, migrate: bool = True) -> AsyncIterator[str]:
    """A new, empty database on the server of `server_url`, dropped afterwards."""
    name = f"reckonry_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_plain_dsn(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _plain_dsn(server_url, name)
    try:
        if migrate:
            import asyncio

            await asyncio.to_thread(upgrade_to_head, url)
        yield url
    finally:
        admin = await asyncpg.connect(_plain_dsn(server_url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
