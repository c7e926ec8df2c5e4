import asyncio
import uuid

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.embedded import ServiceUrls
from app.models import Tenant, User
from app.settings import Settings
from app.tenancy import ratelimit
from app.tenancy.cli import create_operator
from app.tenancy.ratelimit import PER_ACCOUNT, PER_ACCOUNT_AND_ADDRESS, Throttle
from app.tenancy.security import issue_token
from tests.tenancy.helpers import PASSWORD, bearer, join, problem_type, sign_in, sign_up


async def test_sign_up_creates_the_firm_and_its_admin_without_starting_the_trial(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    firm = await sign_up(client, "Acme Accounting", "Owner@Acme.com")

    me = (await client.get("/api/v1/me", headers=firm.headers)).json()
    assert me["email"] == "owner@acme.com"
    assert me["role"] == "admin"
    assert me["tenant"]["name"] == "Acme Accounting"
    assert me["tenant"]["trial"] == {
        "status": "not_started",
        "started_at": None,
        "ends_at": None,
        "days_left": None,
    }
    async with sessions() as session:
        user = await session.scalar(select(User).where(User.email == "owner@acme.com"))
    assert user is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


async def test_an_e_mail_address_signs_up_once(client: AsyncClient) -> None:
    await sign_up(client, "Acme", "owner@acme.com")
    again = await client.post(
        "/api/v1/signup",
        json={"firm_name": "Other", "email": "OWNER@acme.com", "password": PASSWORD},
    )
    assert again.status_code == 409
    assert problem_type(again) == "email-taken"
    assert again.json()["errors"][0]["field"] == "email"


async def test_two_simultaneous_sign_ups_of_one_e_mail_give_one_firm_and_one_409(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = {"email": "race@acme.com", "password": PASSWORD}
    answers = await asyncio.gather(
        *(client.post("/api/v1/signup", json={**body, "firm_name": f"Firm {n}"}) for n in (1, 2))
    )
    assert sorted(answer.status_code for answer in answers) == [201, 409]
    refused = next(answer for answer in answers if answer.status_code == 409)
    assert problem_type(refused) == "email-taken"
    async with sessions() as session:
        firms = (await session.scalars(select(Tenant.name))).all()
    assert len(firms) == 1


async def test_sign_up_names_each_invalid_field(client: AsyncClient) -> None:
    response = await client.post(
        "/api/v1/signup", json={"firm_name": "", "email": "nope", "password": "short"}
    )
    assert response.status_code == 422
    assert {error["field"] for error in response.json()["errors"]} == {
        "firm_name",
        "email",
        "password",
    }


async def test_sign_in_returns_a_bearer_token(client: AsyncClient) -> None:
    await sign_up(client, "Acme", "owner@acme.com")
    response = await sign_in(client, "Owner@acme.com")
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "bearer" and token["expires_in"] > 0
    me = await client.get("/api/v1/me", headers=bearer(token["access_token"]))
    assert me.json()["email"] == "owner@acme.com"


async def test_wrong_password_and_unknown_account_fail_alike(client: AsyncClient) -> None:
    await sign_up(client, "Acme", "owner@acme.com")
    wrong = await sign_in(client, "owner@acme.com", "not the password at all")
    unknown = await sign_in(client, "nobody@acme.com")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert problem_type(response) == "invalid-credentials"
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_tampered_expired_and_missing_tokens_are_refused(
    client: AsyncClient, settings: Settings, app: object
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    header, payload, signature = firm.token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}xx"
    me = (await client.get("/api/v1/me", headers=firm.headers)).json()
    keys = app.state.secrets.signing_keys  # type: ignore[attr-defined]
    expired = issue_token(keys, uuid.UUID(me["user_id"]), 0, ttl=-1).token

    for headers, slug in (
        ({}, "not-authenticated"),
        (bearer(tampered), "invalid-token"),
        (bearer(expired), "invalid-token"),
        (bearer("rk_live_made-up"), "invalid-api-key"),
    ):
        response = await client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert problem_type(response) == slug


def _from(app: FastAPI, address: str) -> AsyncClient:
    """A client whose requests come from `address`."""
    transport = ASGITransport(app=app, client=(address, 40000), raise_app_exceptions=False)
    return AsyncClient(transport=transport, base_url="http://testserver")


async def test_failed_sign_ins_make_the_next_attempt_wait_longer_each_time(
    client: AsyncClient,
) -> None:
    await sign_up(client, "Acme", "owner@acme.com")
    free = PER_ACCOUNT_AND_ADDRESS.free_failures
    for _ in range(free):
        assert (await sign_in(client, "owner@acme.com", "guessing wrong")).status_code == 401
    assert (await sign_in(client, "owner@acme.com", "guessing wrong")).status_code == 401
    waiting = await sign_in(client, "OWNER@acme.com")  # even the right password waits its turn
    assert waiting.status_code == 429
    assert problem_type(waiting) == "too-many-sign-in-attempts"
    assert int(waiting.headers["retry-after"]) == 1
    assert "account" in waiting.json()["detail"]
    await asyncio.sleep(1.1)
    assert (await sign_in(client, "owner@acme.com", "guessing wrong")).status_code == 401
    assert int((await sign_in(client, "owner@acme.com")).headers["retry-after"]) == 2
    other_account = await sign_in(client, "someone-else@acme.com")
    assert other_account.status_code == 401


def test_waits_double_up_to_their_cap() -> None:
    throttle = Throttle(free_failures=2, max_wait_seconds=5)
    assert [throttle.wait_after(n) for n in range(1, 8)] == [0, 0, 1, 2, 4, 5, 5]
    assert PER_ACCOUNT.max_wait_seconds <= 60  # the owner never waits longer than this


async def test_an_attack_from_elsewhere_never_locks_the_owner_out(
    app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "PER_ACCOUNT", Throttle(free_failures=3, max_wait_seconds=1))
    await sign_up(client, "Acme", "owner@acme.com")
    async with _from(app, "203.0.113.7") as attacker, _from(app, "198.51.100.4") as owner:
        answers = [await sign_in(attacker, "owner@acme.com", "guess") for _ in range(12)]
        assert {a.status_code for a in answers} == {401, 429}
        assert (await sign_in(attacker, "owner@acme.com", "guess")).status_code == 429
        first = await sign_in(owner, "owner@acme.com")
        if first.status_code == 429:  # the account-wide wait is at most its cap
            assert int(first.headers["retry-after"]) <= 1
            await asyncio.sleep(1.1)
            first = await sign_in(owner, "owner@acme.com")
        assert first.status_code == 200


async def test_sign_in_is_limited_per_address(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "PER_ADDRESS", Throttle(free_failures=5, max_wait_seconds=60))
    for attempt in range(6):
        response = await sign_in(client, f"user{attempt}@spray.com", "guess")
        assert response.status_code == 401
    waiting = await sign_in(client, "fresh@spray.com", "guess")
    assert waiting.status_code == 429
    assert "address" in waiting.json()["detail"]


async def test_a_successful_sign_in_forgets_the_accounts_failures(client: AsyncClient) -> None:
    await sign_up(client, "Acme", "owner@acme.com")
    for _ in range(PER_ACCOUNT_AND_ADDRESS.free_failures - 1):
        await sign_in(client, "owner@acme.com", "typo typo typo")
    assert (await sign_in(client, "owner@acme.com")).status_code == 200
    for _ in range(PER_ACCOUNT_AND_ADDRESS.free_failures):
        assert (await sign_in(client, "owner@acme.com", "one more typo")).status_code == 401


async def test_admins_add_and_remove_members(client: AsyncClient) -> None:
    admin = await sign_up(client, "Acme", "owner@acme.com")
    member_id, as_member = await join(client, admin.headers, "staff@acme.com")
    assert (await client.get("/api/v1/me", headers=as_member)).json()["role"] == "member"
    listed = (await client.get("/api/v1/members?limit=1&offset=1", headers=as_member)).json()
    assert listed["total"] == 2 and listed["limit"] == 1 and listed["offset"] == 1
    assert [item["email"] for item in listed["items"]] == ["staff@acme.com"]

    refused = await client.post("/api/v1/members", headers=as_member, json={"email": "x@acme.com"})
    assert refused.status_code == 403 and problem_type(refused) == "admin-required"

    removed = await client.delete(f"/api/v1/members/{member_id}", headers=admin.headers)
    assert removed.status_code == 204
    assert (await client.get("/api/v1/me", headers=as_member)).status_code == 401
    assert (await sign_in(client, "staff@acme.com")).status_code == 401


async def test_an_admin_cannot_remove_themself(client: AsyncClient) -> None:
    admin = await sign_up(client, "Acme", "owner@acme.com")
    me = (await client.get("/api/v1/me", headers=admin.headers)).json()
    response = await client.delete(f"/api/v1/members/{me['user_id']}", headers=admin.headers)
    assert response.status_code == 409
    assert problem_type(response) == "cannot-remove-yourself"


async def test_operators_see_ops_and_no_firm_data(
    client: AsyncClient, service_urls: ServiceUrls, settings: Settings
) -> None:
    await sign_up(client, "Acme", "owner@acme.com")
    operator_settings = settings.model_copy(
        update={"database_url": service_urls.database_url, "redis_url": service_urls.redis_url}
    )
    await asyncio.to_thread(create_operator, "ops@reckonry.com", PASSWORD, operator_settings)
    token = (await sign_in(client, "ops@reckonry.com")).json()["access_token"]

    me = (await client.get("/api/v1/me", headers=bearer(token))).json()
    assert me["role"] == "operator" and me["tenant"] is None
    tenants = (await client.get("/api/v1/ops/tenants", headers=bearer(token))).json()
    assert [tenant["name"] for tenant in tenants["items"]] == ["Acme"]
    for path in ("/api/v1/members", "/api/v1/karbon/connection", "/api/v1/api-keys"):
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 403, path


async def test_firm_users_cannot_reach_ops(client: AsyncClient) -> None:
    admin = await sign_up(client, "Acme", "owner@acme.com")
    response = await client.get("/api/v1/ops/tenants", headers=admin.headers)
    assert response.status_code == 403
    assert problem_type(response) == "operator-required"
