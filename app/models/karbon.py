"""What was synced from Karbon: normalized rows that keep the record's raw JSON.

Every table is keyed by tenant and Karbon key, so upserts are idempotent. A record that
Karbon stops returning is marked `deleted_at` by a full reconciliation, never dropped.
`last_seen_run_id` says which run last saw it (how reconciliation finds the missing).
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

MONEY = Numeric(20, 4)
Json = dict[str, Any]


def _tenant_fk() -> Mapped[UUID]:
    return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)


class SyncedRecord:
    """Columns every synced entity has."""

    raw: Mapped[Json] = mapped_column(JSONB)
    change_token: Mapped[str | None] = mapped_column(String(128))
    last_seen_run_id: Mapped[UUID | None]
    synced_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    deleted_at: Mapped[datetime | None]


class Staff(SyncedRecord, Base):
    __tablename__ = "staff"

    tenant_id: Mapped[UUID] = _tenant_fk()
    user_key: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    capacity_minutes_per_week: Mapped[int | None]
    billable_rate: Mapped[Decimal | None] = mapped_column(MONEY)
    raw_detail: Mapped[Json | None] = mapped_column(JSONB)


class Client(SyncedRecord, Base):
    """A Karbon Contact or Organization (Client Groups are derived from work and time)."""

    __tablename__ = "clients"

    tenant_id: Mapped[UUID] = _tenant_fk()
    client_key: Mapped[str] = mapped_column(Text, primary_key=True)
    client_type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(Text)
    contact_type: Mapped[str | None] = mapped_column(Text)
    owner_email: Mapped[str | None] = mapped_column(Text)
    manager_email: Mapped[str | None] = mapped_column(Text)
    user_defined_identifier: Mapped[str | None] = mapped_column(Text)
    last_modified_at: Mapped[datetime | None]
    raw_detail: Mapped[Json | None] = mapped_column(JSONB)


class WorkItem(SyncedRecord, Base):
    __tablename__ = "work_items"

    tenant_id: Mapped[UUID] = _tenant_fk()
    work_item_key: Mapped[str] = mapped_column(Text, primary_key=True)
    client_key: Mapped[str | None] = mapped_column(Text)
    client_type: Mapped[str | None] = mapped_column(String(32))
    client_name: Mapped[str | None] = mapped_column(Text)
    related_client_group_key: Mapped[str | None] = mapped_column(Text)
    assignee_key: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    start_date: Mapped[date | None]
    due_date: Mapped[date | None]
    completed_date: Mapped[date | None]
    work_type: Mapped[str | None] = mapped_column(Text)
    work_status: Mapped[str | None] = mapped_column(Text)
    primary_status: Mapped[str | None] = mapped_column(Text)
    """As Karbon sent it, spelling normalised when known (an unknown status is kept)."""
    secondary_status: Mapped[str | None] = mapped_column(Text)
    fee_type: Mapped[str | None] = mapped_column(String(32))
    fee_value: Mapped[Decimal | None] = mapped_column(MONEY)
    raw_detail: Mapped[Json | None] = mapped_column(JSONB)


class Timesheet(SyncedRecord, Base):
    __tablename__ = "timesheets"

    tenant_id: Mapped[UUID] = _tenant_fk()
    timesheet_key: Mapped[str] = mapped_column(Text, primary_key=True)
    user_key: Mapped[str] = mapped_column(Text)
    start_date: Mapped[date]
    end_date: Mapped[date]
    status: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_timesheets_tenant_start", "tenant_id", "start_date"),)


class TimeEntry(SyncedRecord, Base):
    __tablename__ = "time_entries"

    tenant_id: Mapped[UUID] = _tenant_fk()
    time_entry_key: Mapped[str] = mapped_column(Text, primary_key=True)
    timesheet_key: Mapped[str] = mapped_column(Text)
    user_key: Mapped[str] = mapped_column(Text)
    entry_date: Mapped[date]
    """The timesheet's start date: the date Reckonry gives the entry."""
    period_end: Mapped[date]
    entity_key: Mapped[str | None] = mapped_column(Text)
    work_item_key: Mapped[str | None] = mapped_column(Text)
    client_key: Mapped[str | None] = mapped_column(Text)
    client_type: Mapped[str | None] = mapped_column(String(32))
    role_name: Mapped[str | None] = mapped_column(Text)
    task_type_name: Mapped[str | None] = mapped_column(Text)
    minutes: Mapped[int]
    hourly_rate: Mapped[Decimal | None] = mapped_column(MONEY)
    billed_status: Mapped[str | None] = mapped_column(Text)
    """As Karbon sent it (an unknown value or a null is kept, and named as a data issue)."""

    __table_args__ = (
        Index("ix_time_entries_tenant_timesheet", "tenant_id", "timesheet_key"),
        Index("ix_time_entries_tenant_billed_status", "tenant_id", "billed_status"),
    )


