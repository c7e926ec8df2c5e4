"""How complete each tenant's report facts are: reports during the first sync say so.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_completeness",
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("first_sync_completed", sa.Boolean(), nullable=False),
        sa.Column("lists_in", sa.Boolean(), nullable=False),
        sa.Column("progress", postgresql.JSONB(), nullable=False),
        sa.Column("moving_clients", postgresql.ARRAY(sa.Text()), nullable=False),
    )
    # Refreshes before this one read the data of a completed sync, or of a first sync under
    # way (no `as_of`): they were complete, or not at all.
    op.execute(
        "INSERT INTO report_completeness (tenant_id, complete, first_sync_completed, lists_in, "
        "progress, moving_clients) SELECT tenant_id, as_of IS NOT NULL, as_of IS NOT NULL, "
        "as_of IS NOT NULL, '[]'::jsonb, '{}'::text[] FROM report_refreshes"
    )


def downgrade() -> None:
    op.drop_table("report_completeness")
