"""The sync endpoints as the frontend, integrators and operators use them."""

from typing import Any
from uuid import UUID

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import KarbonConnection
from app.sync.jobs import run_sync
from app.tenancy.crypto import CredentialCipher
from app.tenancy.service import create_operator
from sandbox.state import Sandbox
from tests.sync.conftest import sync_now
from tests.tenancy.helpers import bearer, connect, join, problem_type, sign_in, sign_up

STREAMS = ["users", "contacts", "organizations", "work_items", "timesheets", "invoices"]


async def test_nothing_to_show_before_karbon_is_connected(client: AsyncClient) -> None:
    firm = await sign_up(client, "Acme CPA", "owner@acme-cpa.com")
    status = (await client.get("/api/v1/sync", headers=firm.headers)).json()
    assert status == {
        "current": None,
        "last": None,
        "next_incremental_at": None,
        "next_reconciliation_at": None,
    }
    response = await client.post("/api/v1/sync", headers=firm.headers, json={"kind": "full"})
    assert response.status_code == 409
    assert problem_type(response) == "karbon-not-connected"


async def test_connecting_queues_the_initial_sync_and_a_manual_sync_joins_it(
    client: AsyncClient,
) -> None:
    firm = await sign_up(client, "Acme CPA", "owner@acme-cpa.com")
    await connect(client, firm)
    status = (await client.get("/api/v1/sync", headers=firm.headers)).json()
    current = status["current"]
    assert current["kind"] == "initial" and current["state"] == "queued"
    assert [s["name"] for s in current["streams"]] == STREAMS
    assert all(s["state"] == "pending" for s in current["streams"])
    assert status["next_reconciliation_at"] is not None

    manual = await client.post("/api/v1/sync", headers=firm.headers, json={"kind": "incremental"})
    assert manual.status_code == 202
    assert manual.json()["joined"] is True
    assert manual.json()["run"]["id"] == current["id"]


async def test_a_manual_sync_needs_an_admin(client: AsyncClient) -> None:
    firm = await sign_up(client, "Acme CPA", "owner@acme-cpa.com")
    await connect(client, firm)
    _, member = await join(client, firm.headers, "staff@acme-cpa.com")
    response = await client.post("/api/v1/sync", headers=member, json={"kind": "full"})
    assert response.status_code == 403
    assert (await client.get("/api/v1/sync", headers=member)).status_code == 200


async def test_sync_settings_are_validated_and_kept(client: AsyncClient) -> None:
    firm = await sign_up(client, "Acme CPA", "owner@acme-cpa.com")
    too_often = await client.patch(
        "/api/v1/sync/settings", headers=firm.headers, json={"incremental_interval_minutes": 5}
    )
    assert too_often.status_code == 422
    assert too_often.json()["errors"][0]["field"] == "incremental_interval_minutes"
    changed = await client.patch(
        "/api/v1/sync/settings",
        headers=firm.headers,
        json={"incremental_interval_minutes": 240, "nightly_reconciliation": False},
    )
    assert changed.json() == {"incremental_interval_minutes": 240, "nightly_reconciliation": False}
    kept = await client.get("/api/v1/sync/settings", headers=firm.headers)
    assert kept.json() == changed.json()


async def test_a_finished_sync_shows_its_progress_history_and_next_runs(
    client: AsyncClient,
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    firm = await sign_up(client, "Acme CPA", "owner@acme-cpa.com")
    await connect(client, firm)
    me = (await client.get("/api/v1/me", headers=firm.headers)).json()
    tenant_id = me["tenant"]["id"]
    await _use_sandbox_keys(sessions, job_context, sandbox, tenant_id)
    run_id = (await client.get("/api/v1/sync", headers=firm.headers)).json()["current"]["id"]
    assert await run_sync(job_context, run_id) == "succeeded"
    status = (await client.get("/api/v1/sync", headers=firm.headers)).json()
    assert status["current"] is None
    last = status["last"]
    assert last["state"] == "succeeded" and last["error"] is None
    assert last["requests_made"] == sandbox.counters("Demo firm")["requests"]
    assert all(
        s["state"] == "done" and s["pages_done"] == s["pages_total"] for s in last["streams"]
    )
    assert sum(s["records"] for s in last["streams"]) > 0
    assert status["next_incremental_at"] is not None
    runs = (await client.get("/api/v1/sync/runs?limit=1", headers=firm.headers)).json()
    assert runs["total"] == 1 and runs["items"][0]["id"] == run_id
    await sync_now(job_context, UUID(tenant_id))
    runs = (await client.get("/api/v1/sync/runs?limit=1", headers=firm.headers)).json()
    assert runs["total"] == 2 and runs["items"][0]["id"] != run_id


async def _use_sandbox_keys(
    sessions: async_sessionmaker[AsyncSession],
    job_context: dict[str, Any],
    sandbox: Sandbox,
    tenant_id: str,
) -> None:
    """The firm's stored keys become the sandbox tenant's (the API check used a fake Karbon)."""
    keys = sandbox.tenant("Demo firm")
    cipher = CredentialCipher(job_context["deps"].secrets)
    async with unit_of_work(sessions) as session:
        row = (
            await session.execute(
                select(KarbonConnection).where(KarbonConnection.tenant_id == UUID(tenant_id))
            )
        ).scalar_one()
        row.access_key_encrypted = cipher.encrypt(keys.access_key)
        row.bearer_token_encrypted = cipher.encrypt(keys.bearer_token)


async def test_operators_see_every_firms_sync_state(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    connected = await sign_up(client, "Acme CPA", "owner@acme-cpa.com")
    await connect(client, connected)
    await sign_up(client, "Beta LLP", "owner@beta-llp.com")
    async with unit_of_work(sessions) as session:
        await create_operator(session, "ops@reckonry-ops.com", "operator password 123")
    token = (await sign_in(client, "ops@reckonry-ops.com", "operator password 123")).json()
    response = await client.get("/api/v1/ops/sync", headers=bearer(token["access_token"]))
    assert response.status_code == 200
    firms = {item["tenant_name"]: item for item in response.json()["items"]}
    assert firms["Acme CPA"]["connected"] and firms["Acme CPA"]["current"]["state"] == "queued"
    assert not firms["Beta LLP"]["connected"] and firms["Beta LLP"]["current"] is None
    tenant_view = await client.get("/api/v1/ops/sync", headers=connected.headers)
    assert tenant_view.status_code == 403


async def test_a_new_firm_syncs_every_two_hours_and_reconciles_nightly(
    client: AsyncClient,
) -> None:
    firm = await sign_up(client, "Acme CPA", "owner@acme-cpa.com")
    response = await client.get("/api/v1/sync/settings", headers=firm.headers)
    assert response.status_code == 200
    assert response.json() == {"incremental_interval_minutes": 120, "nightly_reconciliation": True}
