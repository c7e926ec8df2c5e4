"""ORM models. Importing this package registers every table on `Base.metadata`."""

from app.models.base import Base
from app.models.costs import CompensationPeriod, CostSettings
from app.models.karbon import (
    Client,
    Invoice,
    InvoiceLine,
    RawResponse,
    RejectedRecord,
    Staff,
    StorageFootprint,
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
from app.models.tenancy import ApiKey, Role, Tenant, User

__all__ = [
    "ACTIVE_STATES",
    "ApiKey",
    "Base",
    "Client",
    "CompensationPeriod",
    "CostSettings",
    "Invoice",
    "InvoiceLine",
    "KarbonConnection",
    "RawResponse",
    "RejectedRecord",
    "ReportClientName",
    "ReportFact",
    "ReportFixedFee",
    "ReportRefresh",
    "ReportSummedWindow",
    "ReportWarning",
    "ReportWindowSum",
    "ReportWipItem",
    "Role",
    "Staff",
    "StorageFootprint",
    "StreamState",
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
