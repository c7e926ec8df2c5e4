"""A sandbox firm synced for real, and a signed-in admin of the Reckonry tenant holding it."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import Role, User
from app.secrets import resolve_secrets
from app.settings import Settings
from app.tenancy.security import hash_password, issue_token
from sandbox.state import Sandbox
from tests.sync.conftest import (  # noqa: F401 - fixtures
    connect_tenant,
    job_context,
    karbon_url,
    sandbox,
    sync_now,
    sync_settings,
)


@dataclass(frozen=True)
class SyncedFirm:
    tenant_id: UUID
    headers: dict[str, str]


async def admin_headers(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, tenant_id: UUID
) -> dict[str, str]:
    async with unit_of_work(sessions) as session:
        user = User(
            tenant_id=tenant_id,
            email=f"admin-{tenant_id.hex[:8]}@example.com",
            password_hash=hash_password("not used by the tests"),
            role=Role.ADMIN,
        )
        session.add(user)
        await session.flush()
        user_id = user.id
    token = issue_token(resolve_secrets(settings).signing_keys, user_id, 0).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def synced_firm(
    sandbox: Sandbox,  # noqa: F811
    job_context: dict[str, Any],  # noqa: F811
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> SyncedFirm:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"
    return SyncedFirm(tenant_id, await admin_headers(sessions, settings, tenant_id))
