"""Report speed: monthly sums per owner and per manager, and the monthly sums read by client.

`report_owner_monthly_sums` and `report_manager_monthly_sums` hold the firm's facts of a
month summed per client owner (or manager), fee type and work type: a report grouped by
owner or manager reads a few rows per person and month instead of one per client. They are
filled from the clients' monthly sums the last refresh left.

A report by client over a window whose sums were not kept sums its page's clients in full,
and one client's report sums that client's months: both read `report_monthly_sums` by client
and month instead of every client's rows of the window's months.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
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
MEASURES = (
    *MONEY_MEASURES,
    *MINUTE_MEASURES,
    *VALUE_MEASURES,
    "defaulted_capacity_minutes",
    *CASH_MEASURES,
)
TEAM_TABLES = {
    "owner_email": "report_owner_monthly_sums",
    "manager_email": "report_manager_monthly_sums",
}


def _measures() -> list[sa.Column[object]]:
    return [
        *(sa.Column(name, MONEY, nullable=False) for name in MONEY_MEASURES),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in MINUTE_MEASURES),
        *(sa.Column(name, MONEY, nullable=False) for name in VALUE_MEASURES),
        sa.Column("defaulted_capacity_minutes", sa.BigInteger(), nullable=False),
        *(sa.Column(name, MONEY, nullable=False) for name in CASH_MEASURES),
    ]


def _team_table(name: str, email: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False, comment="First day of the month"),
        sa.Column(email, sa.Text(), nullable=True),
        sa.Column("fee_type", sa.String(length=32), nullable=True),
        sa.Column("work_type", sa.Text(), nullable=True),
        *_measures(),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f(f"fk_{name}_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_tenant_month", name, ["tenant_id", "month"])
    kept = ", ".join(("tenant_id", "month", email, "fee_type", "work_type"))
    sums = ", ".join(f"sum({measure})" for measure in MEASURES)
    op.execute(
        f"INSERT INTO {name} ({kept}, {', '.join(MEASURES)})"
        f" SELECT {kept}, {sums} FROM report_monthly_sums GROUP BY {kept}"
    )


def upgrade() -> None:
    for email, name in TEAM_TABLES.items():
        _team_table(name, email)
    op.create_index(
        "ix_report_monthly_sums_tenant_client_month",
        "report_monthly_sums",
        ["tenant_id", "client_key", "month"],
    )


def downgrade() -> None:
    op.drop_index("ix_report_monthly_sums_tenant_client_month", table_name="report_monthly_sums")
    for name in TEAM_TABLES.values():
        op.drop_index(f"ix_{name}_tenant_month", table_name=name)
        op.drop_table(name)
