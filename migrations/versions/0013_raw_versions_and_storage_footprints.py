"""Raw responses kept once per distinct body; timesheets keep their entries once; footprints.

A response whose body equals the last version kept for the same request is no longer stored
again: the version notes that it was read again. Versions are addressed by the SHA-256 of the
request (kind and URL) and of the body as PostgreSQL prints it. Existing rows get both hashes;
identical consecutive versions already stored are left as they are (the retention job prunes
them as superseded).

Each timesheet's `raw` no longer holds its `TimeEntries`: every entry's JSON is kept once, in
its `time_entries.raw`, and the rebuild puts them back together.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("raw_responses", sa.Column("last_fetched_at", sa.DateTime(timezone=True)))
    op.add_column(
        "raw_responses", sa.Column("fetch_count", sa.Integer(), nullable=False, server_default="1")
    )
    op.add_column("raw_responses", sa.Column("request_sha256", sa.LargeBinary()))
    op.add_column("raw_responses", sa.Column("body_sha256", sa.LargeBinary()))
    op.execute(
        "UPDATE raw_responses SET last_fetched_at = fetched_at,"
        " request_sha256 = sha256(convert_to(kind || ' ' || url, 'UTF8')),"
        " body_sha256 = sha256(convert_to(coalesce(body::text, ''), 'UTF8'))"
    )
    for name in ("last_fetched_at", "request_sha256", "body_sha256"):
        op.alter_column("raw_responses", name, nullable=False)
    op.alter_column("raw_responses", "fetch_count", server_default=None)
    op.create_index(
        "ix_raw_responses_tenant_request",
        "raw_responses",
        ["tenant_id", "request_sha256", "id"],
    )
    op.create_index("ix_raw_responses_last_fetched_at", "raw_responses", ["last_fetched_at"])
    op.create_table(
        "storage_footprints",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=True),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "raw_rows",
                "raw_bytes",
                "normalized_rows",
                "normalized_bytes",
                "raw_rows_last_day",
                "raw_bytes_last_day",
            )
        ),
        sa.Column("last_pruned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pruned_rows", sa.BigInteger(), nullable=False),
        sa.Column("pruned_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_storage_footprints_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_storage_footprints")),
    )
    op.execute("UPDATE timesheets SET raw = raw - 'TimeEntries' WHERE raw ? 'TimeEntries'")


def downgrade() -> None:
    op.execute(
        "UPDATE timesheets t SET raw = t.raw || jsonb_build_object('TimeEntries', coalesce("
        "(SELECT jsonb_agg(e.raw ORDER BY e.time_entry_key) FROM time_entries e"
        " WHERE e.tenant_id = t.tenant_id AND e.timesheet_key = t.timesheet_key), '[]'))"
    )
    op.drop_table("storage_footprints")
    op.drop_index("ix_raw_responses_last_fetched_at", table_name="raw_responses")
    op.drop_index("ix_raw_responses_tenant_request", table_name="raw_responses")
    for name in ("body_sha256", "request_sha256", "fetch_count", "last_fetched_at"):
        op.drop_column("raw_responses", name)
