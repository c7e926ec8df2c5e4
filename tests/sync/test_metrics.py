"""What a sync, its Karbon requests, its lock and a report refresh record in the metrics."""

from dataclasses import replace
from typing import Any

import httpx
import pytest
import respx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, create_sessionmaker
from app.reports.jobs import refresh_reports
from app.sync.karbon import RetryPolicy
from app.sync.karbon.endpoints import RESOURCES, endpoint_of
from app.sync.lock import hold_lock
from sandbox.state import Sandbox
from tests.metric_samples import sample, samples
from tests.sync.conftest import connect_tenant, rotate_sandbox_keys, sync_now
from tests.sync.karbon_fakes import BASE, make_client, run_virtual

TEMPLATES = {t for r in RESOURCES for t in (r.list_path, r.detail_path) if t is not None}


def _run_counts() -> dict[str, float]:
    return {
        "succeeded": sample(
            "reckonry_sync_runs_total", kind="initial", trigger="manual", outcome="succeeded"
        ),
        "duration": sample("reckonry_sync_run_duration_seconds_count", kind="initial"),
        "users": sample("reckonry_karbon_requests_total", endpoint="/v3/Users", status="200"),
        "work_item": sample(
            "reckonry_karbon_requests_total", endpoint="/v3/WorkItems/{key}", status="200"
        ),
        "429": sample("reckonry_karbon_requests_total", endpoint="/v3/Users", status="429"),
        "500": sample("reckonry_karbon_requests_total", endpoint="/v3/Users", status="500"),
        "throttled": sample("reckonry_karbon_retries_total", reason="throttled"),
        "server_error": sample("reckonry_karbon_retries_total", reason="server_error"),
        "waited": sample("reckonry_karbon_retry_after_seconds_sum"),
    }


async def test_a_sync_records_its_run_its_requests_and_its_retries(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    sandbox.update_config({"faults": {"burst_429_retry_after": 1}})
    sandbox.inject_faults("Demo firm", ["429", "500"])  # the first request (Users) is throttled
    before = _run_counts()
    in_progress = sample("reckonry_sync_runs_in_progress", kind="initial")

    _, outcome = await sync_now(job_context, tenant_id)

    assert outcome == "succeeded"
    after = _run_counts()
    change = {name: after[name] - before[name] for name in before}
    assert change["succeeded"] == 1
    assert change["duration"] == 1
    assert change["users"] >= 1
    assert change["work_item"] >= 1  # detail calls, named without their key
    assert change["429"] == 1 and change["throttled"] == 1
    assert change["waited"] == pytest.approx(1.0)
    assert change["500"] == 1 and change["server_error"] == 1
    assert sample("reckonry_sync_runs_in_progress", kind="initial") == in_progress
    endpoints = {dict(labels)["endpoint"] for labels in samples("reckonry_karbon_requests_total")}
    assert endpoints <= TEMPLATES  # never a URL with ids


async def test_a_sync_with_rejected_keys_ends_as_auth_failed(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    rotate_sandbox_keys(sandbox, "Demo firm")
    labels = {"kind": "initial", "trigger": "manual", "outcome": "auth_failed"}
    before = sample("reckonry_sync_runs_total", **labels)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "auth failed"
    assert sample("reckonry_sync_runs_total", **labels) - before == 1


def test_a_429_counts_the_request_the_retry_and_the_seconds_waited() -> None:
    before = (
        sample("reckonry_karbon_requests_total", endpoint="/v3/Users", status="429"),
        sample("reckonry_karbon_retries_total", reason="throttled"),
        sample("reckonry_karbon_retry_after_seconds_count"),
        sample("reckonry_karbon_retry_after_seconds_sum"),
    )

    async def go() -> None:
        async with make_client(retry=RetryPolicy()) as client:
            await client.get("/v3/Users")

    with respx.mock(base_url=BASE) as karbon:
        karbon.get("/v3/Users").mock(
            side_effect=[
                httpx.Response(429, headers={"Retry-After": "7"}),
                httpx.Response(200, json={"value": []}),
            ]
        )
        run_virtual(go())

    after = (
        sample("reckonry_karbon_requests_total", endpoint="/v3/Users", status="429"),
        sample("reckonry_karbon_retries_total", reason="throttled"),
        sample("reckonry_karbon_retry_after_seconds_count"),
        sample("reckonry_karbon_retry_after_seconds_sum"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 7]


def test_transport_errors_count_as_requests_without_a_status() -> None:
    before = sample("reckonry_karbon_requests_total", endpoint="/v3/Users", status="error")
    retries = sample("reckonry_karbon_retries_total", reason="transport_error")

    async def go() -> None:
        async with make_client(retry=RetryPolicy()) as client:
            await client.get("/v3/Users")

    with respx.mock(base_url=BASE) as karbon:
        karbon.get("/v3/Users").mock(
            side_effect=[httpx.ConnectError("down"), httpx.Response(200, json={"value": []})]
        )
        run_virtual(go())
    assert sample("reckonry_karbon_requests_total", endpoint="/v3/Users", status="error") == (
        before + 1
    )
    assert sample("reckonry_karbon_retries_total", reason="transport_error") == retries + 1


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("/v3/WorkItems/4kPq9", "/v3/WorkItems/{key}"),
        (f"{BASE}/v3/Invoices?$skip=100", "/v3/Invoices"),
        ("/v3/Timesheets/", "/v3/Timesheets"),
        ("/v3/Elsewhere", "other"),
    ],
)
def test_requests_are_named_by_endpoint_not_by_url(url: str, endpoint: str) -> None:
    assert endpoint_of(httpx.URL(BASE).join(url), httpx.URL(BASE)) == endpoint


async def test_sync_locks_count_holders_and_refusals(redis: Redis, redis_prefix: str) -> None:
    key = f"{redis_prefix}:sync-lock:metrics"
    held, refused = sample("reckonry_sync_locks_held"), sample("reckonry_sync_lock_contended_total")
    async with hold_lock(redis, key) as first:
        assert first is not None
        assert sample("reckonry_sync_locks_held") == held + 1
        async with hold_lock(redis, key) as second:
            assert second is None
    assert sample("reckonry_sync_locks_held") == held
    assert sample("reckonry_sync_lock_contended_total") == refused + 1


async def test_report_refreshes_record_their_duration_and_failures(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    refreshed = sample("reckonry_report_refresh_duration_seconds_count")
    await refresh_reports(job_context, str(tenant_id))
    assert sample("reckonry_report_refresh_duration_seconds_count") == refreshed + 1

    failures = sample("reckonry_report_refresh_failures_total")
    unreachable = create_engine("postgresql://nobody@127.0.0.1:1/none", pool_size=1)
    with pytest.raises(OSError):
        unreachable_deps = replace(job_context["deps"], sessions=create_sessionmaker(unreachable))
        await refresh_reports({"deps": unreachable_deps}, str(tenant_id))
    await unreachable.dispose()
    assert sample("reckonry_report_refresh_failures_total") == failures + 1
    assert sample("reckonry_report_refresh_duration_seconds_count") == refreshed + 1
