"""Alembic environment: async engine, URL from the caller or from the settings."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from app.db import create_engine
from app.embedded import resolve_service_urls
from app.models import Base
from app.settings import get_settings

target_metadata = Base.metadata


def _database_url() -> str:
    given = context.config.attributes.get("database_url")
    if given:
        return str(given)
    return resolve_service_urls(get_settings()).database_url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_database_url(), pool_size=1)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
