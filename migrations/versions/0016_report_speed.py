"""Incremental report refresh: what each refresh saw, and which record each fact comes from.

`report_refreshes.changes_since`: synced rows written at or after it may be newer than the
refresh (the start of the oldest transaction running when it began); `inputs_digest`: the cost
settings and compensation it used. `report_facts.record_key`: the synced record a fact comes
from (time entry, invoice or work item), so a refresh finds the clients a changed record
counted for. `report_warnings.scope_key`: the client whose refresh rewrites the warning.

Revision ID: 0016_report_speed
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_report_speed"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "report_refreshes", sa.Column("changes_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("report_refreshes", sa.Column("inputs_digest", sa.Text(), nullable=True))
    op.add_column("report_facts", sa.Column("record_key", sa.Text(), nullable=True))
    op.create_index("ix_report_facts_tenant_record", "report_facts", ["tenant_id", "record_key"])
    op.add_column("report_warnings", sa.Column("scope_key", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("report_warnings", "scope_key")
    op.drop_index("ix_report_facts_tenant_record", table_name="report_facts")
    op.drop_column("report_facts", "record_key")
    op.drop_column("report_refreshes", "inputs_digest")
    op.drop_column("report_refreshes", "changes_since")
