"""At Karbon's real pace: the sandbox counts every request, as it arrives, per window."""

import asyncio
from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.embedded import ServiceUrls
from app.sync.access import KarbonAccess
from app.sync.karbon import USERS, KarbonClient
from app.sync.karbon.budget import BudgetRegistry, Limits
from app.sync.karbon.request_loop import RequestLoop
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, sync_now


async def test_a_sync_keeps_under_karbons_limit_and_only_reads(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    service_urls: ServiceUrls,
) -> None:
    sandbox.update_config(
        {
            "max_page_size": 100,
            "rate_limit_enabled": True,
            "invoice_list_includes_line_items": True,
            "latency": {"distribution": "lognormal", "median_seconds": 0.3, "sigma": 0.5},
        }
    )
    deps = job_context["deps"]
    karbon = KarbonAccess(
        base_url=deps.settings.karbon_base_url,
        budgets=BudgetRegistry(
            rate_per_second=1.8,
            redis_url=service_urls.redis_url,
            key_prefix=deps.settings.redis_key_prefix,
        ),
        request_loop=deps.karbon.request_loop,
    )
    job_context["deps"] = replace(deps, karbon=karbon)
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"

    counters = sandbox.counters("Demo firm")
    assert counters["requests"] >= 20, "too few requests to say anything about the rate"
    assert counters["max_requests_in_window"]["10s"] <= 19
    assert counters["max_requests_in_window"]["60s"] <= 108
    assert counters["rate_limited_429"] == 0
    assert counters["non_get_attempts"] == 0
    assert set(counters["by_status"]) == {"200"}


async def test_two_processes_sending_for_one_tenant_keep_one_rate_together(
    sandbox: Sandbox, karbon_url: str, service_urls: ServiceUrls, redis_prefix: str
) -> None:
    # Each "process" has its own registry, request loop and Redis connection, as a worker and
    # the API have; both send for the same tenant as fast as their budgets let them.
    rate, each = 6.0, 12
    keys = sandbox.tenant("Demo firm")
    loops = [RequestLoop(name=f"test-process-{n}") for n in range(2)]

    async def process(request_loop: RequestLoop) -> None:
        budgets = BudgetRegistry(rate, redis_url=service_urls.redis_url, key_prefix=redis_prefix)
        client = KarbonClient(
            keys.access_key,
            keys.bearer_token,
            budget=budgets.for_tenant("tenant", request_loop.loop),
            base_url=karbon_url,
            request_loop=request_loop,
        )
        async with client:
            await asyncio.gather(*(client.get(USERS.list_path, {"$top": 1}) for _ in range(each)))
        await request_loop.run(budgets.aclose)

    try:
        await asyncio.gather(*(process(loop) for loop in loops))
    finally:
        for loop in loops:
            await asyncio.to_thread(loop.close)

    arrived = sorted(entry["t"] for entry in sandbox.counters("Demo firm", with_log=True)["log"])
    assert len(arrived) == 2 * each
    # One schedule: 23 spacings from first to last (less what jitter on the way may take),
    # where two schedules would have taken 11.
    assert arrived[-1] - arrived[0] >= (2 * each - 1) * Limits.at(rate).spacing - 0.25
