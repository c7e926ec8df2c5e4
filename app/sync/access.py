"""How this process reaches Karbon: base URL, per-tenant budgets, retries and timeouts.

One instance per worker process. Each tenant's budget draws from the tenant's one schedule in
Redis, so every job of a tenant, in this worker or another, and the API's key checks share
it. A worker's requests are paced and sent on its own request loop (see ``request_loop``), so
the CPU work of many tenants' syncs does not make them late.
"""

from dataclasses import dataclass, field

import httpx

from app.settings import Settings
from app.sync.karbon.budget import RESERVED_AHEAD, BudgetRegistry
from app.sync.karbon.client import DEFAULT_TIMEOUT, KarbonClient, ResponseHook
from app.sync.karbon.endpoints import RESOURCES
from app.sync.karbon.request_loop import RequestLoop
from app.sync.karbon.retry import RetryPolicy

KEY_CHECK_SCHEDULE_PATIENCE = 5.0
"""Seconds a key check waits for an unreachable Redis before the API answers 503: a person
is waiting on it."""


def budget_registry(
    settings: Settings,
    redis_url: str,
    *,
    reserve_ahead: int = RESERVED_AHEAD,
    schedule_patience: float | None = None,
) -> BudgetRegistry:
    """The process's per-tenant budgets at the configured rate, drawing from schedules in the
    deployment's Redis: the workers' syncs and the API's key checks spend from one."""
    return BudgetRegistry(
        rate_per_second=settings.karbon_requests_per_second,
        redis_url=redis_url,
        key_prefix=settings.redis_key_prefix,
        reserve_ahead=reserve_ahead,
        schedule_patience=schedule_patience,
    )


def key_check_budgets(settings: Settings, redis_url: str) -> BudgetRegistry:
    """The API's budgets. A key check's reads reserve their turns all at once, so the person
    waiting on it waits behind a running sync's few reserved turns, not between every one."""
    return budget_registry(
        settings,
        redis_url,
        reserve_ahead=len(RESOURCES),
        schedule_patience=KEY_CHECK_SCHEDULE_PATIENCE,
    )


@dataclass
class KarbonAccess:
    base_url: str
    budgets: BudgetRegistry
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    request_loop: RequestLoop | None = None
    """Where requests are paced and sent; None sends them from the caller's loop."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        redis_url: str,
        *,
        budgets: BudgetRegistry | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        request_loop: bool = True,
    ) -> "KarbonAccess":
        """A worker's access to the configured Karbon. `budgets` stands in for the configured
        ones, drawing from Redis; without a `request_loop` requests are sent from the
        caller's loop."""
        return cls(
            base_url=settings.karbon_base_url,
            budgets=budget_registry(settings, redis_url) if budgets is None else budgets,
            retry=retry,
            timeout=timeout,
            request_loop=RequestLoop() if request_loop else None,
        )

    def close(self) -> None:
        """Stop the request loop, once no sync uses this any more; its budgets' Redis
        connections are closed first."""
        if self.request_loop is not None:
            self.request_loop.close(last=self.budgets.aclose)

    def client(
        self, tenant_id: object, access_key: str, bearer_token: str, on_response: ResponseHook
    ) -> KarbonClient:
        return KarbonClient(
            access_key,
            bearer_token,
            budget=self.budgets.for_tenant(
                str(tenant_id), self.request_loop.loop if self.request_loop else None
            ),
            base_url=self.base_url,
            retry=self.retry,
            timeout=self.timeout,
            on_response=on_response,
            request_loop=self.request_loop,
        )
