"""A raw version kept as changes to an earlier one names it; an invoice line's JSON kept once.

`raw_responses.base_id`: the version a version is kept as changes to (a detail to its record's
listed version, a record to its own previous version); a foreign key, so no version another
still needs can be deleted. Existing details kept as changes get it from their `@base`.

`invoice_lines.raw` goes: each line's JSON is in its invoice's `raw` or `raw_detail`, where
the line was read, and an invoice's `raw_detail` leaves out `LineItems` equal to its `raw`'s.

Revision ID: 0020
Revises: 0019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0020"
down_revision: str | None = "0019"
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
    op.execute(
        "UPDATE invoices SET raw_detail = raw_detail - 'LineItems'"
        " WHERE raw_detail -> 'LineItems' = raw -> 'LineItems'"
    )
    op.drop_column("invoice_lines", "raw")


def downgrade() -> None:
    op.add_column("invoice_lines", sa.Column("raw", JSONB(), nullable=True))
    op.execute(
        "UPDATE invoices SET raw_detail = raw_detail || jsonb_build_object('LineItems',"
        " raw -> 'LineItems') WHERE raw_detail IS NOT NULL AND NOT raw_detail ? 'LineItems'"
        " AND raw ? 'LineItems'"
    )
    op.execute(
        "UPDATE invoice_lines AS line SET raw = coalesce("
        "invoice.raw_detail -> 'LineItems' -> line.position,"
        " invoice.raw -> 'LineItems' -> line.position, '{}'::jsonb)"
        " FROM invoices AS invoice WHERE invoice.tenant_id = line.tenant_id"
        " AND invoice.invoice_key = line.invoice_key"
    )
    op.alter_column("invoice_lines", "raw", nullable=False)
    op.drop_index("ix_raw_responses_base_id", table_name="raw_responses")
    op.drop_constraint(
        op.f("fk_raw_responses_base_id_raw_responses"), "raw_responses", type_="foreignkey"
    )
    op.drop_column("raw_responses", "base_id")
