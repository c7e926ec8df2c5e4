"""A raw version kept as changes to an earlier one names it, so pruning can keep it readable.

`raw_responses.base_id`: the version a version is kept as changes to (a detail to its record's
listed version, a record to its own previous version); a foreign key, so no version another
still needs can be deleted. Existing details kept as changes get it from their `@base`.

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("raw_responses", sa.Column("base_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE raw_responses AS kept SET base_id = (kept.body ->> '@base')::bigint"
        " WHERE kept.body ? '@base' AND EXISTS ("
        "SELECT 1 FROM raw_responses AS base WHERE base.id = (kept.body ->> '@base')::bigint)"
    )
    op.create_foreign_key(
        op.f("fk_raw_responses_base_id_raw_responses"),
        "raw_responses",
        "raw_responses",
        ["base_id"],
        ["id"],
    )
    op.create_index(
        "ix_raw_responses_base_id",
        "raw_responses",
        ["base_id"],
        postgresql_where=sa.text("base_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_raw_responses_base_id", table_name="raw_responses")
    op.drop_constraint(
        op.f("fk_raw_responses_base_id_raw_responses"), "raw_responses", type_="foreignkey"
    )
    op.drop_column("raw_responses", "base_id")
