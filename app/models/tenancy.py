import enum
from datetime import datetime
from uuid import UUID

from sqlalchemy import ARRAY, CheckConstraint, Enum, ForeignKey, Index, String, Text, func, text
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


class SubscriptionStatus(enum.StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELLED = "cancelled"


class Tenant(UUIDPrimaryKey, Timestamped, Base):
    """A firm. Its trial starts at the first successful Karbon key validation.

    The plan (`subscription_status`) is set by Stripe's events or by an operator; the Stripe
    ids tie later events to the firm that paid.
    """

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint(
            "subscription_status IN ('trialing', 'active', 'past_due', 'cancelled')",
            name="subscription_status",
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    trial_started_at: Mapped[datetime | None]
    trial_extended_until: Mapped[datetime | None]
    """Set by an operator; the trial ends at the later of this and 7 days from its start."""
    subscription_status: Mapped[SubscriptionStatus] = mapped_column(
        String(20), default=SubscriptionStatus.TRIALING, server_default="trialing"
    )
    subscription_status_since: Mapped[datetime | None]
    current_period_ends_at: Mapped[datetime | None]
    """The paid period's end, as Stripe last reported it."""
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_event_at: Mapped[datetime | None]
    """When Stripe created the last event applied: an older one arriving late is not applied."""

    users: Mapped[list["User"]] = relationship(back_populates="tenant", lazy="raise")


class User(UUIDPrimaryKey, Timestamped, Base):
    """A person who signs in. Platform operators belong to no tenant."""

    __tablename__ = "users"

    tenant_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    """None until an invited person sets their password."""
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="user_role", values_callable=lambda roles: [r.value for r in roles])
    )
    is_active: Mapped[bool] = mapped_column(default=True)
    token_generation: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    """Raised to sign the person out everywhere; tokens carry the generation they were made in."""

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
    last_used_at: Mapped[datetime | None]
    """Rewritten at most once a minute per key: accurate to the minute, not a write a request."""

    __table_args__ = (CheckConstraint("cardinality(scopes) > 0", name="some_scope"),)


class RevokedToken(Base):
    """A sign-in token signed out before it expired; forgotten once it has expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class StripeEvent(Base):
    """Every Stripe event received, so that a delivery repeated by Stripe changes nothing."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    tenant_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="SET NULL"), index=True
    )
    outcome: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AuditKind(enum.StrEnum):
    """What an audit event changed; `GET /api/v1/audit?kind=` filters on it."""

    COMPENSATION = "compensation"
    COST_SETTINGS = "cost_settings"
    KARBON_KEYS = "karbon_keys"
    MEMBERS = "members"
    API_KEYS = "api_keys"
    SUBSCRIPTION = "subscription"
    SYNC_SETTINGS = "sync_settings"
    SYNC = "sync"


class ActorKind(enum.StrEnum):
    PERSON = "person"
    API_KEY = "api_key"
    OPERATOR = "operator"
    STRIPE = "stripe"
    COMMAND_LINE = "command_line"


class AuditEvent(UUIDPrimaryKey, Base):
    """Who changed what in a firm, and when: written in the change's own transaction.

    Append-only: a trigger (migration 0014) refuses UPDATE and DELETE, except the DELETE that
    deleting the whole firm cascades to. No secret or pay amount is ever in its text.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_id_occurred_at", "tenant_id", "occurred_at"),
        CheckConstraint(
            "kind IN ('compensation', 'cost_settings', 'karbon_keys', 'members', 'api_keys', "
            "'subscription', 'sync_settings', 'sync')",
            name="kind",
        ),
        CheckConstraint(
            "actor_kind IN ('person', 'api_key', 'operator', 'stripe', 'command_line')",
            name="actor_kind",
        ),
    )

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    kind: Mapped[AuditKind] = mapped_column(String(30))
    action: Mapped[str] = mapped_column(String(60))
    actor_kind: Mapped[ActorKind] = mapped_column(String(20))
    actor_id: Mapped[UUID | None]
    """The person's or key's id; no foreign key: the record stays as written, whatever happens."""
    actor_label: Mapped[str] = mapped_column(Text)
    """The person's e-mail or the key's name and prefix when it acted."""
    subject: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")
