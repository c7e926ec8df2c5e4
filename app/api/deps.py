"""FastAPI dependencies shared by the routers.

Plain `def` dependencies run on a worker thread; these do no blocking work, so they are
`async` and stay on the event loop.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import unit_of_work
from app.settings import Settings
from app.sync.karbon.budget import BudgetRegistry


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; commits when the endpoint returns without error.

    Used with `scope="function"` (`SessionDep`): the commit runs when the endpoint has
    returned and before the response is sent, so a client that has its answer reads what it
    wrote, and a commit that fails is the client's 500 rather than a log line after a 2xx."""
    async with unit_of_work(request.app.state.sessions) as session:
        yield session


async def get_redis(request: Request) -> ArqRedis:
    redis: ArqRedis = request.app.state.redis
    return redis


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_karbon_budgets(request: Request) -> BudgetRegistry:
    budgets: BudgetRegistry = request.app.state.karbon_budgets
    return budgets


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
RedisDep = Annotated[ArqRedis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
KarbonBudgetsDep = Annotated[BudgetRegistry, Depends(get_karbon_budgets)]


KarbonKey = Annotated[str, Path(min_length=1, max_length=1024)]
"""A Karbon key in a path. Karbon sets no length for its keys (time entry keys are long
composites), so the bound only turns away input no key could be."""
