"""Reckonry's domain: the rules of profit, cost and unbilled work as pure functions.

Standard library only: no I/O, no ORM, no web framework. The report layer calls ``evaluate``
after each sync (or change of cost settings), stores the facts, WIP items, fixed-fee positions
and warnings, sums facts' ``Measures`` in SQL, and derives ratios with the functions in
``figures``.

Where the rules leave room, these readings apply (each is tested):

* Billable time is all time not on a ``NonBillable`` work item: time straight on a client and
  time on a work item whose fee type is unknown count as billable (unknown is flagged).
* Time dated before a staff member's first compensation period is uncosted, not costed at a
  later rate. An unknown staff member (time by a user not synced) uses the default capacity.
* ``approved_not_sent`` is the before-tax amount of fee lines on ``Approved`` invoices; their
  expense lines are kept apart, and neither depends on the recognition policy.
* Invoice totals (collected before tax, ``InvoiceTotal``, ``TotalAmountDue``) are shared across
  an invoice's lines in proportion to line amounts, so debtor figures follow lines to clients.
* A line keyed to a time entry that has no work item belongs to the invoice's client (rule 2
  read literally). The Data tab, when present, replaces presentation lines, except on a
  recurring invoice (its Data tab names only services, its lines the fixed-fee work item); its
  amounts are taken as before tax.
* Effective hourly rate divides by all hours (billable and non-billable) of the same facts.
* Unbilled time on a work item whose fee type is unknown is WIP at standard value, shown under
  the unknown fee type. Fixed-fee WIP is aged from completion, or from its first time entry
  while in progress.
* Utilization's capacity over a window is weekly capacity x working weeks x days / 365.
"""

from app.domain.aggregate import (
    aggregate,
    by_client,
    by_fee_type,
    by_manager,
    by_month,
    by_owner,
    by_staff,
    by_work_item,
    by_work_type,
    firm_total,
    in_window,
)
from app.domain.attribution import AttributedLine, Directory, billing_lines
from app.domain.costing import Capacity, capacity_of, hourly_cost
from app.domain.evaluation import Evaluation, evaluate
from app.domain.facts import Fact, FactSource, build_facts
from app.domain.figures import (
    MEASURE_NAMES,
    Measures,
    billable_share,
    capacity_minutes,
    cash_realization,
    debtor_days,
    effective_hourly_rate,
    last_365_days,
    lock_up_days,
    margin,
    profit,
    realization,
    sum_measures,
    utilization,
    wip_days,
    write_up_down,
)
from app.domain.recognition import (
    RECOGNITION_POLICIES,
    BillingBasis,
    CompletionBasis,
    EarnedFee,
    RecognitionPolicy,
    recognition_policy,
)
from app.domain.settings import CostSettings
from app.domain.values import (
    BilledStatus,
    Client,
    ClientType,
    CompensationPeriod,
    DataEntityType,
    FeeType,
    Invoice,
    InvoiceDataLine,
    InvoiceLine,
    InvoiceStatus,
    LineType,
    StaffMember,
    TenantRecords,
    TimeEntry,
    WorkItem,
)
from app.domain.warnings import DataWarning, WarningKind, collect_warnings, staff_warnings
from app.domain.wip import FixedFeePosition, WipItem, build_wip, fixed_fee_positions

__all__ = [
    "MEASURE_NAMES",
    "RECOGNITION_POLICIES",
    "AttributedLine",
    "BilledStatus",
    "BillingBasis",
    "Capacity",
    "Client",
    "ClientType",
    "CompensationPeriod",
    "CompletionBasis",
    "CostSettings",
    "DataEntityType",
    "DataWarning",
    "Directory",
    "EarnedFee",
    "Evaluation",
    "Fact",
    "FactSource",
    "FeeType",
    "FixedFeePosition",
    "Invoice",
    "InvoiceDataLine",
    "InvoiceLine",
    "InvoiceStatus",
    "LineType",
    "Measures",
    "RecognitionPolicy",
    "StaffMember",
    "TenantRecords",
    "TimeEntry",
    "WarningKind",
    "WipItem",
    "WorkItem",
    "aggregate",
    "billable_share",
    "billing_lines",
    "build_facts",
    "build_wip",
    "by_client",
    "by_fee_type",
    "by_manager",
    "by_month",
    "by_owner",
    "by_staff",
    "by_work_item",
    "by_work_type",
    "capacity_minutes",
    "capacity_of",
    "cash_realization",
    "collect_warnings",
    "debtor_days",
    "effective_hourly_rate",
    "evaluate",
    "firm_total",
    "fixed_fee_positions",
    "hourly_cost",
    "in_window",
    "last_365_days",
    "lock_up_days",
    "margin",
    "profit",
    "realization",
    "recognition_policy",
    "staff_warnings",
    "sum_measures",
    "utilization",
    "wip_days",
    "write_up_down",
]
