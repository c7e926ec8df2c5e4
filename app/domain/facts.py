"""Turn one tenant's records into attributed facts: the rows reports sum.

One fact per time entry, one per line of every invoice that is not voided, one per fee a work
item earns by itself under the recognition policy, and one per invoice that has no line to carry
its totals. Each fact is dated (entry date, invoice date, or the date a fee was earned), so a
report window (rule 11) is a filter on ``fact_date``.

Invoice-level amounts (collected before tax, ``InvoiceTotal``, ``TotalAmountDue``) are shared
across an invoice's lines in proportion to their before-tax amounts, so they follow the lines to
their clients and work items and still add up exactly to the invoice's figures.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from app.domain.attribution import AttributedLine, Directory, LineKind
from app.domain.costing import CompensationSchedule, capacity_of, standard_value, time_cost
from app.domain.figures import Measures
from app.domain.money import ZERO, allocate, fact_amount
from app.domain.settings import CostSettings
from app.domain.values import FeeType, Invoice, InvoiceStatus, TimeEntry, WorkItem


class FactSource(StrEnum):
    TIME_ENTRY = "time_entry"
    INVOICE_LINE = "invoice_line"
    INVOICE = "invoice"
    """Totals of a counted invoice that has no line (or whose lines sum to zero)."""
    EARNED_WORK = "earned_work"
    """Fee a work item earns by itself under the recognition policy (completion basis)."""


@dataclass(frozen=True, slots=True)
class Fact:
    source: FactSource
    source_key: str
    """The time entry, line, invoice or work item key the fact comes from."""
    fact_date: date
    client_key: str | None
    """``None`` only for time with neither a known work item nor a client key."""
    client_known: bool
    work_item_key: str | None
    staff_key: str | None
    fee_type: FeeType | None
    """The work item's fee type; ``None`` when there is no work item (time or lines on a client)."""
    work_type: str | None
    measures: Measures


def build_facts(directory: Directory, settings: CostSettings) -> list[Fact]:
    facts = list(_time_facts(directory, settings))
    for invoice in directory.records.invoices:
        if not invoice.is_voided:
            facts.extend(_invoice_facts(directory, settings, invoice))
    facts.extend(_earned_work_facts(directory, settings))
    return facts


def fee_type_of_entry(directory: Directory, entry: TimeEntry) -> FeeType | None:
    work_item = directory.work_item_of_entry(entry)
    if work_item is not None:
        return work_item.fee_type
    return FeeType.UNKNOWN if entry.work_item_key is not None else None


def _time_facts(directory: Directory, settings: CostSettings) -> Iterator[Fact]:
    """One fact per time entry, costed whether billable or not: a client's cost is the time
    cost of all its entries (rule 7)."""
    schedule = CompensationSchedule(directory.records.compensation)
    staff = {member.key: member for member in directory.records.staff}
    for entry in directory.records.time_entries:
        capacity = capacity_of(staff.get(entry.user_key), settings.default_capacity_hours_per_week)
        annual = schedule.annual_on(entry.user_key, entry.entry_date)
        fee_type = fee_type_of_entry(directory, entry)
        value = standard_value(entry.minutes, entry.hourly_rate)
        billable = fee_type is not FeeType.NON_BILLABLE
        cost = ZERO
        if annual is not None:
            cost = time_cost(
                entry.minutes,
                annual,
                settings.overhead_rate,
                capacity.minutes_per_week,
                settings.working_weeks_per_year,
            )
        work_item = directory.work_item_of_entry(entry)
        client_key = directory.client_of_entry(entry)
        yield Fact(
            source=FactSource.TIME_ENTRY,
            source_key=entry.key,
            fact_date=entry.entry_date,
            client_key=client_key,
            client_known=directory.is_known_client(client_key),
            work_item_key=entry.work_item_key,
            staff_key=entry.user_key,
            fee_type=fee_type,
            work_type=work_item.work_type if work_item else None,
            measures=Measures(
                cost=cost,
                uncosted_minutes=entry.minutes if annual is None else 0,
                billable_minutes=entry.minutes if billable else 0,
                non_billable_minutes=0 if billable else entry.minutes,
                standard_value=value,
                billable_standard_value=value if billable else ZERO,
                defaulted_capacity_minutes=entry.minutes if capacity.defaulted else 0,
            ),
        )


@dataclass(frozen=True, slots=True)
class _InvoiceShares:
    collected_before_tax: Decimal
    invoice_total: Decimal
    amount_due: Decimal


