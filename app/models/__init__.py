"""ORM models. Importing this package registers every table on `Base.metadata`."""

from app.models.base import Base
from app.models.karbon import (
    Client,
    Invoice,
    InvoiceLine,
    RawResponse,
    RejectedRecord,
    Staff,
    TimeEntry,
    Timesheet,
    WorkItem,
)
from app.models.karbon_connection import KarbonConnection
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
    "Invoice",
    "InvoiceLine",
    "KarbonConnection",
    "RawResponse",
    "RejectedRecord",
    "Role",
    "Staff",
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
