"""What the reports read: the domain's evaluation of a tenant, stored after each sync.

`refresh_reports` replaces a tenant's rows in one transaction; reports are sums over
`report_facts` (every measure column is additive) and reads of the WIP, fixed-fee and
warning tables. `report_monthly_sums` holds the same measures summed per month, client, fee
type, work type and work status, so a report over whole months reads far fewer rows than
there are facts; the firm's monthly sums per fee type, work type and work status, per owner
and per manager sum those again.
`report_client_names` keeps each client's name as of the refresh, so a report can sort by
name in SQL. `report_window_sums` holds each client's sums over the windows reports are most
often asked for (`report_summed_windows`). `report_refreshes.version` changes with every
refresh, so anything cached from an earlier version is known to be stale.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, Numeric, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

FACT_MONEY = Numeric(30, 10)
"""The domain's fact scale (ten places), so SQL sums are exact."""


def _tenant_fk(*, primary_key: bool = False) -> Mapped[UUID]:
    return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=primary_key)


class MeasureColumns:
    """The additive measures of `app.domain.Measures`, one column each: a fact's own, or a
    sum of facts."""

    fee_revenue: Mapped[Decimal] = mapped_column(FACT_MONEY)
    expense_recoveries: Mapped[Decimal] = mapped_column(FACT_MONEY)
    approved_not_sent: Mapped[Decimal] = mapped_column(FACT_MONEY)
    approved_not_sent_expenses: Mapped[Decimal] = mapped_column(FACT_MONEY)
    cost: Mapped[Decimal] = mapped_column(FACT_MONEY)
    uncosted_minutes: Mapped[int] = mapped_column(BigInteger)
    billable_minutes: Mapped[int] = mapped_column(BigInteger)
    non_billable_minutes: Mapped[int] = mapped_column(BigInteger)
    standard_value: Mapped[Decimal] = mapped_column(FACT_MONEY)
    billable_standard_value: Mapped[Decimal] = mapped_column(FACT_MONEY)
    defaulted_capacity_minutes: Mapped[int] = mapped_column(BigInteger)
    collected_before_tax: Mapped[Decimal] = mapped_column(FACT_MONEY)
    counted_invoice_total: Mapped[Decimal] = mapped_column(FACT_MONEY)
    counted_amount_due: Mapped[Decimal] = mapped_column(FACT_MONEY)


class ReportRefresh(Base):
    __tablename__ = "report_refreshes"

    tenant_id: Mapped[UUID] = _tenant_fk(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[datetime | None]
    """When the last completed sync finished; None while the first sync is still running."""
    refreshed_at: Mapped[datetime]
    currency: Mapped[str | None] = mapped_column(Text)
    facts: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    changes_since: Mapped[datetime | None]
    """Synced rows written at or after this may be newer than the refresh: the start of the
    oldest transaction running when it began. None: the next refresh is a full one."""
    inputs_digest: Mapped[str | None] = mapped_column(Text)
    """A digest of the cost settings and compensation the refresh used."""


class ReportCompleteness(Base):
    """How complete the facts of the tenant's last refresh are, as the refresh found the sync
    before it read a record (`app.reports.completeness`); replaced with every refresh."""

    __tablename__ = "report_completeness"

    tenant_id: Mapped[UUID] = _tenant_fk(primary_key=True)
    complete: Mapped[bool]
    first_sync_completed: Mapped[bool]
    lists_in: Mapped[bool]
    """Every entity's lists were read: only clients with details owed may still move."""
    progress: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    """Per Karbon entity: state, records and details owed."""
    moving_clients: Mapped[list[str]] = mapped_column(ARRAY(Text))
    """Clients whose figures wait for an owed detail."""


class ReportFact(MeasureColumns, Base):
    __tablename__ = "report_facts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[UUID] = _tenant_fk()
    source: Mapped[str] = mapped_column(String(16))
    source_key: Mapped[str] = mapped_column(Text)
    record_key: Mapped[str | None] = mapped_column(Text)
    """The synced record it comes from: the time entry, the invoice or the work item."""
    fact_date: Mapped[date]
    client_key: Mapped[str | None] = mapped_column(Text)
    client_known: Mapped[bool]
    work_item_key: Mapped[str | None] = mapped_column(Text)
    staff_key: Mapped[str | None] = mapped_column(Text)
    fee_type: Mapped[str | None] = mapped_column(String(32))
    work_type: Mapped[str | None] = mapped_column(Text)
    work_item_status: Mapped[str | None] = mapped_column(Text)
    """As `ReportWipItem.work_item_status`: None without a work item or for one not synced."""

    __table_args__ = (
        Index("ix_report_facts_tenant_date", "tenant_id", "fact_date"),
        Index("ix_report_facts_tenant_client_date", "tenant_id", "client_key", "fact_date"),
        Index("ix_report_facts_tenant_staff_date", "tenant_id", "staff_key", "fact_date"),
        Index("ix_report_facts_tenant_record", "tenant_id", "record_key"),
    )


class ReportMonthlySum(MeasureColumns, Base):
    """The facts of one month, client, fee type, work type and work status, summed at refresh
    time, with the client's owner and manager as `ReportClientName` holds them (no join to
    group or filter by them)."""

    __tablename__ = "report_monthly_sums"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[UUID] = _tenant_fk()
    month: Mapped[date] = mapped_column(comment="First day of the month")
    client_key: Mapped[str | None] = mapped_column(Text)
    fee_type: Mapped[str | None] = mapped_column(String(32))
    work_type: Mapped[str | None] = mapped_column(Text)
    work_status: Mapped[str | None] = mapped_column(String(16))
    """`WorkStatus` of the facts' work item as of the refresh ('completed' or 'open'); None
    for facts without a work item or whose work item is not synced."""
    owner_email: Mapped[str | None] = mapped_column(Text)
    manager_email: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_report_monthly_sums_tenant_month", "tenant_id", "month"),
        Index("ix_report_monthly_sums_tenant_client_month", "tenant_id", "client_key", "month"),
    )


