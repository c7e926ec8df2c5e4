"""Report speed: facts and monthly sums that carry the work item's status.

`report_facts` gains `work_item_status`: the work item's Karbon `PrimaryStatus` as of the
refresh ('' when it has none; NULL for a fact without a work item or whose work item is not
synced), as `report_wip_items` keeps it, so a report filtered by status never reads the
synced work items. The monthly sums per client, and the firm's, per owner and per manager,
gain `work_status` ('completed' when that status is Completed, 'open' for any other, NULL
for facts in neither), so a report filtered by work status reads monthly sums for its whole
months. All are filled from the rows the last refresh left: the facts' status from the
synced work items, the monthly sums again from the facts.

Revision ID: 0023
Revises: 0022
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
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
CLIENT_SUMS = "report_monthly_sums"
FIRM_SUMS = {
    "report_firm_monthly_sums": (),
    "report_owner_monthly_sums": ("owner_email",),
    "report_manager_monthly_sums": ("manager_email",),
}
WORK_STATUS = (
    "CASE WHEN f.work_item_status = 'Completed' THEN 'completed'"
    " WHEN f.work_item_status IS NOT NULL THEN 'open' END"
)


def upgrade() -> None:
    op.add_column("report_facts", sa.Column("work_item_status", sa.Text(), nullable=True))
    op.execute(
        "UPDATE report_facts f SET work_item_status = coalesce(w.primary_status, '')"
        " FROM work_items w"
        " WHERE w.tenant_id = f.tenant_id AND w.work_item_key = f.work_item_key"
    )
    for table in (CLIENT_SUMS, *FIRM_SUMS):
        op.add_column(table, sa.Column("work_status", sa.String(length=16), nullable=True))
    _sum_months(WORK_STATUS)


def _sum_months(work_status: str | None) -> None:
    """Every monthly sum again: the clients' from the facts (with their owner and manager as
    the client's name row holds them, and per `work_status` unless None), the firm's from
    those."""
    status = [] if work_status is None else ["work_status"]
    kept = ["client_key", "fee_type", "work_type", "owner_email", "manager_email", *status]
    month = "date_trunc('month', f.fact_date)::date"
    grouped = ", ".join(
        [month, "f.client_key", "f.fee_type", "f.work_type", "n.owner_email", "n.manager_email"]
        + ([] if work_status is None else [work_status])
    )
    sums = ", ".join(f"sum(f.{name})" for name in MEASURES)
    op.execute(f"DELETE FROM {CLIENT_SUMS}")
    op.execute(
        f"INSERT INTO {CLIENT_SUMS} (tenant_id, month, {', '.join(kept)}, {', '.join(MEASURES)})"
        f" SELECT f.tenant_id, {grouped}, {sums}"
        " FROM report_facts f LEFT JOIN report_client_names n"
        " ON n.tenant_id = f.tenant_id AND n.client_key = f.client_key"
        f" GROUP BY f.tenant_id, {grouped}"
    )
    for table, team in FIRM_SUMS.items():
        columns = ", ".join(("tenant_id", "month", *team, "fee_type", "work_type", *status))
        sums = ", ".join(f"sum({name})" for name in MEASURES)
        op.execute(f"DELETE FROM {table}")
        op.execute(
            f"INSERT INTO {table} ({columns}, {', '.join(MEASURES)})"
            f" SELECT {columns}, {sums} FROM {CLIENT_SUMS} GROUP BY {columns}"
        )


def downgrade() -> None:
    _sum_months(None)
    for table in (CLIENT_SUMS, *FIRM_SUMS):
        op.drop_column(table, "work_status")
    op.drop_column("report_facts", "work_item_status")
