"""ORM models. Importing this package registers every table on `Base.metadata`."""

from app.models.base import Base
from app.models.costs import CompensationPeriod, CostSettings
from app.models.karbon import (
    Client,
    DataQualityIssue,
    Invoice,
    InvoiceLine,
    RawResponse,
    Staff,
    TimeEntry,
    Timesheet,
    WorkItem,
)
from app.models.karbon_connection import KarbonConnection
from app.models.reports import (
    ReportClientName,
    ReportFact,
    ReportFixedFee,
    ReportRefresh,
    ReportSummedWindow,
    ReportWarning,
    ReportWindowSum,
    ReportWipItem,
)
from app.models.sync import (
    ACTIVE_STATES,
    StreamState,
    SyncKind,
    SyncRun,
    SyncSettings,
    SyncState,
    SyncTrigger,
)
from app.models.tenancy import (
    ApiKey,
    ApiScope,
    RevokedToken,
    Role,
    StripeEvent,
    SubscriptionStatus,
    Tenant,
    User,
)

__all__ = [
    "ACTIVE_STATES",
    "ApiKey",
    "ApiScope",
    "Base",
    "Client",
    "CompensationPeriod",
    "CostSettings",
    "DataQualityIssue",
    "Invoice",
    "InvoiceLine",
    "KarbonConnection",
    "RawResponse",
    "ReportClientName",
    "ReportFact",
    "ReportFixedFee",
    "ReportRefresh",
    "ReportSummedWindow",
    "ReportWarning",
    "ReportWindowSum",
    "ReportWipItem",
    "RevokedToken",
    "Role",
    "Staff",
    "StreamState",
    "StripeEvent",
    "SubscriptionStatus",
    "SyncKind",
    "SyncRun",
    "SyncSettings",
    "SyncState",
    "SyncTrigger",
    "Tenant",
    "TimeEntry",
    "Timesheet",
    "User",
    "WorkItem",
]
