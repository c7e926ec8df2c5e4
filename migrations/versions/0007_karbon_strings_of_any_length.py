"""Karbon's keys and strings are stored at any length.

Karbon documents no length for its keys (time entry keys are long composites), e-mails or
currency codes, but these columns had one, and a write that cast a longer value to it cut the
value short without a word: two long keys sharing a prefix would have become one record.
VARCHAR to TEXT is binary-compatible in PostgreSQL, so this rewrites no table and no index.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WIDENED: dict[str, dict[str, int]] = {
    "staff": {"user_key": 64, "email": 320},
    "clients": {"client_key": 64, "owner_email": 320, "manager_email": 320},
    "work_items": {
        "work_item_key": 64,
        "client_key": 64,
        "related_client_group_key": 64,
        "assignee_key": 64,
    },
    "timesheets": {"timesheet_key": 128, "user_key": 64},
    "time_entries": {
        "time_entry_key": 256,
        "timesheet_key": 128,
        "user_key": 64,
        "entity_key": 64,
        "work_item_key": 64,
        "client_key": 64,
    },
    "invoices": {"invoice_key": 64, "currency_code": 8, "client_key": 64},
    "invoice_lines": {"invoice_key": 64, "line_item_key": 64, "billable_item_entity_key": 256},
    "rejected_records": {"record_key": 256},
    "report_refreshes": {"currency": 8},
    "report_facts": {"source_key": 300, "client_key": 64, "work_item_key": 64, "staff_key": 64},
    "report_monthly_sums": {"client_key": 64},
    "report_client_names": {"client_key": 64},
    "report_window_sums": {"client_key": 64},
    "report_wip_items": {"client_key": 64, "work_item_key": 64},
    "report_fixed_fees": {"work_item_key": 64, "client_key": 64},
    "report_warnings": {"subject_key": 300},
    "compensation_periods": {"staff_key": 64},
}


def upgrade() -> None:
    for table, columns in WIDENED.items():
        for column, length in columns.items():
            op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(length))


def downgrade() -> None:
    # Fails, rather than cutting values short, once a longer value is stored.
    for table, columns in WIDENED.items():
        for column, length in columns.items():
            op.alter_column(table, column, type_=sa.String(length), existing_type=sa.Text())
