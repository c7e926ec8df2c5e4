"""At Karbon's real pace: the sandbox counts every request the sync made, per second."""

from dataclasses import replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.sync.access import KarbonAccess
from app.sync.karbon.budget import BudgetRegistry
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, sync_now


async def test_a_sync_keeps_under_karbons_limit_and_only_reads(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
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
        budgets=BudgetRegistry(rate_per_second=1.8),
        request_loop=deps.karbon.request_loop,
    )
    job_context["deps"] = replace(deps, karbon=karbon)
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"

    counters = sandbox.counters("Demo firm")
    assert counters["requests"] >= 20, "too few requests to say anything about the rate"
    assert counters["max_requests_in_window"]["10s"] <= 18
    assert counters["max_requests_in_window"]["1s"] <= 2
    assert counters["rate_limited_429"] == 0
    assert counters["non_get_attempts"] == 0
    assert set(counters["by_status"]) == {"200"}
