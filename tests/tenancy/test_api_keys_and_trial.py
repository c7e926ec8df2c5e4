import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.auth import ActiveTrialOrSubscription, Principal, SyncStatusReader
from app.models import ApiKey, Tenant
from app.sync import connection
from app.tenancy.principal_cache import forget_principals
from tests.tenancy.helpers import READ_SCOPES, Firm, bearer, connect, problem_type, sign_up

REPORT = "/api/v1/_test/report"
SYNC_STATUS = "/api/v1/_test/sync-status"


@pytest.fixture
def probe_routes(app: FastAPI) -> None:
    """Stand-ins for report and sync-status endpoints, guarded as the real ones are."""

    @app.get(REPORT)
    async def report(principal: ActiveTrialOrSubscription) -> dict[str, str]:
        return {"tenant_id": str(principal.tenant_id), "kind": principal.kind}

    @app.get(SYNC_STATUS)
    async def sync_status(principal: SyncStatusReader) -> dict[str, str]:
        return {"tenant_id": str(principal.tenant_id), "kind": principal.kind}


@pytest.fixture
async def firm(client: AsyncClient) -> Firm:
    return await sign_up(client, "Acme", "owner@acme.com")


async def _create_key(client: AsyncClient, firm: Firm, name: str = "BI export") -> dict[str, str]:
    response = await client.post(
        "/api/v1/api-keys", headers=firm.headers, json={"name": name, "scopes": READ_SCOPES}
    )
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


