"""Sync runs, per-tenant sync settings and per-stream incremental state."""

import enum
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Enum, ForeignKey, Index, SmallInteger, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UUIDPrimaryKey


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(cls, name=name, values_callable=lambda members: [m.value for m in members])


class SyncKind(enum.StrEnum):
    INITIAL = "initial"
    INCREMENTAL = "incremental"
    FULL = "full"


class SyncTrigger(enum.StrEnum):
    CONNECT = "connect"
    MANUAL = "manual"
    SCHEDULE = "schedule"


class SyncState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    AUTH_FAILED = "auth_failed"
    """Karbon rejected the keys (a 401)."""
    PERMISSION_DENIED = "permission_denied"
    """The keys work, but their API application may not read an endpoint (a 403)."""
    CANCELLED = "cancelled"


ACTIVE_STATES = (SyncState.QUEUED, SyncState.RUNNING)


class SyncRun(UUIDPrimaryKey, Base):
    __tablename__ = "sync_runs"

    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[SyncKind] = mapped_column(_enum(SyncKind, "sync_kind"))
    trigger: Mapped[SyncTrigger] = mapped_column(_enum(SyncTrigger, "sync_trigger"))
    state: Mapped[SyncState] = mapped_column(_enum(SyncState, "sync_state"))
    requested_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    requests_made: Mapped[int] = mapped_column(default=0)
    request_rate: Mapped[float] = mapped_column(default=0.0)
    progress: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    """Per stream: pages done and total, records, requests, detail calls, state."""
    checkpoint: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    """Per stream: where a resumed run picks up (next link, phase, cursor)."""
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        # At most one queued or running sync per tenant: a second request joins it.
        Index(
            "uq_sync_runs_one_active_per_tenant",
            "tenant_id",
            unique=True,
            postgresql_where=text("state IN ('queued', 'running')"),
        ),
        Index("ix_sync_runs_tenant_requested", "tenant_id", "requested_at"),
    )


class SyncSettings(Base):
    __tablename__ = "sync_settings"

    tenant_id: Mapped[UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    incremental_interval_minutes: Mapped[int] = mapped_column(default=120)
    nightly_reconciliation: Mapped[bool] = mapped_column(default=True)


class StreamState(Base):
    """A stream's incremental high-water mark, advanced only when a run completes."""

    __tablename__ = "stream_states"

    tenant_id: Mapped[UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    high_water_mark: Mapped[datetime | None]
    updated_at: Mapped[datetime]


RECHECK_PRIORITY = 100
"""Pending details at or above this priority are re-reads of records already read in detail
(the nightly rotation): their figures are known. Below it, a record's detail is owed and the
figures that depend on it may still move."""


class PendingDetail(Base):
    """A record whose detail GET is still owed: listed, stored from its list JSON, waiting.

    The sync fills it while reading lists and empties it in order of `priority` (lowest
    first), each batch of detail calls committed with its rows, so a killed worker repeats at
    most one batch. Reports read it: a client with a record here may still see its figures
    move.
    """

    __tablename__ = "pending_details"

    tenant_id: Mapped[UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_key: Mapped[str] = mapped_column(Text, primary_key=True)
    priority: Mapped[int] = mapped_column(SmallInteger)
    """Lower is read sooner: what the reports need first (see `RECHECK_PRIORITY`)."""
    client_key: Mapped[str | None] = mapped_column(Text)
    """The client whose figures wait for this detail, when the list record names one."""
    run_id: Mapped[UUID | None] = mapped_column(ForeignKey("sync_runs.id", ondelete="SET NULL"))
    enqueued_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_pending_details_order", "tenant_id", "priority", "stream", "record_key"),
        Index("ix_pending_details_client", "tenant_id", "client_key"),
    )


class NightlyRotation(Base):
    """The share of held details one full run re-checks: written once per run, with its share
    queued in the same transaction, so a resumed run queues nothing twice."""

    __tablename__ = "nightly_rotations"

    run_id: Mapped[UUID] = mapped_column(
        ForeignKey("sync_runs.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    night: Mapped[date]
    period: Mapped[int] = mapped_column(SmallInteger)
    """Nights in which every held detail is re-checked once (1 to 7)."""
    bucket: Mapped[int] = mapped_column(SmallInteger)
    """Which of the `period` shares this night re-checks."""
    list_pages: Mapped[int]
    """Pages of a read of every list, estimated from the records held."""
    detail_records: Mapped[int]
    """Records held with their detail: the rotation's whole round."""
    share: Mapped[int]
    """This night's re-checks (the records in `bucket`)."""
    night_requests: Mapped[int]
    """What the night holds at the firm's request rate (01:00-05:00)."""
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_nightly_rotations_tenant_created", "tenant_id", "created_at"),)
