"""Report shapes. Money is an exact decimal string beside a `currency` code; ratios are
decimal strings (`0.2500` is 25%); a ratio with no denominator is null."""

from datetime import date, datetime
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from app.api.pagination import Page

T = TypeVar("T")


class GroupBy(StrEnum):
    CLIENT = "client"
    OWNER = "owner"
    MANAGER = "manager"
    WORK_TYPE = "work_type"


class Interval(StrEnum):
    MONTH = "month"


class Order(StrEnum):
    ASC = "asc"
    DESC = "desc"


class FeeTypeFilter(StrEnum):
    FIXED_FEE = "FixedFee"
    TIME_AND_MATERIALS = "TimeAndMaterials"
    NON_BILLABLE = "NonBillable"
    UNKNOWN = "Unknown"


class ReportWarningView(BaseModel):
    kind: str = Field(
        description="`missing_compensation`, `missing_capacity`, `unknown_fee_type`, "
        "`unknown_client_time`, `unknown_client_invoice`, `sync_not_completed`"
    )
    subject_key: str = Field(description="The staff member, work item or client concerned")
    subject_name: str
    hours: str = Field(description="Hours of time affected, where the warning is about time")
    message: str


class Figures(BaseModel):
    """The figures of one group of facts (rules 3 to 10)."""

    currency: str | None
    fee_revenue: str
    expense_recoveries: str
    cost: str
    cost_complete: bool = Field(description="False when some time has no compensation entered")
    uncosted_hours: str
    profit: str
    margin: str | None
    billable_hours: str
    non_billable_hours: str
    standard_value: str
    realization: str | None
    effective_rate: str | None = Field(description="Fee revenue per hour of all time")
    approved_not_sent: str


class ProfitabilityRow(Figures):
    key: str | None = Field(description="Client key, owner or manager e-mail, or work type")
    name: str | None
    month: date | None = Field(None, description="First day of the month with `interval=month`")
    unbilled_work: str | None = Field(
        description="WIP as of the last sync (not windowed); null in a monthly series"
    )


class ReportHeader(BaseModel):
    as_of: datetime | None = Field(description="When the last completed sync finished")
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
    unbilled_work: str
    fee_value: str | None = Field(description="Fixed fee only")
    write_up_down: str | None = Field(description="Fixed fee only: fee value - standard value")


class StaffRow(BaseModel):
    key: str
    name: str | None
    currency: str | None
    billable_hours: str
    non_billable_hours: str
    cost: str
    cost_complete: bool
    standard_value: str


class ClientReport(ReportHeader):
    key: str
    name: str | None
    owner_email: str | None
    manager_email: str | None
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    totals: ProfitabilityRow
    by_work_item: list[WorkItemRow]
    by_staff: list[StaffRow]


class WipRow(BaseModel):
    client_key: str | None
    client_name: str | None
    work_item_key: str | None
    work_item_title: str | None
    fee_type: str | None
    work_type: str | None
    currency: str | None
    amount: str
    since: date
    age_days: int


class AgeBucket(BaseModel):
    label: str = Field(description="`0-30`, `31-60`, `61-90` or `90+` days")
    amount: str


class UnbilledWorkReport(ReportPage[WipRow]):
    total_amount: str
    by_age: list[AgeBucket]


class UtilizationRow(BaseModel):
    key: str
    name: str | None
    currency: str | None
    capacity_hours_per_week: str
    capacity_defaulted: bool
    available_hours: str = Field(description="Capacity over the window's working weeks")
    billable_hours: str
    non_billable_hours: str
    utilization: str | None = Field(description="All hours / available hours")
    billable_utilization: str | None = Field(description="Billable hours / available hours")
    billable_share: str | None
    cost: str
    cost_complete: bool
    standard_value: str


class StaffUtilizationReport(ReportPage[UtilizationRow]):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")


class SummaryReport(ReportHeader):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    totals: Figures
    unbilled_work: str
    cash_realization: str | None
    collected_before_tax: str
    amount_due: str = Field(description="Tax included, counted invoices of any date")
    wip_days: str | None
    debtor_days: str | None
    lock_up_days: str | None = Field(description="WIP days + debtor days over the last 365 days")
