"""Incremental report refresh: what each refresh saw, and which record each fact comes from.

`report_refreshes.changes_since`: synced rows written at or after it may be newer than the
refresh (the start of the oldest transaction running when it began); `inputs_digest`: the cost
settings and compensation it used. `report_facts.record_key`: the synced record a fact comes
from (time entry, invoice or work item), so a refresh finds the clients a changed record
counted for. `report_warnings.scope_key`: the client whose refresh rewrites the warning.
`report_staff_monthly_sums`: the facts summed per month and staff member, so staff
utilization reads a few rows per person instead of every entry; `report_firm_monthly_sums`:
the firm's facts summed per month, for firm totals.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
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


def _monthly_table(name: str, *dimensions: sa.Column[object]) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False, comment="First day of the month"),
        *dimensions,
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


def upgrade() -> None:
    _monthly_table("report_staff_monthly_sums", sa.Column("staff_key", sa.Text(), nullable=False))
    _monthly_table("report_firm_monthly_sums")
    op.add_column(
        "report_refreshes", sa.Column("changes_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("report_refreshes", sa.Column("inputs_digest", sa.Text(), nullable=True))
    op.add_column("report_facts", sa.Column("record_key", sa.Text(), nullable=True))
    op.create_index("ix_report_facts_tenant_record", "report_facts", ["tenant_id", "record_key"])
    op.add_column("report_warnings", sa.Column("scope_key", sa.Text(), nullable=True))


def downgrade() -> None:
    for name in ("report_firm_monthly_sums", "report_staff_monthly_sums"):
        op.drop_index(f"ix_{name}_tenant_month", table_name=name)
        op.drop_table(name)
    op.drop_column("report_warnings", "scope_key")
    op.drop_index("ix_report_facts_tenant_record", table_name="report_facts")
    op.drop_column("report_facts", "record_key")
    op.drop_column("report_refreshes", "inputs_digest")
    op.drop_column("report_refreshes", "changes_since")