class ReportStaffMonthlySum(MeasureColumns, Base):
    """The facts of one month and staff member (time entries: every fact with a staff
    member), summed at refresh time: what firm-wide sums by staff member read."""

    __tablename__ = "report_staff_monthly_sums"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[UUID] = _tenant_fk()
    month: Mapped[date] = mapped_column(comment="First day of the month")
    staff_key: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_report_staff_monthly_sums_tenant_month", "tenant_id", "month"),)


class ReportFirmMonthlySum(MeasureColumns, Base):
    """The firm's facts of one month, fee type, work type and work status, summed at refresh
    time: what firm totals and reports grouped by work type read."""

    __tablename__ = "report_firm_monthly_sums"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[UUID] = _tenant_fk()
    month: Mapped[date] = mapped_column(comment="First day of the month")
    fee_type: Mapped[str | None] = mapped_column(String(32))
    work_type: Mapped[str | None] = mapped_column(Text)
    work_status: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_report_firm_monthly_sums_tenant_month", "tenant_id", "month"),)


class ReportOwnerMonthlySum(MeasureColumns, Base):
    """The firm's facts of one month summed per client owner (by e-mail, as
    `ReportMonthlySum` holds it), fee type, work type and work status: what reports grouped
    by owner read, a few rows per owner and month instead of one per client."""

    __tablename__ = "report_owner_monthly_sums"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[UUID] = _tenant_fk()
    month: Mapped[date] = mapped_column(comment="First day of the month")
    owner_email: Mapped[str | None] = mapped_column(Text)
    fee_type: Mapped[str | None] = mapped_column(String(32))
    work_type: Mapped[str | None] = mapped_column(Text)
    work_status: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_report_owner_monthly_sums_tenant_month", "tenant_id", "month"),)


class ReportManagerMonthlySum(MeasureColumns, Base):
    """`ReportOwnerMonthlySum` per client manager: what reports grouped by manager read."""

    __tablename__ = "report_manager_monthly_sums"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[UUID] = _tenant_fk()
    month: Mapped[date] = mapped_column(comment="First day of the month")
    manager_email: Mapped[str | None] = mapped_column(Text)
    fee_type: Mapped[str | None] = mapped_column(String(32))
    work_type: Mapped[str | None] = mapped_column(Text)
    work_status: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (Index("ix_report_manager_monthly_sums_tenant_month", "tenant_id", "month"),)


