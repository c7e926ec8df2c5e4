"""Report facts summed per month, client, fee type and work type at refresh time, so a
report over whole months reads a few rows per client instead of every fact.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(precision=30, scale=10)
MONEY_MEASURES = (
    "fee_revenue",
    "expense_recoveries",
    "approved_not_sent",
    "approved_not_sent_expenses",
    "cost",
)
MINUTE_MEASURES = ("uncosted_minutes", "billable_minutes", "non_billable_minutes")
VALUE_MEASURES = ("standard_value", "billable_standard_value")
CASH_MEASURES = ("collected_before_tax", "counted_invoice_total", "counted_amount_due")


def _measures() -> list[sa.Column[object]]:
    return [
        *(sa.Column(name, MONEY, nullable=False) for name in MONEY_MEASURES),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in MINUTE_MEASURES),
        *(sa.Column(name, MONEY, nullable=False) for name in VALUE_MEASURES),
        sa.Column("defaulted_capacity_minutes", sa.BigInteger(), nullable=False),
        *(sa.Column(name, MONEY, nullable=False) for name in CASH_MEASURES),
    ]


def upgrade() -> None:
    op.create_table(
        "report_monthly_sums",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False, comment="First day of the month"),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        sa.Column("fee_type", sa.String(length=32), nullable=True),
        sa.Column("work_type", sa.Text(), nullable=True),
        *_measures(),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_report_monthly_sums_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_monthly_sums")),
    )
    op.create_index(
        "ix_report_monthly_sums_tenant_month",
        "report_monthly_sums",
        ["tenant_id", "month"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_report_monthly_sums_tenant_month", table_name="report_monthly_sums")
    op.drop_table("report_monthly_sums")
