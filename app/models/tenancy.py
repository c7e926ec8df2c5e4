import enum
from datetime import datetime
from uuid import UUID

from sqlalchemy import ARRAY, CheckConstraint, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, Timestamped, UUIDPrimaryKey


class Role(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"
    OPERATOR = "operator"


class ApiScope(enum.StrEnum):
    """What an integrator key may read; chosen when the key is created."""

    REPORTS_READ = "reports:read"
    SYNC_READ = "sync:read"
    PAY_READ = "pay:read"
    """Per-person pay and cost in what `reports:read` reads: admins' view instead of members'."""


class Tenant(UUIDPrimaryKey, Timestamped, Base):
    """A firm. Its trial starts at the first successful Karbon key validation."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(200))
    trial_started_at: Mapped[datetime | None]
    subscription_active: Mapped[bool] = mapped_column(default=False)

    users: Mapped[list["User"]] = relationship(back_populates="tenant", lazy="raise")


class User(UUIDPrimaryKey, Timestamped, Base):
    """A person who signs in. Platform operators belong to no tenant."""

    __tablename__ = "users"

    tenant_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="user_role", values_callable=lambda roles: [r.value for r in roles])
    )
    is_active: Mapped[bool] = mapped_column(default=True)

    tenant: Mapped[Tenant | None] = relationship(back_populates="users", lazy="raise")


class ApiKey(UUIDPrimaryKey, Timestamped, Base):
    """An integrator's key: read-only access to what its `scopes` name in one tenant.

    Only the SHA-256 of the key is kept; the key itself is shown once, at creation.
    """

    __tablename__ = "api_keys"

    tenant_id: Mapped[UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(20))
    created_by_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None]
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    """`ApiScope` values; the API refuses any other."""

    __table_args__ = (CheckConstraint("cardinality(scopes) > 0", name="some_scope"),)
