"""Running Alembic from the product (`reckonry migrate`, `reckonry up`, tests), and the
revisions readiness compares: the heads shipped and those a database is at.

Alembic is configured here, not from `alembic.ini` (which stays for developers' `alembic`
commands), so an installed package migrates from any working directory.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_PACKAGED_SCRIPTS = Path(__file__).resolve().parent / "_migrations"
_SOURCE_TREE_SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"


def script_directory() -> Path:
    """The migrations shipped in the wheel, or the source tree's in a checkout."""
    return _PACKAGED_SCRIPTS if _PACKAGED_SCRIPTS.is_dir() else _SOURCE_TREE_SCRIPTS


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_directory()))
    config.attributes["database_url"] = database_url
    return config


def upgrade_to_head(database_url: str) -> None:
    """Blocking; call from a thread when an event loop is running."""
    command.upgrade(alembic_config(database_url), "head")


def downgrade_to_base(database_url: str) -> None:
    command.downgrade(alembic_config(database_url), "base")


def head_revisions(database_url: str) -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


async def applied_revisions(connection: AsyncConnection) -> set[str]:
    """The revisions the database is at; raises when it was never migrated."""
    rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
    return {row[0] for row in rows}
