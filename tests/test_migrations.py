import asyncio

import asyncpg
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.db import create_engine
from app.embedded import ServiceUrls
from app.migrations import alembic_config, downgrade_to_base, upgrade_to_head
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


async def test_keys_made_before_scopes_keep_reports_and_sync_status_but_not_pay(
    server_urls: ServiceUrls,
) -> None:
    config = alembic_config("unused")
    before_scopes = ScriptDirectory.from_config(config).get_revision("0011").down_revision
    async with scratch_database(server_urls.database_url) as url:
        await asyncio.to_thread(command.downgrade, alembic_config(url), str(before_scopes))
        connection = await asyncpg.connect(url)
        try:
            tenant = await connection.fetchval(
                "INSERT INTO tenants (id, name, subscription_active) "
                "VALUES (gen_random_uuid(), 'Old Keys LLP', false) RETURNING id"
            )
            await connection.execute(
                "INSERT INTO api_keys (id, tenant_id, name, key_hash, display_prefix) "
                "VALUES (gen_random_uuid(), $1, 'old', $2, 'rk_live_old')",
                tenant,
                "0" * 64,
            )
            await asyncio.to_thread(upgrade_to_head, url)
            scopes = await connection.fetchval("SELECT scopes FROM api_keys")
        finally:
            await connection.close()
    assert scopes == ["reports:read", "sync:read"]
