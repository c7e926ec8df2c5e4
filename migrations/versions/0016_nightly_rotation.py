"""Each full run's share of the nightly rotation of detail re-checks.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nightly_rotations",
        sa.Column(
            "run_id",
            sa.Uuid(),
            sa.ForeignKey("sync_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "tenant_id",
            sa.Uuid(),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("period", sa.SmallInteger(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("list_pages", sa.Integer(), nullable=False),
        sa.Column("detail_records", sa.Integer(), nullable=False),
        sa.Column("share", sa.Integer(), nullable=False),
        sa.Column("night_requests", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_nightly_rotations_tenant_created", "nightly_rotations", ["tenant_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("nightly_rotations")
