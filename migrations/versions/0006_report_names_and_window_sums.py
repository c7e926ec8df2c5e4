"""Kept at refresh so the reports read less on each request: each client's name (a report
sorts by name in SQL instead of gathering names from clients, work items and invoices), and
each client's sums over the windows reports are most often asked for (the trailing year and
each calendar year), so such a report reads one row per client.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(precision=30, scale=10)
MONEY_SUMS = (
    "fee_revenue",
    "expense_recoveries",
    "approved_not_sent",
    "approved_not_sent_expenses",
    "cost",
    "standard_value",
    "billable_standard_value",
    "collected_before_tax",
    "counted_invoice_total",
    "counted_amount_due",
    "unbilled",
)
MINUTE_SUMS = (
    "uncosted_minutes",
    "billable_minutes",
    "non_billable_minutes",
    "defaulted_capacity_minutes",
)


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def _sums() -> list[sa.Column[object]]:
    money = [sa.Column(name, MONEY, nullable=False) for name in MONEY_SUMS]
    return money + [sa.Column(name, sa.BigInteger(), nullable=False) for name in MINUTE_SUMS]


def upgrade() -> None:
    op.create_table(
        "report_client_names",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        _tenant_fk("report_client_names"),
        sa.PrimaryKeyConstraint("tenant_id", "client_key", name=op.f("pk_report_client_names")),
    )
    op.create_table(
        "report_summed_windows",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        _tenant_fk("report_summed_windows"),
        sa.PrimaryKeyConstraint(
            "tenant_id", "window_start", "window_end", name=op.f("pk_report_summed_windows")
        ),
    )
    op.create_table(
        "report_window_sums",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        *_sums(),
        _tenant_fk("report_window_sums"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_window_sums")),
    )
    op.create_index(
        "ix_report_window_sums_tenant_window",
        "report_window_sums",
        ["tenant_id", "window_start", "window_end"],
    )


def downgrade() -> None:
    op.drop_index("ix_report_window_sums_tenant_window", table_name="report_window_sums")
    op.drop_table("report_window_sums")
    op.drop_table("report_summed_windows")
    op.drop_table("report_client_names")
