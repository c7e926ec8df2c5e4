"""A page's or detail's raw version keeps the hash of the response as Karbon sent it.

`raw_responses.response_sha256`: SHA-256 of the response body's bytes, for the versions a
response is kept as (its page or detail; not its records). A response read again with the
same bytes is known unchanged before it is parsed. Versions kept before have none, and get it
when next read unchanged.

Revision ID: 0022
Revises: 0021
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("raw_responses", sa.Column("response_sha256", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("raw_responses", "response_sha256")
