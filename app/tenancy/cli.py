"""Command functions for `reckonry`: platform operators, and a unit of work for commands."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import create_engine, create_sessionmaker, unit_of_work
from app.embedded import resolve_database_url
from app.settings import Settings, get_settings
from app.tenancy import service

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
