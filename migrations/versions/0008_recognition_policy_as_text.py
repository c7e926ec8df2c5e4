"""Recognition policies are named in text, checked by the domain's registry.

The policy column was a PostgreSQL enum, so a new policy needed a migration besides its class.
The name is now text: the registry in ``app.domain.recognition`` decides which names exist
(the API refuses any other), and the database checks only that it looks like a policy name.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY_ENUM = sa.Enum("billing", "completion", name="recognition_policy")


def upgrade() -> None:
    op.alter_column(
        "cost_settings",
        "recognition_policy",
        type_=sa.Text(),
        existing_type=POLICY_ENUM,
        existing_nullable=False,
        postgresql_using="recognition_policy::text",
    )
    POLICY_ENUM.drop(op.get_bind())
    op.create_check_constraint(
        "policy_name", "cost_settings", sa.text("recognition_policy ~ '^[a-z][a-z_]*$'")
    )


def downgrade() -> None:
    # Fails, rather than losing a tenant's choice, once a policy the enum lacks is stored.
    op.drop_constraint("policy_name", "cost_settings", type_="check")
    POLICY_ENUM.create(op.get_bind())
    op.alter_column(
        "cost_settings",
        "recognition_policy",
        type_=POLICY_ENUM,
        existing_type=sa.Text(),
        existing_nullable=False,
        postgresql_using="recognition_policy::recognition_policy",
    )
