"""Cost assumptions (per-tenant settings, effective-dated compensation) and the tables the
reports read: facts, WIP items, fixed-fee positions, warnings and the refresh marker.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "compensation_periods",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("staff_key", sa.String(length=64), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("annual_amount", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_compensation_periods_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "staff_key", "effective_from", name=op.f("pk_compensation_periods")
        ),
    )
    op.create_table(
        "cost_settings",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("overhead_rate", sa.Numeric(precision=8, scale=4), nullable=False),
        sa.Column("working_weeks_per_year", sa.Numeric(precision=6, scale=2), nullable=False),
        sa.Column(
            "default_capacity_hours_per_week", sa.Numeric(precision=6, scale=2), nullable=False
        ),
        sa.Column(
            "recognition_policy",
            sa.Enum("billing", "completion", name="recognition_policy"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_cost_settings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_cost_settings")),
    )
    op.create_table(
        "report_facts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_key", sa.String(length=300), nullable=False),
        sa.Column("fact_date", sa.Date(), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        sa.Column("client_known", sa.Boolean(), nullable=False),
        sa.Column("work_item_key", sa.String(length=64), nullable=True),
        sa.Column("staff_key", sa.String(length=64), nullable=True),
        sa.Column("fee_type", sa.String(length=32), nullable=True),
        sa.Column("work_type", sa.Text(), nullable=True),
        sa.Column("fee_revenue", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("expense_recoveries", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("approved_not_sent", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("approved_not_sent_expenses", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("cost", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("uncosted_minutes", sa.BigInteger(), nullable=False),
        sa.Column("billable_minutes", sa.BigInteger(), nullable=False),
        sa.Column("non_billable_minutes", sa.BigInteger(), nullable=False),
        sa.Column("standard_value", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("billable_standard_value", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("defaulted_capacity_minutes", sa.BigInteger(), nullable=False),
        sa.Column("collected_before_tax", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("counted_invoice_total", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("counted_amount_due", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_report_facts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_facts")),
    )
    op.create_index(
        "ix_report_facts_tenant_client_date",
        "report_facts",
        ["tenant_id", "client_key", "fact_date"],
        unique=False,
    )
    op.create_index(
        "ix_report_facts_tenant_date", "report_facts", ["tenant_id", "fact_date"], unique=False
    )
    op.create_index(
        "ix_report_facts_tenant_staff_date",
        "report_facts",
        ["tenant_id", "staff_key", "fact_date"],
        unique=False,
    )
    op.create_table(
        "report_fixed_fees",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("work_item_key", sa.String(length=64), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=False),
        sa.Column("fee_value", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("invoiced", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.Column("standard_value", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("write_up_down", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("wip", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("first_entry_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_report_fixed_fees_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "work_item_key", name=op.f("pk_report_fixed_fees")),
    )
    op.create_table(
        "report_refreshes",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("facts", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_report_refreshes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_report_refreshes")),
    )
    op.create_table(
        "report_warnings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject_key", sa.String(length=300), nullable=False),
        sa.Column("subject_name", sa.Text(), nullable=False),
        sa.Column("minutes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_report_warnings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_warnings")),
    )
    op.create_index(
        "ix_report_warnings_tenant_kind", "report_warnings", ["tenant_id", "kind"], unique=False
    )
    op.create_table(
        "report_wip_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        sa.Column("client_known", sa.Boolean(), nullable=False),
        sa.Column("work_item_key", sa.String(length=64), nullable=True),
        sa.Column("fee_type", sa.String(length=32), nullable=True),
        sa.Column("work_type", sa.Text(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=30, scale=10), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("age_days", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_report_wip_items_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_wip_items")),
    )
    op.create_index(
        "ix_report_wip_items_tenant_client",
        "report_wip_items",
        ["tenant_id", "client_key"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_report_wip_items_tenant_client", table_name="report_wip_items")
    op.drop_table("report_wip_items")
    op.drop_index("ix_report_warnings_tenant_kind", table_name="report_warnings")
    op.drop_table("report_warnings")
    op.drop_table("report_refreshes")
    op.drop_table("report_fixed_fees")
    op.drop_index("ix_report_facts_tenant_staff_date", table_name="report_facts")
    op.drop_index("ix_report_facts_tenant_date", table_name="report_facts")
    op.drop_index("ix_report_facts_tenant_client_date", table_name="report_facts")
    op.drop_table("report_facts")
    op.drop_table("cost_settings")
    op.drop_table("compensation_periods")
    sa.Enum(name="recognition_policy").drop(op.get_bind(), checkfirst=True)
