"""Synced Karbon data (normalized rows with their raw JSON, raw responses), sync runs,
sync settings and incremental stream state.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=False),
        sa.Column("client_type", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("contact_type", sa.Text(), nullable=True),
        sa.Column("owner_email", sa.String(length=320), nullable=True),
        sa.Column("manager_email", sa.String(length=320), nullable=True),
        sa.Column("user_defined_identifier", sa.Text(), nullable=True),
        sa.Column("last_modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw_detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("change_token", sa.String(length=128), nullable=True),
        sa.Column("last_seen_run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_clients_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "client_key", name=op.f("pk_clients")),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_key", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line_item_key", sa.String(length=64), nullable=True),
        sa.Column("billable_item_type", sa.String(length=32), nullable=True),
        sa.Column("billable_item_entity_key", sa.String(length=256), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=20, scale=6), nullable=True),
        sa.Column("unit_price", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("amount", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("tax_rate", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("tax_rate_name", sa.Text(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_invoice_lines_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "invoice_key", "position", name=op.f("pk_invoice_lines")
        ),
    )
    op.create_table(
        "invoices",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_key", sa.String(length=64), nullable=False),
        sa.Column("invoice_number", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("invoice_date", sa.Date(), nullable=True),
        sa.Column("payment_due_date", sa.Date(), nullable=True),
        sa.Column("karbon_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency_code", sa.String(length=8), nullable=True),
        sa.Column("total", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("subtotal", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("tax_total", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("amount_due", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        sa.Column("client_type", sa.String(length=32), nullable=True),
        sa.Column("client_name", sa.Text(), nullable=True),
        sa.Column("lines_known", sa.Boolean(), nullable=False),
        sa.Column("data_lines", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("raw_detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("change_token", sa.String(length=128), nullable=True),
        sa.Column("last_seen_run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_invoices_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "invoice_key", name=op.f("pk_invoices")),
    )
    op.create_table(
        "raw_responses",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_raw_responses_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_responses")),
    )
    op.create_index(
        "ix_raw_responses_tenant_stream",
        "raw_responses",
        ["tenant_id", "stream", "id"],
        unique=False,
    )
    op.create_table(
        "rejected_records",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(length=256), nullable=False),
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
    op.create_table(
        "staff",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("user_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("capacity_minutes_per_week", sa.Integer(), nullable=True),
        sa.Column("billable_rate", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("raw_detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("change_token", sa.String(length=128), nullable=True),
        sa.Column("last_seen_run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_staff_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "user_key", name=op.f("pk_staff")),
    )
    op.create_table(
        "stream_states",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("high_water_mark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_stream_states_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "stream", name=op.f("pk_stream_states")),
    )
    op.create_table(
        "sync_runs",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column(
            "kind", sa.Enum("initial", "incremental", "full", name="sync_kind"), nullable=False
        ),
        sa.Column(
            "trigger", sa.Enum("connect", "manual", "schedule", name="sync_trigger"), nullable=False
        ),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                "auth_failed",
                "cancelled",
                name="sync_state",
            ),
            nullable=False,
        ),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requests_made", sa.Integer(), nullable=False),
        sa.Column("request_rate", sa.Double(), nullable=False),
        sa.Column("progress", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("checkpoint", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sync_runs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index(
        "ix_sync_runs_tenant_requested", "sync_runs", ["tenant_id", "requested_at"], unique=False
    )
    op.create_index(
        "uq_sync_runs_one_active_per_tenant",
        "sync_runs",
        ["tenant_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )
    op.create_table(
        "sync_settings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("incremental_interval_minutes", sa.Integer(), nullable=False),
        sa.Column("nightly_reconciliation", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sync_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_sync_settings")),
    )
    op.create_table(
        "time_entries",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("time_entry_key", sa.String(length=256), nullable=False),
        sa.Column("timesheet_key", sa.String(length=128), nullable=False),
        sa.Column("user_key", sa.String(length=64), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("entity_key", sa.String(length=64), nullable=True),
        sa.Column("work_item_key", sa.String(length=64), nullable=True),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        sa.Column("client_type", sa.String(length=32), nullable=True),
        sa.Column("role_name", sa.Text(), nullable=True),
        sa.Column("task_type_name", sa.Text(), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("hourly_rate", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("billed_status", sa.String(length=32), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("change_token", sa.String(length=128), nullable=True),
        sa.Column("last_seen_run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_time_entries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "time_entry_key", name=op.f("pk_time_entries")),
    )
    op.create_index(
        "ix_time_entries_tenant_billed_status",
        "time_entries",
        ["tenant_id", "billed_status"],
        unique=False,
    )
    op.create_index(
        "ix_time_entries_tenant_timesheet",
        "time_entries",
        ["tenant_id", "timesheet_key"],
        unique=False,
    )
    op.create_table(
        "timesheets",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("timesheet_key", sa.String(length=128), nullable=False),
        sa.Column("user_key", sa.String(length=64), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("change_token", sa.String(length=128), nullable=True),
        sa.Column("last_seen_run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_timesheets_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "timesheet_key", name=op.f("pk_timesheets")),
    )
    op.create_index(
        "ix_timesheets_tenant_start", "timesheets", ["tenant_id", "start_date"], unique=False
    )
    op.create_table(
        "work_items",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("work_item_key", sa.String(length=64), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        sa.Column("client_type", sa.String(length=32), nullable=True),
        sa.Column("client_name", sa.Text(), nullable=True),
        sa.Column("related_client_group_key", sa.String(length=64), nullable=True),
        sa.Column("assignee_key", sa.String(length=64), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("completed_date", sa.Date(), nullable=True),
        sa.Column("work_type", sa.Text(), nullable=True),
        sa.Column("work_status", sa.Text(), nullable=True),
        sa.Column("primary_status", sa.String(length=32), nullable=True),
        sa.Column("secondary_status", sa.Text(), nullable=True),
        sa.Column("fee_type", sa.String(length=32), nullable=True),
        sa.Column("fee_value", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("raw_detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("change_token", sa.String(length=128), nullable=True),
        sa.Column("last_seen_run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "synced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_work_items_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "work_item_key", name=op.f("pk_work_items")),
    )


def downgrade() -> None:
    op.drop_table("work_items")
    op.drop_index("ix_timesheets_tenant_start", table_name="timesheets")
    op.drop_table("timesheets")
    op.drop_index("ix_time_entries_tenant_timesheet", table_name="time_entries")
    op.drop_index("ix_time_entries_tenant_billed_status", table_name="time_entries")
    op.drop_table("time_entries")
    op.drop_table("sync_settings")
    op.drop_index(
        "uq_sync_runs_one_active_per_tenant",
        table_name="sync_runs",
        postgresql_where=sa.text("state IN ('queued', 'running')"),
    )
    op.drop_index("ix_sync_runs_tenant_requested", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("stream_states")
    op.drop_table("staff")
    op.drop_table("rejected_records")
    op.drop_index("ix_raw_responses_tenant_stream", table_name="raw_responses")
    op.drop_table("raw_responses")
    op.drop_table("invoices")
    op.drop_table("invoice_lines")
    op.drop_table("clients")
    for name in ("sync_state", "sync_trigger", "sync_kind"):
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
