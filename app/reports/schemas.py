"""Report shapes. Money is an exact decimal string to the cent beside a `currency` code;
ratios are decimal strings to 4 places (`0.2500` is 25%), hours to 2, days to 1; a ratio with
no denominator is null. `app.kit.presentation` makes every one of these strings."""

from datetime import date, datetime
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from app.kit.pagination import Page
from app.kit.presentation import Days, Hours, Money, Ratio

T = TypeVar("T")


class GroupBy(StrEnum):
    CLIENT = "client"
    OWNER = "owner"
    MANAGER = "manager"
    WORK_TYPE = "work_type"


class WorkStatus(StrEnum):
    """Where a work item stands: `completed` when Karbon's `PrimaryStatus` is Completed,
    `open` otherwise."""

    OPEN = "open"
    COMPLETED = "completed"


class ProfitabilitySort(StrEnum):
    """The figures a profitability row can be sorted by (`app.reports.ordering`)."""

    FEE_REVENUE = "fee_revenue"
    EXPENSE_RECOVERIES = "expense_recoveries"
    COST = "cost"
    PROFIT = "profit"
    MARGIN = "margin"
    BILLABLE_HOURS = "billable_hours"
    NON_BILLABLE_HOURS = "non_billable_hours"
    STANDARD_VALUE = "standard_value"
    REALIZATION = "realization"
    EFFECTIVE_RATE = "effective_rate"
    APPROVED_NOT_SENT = "approved_not_sent"
    UNBILLED_WORK = "unbilled_work"
    NAME = "name"
    MONTH = "month"


class UnbilledSort(StrEnum):
    AMOUNT = "amount"
    AGE_DAYS = "age_days"


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


class Interval(StrEnum):
    MONTH = "month"


class Order(StrEnum):
    ASC = "asc"
    DESC = "desc"


MAY_MOVE = (
    "True when these figures may still change as Karbon records arrive (the report is not "
    "`complete` and the client waits for a detail, or lists are still being read)"
)


class ReportWarningView(BaseModel):
    """A gap in the data behind the report: only those about the clients and the window in
    view (and firm-wide ones) are listed."""

    kind: str = Field(
        description="`missing_compensation`, `missing_capacity`, `unknown_fee_type`, "
        "`unknown_client_time`, `unknown_client_invoice`, `unattributed_invoice`, "
        "`deleted_work_item`, `unreadable_field`, `set_aside_record`, `sync_not_completed`, "
        "`details_owed`"
    )
    subject_key: str = Field(
        description="The staff member, work item, client or invoice concerned; for "
        "`unreadable_field` and `set_aside_record`, the Karbon entity and field "
        "(`TimeEntry.BilledStatus`): `GET /api/v1/data-quality` lists each record"
    )
    subject_name: str
    hours: Hours = Field(description="Hours of time affected, where the warning is about time")
    amount: Money = Field(description="Money affected (before tax), where it is about invoices")
    records: int = Field(description="How many records in view it concerns")
    message: str


class Figures(BaseModel):
    """The figures of one group of facts (rules 3 to 10)."""

    currency: str | None
    fee_revenue: Money
    expense_recoveries: Money
    cost: Money
    cost_complete: bool = Field(description="False when some time has no compensation entered")
    uncosted_hours: Hours
    profit: Money
    margin: Ratio | None
    billable_hours: Hours
    non_billable_hours: Hours
    standard_value: Money
    realization: Ratio | None
    effective_rate: Money | None = Field(description="Fee revenue per hour of all time")
    approved_not_sent: Money


class ProfitabilityRow(Figures):
    key: str | None = Field(description="Client key, owner or manager e-mail, or work type")
    name: str | None
    month: date | None = Field(None, description="First day of the month with `interval=month`")
    unbilled_work: Money | None = Field(
        description="WIP as of the last sync (not windowed); null in a monthly series"
    )
    may_move: bool = Field(
        description=MAY_MOVE + "; for an owner, manager or work type and for the totals: "
        "whenever the report is not `complete`"
    )


class EntityProgressView(BaseModel):
    """How far the sync had read one Karbon entity when these figures were computed."""

    entity: str = Field(
        description="`users`, `contacts`, `organizations`, `work_items`, `timesheets`, `invoices`"
    )
    state: str = Field(
        description="`waiting` (the first sync has not begun it), `running` (its lists are "
        "being read), `listed` (lists in, details owed) or `done`"
    )
    records: int = Field(description="Records the latest sync run has stored of this entity")
    details_owed: int = Field(
        description="Records held from their list only, whose detail (and the figures that "
        "depend on it, e.g. a work item's fee type) is still to be read"
    )


