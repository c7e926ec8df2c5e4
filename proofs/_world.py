"""What several proofs stand on: a scratch database and Redis prefix, sandbox firms synced for
real into it, and the app served on a local port.

The proofs run the product as the tests do (real PostgreSQL and Redis, `DATABASE_URL` and
`REDIS_URL` or the embedded servers), each in a database and a Redis prefix of its own that
are removed afterwards.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import uvicorn
from cryptography.fernet import Fernet
from fastapi import FastAPI
from redis.asyncio import Redis

from app.db import create_engine
from app.embedded import ServiceUrls
from app.reports.refresh import refresh_reports
from app.settings import Settings
from app.sync.karbon.budget import BudgetRegistry
from app.worker import WorkerContext, worker_context
from sandbox.process import free_port as free_port
from sandbox.server import serve_sandbox_in_thread
from sandbox.state import Sandbox, SandboxConfig
from tests.mailbox import smtp_server
from tests.reports.conftest import admin_headers
from tests.services import scratch_database, test_service_urls
from tests.sync.conftest import FAST_RETRIES, SANDBOX_TODAY, connect_tenant, sync_now

SIGNING_KEY = "proof-signing-key-" + "k" * 32


@dataclass(frozen=True)
class Scratch:
    settings: Settings
    urls: ServiceUrls

    @property
    def redis_prefix(self) -> str:
        return self.settings.redis_key_prefix


@asynccontextmanager
async def scratch_services(**settings: Any) -> AsyncIterator[Scratch]:
    """A migrated scratch database, a Redis prefix and an SMTP sink, with test settings
    (`settings` overrides them, by environment variable name)."""
    servers = test_service_urls()
    async with scratch_database(servers.database_url) as database_url:
        prefix = f"reckonry-proof-{uuid.uuid4().hex[:8]}"
        with smtp_server() as smtp_port:
            values: dict[str, Any] = {
                "RECKONRY_ENV": "test",
                "RECKONRY_REDIS_PREFIX": prefix,
                "RECKONRY_SECRET_KEY": SIGNING_KEY,
                "RECKONRY_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
                "KARBON_BASE_URL": "http://karbon.invalid",
                "RECKONRY_WORKER_METRICS_PORT": 0,
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": smtp_port,
                "SMTP_STARTTLS": False,
                **settings,
            }
            scratch = Scratch(
                Settings(_env_file=None, **values),
                ServiceUrls(database_url=database_url, redis_url=servers.redis_url),
            )
            try:
                yield scratch
            finally:
                await _forget_prefix(scratch)


async def _forget_prefix(scratch: Scratch) -> None:
    redis: Redis = Redis.from_url(scratch.urls.redis_url)
    try:
        async for key in redis.scan_iter(match=f"{scratch.redis_prefix}*"):
            await redis.delete(key)
    finally:
        await redis.aclose()


def sandbox_of(*firms: tuple[str, int]) -> Sandbox:
    """Tiny sandbox firms `(name, seed)`: firms of one seed share every Karbon id."""
    config = SandboxConfig()
    config.update({"max_page_size": 7, "rate_limit_enabled": False})
    specs = [(name, "tiny", seed) for name, seed in firms]
    return Sandbox.create(*specs, config=config, today=SANDBOX_TODAY)


@dataclass(frozen=True)
class SyncedFirm:
    name: str
    tenant_id: UUID
    admin: dict[str, str]
    """An admin's headers."""


async def sync_sandbox_firms(scratch: Scratch, sandbox: Sandbox) -> list[SyncedFirm]:
    """Each sandbox firm connected to a Reckonry firm of its name, synced once and its reports
    refreshed, as a worker does, with an admin signed in."""
    firms = []
    with serve_sandbox_in_thread(sandbox) as karbon_url:
        settings = scratch.settings.model_copy(update={"karbon_base_url": karbon_url})
        engine = create_engine(scratch.urls.database_url, pool_size=5)
        try:
            async with worker_context(
                settings,
                scratch.urls,
                budgets=BudgetRegistry(rate_per_second=400.0, max_in_flight=8),
                retry=FAST_RETRIES,
                request_timeout=httpx.Timeout(5.0),
                engine=engine,
            ) as deps:
                for name in sandbox.tenants:
                    firms.append(await synced_firm(deps, sandbox, name))
        finally:
            await engine.dispose()
    return firms


async def synced_firm(deps: WorkerContext, sandbox: Sandbox, name: str) -> SyncedFirm:
    tenant_id = await connect_tenant(deps.sessions, deps.settings, sandbox, name, name)
    _, outcome = await sync_now({"deps": deps}, tenant_id)
    if outcome != "succeeded":
        raise RuntimeError(f"the sync of {name} ended {outcome}")
    await refresh_reports(deps.sessions, tenant_id)  # a worker runs it after the sync
    headers = await admin_headers(deps.sessions, deps.settings, tenant_id)
    return SyncedFirm(name, tenant_id, headers)


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """`app` served over HTTP on a free local port on this event loop; its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the server stopped before it started")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await serving


@contextmanager
def sandbox_served(sandbox: Sandbox) -> Iterator[str]:
    with serve_sandbox_in_thread(sandbox) as url:
        yield url
