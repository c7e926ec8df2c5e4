"""Plans (trialing, active, past due, cancelled) with Stripe's ids; account token revocation.

A firm subscribed before keeps an `active` plan. Users gain a token generation (raised to sign
a person out everywhere) and may have no password yet (invited, not yet accepted); signed-out
tokens and received Stripe events get their tables.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STRIPE_COLUMNS = ("stripe_customer_id", "stripe_subscription_id")
_DATES = ("trial_extended_until", "subscription_status_since", "current_period_ends_at")


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column(
            "subscription_status",
            sa.String(length=20),
            server_default="trialing",
            nullable=False,
        ),
    )
    op.execute("UPDATE tenants SET subscription_status = 'active' WHERE subscription_active")
    op.drop_column("tenants", "subscription_active")
    op.create_check_constraint(
        "subscription_status",
        "tenants",
        sa.text("subscription_status IN ('trialing', 'active', 'past_due', 'cancelled')"),
    )
    for name in (*_DATES, "stripe_event_at"):
        op.add_column("tenants", sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    for name in _STRIPE_COLUMNS:
        op.add_column("tenants", sa.Column(name, sa.String(length=255), nullable=True))
        op.create_index(op.f(f"ix_tenants_{name}"), "tenants", [name], unique=False)

    op.alter_column("users", "password_hash", existing_type=sa.String(length=200), nullable=True)
    op.add_column(
        "users",
        sa.Column("token_generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_revoked_tokens")),
    )
    op.create_index(
        op.f("ix_revoked_tokens_expires_at"), "revoked_tokens", ["expires_at"], unique=False
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_stripe_events_tenant_id_tenants"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index(
        op.f("ix_stripe_events_tenant_id"), "stripe_events", ["tenant_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_stripe_events_tenant_id"), table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_index(op.f("ix_revoked_tokens_expires_at"), table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
    op.drop_column("users", "token_generation")
    # Fails, rather than inventing a password, while an invitation is still open.
    op.alter_column("users", "password_hash", existing_type=sa.String(length=200), nullable=False)
    for name in _STRIPE_COLUMNS:
        op.drop_index(op.f(f"ix_tenants_{name}"), table_name="tenants")
        op.drop_column("tenants", name)
    for name in (*_DATES, "stripe_event_at"):
        op.drop_column("tenants", name)
    op.drop_constraint("subscription_status", "tenants", type_="check")
    op.add_column(
        "tenants",
        sa.Column("subscription_active", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.execute(
        "UPDATE tenants SET subscription_active = subscription_status IN ('active', 'past_due')"
    )
    op.alter_column("tenants", "subscription_active", server_default=None)
    op.drop_column("tenants", "subscription_status")
