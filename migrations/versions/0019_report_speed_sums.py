"""Report speed as firms grow: monthly sums that group by owner, manager and work type
without a join, and the stored status of WIP items.

`report_monthly_sums` gains `owner_email` and `manager_email` (the client's, as its name row
holds them), so reports grouped or filtered by owner or manager read the monthly sums alone.
`report_firm_monthly_sums` gains `fee_type` and `work_type`: reports grouped by work type,
and totals filtered by fee type, read a few rows per month. `report_wip_items` gains
`work_item_status`: the work item's Karbon `PrimaryStatus` as of the refresh ('' when it has
none; NULL for time on the client itself or a work item that is not synced), so unbilled
work filtered by status never reads the synced work items. All are filled from the rows the
last refresh left.

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

MEASURES = (
    "fee_revenue",
    "expense_recoveries",
    "approved_not_sent",
    "approved_not_sent_expenses",
    "cost",
    "uncosted_minutes",
    "billable_minutes",
    "non_billable_minutes",
    "standard_value",
    "billable_standard_value",
    "defaulted_capacity_minutes",
    "collected_before_tax",
    "counted_invoice_total",
    "counted_amount_due",
)
FIRM = "report_firm_monthly_sums"


def upgrade() -> None:
    op.add_column("report_monthly_sums", sa.Column("owner_email", sa.Text(), nullable=True))
    op.add_column("report_monthly_sums", sa.Column("manager_email", sa.Text(), nullable=True))
    op.execute(
        "UPDATE report_monthly_sums m"
        " SET owner_email = n.owner_email, manager_email = n.manager_email"
        " FROM report_client_names n"
        " WHERE n.tenant_id = m.tenant_id AND n.client_key = m.client_key"
    )
    op.add_column(FIRM, sa.Column("fee_type", sa.String(length=32), nullable=True))
    op.add_column(FIRM, sa.Column("work_type", sa.Text(), nullable=True))
    _sum_firm_months(("fee_type", "work_type"))
    op.add_column("report_wip_items", sa.Column("work_item_status", sa.Text(), nullable=True))
    op.execute(
        "UPDATE report_wip_items i SET work_item_status = coalesce(w.primary_status, '')"
        " FROM work_items w"
        " WHERE w.tenant_id = i.tenant_id AND w.work_item_key = i.work_item_key"
    )


def _sum_firm_months(dimensions: tuple[str, ...]) -> None:
    """The firm's monthly sums again, from the clients', per `dimensions`."""
    kept = ", ".join(("tenant_id", "month", *dimensions))
    sums = ", ".join(f"sum({name})" for name in MEASURES)
    op.execute(f"DELETE FROM {FIRM}")
    op.execute(
        f"INSERT INTO {FIRM} ({kept}, {', '.join(MEASURES)})"
        f" SELECT {kept}, {sums} FROM report_monthly_sums GROUP BY {kept}"
    )


def downgrade() -> None:
    op.drop_column("report_wip_items", "work_item_status")
    op.drop_column(FIRM, "work_type")
    op.drop_column(FIRM, "fee_type")
    _sum_firm_months(())
    op.drop_column("report_monthly_sums", "manager_email")
    op.drop_column("report_monthly_sums", "owner_email")
