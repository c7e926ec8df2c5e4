"""Hypothesis strategies for whole tenants: small pools of keys so records point at each other."""

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import strategies as st

from app.domain import (
    BilledStatus,
    Client,
    ClientType,
    CompensationPeriod,
    FeeType,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineType,
    StaffMember,
    TenantRecords,
    TimeEntry,
    WorkItem,
)

YEAR_START = date(2024, 1, 1)
STAFF_KEYS = ("U0", "U1", "U2")
SYNCED_CLIENTS = ("C0", "C1", "C2")
CLIENT_KEYS = (*SYNCED_CLIENTS, "G0", "X0")  # G0: a client group; X0: never synced

days = st.integers(0, 365).map(lambda n: YEAR_START + timedelta(days=n))
cents = st.integers(0, 500_000).map(lambda n: Decimal(n) / 100)
rates = st.sampled_from([Decimal(0), Decimal("95"), Decimal("120.50"), Decimal("180")])


@st.composite
def compensation(draw: st.DrawFn) -> tuple[CompensationPeriod, ...]:
    periods = []
    for key in STAFF_KEYS:
        for start in draw(st.lists(days, max_size=2, unique=True)):
            annual = Decimal(draw(st.integers(20_000, 200_000)))
            periods.append(CompensationPeriod(key, start, annual))
    return tuple(periods)


@st.composite
def work_items(draw: st.DrawFn, count: int) -> tuple[WorkItem, ...]:
    items = []
    for n in range(count):
        client_key = draw(st.sampled_from(CLIENT_KEYS))
        fee_type = draw(st.sampled_from(list(FeeType)))
        completed = draw(st.none() | days)
        items.append(
            WorkItem(
                key=f"W{n}",
                client_key=client_key,
                client_type=ClientType.CLIENT_GROUP
                if client_key.startswith("G")
                else ClientType.ORGANIZATION,
                client_name=f"Client {client_key}",
                fee_type=fee_type,
                fee_value=draw(cents) if fee_type is FeeType.FIXED_FEE else None,
                primary_status="Completed" if completed else "In Progress",
                completed_date=completed,
                work_type=draw(st.sampled_from(["Tax", "Payroll", None])),
            )
        )
    return tuple(items)


@st.composite
def time_entries(draw: st.DrawFn, count: int, work_item_keys: list[str]) -> tuple[TimeEntry, ...]:
    return tuple(
        TimeEntry(
            key=f"T{n}",
            user_key=draw(st.sampled_from([*STAFF_KEYS, "U9"])),
            entry_date=draw(days),
            minutes=draw(st.integers(0, 600)),
            hourly_rate=draw(rates),
            billed_status=draw(st.sampled_from(list(BilledStatus))),
            work_item_key=draw(st.sampled_from([*work_item_keys, None, "Wx"])),
            client_key=draw(st.sampled_from([*CLIENT_KEYS, None])),
            client_type=ClientType.ORGANIZATION,
        )
        for n in range(count)
    )


@st.composite
def invoices(draw: st.DrawFn, count: int, entity_keys: list[str]) -> tuple[Invoice, ...]:
    result = []
    for n in range(count):
        lines = tuple(
            InvoiceLine(
                key=f"I{n}L{m}",
                item_type=draw(st.sampled_from(list(LineType))),
                entity_key=draw(st.sampled_from([*entity_keys, None, "junk"])),
                amount=draw(cents),
            )
            for m in range(draw(st.integers(0, 3)))
        )
        sub_total = sum((line.amount for line in lines), Decimal(0))
        invoice_total = sub_total * draw(st.sampled_from([Decimal(1), Decimal("1.1")]))
        paid_share = draw(st.sampled_from([Decimal(0), Decimal("0.5"), Decimal(1)]))
        result.append(
            Invoice(
                key=f"I{n}",
                number=f"INV-{n}",
                status=draw(st.sampled_from(list(InvoiceStatus))),
                invoice_date=draw(days),
                client_key=draw(st.sampled_from(CLIENT_KEYS)),
                client_type=ClientType.ORGANIZATION,
                client_name="",
                currency="AUD",
                invoice_total=invoice_total,
                invoice_sub_total=sub_total,
                total_amount_due=invoice_total * (1 - paid_share),
                lines=lines,
            )
        )
    return tuple(result)


@st.composite
def tenants(draw: st.DrawFn) -> TenantRecords:
    items = draw(work_items(draw(st.integers(0, 5))))
    item_keys = [item.key for item in items]
    entries = draw(time_entries(draw(st.integers(0, 12)), item_keys))
    entity_keys = [*item_keys, *(e.key for e in entries), *SYNCED_CLIENTS]
    return TenantRecords(
        staff=tuple(
            StaffMember(key, key, draw(st.sampled_from([None, 0, 2250, 2400])))
            for key in STAFF_KEYS
        ),
        compensation=draw(compensation()),
        clients=tuple(Client(key, ClientType.ORGANIZATION, key) for key in SYNCED_CLIENTS),
        work_items=items,
        time_entries=entries,
        invoices=draw(invoices(draw(st.integers(0, 5)), entity_keys)),
    )
