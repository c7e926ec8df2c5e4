"""How this process reaches Karbon: base URL, per-tenant budgets, retries and timeouts.

One instance per worker process, so every job of a tenant shares that tenant's budget.
"""

from dataclasses import dataclass, field

import httpx

from app.settings import Settings
from app.sync.karbon.budget import BudgetRegistry
from app.sync.karbon.client import DEFAULT_TIMEOUT, KarbonClient, ResponseHook
from app.sync.karbon.retry import RetryPolicy


@dataclass
class KarbonAccess:
    base_url: str
    budgets: BudgetRegistry
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)

    @classmethod
    def from_settings(cls, settings: Settings) -> "KarbonAccess":
        return cls(
            base_url=settings.karbon_base_url,
            budgets=BudgetRegistry(rate_per_second=settings.karbon_requests_per_second),
        )

    def client(
        self, tenant_id: object, access_key: str, bearer_token: str, on_response: ResponseHook
    ) -> KarbonClient:
        return KarbonClient(
            access_key,
            bearer_token,
            budget=self.budgets.for_tenant(str(tenant_id)),
            base_url=self.base_url,
            retry=self.retry,
            timeout=self.timeout,
            on_response=on_response,
        )