class ReportHeader(BaseModel):
    as_of: datetime | None = Field(
        description="When the last completed sync finished; null until the first completes"
    )
    refreshed_at: datetime | None = Field(
        description="When these figures were computed from the synced data: during the first "
        "sync, figures are refreshed as its lists arrive and every few minutes"
    )
    complete: bool = Field(
        description="False while the first sync runs or records still wait for their detail: "
        "then some figures may still move (see `progress`, `moving_clients` and `may_move`)"
    )
    progress: list[EntityProgressView] = Field(
        description="Per Karbon entity, as the sync stood when these figures were computed"
    )
    all_clients_may_move: bool = Field(
        description="True while the first sync is still reading lists: any client may gain "
        "time, work or invoices"
    )
    moving_clients: int = Field(
        description="How many clients wait for a detail, so their figures may still move"
    )
    warnings: list[ReportWarningView]
    currency: str | None


class ReportPage(ReportHeader, Page[T], Generic[T]):
    pass


class ClientProfitabilityReport(ReportPage[ProfitabilityRow]):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    group_by: GroupBy
    interval: Interval | None
    totals: ProfitabilityRow


class WorkItemRow(Figures):
    key: str | None = Field(description="Work item key; null for time and invoices on the client")
    title: str | None
    fee_type: str | None
    work_type: str | None
    work_status: WorkStatus | None = Field(description="null for work on the client itself")
    primary_status: str | None = Field(description="Karbon's `PrimaryStatus`, e.g. InProgress")
    unbilled_work: Money
    fee_value: Money | None = Field(description="Fixed fee only")
    write_up_down: Money | None = Field(description="Fixed fee only: fee value - standard value")


class StaffRow(BaseModel):
    """A staff member's time on the client, as every member of the firm sees it: no cost."""

    key: str
    name: str | None
    currency: str | None
    billable_hours: Hours
    non_billable_hours: Hours
    standard_value: Money


class PersonCost(BaseModel):
    """One person's cost: shown to admins and integrator keys with `pay:read` only; absent
    for everyone else."""

    cost: Money = Field(description="The person's time at their hourly cost (pay)")
    cost_complete: bool = Field(description="False when some time has no compensation entered")


class StaffCostRow(PersonCost, StaffRow):
    """`StaffRow` with the person's cost: admins and integrator keys with `pay:read`."""


class ClientReport(ReportHeader):
    key: str
    name: str | None
    owner_email: str | None
    manager_email: str | None
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    may_move: bool = Field(description=MAY_MOVE)
    totals: ProfitabilityRow
    by_work_item: list[WorkItemRow]
    by_staff: list[StaffCostRow | StaffRow] = Field(
        description="With each person's `cost` for admins and `pay:read` keys (`StaffCostRow`); "
        "without it, the fields absent, for everyone else (`StaffRow`)"
    )


class WipRow(BaseModel):
    client_key: str | None
    client_name: str | None
    work_item_key: str | None
    work_item_title: str | None
    fee_type: str | None
    work_type: str | None
    work_status: WorkStatus | None = Field(description="null for time on the client itself")
    primary_status: str | None = Field(description="Karbon's `PrimaryStatus`, e.g. InProgress")
    currency: str | None
    amount: Money
    since: date
    age_days: int
    may_move: bool = Field(description=MAY_MOVE)


class AgeBucket(BaseModel):
    label: str = Field(description="`0-30`, `31-60`, `61-90` or `90+` days")
    amount: Money


class UnbilledWorkReport(ReportPage[WipRow]):
    total_amount: Money
    by_age: list[AgeBucket]


class UtilizationRow(BaseModel):
    """A staff member's hours against capacity, as every member of the firm sees them."""

    key: str
    name: str | None
    currency: str | None
    capacity_hours_per_week: Hours
    capacity_defaulted: bool
    available_hours: Hours = Field(description="Capacity over the window's working weeks")
    billable_hours: Hours
    non_billable_hours: Hours
    utilization: Ratio | None = Field(description="All hours / available hours")
    billable_utilization: Ratio | None = Field(description="Billable hours / available hours")
    billable_share: Ratio | None
    standard_value: Money


class UtilizationCostRow(PersonCost, UtilizationRow):
    """`UtilizationRow` with the person's cost: admins and integrator keys with `pay:read`."""


class StaffUtilizationReport(ReportPage[UtilizationCostRow | UtilizationRow]):
    """Rows with each person's cost for admins and `pay:read` keys, without it for others;
    with `format=csv`, the `cost` and `cost_complete` columns likewise."""

    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")


class SummaryReport(ReportHeader):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    totals: Figures
    unbilled_work: Money
    cash_realization: Ratio | None
    collected_before_tax: Money
    amount_due: Money = Field(description="Tax included, counted invoices of any date")
    wip_days: Days | None
    debtor_days: Days | None
    lock_up_days: Days | None = Field(description="WIP days + debtor days over the last 365 days")
    clients_that_may_move: list[str] = Field(
        description="The keys of the clients that wait for a detail (`moving_clients` of them)"
    )
