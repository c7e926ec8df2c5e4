"""Small constructors for domain values with sensible defaults, to keep tests readable."""

from datetime import date
from decimal import Decimal

from app.domain import (
    BilledStatus,
    Client,
    ClientType,
    CompensationPeriod,
    FeeType,
    Invoice,
    InvoiceDataLine,
    InvoiceLine,
    InvoiceStatus,
    LineType,
    StaffMember,
    TimeEntry,
    WorkItem,
)

D = Decimal


def staff(key: str = "U1", capacity: int | None = 2400, name: str = "") -> StaffMember:
    return StaffMember(key, name or f"Staff {key}", capacity)


def pay(staff_key: str, effective_from: date, annual: str) -> CompensationPeriod:
    return CompensationPeriod(staff_key, effective_from, D(annual))


def client(
    key: str = "C1",
    client_type: ClientType = ClientType.ORGANIZATION,
    owner: str | None = None,
    manager: str | None = None,
) -> Client:
    return Client(key, client_type, f"Client {key}", owner, manager)


def work_item(
    key: str = "W1",
    client_key: str = "C1",
    fee_type: FeeType = FeeType.TIME_AND_MATERIALS,
    fee_value: str | None = None,
    completed: date | None = None,
    work_type: str | None = "Accounting",
    client_type: ClientType = ClientType.ORGANIZATION,
    deleted: bool = False,
) -> WorkItem:
    return WorkItem(
        key=key,
        client_key=client_key,
        client_type=client_type if client_key else None,
        client_name=f"Client {client_key}" if client_key else "",
        fee_type=fee_type,
        fee_value=D(fee_value) if fee_value is not None else None,
        primary_status="Completed" if completed else "In Progress",
        completed_date=completed,
        work_type=work_type,
        deleted_in_karbon=deleted,
    )


def entry(
    key: str = "T1",
    user: str = "U1",
    on: date = date(2024, 3, 4),
    minutes: int = 60,
    rate: str = "100",
    status: BilledStatus | None = BilledStatus.UNBILLED,
    work_item_key: str | None = "W1",
    client_key: str | None = None,
    client_type: ClientType | None = None,
) -> TimeEntry:
    return TimeEntry(
        key, user, on, minutes, D(rate), status, work_item_key, client_key, client_type
    )


def line(
    key: str, entity_key: str | None, amount: str, item_type: LineType | None = LineType.ENTITY
) -> InvoiceLine:
    return InvoiceLine(key, item_type, entity_key, D(amount))


def invoice(
    key: str = "I1",
    status: InvoiceStatus | None = InvoiceStatus.AWAITING_PAYMENT,
    on: date = date(2024, 3, 31),
    client_key: str | None = "C1",
    lines: tuple[InvoiceLine, ...] = (),
    total: str | None = None,
    sub_total: str | None = None,
    due: str | None = None,
    data_lines: tuple[InvoiceDataLine, ...] | None = None,
    client_type: ClientType = ClientType.ORGANIZATION,
) -> Invoice:
    """Totals default to the lines' sum with no tax, fully due."""
    line_sum = sum((item.amount for item in lines), D(0))
    sub = D(sub_total) if sub_total is not None else line_sum
    grand = D(total) if total is not None else sub
    return Invoice(
        key=key,
        number=f"INV-{key}",
        status=status,
        invoice_date=on,
        client_key=client_key,
        client_type=client_type if client_key else None,
        client_name=f"Client {client_key}" if client_key else "",
        currency="AUD",
        invoice_total=grand,
        invoice_sub_total=sub,
        total_amount_due=D(due) if due is not None else grand,
        lines=lines,
        data_lines=data_lines,
    )
