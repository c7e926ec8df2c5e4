import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from cryptography.fernet import Fernet
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.app import create_app
from app.embedded import ServiceUrls
from app.models import KarbonConnection, SyncKind, SyncRun, SyncState, SyncTrigger, Tenant
from app.observability import JsonFormatter
from app.secrets import Secrets
from app.settings import Settings
from app.sync import connection
from app.sync.control import sync_job_id
from app.sync.karbon import RetryPolicy
from app.sync.karbon import credentials as karbon_credentials
from app.tenancy import repository
from tests.tenancy.helpers import (
    ACCESS_KEY,
    BEARER_DENIED,
    BEARER_TOKEN,
    JWT_INVALID,
    JWT_NOT_PRESENT,
    KARBON,
    READ_ENDPOINTS,
    Firm,
    connect,
    fake_karbon,
    problem_type,
    put_credentials,
    sign_up,
)


@pytest.fixture(autouse=True)
def answer_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing Karbon is reported after one attempt instead of after backoff."""
    monkeypatch.setattr(karbon_credentials, "VALIDATION_RETRY", RetryPolicy(max_attempts=1))


@pytest.fixture
async def firm(client: AsyncClient) -> Firm:
    return await sign_up(client, "Acme", "owner@acme.com")


async def _tenant(sessions: async_sessionmaker[AsyncSession]) -> Tenant:
    async with sessions() as session:
        tenant = await session.scalar(select(Tenant))
    assert tenant is not None
    return tenant


async def _stored_rows(sessions: async_sessionmaker[AsyncSession]) -> list[KarbonConnection]:
    async with sessions() as session:
        return list(await session.scalars(select(KarbonConnection)))


@pytest.mark.parametrize(
    ("access_key", "bearer_token", "fields"),
    [
        ("not-a-jwt", BEARER_TOKEN, {"access_key"}),
        (ACCESS_KEY, "12345", {"bearer_token"}),
        ("", "", {"access_key", "bearer_token"}),
    ],
)
async def test_format_errors_name_each_field_and_never_call_karbon(
    client: AsyncClient, firm: Firm, access_key: str, bearer_token: str, fields: set[str]
) -> None:
    with fake_karbon() as users:
        response = await put_credentials(client, firm, access_key, bearer_token)
    assert response.status_code == 422
    assert problem_type(response) == "invalid-credentials-format"
    assert {error["field"] for error in response.json()["errors"]} == fields
    assert response.json()["swapped"] is False
    assert not users.called


async def test_swapped_keys_are_called_swapped(client: AsyncClient, firm: Firm) -> None:
    with fake_karbon() as users:
        response = await put_credentials(client, firm, BEARER_TOKEN, ACCESS_KEY)
    body = response.json()
    assert response.status_code == 422 and body["swapped"] is True
    assert "swapped" in body["detail"]
    messages = {error["field"]: error["message"] for error in body["errors"]}
    assert "looks like the Bearer token" in messages["access_key"]
    assert "looks like the AccessKey" in messages["bearer_token"]
    assert not users.called


async def test_pasted_bearer_scheme_and_spaces_are_tolerated(
    client: AsyncClient, firm: Firm
) -> None:
    with fake_karbon() as users:
        response = await put_credentials(
            client, firm, f"  {ACCESS_KEY}\n", f"Bearer {{{BEARER_TOKEN}}}"
        )
    assert response.status_code == 200, response.text
    sent = users.calls.last.request
    assert sent.headers["Authorization"] == f"Bearer {BEARER_TOKEN}"
    assert sent.headers["AccessKey"] == ACCESS_KEY


async def test_accepted_keys_are_stored_encrypted_and_start_the_trial(
    client: AsyncClient,
    firm: Firm,
    app: FastAPI,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    before = datetime.now(UTC)
    with fake_karbon() as users:
        response = await put_credentials(client, firm)
    assert response.status_code == 200, response.text
    assert users.call_count == 1
    body = response.json()
    assert body["connected"] is True
    assert body["access_key_masked"] == "••••" + ACCESS_KEY[-4:]
    assert body["bearer_token_masked"] == "••••" + BEARER_TOKEN[-4:]
    assert datetime.fromisoformat(body["validated_at"]) >= before
    trial = body["trial"]
    assert trial["status"] == "active" and trial["days_left"] == 7
    started = datetime.fromisoformat(trial["started_at"])
    assert datetime.fromisoformat(trial["ends_at"]) - started == timedelta(days=7)

    me = (await client.get("/api/v1/me", headers=firm.headers)).json()
    assert me["tenant"]["trial"] == trial
    shown = (await client.get("/api/v1/karbon/connection", headers=firm.headers)).json()
    assert shown == body

    [row] = await _stored_rows(sessions)
    stored = json.dumps([row.access_key_encrypted, row.bearer_token_encrypted])
    assert ACCESS_KEY not in stored and BEARER_TOKEN not in stored
    async with sessions() as session:
        loaded = await connection.load_karbon_credentials(session, app.state.secrets, row.tenant_id)
    assert loaded == connection.KarbonCredentials(ACCESS_KEY, BEARER_TOKEN)
    assert ACCESS_KEY not in repr(loaded) and BEARER_TOKEN not in repr(loaded)


async def test_re_pasting_or_rotating_keys_never_restarts_the_trial(
    client: AsyncClient, firm: Firm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await connect(client, firm)
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    async with sessions.begin() as session:
        await session.execute(update(Tenant).values(trial_started_at=three_days_ago))

    rotated = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    with fake_karbon():
        response = await put_credentials(client, firm, bearer_token=rotated)
    body = response.json()
    assert body["bearer_token_masked"] == "••••" + rotated[-4:]
    assert datetime.fromisoformat(body["trial"]["started_at"]) == three_days_ago
    assert body["trial"]["days_left"] == 4

    await client.delete("/api/v1/karbon/credentials", headers=firm.headers)
    reconnected = await connect(client, firm)
    assert datetime.fromisoformat(reconnected["trial"]["started_at"]) == three_days_ago


@pytest.mark.parametrize(
    ("karbon_body", "slug", "field"),
    [
        (JWT_NOT_PRESENT, "karbon-rejected-access-key", "access_key"),
        (JWT_INVALID, "karbon-rejected-access-key", "access_key"),
        (BEARER_DENIED, "karbon-rejected-bearer-token", "bearer_token"),
        ({"Message": "Unauthorized"}, "karbon-rejected-unknown", None),
    ],
)
async def test_rejected_keys_say_which_and_store_nothing(
    client: AsyncClient,
    firm: Firm,
    sessions: async_sessionmaker[AsyncSession],
    karbon_body: dict[str, Any],
    slug: str,
    field: str | None,
) -> None:
    with fake_karbon(401, karbon_body):
        response = await put_credentials(client, firm)
    assert response.status_code == 422
    assert problem_type(response) == slug
    errors = response.json().get("errors") or []
    assert [error["field"] for error in errors] == ([field] if field else [])
    assert await _stored_rows(sessions) == []
    assert (await _tenant(sessions)).trial_started_at is None


@pytest.mark.parametrize(
    "denied",
    [("/v3/Invoices",), ("/v3/Timesheets", "/v3/WorkItems"), ("/v3/Users",)],
)
async def test_endpoints_the_application_may_not_read_are_named_with_the_setting_to_change(
    client: AsyncClient,
    firm: Firm,
    sessions: async_sessionmaker[AsyncSession],
    denied: tuple[str, ...],
) -> None:
    with fake_karbon(denied=denied):
        response = await put_credentials(client, firm)
    assert response.status_code == 422, response.text
    assert problem_type(response) == "karbon-permission-missing"
    body = response.json()
    assert set(body["denied_endpoints"]) == set(denied)
    for endpoint in denied:
        assert f"GET {endpoint}" in body["detail"]
    assert "API Applications" in body["detail"]
    assert "rejected" not in body["detail"].lower(), "the keys themselves were accepted"
    assert await _stored_rows(sessions) == []
    assert (await _tenant(sessions)).trial_started_at is None


async def test_every_endpoint_is_checked_with_one_record(client: AsyncClient, firm: Firm) -> None:
    with respx.mock(base_url=KARBON) as karbon:
        routes = [
            karbon.get(path, params={"$top": "1"}).respond(200, json={"value": []})
            for path in READ_ENDPOINTS
        ]
        response = await put_credentials(client, firm)
    assert response.status_code == 200, response.text
    assert [route.call_count for route in routes] == [1] * 6


async def test_a_401_on_a_later_endpoint_still_rejects_the_keys(
    client: AsyncClient, firm: Firm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    with respx.mock(base_url=KARBON, assert_all_called=False) as karbon:
        for path in READ_ENDPOINTS:
            karbon.get(path).respond(200, json={"value": []})
        karbon.get("/v3/Invoices").respond(401, json=JWT_INVALID)
        response = await put_credentials(client, firm)
    assert response.status_code == 422
    assert problem_type(response) == "karbon-rejected-access-key"
    assert await _stored_rows(sessions) == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503, text="down for maintenance"),
        httpx.Response(429, json={"statusCode": "429", "message": "Try again in 0 seconds."}),
        httpx.ConnectError("connection refused"),
    ],
)
async def test_unreachable_or_throttling_karbon_is_a_retryable_error(
    client: AsyncClient,
    firm: Firm,
    sessions: async_sessionmaker[AsyncSession],
    failure: httpx.Response | Exception,
) -> None:
    with respx.mock(base_url=KARBON) as karbon:
        karbon.get("/v3/Users").mock(side_effect=[failure])
        response = await put_credentials(client, firm)
    assert response.status_code == 503
    assert problem_type(response) == "karbon-unavailable"
    assert response.json()["retryable"] is True
    assert await _stored_rows(sessions) == []


async def test_disconnect_forgets_the_keys_and_keeps_the_trial(
    client: AsyncClient, firm: Firm, app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    connected = await connect(client, firm)
    response = await client.delete("/api/v1/karbon/credentials", headers=firm.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["connected"] is False
    assert body["access_key_masked"] is None and body["bearer_token_masked"] is None
    assert body["disconnected_at"] is not None
    assert body["trial"] == connected["trial"]

    [row] = await _stored_rows(sessions)
    assert row.access_key_encrypted is None and row.bearer_token_encrypted is None
    async with sessions() as session:
        assert (
            await connection.load_karbon_credentials(session, app.state.secrets, row.tenant_id)
            is None
        )
        assert not await connection.tenant_may_sync(session, row.tenant_id, datetime.now(UTC))
    again = await client.delete("/api/v1/karbon/credentials", headers=firm.headers)
    assert again.status_code == 200 and again.json()["connected"] is False


async def test_only_admins_change_the_connection(client: AsyncClient, firm: Firm) -> None:
    from tests.tenancy.helpers import join

    _, member = await join(client, firm.headers, "staff@acme.com")
    with fake_karbon() as users:
        put = await client.put(
            "/api/v1/karbon/credentials",
            headers=member,
            json={"access_key": ACCESS_KEY, "bearer_token": BEARER_TOKEN},
        )
    assert put.status_code == 403 and not users.called
    assert (await client.delete("/api/v1/karbon/credentials", headers=member)).status_code == 403
    assert (await client.get("/api/v1/karbon/connection", headers=member)).status_code == 200


async def test_sync_errors_show_on_the_connection_with_what_to_do(
    client: AsyncClient, firm: Firm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await connect(client, firm)
    tenant = await _tenant(sessions)
    async with sessions.begin() as session:
        await connection.record_sync_error(
            session,
            tenant.id,
            code="karbon-rejected-bearer-token",
            message="Karbon rejected the Bearer token.",
            likely_cause="The Bearer token was regenerated or revoked in Karbon.",
            steps=["Generate a new Bearer token in Karbon.", "Paste both keys again."],
        )
        await connection.mark_error_alerted(session, tenant.id, datetime.now(UTC))

    error = (await client.get("/api/v1/karbon/connection", headers=firm.headers)).json()[
        "last_error"
    ]
    assert error["code"] == "karbon-rejected-bearer-token"
    assert error["likely_cause"].startswith("The Bearer token was regenerated")
    assert error["steps"] == ["Generate a new Bearer token in Karbon.", "Paste both keys again."]

    async with sessions.begin() as session:
        await connection.record_sync_error(
            session,
            tenant.id,
            code="karbon-rejected-bearer-token",
            message="again",
            likely_cause=None,
            steps=[],
        )
    assert (await _stored_rows(sessions))[0].alerted_at is not None  # same error: no new alert
    async with sessions.begin() as session:
        await connection.record_sync_error(
            session,
            tenant.id,
            code="karbon-unavailable",
            message="down",
            likely_cause=None,
            steps=[],
        )
    assert (await _stored_rows(sessions))[0].alerted_at is None  # a new error alerts again

    async with sessions.begin() as session:
        await connection.clear_sync_error(session, tenant.id)
    shown = (await client.get("/api/v1/karbon/connection", headers=firm.headers)).json()
    assert shown["last_error"] is None

    await connect(client, firm)  # pasting keys again also clears a stale error


async def test_reencrypting_moves_every_key_to_the_newest_encryption_key(
    client: AsyncClient, firm: Firm, app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await connect(client, firm)
    old: Secrets = app.state.secrets
    newest = Fernet.generate_key().decode()
    rotated = Secrets(old.signing_keys, (newest, *old.encryption_keys))
    async with sessions.begin() as session:
        assert await connection.reencrypt_credentials(session, rotated) == 1
    only_newest = Secrets(old.signing_keys, (newest,))
    tenant = await _tenant(sessions)
    async with sessions() as session:
        loaded = await connection.load_karbon_credentials(session, only_newest, tenant.id)
    assert loaded == connection.KarbonCredentials(ACCESS_KEY, BEARER_TOKEN)


async def test_an_access_key_without_its_bearer_token_is_not_a_connection(
    client: AsyncClient, firm: Firm, app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await connect(client, firm)
    async with sessions.begin() as session:
        await session.execute(update(KarbonConnection).values(bearer_token_encrypted=None))
    [row] = await _stored_rows(sessions)
    assert not row.is_connected
    async with sessions.begin() as session:
        assert await connection.reencrypt_credentials(session, app.state.secrets) == 0
        assert await repository.connected_tenant_ids(session) == []


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Capture(level=logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_keys_never_appear_in_responses_or_logs(
    client: AsyncClient, firm: Firm, captured_logs: list[str]
) -> None:
    responses = []
    with fake_karbon():
        responses.append(await put_credentials(client, firm, BEARER_TOKEN, ACCESS_KEY))
        responses.append(await put_credentials(client, firm, ACCESS_KEY, "not-a-guid"))
    for body in (JWT_INVALID, BEARER_DENIED):
        with fake_karbon(401, body):
            responses.append(await put_credentials(client, firm))
    with respx.mock(base_url=KARBON) as karbon:
        karbon.get("/v3/Users").mock(side_effect=httpx.ConnectError("refused"))
        responses.append(await put_credentials(client, firm))
    with fake_karbon():
        responses.append(await put_credentials(client, firm))
    responses.append(await client.get("/api/v1/karbon/connection", headers=firm.headers))
    responses.append(await client.get("/api/v1/me", headers=firm.headers))
    responses.append(await client.delete("/api/v1/karbon/credentials", headers=firm.headers))

    assert [r.status_code for r in responses] == [422, 422, 422, 422, 503, 200, 200, 200, 200]
    assert captured_logs, "the requests were logged"
    everything = "\n".join([*(r.text for r in responses), *captured_logs])
    everything += "\n".join(str(r.headers) for r in responses)
    for secret in (ACCESS_KEY, BEARER_TOKEN):
        assert secret not in everything
        assert secret.split(".")[-1] not in everything


async def test_connecting_queues_the_initial_sync_and_disconnecting_cancels_it(
    client: AsyncClient,
    firm: Firm,
    app: FastAPI,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await connect(client, firm)
    async with sessions() as session:
        [run] = list(await session.scalars(select(SyncRun)))
    assert (run.kind, run.trigger, run.state) == (
        SyncKind.INITIAL,
        SyncTrigger.CONNECT,
        SyncState.QUEUED,
    )
    queued = await app.state.redis.queued_jobs(queue_name=settings.queue_name)
    assert sync_job_id(settings, run.id) in {job.job_id for job in queued}

    await connect(client, firm)  # pasting again joins the queued sync
    async with sessions() as session:
        assert len(list(await session.scalars(select(SyncRun)))) == 1

    await client.delete("/api/v1/karbon/credentials", headers=firm.headers)
    async with sessions() as session:
        cancelled = await session.get(SyncRun, run.id)
    assert cancelled is not None and cancelled.state == SyncState.CANCELLED


async def test_a_refused_key_check_queues_no_sync(
    client: AsyncClient, firm: Firm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    with fake_karbon(401, JWT_INVALID):
        await put_credentials(client, firm)
    async with sessions() as session:
        assert list(await session.scalars(select(SyncRun))) == []


async def test_the_key_check_spends_the_request_budget_the_settings_set(
    settings: Settings,
    service_urls: ServiceUrls,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    slower = settings.model_copy(update={"karbon_requests_per_second": 0.5})
    application = create_app(slower, service_urls)
    transport = ASGITransport(app=application, raise_app_exceptions=False)
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        await connect(client, await sign_up(client, "Acme", "owner@acme.com"))
        tenant = await _tenant(sessions)
        budget = application.state.karbon_budgets.for_tenant(str(tenant.id))
        assert budget.rate_per_second == 0.5
        assert budget.stats().requests_sent == 6, "one read of each of the six endpoints"
