"""Plain values the domain works on: what was synced from Karbon and what the firm entered.

Everything is frozen; money is ``Decimal``; dates are ``date``. Karbon keys are opaque strings.
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from app.domain.money import ZERO


class FeeType(StrEnum):
    FIXED_FEE = "FixedFee"
    TIME_AND_MATERIALS = "TimeAndMaterials"
    NON_BILLABLE = "NonBillable"
    UNKNOWN = "Unknown"
    """The work item's fee settings have not been fetched yet (or the work item is not synced)."""


class ClientType(StrEnum):
    CONTACT = "Contact"
    ORGANIZATION = "Organization"
    CLIENT_GROUP = "ClientGroup"


class InvoiceStatus(StrEnum):
    APPROVED = "Approved"
    AWAITING_PAYMENT = "AwaitingPayment"
    PAID = "Paid"
    EXPORTED = "Exported"
    VOIDED = "Voided"


COUNTED_STATUSES = frozenset(
    {InvoiceStatus.AWAITING_PAYMENT, InvoiceStatus.PAID, InvoiceStatus.EXPORTED}
)
"""Rule 1: only invoices past Sent-to-Client count as revenue."""


class BilledStatus(StrEnum):
    UNBILLED = "Unbilled"
    DRAFT = "Draft"
    INTERIM_BILLED = "InterimBilled"
    BILLED = "Billed"


UNBILLED_STATUSES = frozenset({BilledStatus.UNBILLED, BilledStatus.DRAFT})
"""Rule 9: time entries in these states are unbilled work."""


class LineType(StrEnum):
    TIME_ENTRY = "TimeEntry"
    EXPENSE = "Expense"
    ENTITY = "Entity"


class DataEntityType(StrEnum):
    """``EntityType`` of an invoice Data-tab line."""

    WORK_ITEM = "Work Item"
    CLIENT = "Client"
    SERVICE = "Service"


@dataclass(frozen=True, slots=True)
class StaffMember:
    key: str
    name: str
    capacity_minutes_per_week: int | None = None


@dataclass(frozen=True, slots=True)
class CompensationPeriod:
    """Annual compensation of a staff member in force from ``effective_from`` until the next one."""

    staff_key: str
    effective_from: date
    annual_amount: Decimal


@dataclass(frozen=True, slots=True)
class Client:
    key: str
    client_type: ClientType
    name: str
    owner_email: str | None = None
    manager_email: str | None = None


@dataclass(frozen=True, slots=True)
class WorkItem:
    key: str
    client_key: str
    client_type: ClientType
    client_name: str
    fee_type: FeeType = FeeType.UNKNOWN
    fee_value: Decimal | None = None
    primary_status: str = ""
    completed_date: date | None = None
    work_type: str | None = None
    deleted_in_karbon: bool = False
    """Karbon no longer lists it: its last known client and fee type still hold for its time
    and invoices."""

    @property
    def is_completed(self) -> bool:
        """Karbon spells the status ``"Completed"``; list and detail responses differ in spacing."""
        return self.primary_status.replace(" ", "").lower() == "completed"

    @property
    def fixed_fee_value(self) -> Decimal:
        """The fee of a fixed-fee item; a missing ``FeeValue`` is taken as nothing agreed yet."""
        return self.fee_value if self.fee_value is not None else ZERO


@dataclass(frozen=True, slots=True)
class TimeEntry:
    key: str
    user_key: str
    entry_date: date
    """The timesheet's ``StartDate`` (rule 5)."""
    minutes: int
    hourly_rate: Decimal
    billed_status: BilledStatus | None
    """``None``: Karbon sent a value that could not be read (unknown or null); such an entry
    keeps its minutes and cost but is never unbilled work."""
    work_item_key: str | None = None
    client_key: str | None = None
    client_type: ClientType | None = None


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """A presentation line item; ``amount`` is before tax."""

    key: str
    item_type: LineType | None
    """``None``: a ``BillableItemType`` that could not be read; the line is then a fee of its
    invoice's client, whatever its entity key names."""
    entity_key: str | None
    amount: Decimal


@dataclass(frozen=True, slots=True)
class InvoiceDataLine:
    """A Data-tab line (``BillingInvoiceDataItem``); amounts are before tax.

    ``work_billed``/``service_billed`` are fees, ``expenses_billed`` are expense recoveries;
    when none of them is given, ``billed`` is taken as a fee.
    """

    entity_key: str
    entity_type: DataEntityType
    billed: Decimal
    work_billed: Decimal | None = None
    expenses_billed: Decimal | None = None
    service_billed: Decimal | None = None
    service_work_type: str | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    key: str
    number: str
    status: InvoiceStatus | None
    """``None``: a status that could not be read; the invoice is then neither revenue nor
    voided."""
    invoice_date: date
    client_key: str | None
    """``None``: Karbon gave no client (the spec allows it); the lines say whose it is."""
    client_type: ClientType | None
    client_name: str
    currency: str
    invoice_total: Decimal
    invoice_sub_total: Decimal
    total_amount_due: Decimal
    lines: tuple[InvoiceLine, ...] = ()
    data_lines: tuple[InvoiceDataLine, ...] | None = None
    """The Data tab when it was fetched; it then replaces ``lines`` for attribution."""

    @property
    def is_counted(self) -> bool:
        return self.status in COUNTED_STATUSES

    @property
    def is_voided(self) -> bool:
        return self.status is InvoiceStatus.VOIDED


@dataclass(frozen=True, slots=True)
class TenantRecords:
    """Everything synced for one tenant plus the compensation the firm entered."""

    staff: tuple[StaffMember, ...] = ()
    compensation: tuple[CompensationPeriod, ...] = ()
    clients: tuple[Client, ...] = ()
    work_items: tuple[WorkItem, ...] = ()
    time_entries: tuple[TimeEntry, ...] = ()
    invoices: tuple[Invoice, ...] = field(default=())
