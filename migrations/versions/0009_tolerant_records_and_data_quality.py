"""Records with a field that cannot be read are kept; what cannot be read is named.

Karbon's enumerations grow and its spec allows nulls: the status and type columns now keep
any value as Karbon sent it (an unknown one is named in `data_quality_issues`, a null is
kept as null). `data_quality_issues` replaces `rejected_records`: it names fields kept but not
understood as well as records, entries and lines set aside, with the clients and date they
concern and when each was first and last seen. Report warnings carry the client and date
they concern (so a report shows those in view) and an amount; report client names carry the
owner and manager by e-mail (Karbon may give a UserKey).

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AS_SENT = {
    ("work_items", "primary_status"): True,
    ("timesheets", "status"): False,
    ("time_entries", "billed_status"): False,
    ("invoices", "status"): False,
    ("invoice_lines", "billable_item_type"): True,
}
"""Columns kept as sent, and whether each was nullable before."""


def upgrade() -> None:
    for (table, column), _ in AS_SENT.items():
        op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(32), nullable=True)
    _create_data_quality_issues()
    op.execute(
        """
        INSERT INTO data_quality_issues (tenant_id, stream, record_key, entity, subject_key,
            field, value, reason, set_aside, client_keys, raw, run_id, first_seen_at,
            last_seen_at)
        SELECT tenant_id, stream, record_key, stream, record_key, field, NULL, problem,
            'record', '{}', raw, run_id, seen_at, seen_at
        FROM rejected_records
        """
    )
    op.drop_table("rejected_records")
    op.add_column("report_client_names", sa.Column("owner_email", sa.Text(), nullable=True))
    op.add_column("report_client_names", sa.Column("manager_email", sa.Text(), nullable=True))
    op.add_column(
        "report_warnings",
        sa.Column("amount", sa.Numeric(30, 10), server_default="0", nullable=False),
    )
    op.add_column("report_warnings", sa.Column("client_key", sa.Text(), nullable=True))
    op.add_column("report_warnings", sa.Column("warning_date", sa.Date(), nullable=True))


def _create_data_quality_issues() -> None:
    op.create_table(
        "data_quality_issues",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.Text(), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("subject_key", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("set_aside", sa.String(length=16), nullable=False),
        sa.Column("client_keys", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("record_date", sa.Date(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "first_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_data_quality_issues_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id",
            "stream",
            "record_key",
            "entity",
            "subject_key",
            "field",
            name=op.f("pk_data_quality_issues"),
        ),
    )


def downgrade() -> None:
    op.drop_column("report_warnings", "warning_date")
    op.drop_column("report_warnings", "client_key")
    op.drop_column("report_warnings", "amount")
    op.drop_column("report_client_names", "manager_email")
    op.drop_column("report_client_names", "owner_email")
    op.create_table(
        "rejected_records",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_rejected_records_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "stream", "record_key", name=op.f("pk_rejected_records")
        ),
    )
    op.drop_table("data_quality_issues")
    # Fails, rather than inventing values, once an unknown long value or a null is stored.
    for (table, column), nullable in AS_SENT.items():
        op.alter_column(
            table, column, type_=sa.String(32), existing_type=sa.Text(), nullable=nullable
        )
