"""A sync stopped by an endpoint its Karbon API application may not read ends in its own state.

Karbon grants endpoints to each API application one by one: a 403 is a missing permission,
not rejected keys, so such a run ends ``permission_denied`` rather than ``auth_failed``.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATES = "'queued', 'running', 'succeeded', 'failed', 'auth_failed', 'cancelled'"


def upgrade() -> None:
    op.execute("ALTER TYPE sync_state ADD VALUE IF NOT EXISTS 'permission_denied'")


def downgrade() -> None:
    # PostgreSQL cannot drop an enum value: such runs become plain failures, and the type is
    # rebuilt without the value (the partial index on the state goes and comes back with it).
    op.execute("UPDATE sync_runs SET state = 'failed' WHERE state = 'permission_denied'")
    op.execute("DROP INDEX uq_sync_runs_one_active_per_tenant")
    op.execute("ALTER TYPE sync_state RENAME TO sync_state_with_permission_denied")
    op.execute(f"CREATE TYPE sync_state AS ENUM ({OLD_STATES})")
    op.execute(
        "ALTER TABLE sync_runs ALTER COLUMN state TYPE sync_state USING state::text::sync_state"
    )
    op.execute("DROP TYPE sync_state_with_permission_denied")
    op.execute(
        "CREATE UNIQUE INDEX uq_sync_runs_one_active_per_tenant ON sync_runs (tenant_id) "
        "WHERE state IN ('queued', 'running')"
    )