def collected_before_tax(invoice: Invoice) -> Decimal:
    """Rule 10: ``(InvoiceTotal - TotalAmountDue) x InvoiceSubTotal / InvoiceTotal``."""
    if invoice.invoice_total == 0:
        return ZERO
    paid = invoice.invoice_total - invoice.total_amount_due
    return paid * invoice.invoice_sub_total / invoice.invoice_total


def _invoice_shares(invoice: Invoice, weights: list[Decimal]) -> list[_InvoiceShares]:
    if not invoice.is_counted:
        return [_InvoiceShares(ZERO, ZERO, ZERO)] * len(weights)
    columns = [
        allocate(amount, weights)
        for amount in (
            collected_before_tax(invoice),
            invoice.invoice_total,
            invoice.total_amount_due,
        )
    ]
    return [_InvoiceShares(*row) for row in zip(*columns, strict=True)]


def _invoice_facts(directory: Directory, settings: CostSettings, invoice: Invoice) -> list[Fact]:
    lines = directory.attribute(invoice)
    weights = [line.line.amount for line in lines]
    if sum(weights, ZERO) != 0:
        return _line_facts(directory, settings, lines, _invoice_shares(invoice, weights))
    no_share = _InvoiceShares(ZERO, ZERO, ZERO)
    facts = _line_facts(directory, settings, lines, [no_share] * len(lines))
    if invoice.is_counted:
        facts.append(_unallocated_invoice_fact(directory, invoice))
    return facts


def _line_facts(
    directory: Directory,
    settings: CostSettings,
    lines: list[AttributedLine],
    shares: list[_InvoiceShares],
) -> list[Fact]:
    return [
        _line_fact(directory, line, settings.recognition.line_fee_revenue(line), share)
        for line, share in zip(lines, shares, strict=True)
    ]


def _line_fact(
    directory: Directory, line: AttributedLine, fee_revenue: Decimal, share: _InvoiceShares
) -> Fact:
    invoice = line.invoice
    amount = fact_amount(line.line.amount)
    is_fee = line.line.kind is LineKind.FEE
    approved = invoice.status is InvoiceStatus.APPROVED
    work_item = line.work_item
    return Fact(
        source=FactSource.INVOICE_LINE,
        source_key=line.line.key,
        fact_date=invoice.invoice_date,
        client_key=line.client_key,
        client_known=directory.is_known_client(line.client_key),
        work_item_key=line.work_item_key,
        staff_key=None,
        fee_type=work_item.fee_type if work_item else None,
        work_type=work_item.work_type if work_item else line.line.work_type,
        measures=Measures(
            fee_revenue=fact_amount(fee_revenue),
            expense_recoveries=amount if invoice.is_counted and not is_fee else ZERO,
            approved_not_sent=amount if approved and is_fee else ZERO,
            approved_not_sent_expenses=amount if approved and not is_fee else ZERO,
            collected_before_tax=share.collected_before_tax,
            counted_invoice_total=share.invoice_total,
            counted_amount_due=share.amount_due,
        ),
    )


def _unallocated_invoice_fact(directory: Directory, invoice: Invoice) -> Fact:
    share = _invoice_shares(invoice, [Decimal(1)])[0]
    return Fact(
        source=FactSource.INVOICE,
        source_key=invoice.key,
        fact_date=invoice.invoice_date,
        client_key=invoice.client_key,
        client_known=directory.is_known_client(invoice.client_key),
        work_item_key=None,
        staff_key=None,
        fee_type=None,
        work_type=None,
        measures=Measures(
            collected_before_tax=share.collected_before_tax,
            counted_invoice_total=share.invoice_total,
            counted_amount_due=share.amount_due,
        ),
    )


def _earned_work_facts(directory: Directory, settings: CostSettings) -> Iterator[Fact]:
    for work_item in directory.records.work_items:
        earned = settings.recognition.work_item_fee_revenue(work_item)
        if earned is not None:
            yield _earned_fact(directory, work_item, earned.earned_on, earned.amount)


def _earned_fact(directory: Directory, work_item: WorkItem, on: date, amount: Decimal) -> Fact:
    return Fact(
        source=FactSource.EARNED_WORK,
        source_key=work_item.key,
        fact_date=on,
        client_key=work_item.client_key,
        client_known=directory.is_known_client(work_item.client_key),
        work_item_key=work_item.key,
        staff_key=None,
        fee_type=work_item.fee_type,
        work_type=work_item.work_type,
        measures=Measures(fee_revenue=fact_amount(amount)),
    )
