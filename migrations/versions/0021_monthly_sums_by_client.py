"""The monthly sums of a few clients read by client: a report's page and one client's report.

A report by client over a window whose sums were not kept sums the page's clients in full,
and one client's report sums that client's months: both read `report_monthly_sums` by client
and month instead of every client's rows of the window's months.

Revision ID: 0021
Revises: 0020
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_report_monthly_sums_tenant_client_month",
        "report_monthly_sums",
        ["tenant_id", "client_key", "month"],
    )


def downgrade() -> None:
    op.drop_index("ix_report_monthly_sums_tenant_client_month", table_name="report_monthly_sums")
