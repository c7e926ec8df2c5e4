"""Command functions for `reckonry`: platform operators, and a unit of work for commands."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import create_engine, create_sessionmaker, unit_of_work
from app.embedded import resolve_database_url
from app.models import SubscriptionStatus
from app.settings import Settings, get_settings
from app.tenancy import audit, billing, service
from app.tenancy.plan import trial_ends_at

Result = TypeVar("Result")


async def in_unit_of_work(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[Result]]
) -> Result:
    engine = create_engine(resolve_database_url(settings), pool_size=1)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def create_operator(email: str, password: str, settings: Settings | None = None) -> str:
    """A platform operator: sees `/api/v1/ops/*` across firms and no firm's data.

    Returns the new user's id. Raises `ProblemError` (409) when the e-mail is taken.
    """

    async def create(session: AsyncSession) -> str:
        return str((await service.create_operator(session, email, password)).id)

    return asyncio.run(in_unit_of_work(settings or get_settings(), create))


def set_plan(tenant_id: UUID, status: str, settings: Settings | None = None) -> str:
    """Set a firm's plan (`trialing`, `active`, `past_due`, `cancelled`); returns it.

    API processes see the change within a second (their principal cache's lifetime).
    """
    plan = SubscriptionStatus(status)

    async def change(session: AsyncSession) -> str:
        tenant = await billing.set_plan(
            session, audit.COMMAND_LINE, tenant_id, plan, datetime.now(UTC)
        )
        return str(tenant.subscription_status)

    return asyncio.run(in_unit_of_work(settings or get_settings(), change))


def extend_trial(tenant_id: UUID, days: int, settings: Settings | None = None) -> datetime:
    """Add `days` to a firm's trial (counted from now once it has ended); returns its end."""

    async def extend(session: AsyncSession) -> datetime:
        tenant = await billing.extend_trial(
            session, audit.COMMAND_LINE, tenant_id, days, datetime.now(UTC)
        )
        ends = trial_ends_at(tenant)
        assert ends is not None
        return ends

    return asyncio.run(in_unit_of_work(settings or get_settings(), extend))
