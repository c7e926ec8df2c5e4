"""Integrator keys carry scopes: `reports:read`, `sync:read`, `pay:read`.

Keys made before scopes read reports and sync status, and saw per-person cost in the reports:
they keep the first two and lose pay, which now needs a key created with `pay:read`. New keys
name their scopes explicitly, so the column keeps no default.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXISTING_KEYS_SCOPES = "ARRAY['reports:read', 'sync:read']::text[]"


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column(
            "scopes",
            sa.ARRAY(sa.Text()),
            nullable=False,
            server_default=sa.text(EXISTING_KEYS_SCOPES),
        ),
    )
    op.alter_column("api_keys", "scopes", server_default=None)
    op.create_check_constraint("some_scope", "api_keys", sa.text("cardinality(scopes) > 0"))


def downgrade() -> None:
    op.drop_constraint("some_scope", "api_keys", type_="check")
    op.drop_column("api_keys", "scopes")
