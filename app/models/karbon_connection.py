from datetime import datetime
from uuid import UUID

from sqlalchemy import ARRAY, ColumnElement, ForeignKey, String, Text, and_
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, Timestamped, UUIDPrimaryKey


class KarbonConnection(UUIDPrimaryKey, Timestamped, Base):
    """A tenant's Karbon keys (encrypted at rest) and the health of its connection.

    One row per tenant, kept after a disconnect so the trial and error history survive;
    disconnecting clears the keys.
    """

    __tablename__ = "karbon_connections"

    tenant_id: Mapped[UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), unique=True
    )
    access_key_encrypted: Mapped[str | None] = mapped_column(Text)
    bearer_token_encrypted: Mapped[str | None] = mapped_column(Text)
    access_key_masked: Mapped[str | None] = mapped_column(String(40))
    bearer_token_masked: Mapped[str | None] = mapped_column(String(40))
    validated_at: Mapped[datetime | None]
    connected_at: Mapped[datetime | None]
    disconnected_at: Mapped[datetime | None]

    last_error_code: Mapped[str | None] = mapped_column(String(100))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    last_error_likely_cause: Mapped[str | None] = mapped_column(Text)
    last_error_steps: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    last_error_at: Mapped[datetime | None]
    alerted_at: Mapped[datetime | None]
    """When the admin was last e-mailed about the current error (one alert per error)."""

    @hybrid_property
    def is_connected(self) -> bool:
        """Both keys are stored: the one rule for "connected", in Python and in SQL."""
        return self.access_key_encrypted is not None and self.bearer_token_encrypted is not None

    @is_connected.inplace.expression
    @classmethod
    def _is_connected_expression(cls) -> ColumnElement[bool]:
        return and_(cls.access_key_encrypted.is_not(None), cls.bearer_token_encrypted.is_not(None))