async def test_a_key_is_shown_once_and_stored_only_as_its_hash(
    client: AsyncClient, firm: Firm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await _create_key(client, firm)
    key = created["key"]
    assert key.startswith("rk_live_") and created["display_prefix"] == key[:14]

    listed = (await client.get("/api/v1/api-keys", headers=firm.headers)).json()
    assert listed["total"] == 1 and "key" not in listed["items"][0]
    one = (await client.get(f"/api/v1/api-keys/{created['id']}", headers=firm.headers)).json()
    assert one["name"] == "BI export" and "key" not in one

    async with sessions() as session:
        row = await session.scalar(select(ApiKey))
    assert row is not None
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in " ".join(str(value) for value in vars(row).values())


async def test_keys_read_reports_and_sync_status_and_nothing_else(
    client: AsyncClient, firm: Firm, probe_routes: None
) -> None:
    key = bearer((await _create_key(client, firm))["key"])
    me = (await client.get("/api/v1/me", headers=firm.headers)).json()

    report = await client.get(REPORT, headers=key)
    assert report.status_code == 200
    assert report.json() == {"tenant_id": me["tenant"]["id"], "kind": "api_key"}
    assert (await client.get(SYNC_STATUS, headers=key)).status_code == 200

    for method, path in [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/api-keys"),
        ("POST", "/api/v1/api-keys"),
        ("GET", "/api/v1/karbon/connection"),
        ("DELETE", "/api/v1/karbon/credentials"),
    ]:
        response = await client.request(method, path, headers=key, json={"name": "x"})
        assert response.status_code == 403, (method, path)
        assert problem_type(response) == "api-key-not-allowed"


async def _key_with(client: AsyncClient, firm: Firm, scopes: list[str]) -> dict[str, str]:
    body = {"name": "+".join(scopes), "scopes": scopes}
    response = await client.post("/api/v1/api-keys", headers=firm.headers, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


async def test_a_key_reaches_only_what_its_scopes_name(
    client: AsyncClient, firm: Firm, probe_routes: None
) -> None:
    reports = await _key_with(client, firm, ["reports:read"])
    sync = await _key_with(client, firm, ["sync:read"])
    assert reports["scopes"] == ["reports:read"] and sync["scopes"] == ["sync:read"]

    assert (await client.get(REPORT, headers=bearer(reports["key"]))).status_code == 200
    assert (await client.get(SYNC_STATUS, headers=bearer(sync["key"]))).status_code == 200
    for path, key in ((SYNC_STATUS, reports), (REPORT, sync)):
        refused = await client.get(path, headers=bearer(key["key"]))
        assert refused.status_code == 403 and problem_type(refused) == "scope-required"
        missing = "sync:read" if key is reports else "reports:read"
        assert f"`{missing}`" in refused.json()["detail"]


async def test_scopes_are_shown_in_a_stable_order_each_once(
    client: AsyncClient, firm: Firm
) -> None:
    created = await _key_with(client, firm, ["pay:read", "sync:read", "reports:read", "pay:read"])
    expected = ["reports:read", "sync:read", "pay:read"]
    assert created["scopes"] == expected
    listed = (await client.get("/api/v1/api-keys", headers=firm.headers)).json()
    assert listed["items"][0]["scopes"] == expected
    one = await client.get(f"/api/v1/api-keys/{created['id']}", headers=firm.headers)
    assert one.json()["scopes"] == expected


@pytest.mark.parametrize(
    ("scopes", "field", "message"),
    [
        (None, "scopes", "Field required"),
        ([], "scopes", "at least 1 item"),
        (["reports:write"], "scopes.0", "'reports:read', 'sync:read' or 'pay:read'"),
        (["pay:read"], "scopes", "add `reports:read` too"),
        (["sync:read", "pay:read"], "scopes", "add `reports:read` too"),
    ],
)
async def test_a_key_needs_known_meaningful_scopes(
    client: AsyncClient, firm: Firm, scopes: list[str] | None, field: str, message: str
) -> None:
    body: dict[str, object] = {"name": "BI"}
    if scopes is not None:
        body["scopes"] = scopes
    response = await client.post("/api/v1/api-keys", headers=firm.headers, json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == field and message in error["message"], error
    assert (await client.get("/api/v1/api-keys", headers=firm.headers)).json()["total"] == 0


async def test_revoked_keys_stop_working_at_once(
    client: AsyncClient, firm: Firm, probe_routes: None
) -> None:
    created = await _create_key(client, firm)
    assert (await client.get(REPORT, headers=bearer(created["key"]))).status_code == 200

    revoked = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=firm.headers)
    assert revoked.status_code == 204
    refused = await client.get(REPORT, headers=bearer(created["key"]))
    assert refused.status_code == 401 and problem_type(refused) == "invalid-api-key"
    shown = (await client.get(f"/api/v1/api-keys/{created['id']}", headers=firm.headers)).json()
    assert shown["revoked_at"] is not None
    again = await client.delete(f"/api/v1/api-keys/{created['id']}", headers=firm.headers)
    assert again.status_code == 204


async def test_key_lists_are_paged_newest_first(client: AsyncClient, firm: Firm) -> None:
    for name in ("first", "second", "third"):
        await _create_key(client, firm, name)
    page = (
        await client.get("/api/v1/api-keys", headers=firm.headers, params={"limit": 2, "offset": 1})
    ).json()
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 1
    assert [item["name"] for item in page["items"]] == ["second", "first"]
    too_many = await client.get("/api/v1/api-keys", headers=firm.headers, params={"limit": 0})
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "query.limit"


async def _start_trial(sessions: async_sessionmaker[AsyncSession], days_ago: float) -> None:
    """Move the trial's start back in time, as the clock would have."""
    async with sessions.begin() as session:
        await session.execute(
            update(Tenant).values(trial_started_at=datetime.now(UTC) - timedelta(days=days_ago))
        )
    await forget_principals()  # the trial's start is kept with the principal for a second


async def test_reports_answer_402_after_the_trial_and_the_data_stays(
    client: AsyncClient,
    firm: Firm,
    sessions: async_sessionmaker[AsyncSession],
    probe_routes: None,
) -> None:
    await connect(client, firm)
    await _start_trial(sessions, days_ago=6.5)
    me = (await client.get("/api/v1/me", headers=firm.headers)).json()
    assert me["tenant"]["trial"]["status"] == "active"
    assert me["tenant"]["trial"]["days_left"] == 1
    assert (await client.get(REPORT, headers=firm.headers)).status_code == 200

    await _start_trial(sessions, days_ago=7.01)
    ended = await client.get(REPORT, headers=firm.headers)
    assert ended.status_code == 402
    assert problem_type(ended) == "subscription-required"
    assert "data is kept" in ended.json()["detail"]
    trial = (await client.get("/api/v1/me", headers=firm.headers)).json()["tenant"]["trial"]
    assert trial["status"] == "ended" and trial["days_left"] == 0
    async with sessions() as session:
        tenant = await session.scalar(select(Tenant))
        assert tenant is not None
        assert not await connection.tenant_may_sync(session, tenant.id, datetime.now(UTC))
    connected = (await client.get("/api/v1/karbon/connection", headers=firm.headers)).json()
    assert connected["connected"] is True  # the keys and the data stay

    async with sessions.begin() as session:
        await session.execute(update(Tenant).values(subscription_status="active"))
    await forget_principals()  # as a subscription change through the product will
    assert (await client.get(REPORT, headers=firm.headers)).status_code == 200
    async with sessions() as session:
        assert await connection.tenant_may_sync(session, tenant.id, datetime.now(UTC))


async def test_reports_are_open_before_the_trial_starts(
    client: AsyncClient, firm: Firm, probe_routes: None
) -> None:
    assert (await client.get(REPORT, headers=firm.headers)).status_code == 200


def test_principal_is_immutable() -> None:
    principal = Principal(None, None, None, None, "user")
    with pytest.raises(AttributeError):
        principal.kind = "api_key"  # type: ignore[misc]
