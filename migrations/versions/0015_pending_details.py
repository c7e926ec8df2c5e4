"""Detail calls still owed: the sync reads every list first and the details after, by value.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_details",
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("stream", sa.String(32), primary_key=True),
        sa.Column("record_key", sa.Text(), primary_key=True),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("client_key", sa.Text()),
        sa.Column("run_id", sa.Uuid(), sa.ForeignKey("sync_runs.id", ondelete="SET NULL")),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_pending_details_order",
        "pending_details",
        ["tenant_id", "priority", "stream", "record_key"],
    )
    op.create_index("ix_pending_details_client", "pending_details", ["tenant_id", "client_key"])


def downgrade() -> None:
    op.drop_table("pending_details")
