"""A sandbox Karbon on a real socket, a connected tenant, and the worker's job context."""

from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.embedded import ServiceUrls
from app.models import SyncKind, SyncTrigger
from app.secrets import resolve_secrets
from app.settings import Settings
from app.sync.control import request_sync
from app.sync.jobs import run_sync
from app.sync.karbon.budget import BudgetRegistry
from app.sync.karbon.retry import RetryPolicy
from app.worker import WorkerContext, worker_context
from sandbox.server import serve_sandbox_in_thread
from sandbox.state import Sandbox, SandboxConfig, make_access_key, make_bearer_token
from tests.factories import connect_karbon, create_tenant

SANDBOX_TODAY = date(2026, 11, 2)
FAST_RETRIES = RetryPolicy(base_delay=0.01, max_delay=0.05, max_attempts=8)
"""Tests of the sync's logic run far above Karbon's rate; the rate itself has its own test."""


@pytest.fixture
def sandbox() -> Sandbox:
    config = SandboxConfig()
    config.update({"max_page_size": 7, "rate_limit_enabled": False})
    return Sandbox.create(("Demo firm", "tiny", 3), config=config, today=SANDBOX_TODAY)


@pytest.fixture
def karbon_url(sandbox: Sandbox) -> Iterator[str]:
    with serve_sandbox_in_thread(sandbox) as url:
        yield url


@pytest.fixture
def sync_settings(settings: Settings, karbon_url: str) -> Settings:
    return settings.model_copy(update={"karbon_base_url": karbon_url})


@pytest.fixture
async def job_context(
    sync_settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    service_urls: ServiceUrls,
) -> AsyncIterator[dict[str, Any]]:
    """The worker's job context on the test database; `sessions` empties it afterwards."""
    async with worker_context(
        sync_settings,
        service_urls,
        budgets=BudgetRegistry(rate_per_second=400.0, max_in_flight=8),
        retry=FAST_RETRIES,
        request_timeout=httpx.Timeout(2.0),
        engine=engine,
    ) as deps:
        yield {"deps": deps}


async def connect_tenant(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    sandbox: Sandbox,
    sandbox_tenant: str = "Demo firm",
    name: str = "Acme CPA",
) -> UUID:
    """A Reckonry tenant holding the sandbox tenant's keys."""
    tenant_id = await create_tenant(sessions, name)
    keys = sandbox.tenant(sandbox_tenant)
    await connect_karbon(
        sessions, resolve_secrets(settings), tenant_id, keys.access_key, keys.bearer_token
    )
    return tenant_id


async def queue_sync(
    context: dict[str, Any], tenant_id: UUID, kind: SyncKind = SyncKind.INITIAL
) -> UUID:
    """Request a sync as the API would; its run waits for a worker."""
    deps: WorkerContext = context["deps"]
    async with unit_of_work(deps.sessions) as session:
        request = await request_sync(
            session,
            deps.redis,
            deps.settings,
            tenant_id,
            kind=kind,
            trigger=SyncTrigger.MANUAL,
        )
    return request.run.id


async def sync_now(
    context: dict[str, Any], tenant_id: UUID, kind: SyncKind = SyncKind.INITIAL
) -> tuple[UUID, str]:
    """Request a sync and run its job in this process, as a worker would."""
    run_id = await queue_sync(context, tenant_id, kind)
    outcome = await run_sync(context, str(run_id))
    return run_id, outcome


def rotate_sandbox_keys(sandbox: Sandbox, name: str) -> None:
    """The firm regenerates its keys in Karbon: the ones Reckonry holds stop working."""
    tenant = sandbox.tenant(name)
    with sandbox.lock:
        del sandbox._by_access_key[tenant.access_key]
        tenant.access_key = make_access_key(f"{name} rotated", tenant.firm.seed)
        tenant.bearer_token = make_bearer_token(f"{name} rotated", tenant.firm.seed)
        sandbox._by_access_key[tenant.access_key] = tenant