class Invoice(SyncedRecord, Base):
    __tablename__ = "invoices"

    tenant_id: Mapped[UUID] = _tenant_fk()
    invoice_key: Mapped[str] = mapped_column(Text, primary_key=True)
    invoice_number: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    invoice_date: Mapped[date | None]
    payment_due_date: Mapped[date | None]
    karbon_updated_at: Mapped[datetime]
    currency_code: Mapped[str | None] = mapped_column(Text)
    total: Mapped[Decimal | None] = mapped_column(MONEY)
    subtotal: Mapped[Decimal | None] = mapped_column(MONEY)
    tax_total: Mapped[Decimal | None] = mapped_column(MONEY)
    amount_due: Mapped[Decimal | None] = mapped_column(MONEY)
    client_key: Mapped[str | None] = mapped_column(Text)
    client_type: Mapped[str | None] = mapped_column(String(32))
    client_name: Mapped[str | None] = mapped_column(Text)
    lines_known: Mapped[bool] = mapped_column(default=False)
    """False until the list or a detail call has given this invoice's line items."""
    data_lines: Mapped[list[Json] | None] = mapped_column(JSONB)
    raw_detail: Mapped[Json | None] = mapped_column(JSONB)


class InvoiceLine(Base):
    """An invoice's presentation line; replaced whenever the invoice is re-read. Its JSON is
    kept in the invoice's (`raw`, or `raw_detail` when the list did not carry the same)."""

    __tablename__ = "invoice_lines"

    tenant_id: Mapped[UUID] = _tenant_fk()
    invoice_key: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    line_item_key: Mapped[str | None] = mapped_column(Text)
    billable_item_type: Mapped[str | None] = mapped_column(Text)
    billable_item_entity_key: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    unit_price: Mapped[Decimal | None] = mapped_column(MONEY)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    tax_rate: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    tax_rate_name: Mapped[str | None] = mapped_column(Text)


class RawResponse(Base):
    """One version of a Karbon response (a page or a detail), kept to re-derive later.

    Content-addressed per request: a response whose body equals the last version kept for the
    same request (`request_sha256`: kind and URL) is not stored again; that version records
    that it was read again (`last_fetched_at`, `fetch_count`). A version is superseded once
    a newer one exists for its request or a later complete run re-read every record; the
    retention job prunes superseded versions `RECKONRY_RAW_RETENTION_DAYS` after they were
    last read. The latest version of every record lives in its normalized row (`raw`).
    A version may be kept as changes to another (`base_id`; `app.sync.raw_versions`).
    """

    __tablename__ = "raw_responses"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    run_id: Mapped[UUID | None]
    """The run that first read this version."""
    stream: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    """`page`, `detail` or `record` (one record of a list page, URL `<stream>/<key>`)."""
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int]
    fetched_at: Mapped[datetime]
    """When this version was first read."""
    last_fetched_at: Mapped[datetime]
    fetch_count: Mapped[int] = mapped_column(default=1)
    request_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    body_sha256: Mapped[bytes] = mapped_column(LargeBinary)
    body: Mapped[Any] = mapped_column(JSONB, nullable=True)
    response_sha256: Mapped[bytes | None] = mapped_column(LargeBinary)
    """SHA-256 of the response's bytes as Karbon sent them, for a page or detail version (not
    a record's): a response read again with the same bytes is known unchanged unparsed."""
    base_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("raw_responses.id"))
    """The version this one is kept as changes to (`body` then holds `@base` and the changes);
    None when `body` stands alone. A version another is based on cannot be deleted."""

    __table_args__ = (
        Index("ix_raw_responses_tenant_stream", "tenant_id", "stream", "id"),
        Index("ix_raw_responses_base_id", "base_id", postgresql_where=text("base_id IS NOT NULL")),
        Index("ix_raw_responses_tenant_request", "tenant_id", "request_sha256", "id"),
        Index("ix_raw_responses_last_fetched_at", "last_fetched_at"),
    )


class StorageFootprint(Base):
    """What one firm's data costs to keep, as the storage job last measured it."""

    __tablename__ = "storage_footprints"

    tenant_id: Mapped[UUID] = _tenant_fk()
    measured_at: Mapped[datetime | None]
    raw_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    raw_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    normalized_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    normalized_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    raw_rows_last_day: Mapped[int] = mapped_column(BigInteger, default=0)
    """Raw versions first stored in the 24 hours before `measured_at`: growth per day."""
    raw_bytes_last_day: Mapped[int] = mapped_column(BigInteger, default=0)
    last_pruned_at: Mapped[datetime | None]
    pruned_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    """Superseded raw versions pruned, all prunes together."""
    pruned_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class DataQualityIssue(Base):
    """Something Karbon sent that could not be read: a field kept as sent but not understood
    (`set_aside` = `field`), or a record, entry or line that could not be read at all and is
    not applied (`record`). Replaced whenever the list record it came in is read again."""

    __tablename__ = "data_quality_issues"

    tenant_id: Mapped[UUID] = _tenant_fk()
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_key: Mapped[str] = mapped_column(Text, primary_key=True)
    """The list record it came in (its timesheet or invoice for an entry or a line)."""
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject_key: Mapped[str] = mapped_column(Text, primary_key=True)
    """The entry, line or record the field belongs to."""
    field: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    set_aside: Mapped[str] = mapped_column(String(16))
    client_keys: Mapped[list[str]] = mapped_column(ARRAY(Text))
    record_date: Mapped[date | None]
    raw: Mapped[Json | None] = mapped_column(JSONB)
    """What Karbon sent, for a record set aside whole."""
    run_id: Mapped[UUID | None]
    first_seen_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_seen_at: Mapped[datetime]