class ReportClientName(Base):
    """A client's name as of the refresh: the synced client's, else (for a Client Group) the
    one its work items or invoices give; and its owner and manager, by e-mail."""

    __tablename__ = "report_client_names"

    tenant_id: Mapped[UUID] = _tenant_fk(primary_key=True)
    client_key: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    owner_email: Mapped[str | None] = mapped_column(Text)
    """The live client's owner by e-mail (Karbon may give a UserKey: it is resolved)."""
    manager_email: Mapped[str | None] = mapped_column(Text)


class ReportSummedWindow(Base):
    """A date window whose per-client sums `report_window_sums` keeps: the trailing year a
    report opens on and each calendar year."""

    __tablename__ = "report_summed_windows"

    tenant_id: Mapped[UUID] = _tenant_fk(primary_key=True)
    window_start: Mapped[date] = mapped_column(primary_key=True)
    window_end: Mapped[date] = mapped_column(primary_key=True)


class ReportWindowSum(MeasureColumns, Base):
    """One client's measures summed over one summed window, with the client's WIP: the rows a
    report over that window would otherwise sum from the monthly sums on every request."""

    __tablename__ = "report_window_sums"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[UUID] = _tenant_fk()
    window_start: Mapped[date]
    window_end: Mapped[date]
    client_key: Mapped[str | None] = mapped_column(Text)
    unbilled: Mapped[Decimal] = mapped_column(FACT_MONEY)

    __table_args__ = (
        Index("ix_report_window_sums_tenant_window", "tenant_id", "window_start", "window_end"),
    )


class ReportWipItem(Base):
    __tablename__ = "report_wip_items"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[UUID] = _tenant_fk()
    client_key: Mapped[str | None] = mapped_column(Text)
    client_known: Mapped[bool]
    work_item_key: Mapped[str | None] = mapped_column(Text)
    fee_type: Mapped[str | None] = mapped_column(String(32))
    work_type: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[Decimal] = mapped_column(FACT_MONEY)
    since: Mapped[date]
    age_days: Mapped[int]
    work_item_status: Mapped[str | None] = mapped_column(Text)
    """The work item's Karbon `PrimaryStatus` as of the refresh, '' when it has none; None for
    time on the client itself or a work item that is not synced."""

    __table_args__ = (Index("ix_report_wip_items_tenant_client", "tenant_id", "client_key"),)


class ReportFixedFee(Base):
    """A fixed-fee work item's fee against what was invoiced and the time it took."""

    __tablename__ = "report_fixed_fees"

    tenant_id: Mapped[UUID] = _tenant_fk(primary_key=True)
    work_item_key: Mapped[str] = mapped_column(Text, primary_key=True)
    client_key: Mapped[str] = mapped_column(Text)
    fee_value: Mapped[Decimal] = mapped_column(FACT_MONEY)
    invoiced: Mapped[Decimal] = mapped_column(FACT_MONEY)
    minutes: Mapped[int] = mapped_column(BigInteger)
    standard_value: Mapped[Decimal] = mapped_column(FACT_MONEY)
    write_up_down: Mapped[Decimal] = mapped_column(FACT_MONEY)
    wip: Mapped[Decimal] = mapped_column(FACT_MONEY)
    first_entry_date: Mapped[date | None]


class ReportWarning(Base):
    __tablename__ = "report_warnings"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[UUID] = _tenant_fk()
    kind: Mapped[str] = mapped_column(String(32))
    subject_key: Mapped[str] = mapped_column(Text)
    subject_name: Mapped[str] = mapped_column(Text)
    minutes: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Decimal] = mapped_column(FACT_MONEY, server_default="0")
    client_key: Mapped[str | None] = mapped_column(Text)
    """The client it concerns; None for a firm-wide warning (shown in every report)."""
    warning_date: Mapped[date | None]
    """The date it concerns; None when undated (shown in every window)."""
    scope_key: Mapped[str | None] = mapped_column(Text)
    """The client whose facts it is derived from, so an incremental refresh of that client
    rewrites it; None for a warning every refresh rewrites or only a full one does."""

    __table_args__ = (Index("ix_report_warnings_tenant_kind", "tenant_id", "kind"),)
