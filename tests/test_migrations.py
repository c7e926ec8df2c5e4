import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.db import create_engine
from app.embedded import ServiceUrls
from app.migrations import downgrade_to_base, upgrade_to_head
from app.models import Base
from tests.services import scratch_database


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_build_exactly_the_models(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    await engine.dispose()
    assert differences == []


async def test_migrations_downgrade_to_nothing_and_up_again(server_urls: ServiceUrls) -> None:
    async with scratch_database(server_urls.database_url) as url:
        await asyncio.to_thread(downgrade_to_base, url)
        engine = create_engine(url, pool_size=1)
        async with engine.connect() as connection:
            tables = await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            assert {row[0] for row in tables} == {"alembic_version"}
        await engine.dispose()
        await asyncio.to_thread(upgrade_to_head, url)
