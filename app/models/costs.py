"""Cost assumptions a firm enters in Reckonry: per-tenant settings and effective-dated pay."""

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import CheckConstraint, ForeignKey, Numeric, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from app.domain.recognition import BillingBasis
from app.models.base import Base


class CostSettings(Base):
    """A firm's overhead, working weeks, default capacity and recognition policy."""

    __tablename__ = "cost_settings"

    tenant_id: Mapped[UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    overhead_rate: Mapped[Decimal] = mapped_column(Numeric(8, 4), default=Decimal(0))
    working_weeks_per_year: Mapped[Decimal] = mapped_column(Numeric(6, 2), default=Decimal(48))
    default_capacity_hours_per_week: Mapped[Decimal] = mapped_column(
        Numeric(6, 2), default=Decimal("37.5")
    )
    recognition_policy: Mapped[str] = mapped_column(Text, default=BillingBasis.name)
    """A name in ``app.domain.recognition.RECOGNITION_POLICIES``, which the API checks."""
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    __table_args__ = (CheckConstraint("recognition_policy ~ '^[a-z][a-z_]*$'", name="policy_name"),)


class CompensationPeriod(Base):
    """A staff member's annual compensation from ``effective_from`` until the next period."""

    __tablename__ = "compensation_periods"

    tenant_id: Mapped[UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    staff_key: Mapped[str] = mapped_column(Text, primary_key=True)
    effective_from: Mapped[date] = mapped_column(primary_key=True)
    annual_amount: Mapped[Decimal] = mapped_column(Numeric(20, 4))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
