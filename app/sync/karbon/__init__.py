"""Read-only Karbon v3 client: endpoints allow-list, tenant budgets, retries, typed errors."""

from app.sync.karbon.budget import BudgetRegistry, BudgetStats, TenantBudget
from app.sync.karbon.client import (
    DEFAULT_BASE_URL,
    KarbonClient,
    KarbonResponse,
    Page,
    ResponseHook,
)
from app.sync.karbon.credentials import CredentialCheck, validate_credentials
from app.sync.karbon.endpoints import (
    CONTACTS,
    INVOICES,
    ORGANIZATIONS,
    TIMESHEETS,
    USERS,
    WORK_ITEMS,
    Resource,
)
from app.sync.karbon.errors import (
    KarbonAuthError,
    KarbonError,
    KarbonPermissionError,
    KarbonProtocolError,
    KarbonRequestError,
    KarbonUnavailable,
    ReadOnlyViolation,
    RejectedKey,
)
from app.sync.karbon.retry import RetryPolicy

__all__ = [
    "CONTACTS",
    "DEFAULT_BASE_URL",
    "INVOICES",
    "ORGANIZATIONS",
    "TIMESHEETS",
    "USERS",
    "WORK_ITEMS",
    "BudgetRegistry",
    "BudgetStats",
    "CredentialCheck",
    "KarbonAuthError",
    "KarbonClient",
    "KarbonError",
    "KarbonPermissionError",
    "KarbonProtocolError",
    "KarbonRequestError",
    "KarbonResponse",
    "KarbonUnavailable",
    "Page",
    "ReadOnlyViolation",
    "RejectedKey",
    "Resource",
    "ResponseHook",
    "RetryPolicy",
    "TenantBudget",
    "validate_credentials",
]
