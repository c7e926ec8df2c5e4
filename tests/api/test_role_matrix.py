"""Who may call what: every route of the app, called by every kind of caller, answers the
status `MATRIX` gives; routes that show pay show it to admins and `pay:read` keys only.

The routes come from the OpenAPI document and must equal `MATRIX`'s keys: a new route fails
this test until it is given a row. A row is the expected status per caller, usually built by
one of the profiles below (`firm_admin(201)`, `reader(REPORTS, 200)`...), how to make a
request that succeeds for those allowed (`Row.request`), and, for a route that shows a
person's pay, where the pay fields are (`Row.pay`): present for admins and `pay:read` keys,
absent (not null) for members and other keys, in JSON and, where the route has it, in CSV.

Callers: the firm's admin and member, a platform operator, one integrator key per scope, the
admin of another firm (whose identifiers in a path are another firm's: 404), no token, an
expired token and a tampered one. Calls that sign their caller out (`Row.fresh_caller`) are
made by a new person of the caller's kind, so the callers of the other calls stay signed in.
"""

import asyncio
import base64
import csv
import io
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.embedded import ServiceUrls
from app.reports.refresh import refresh_reports
from app.secrets import resolve_secrets
from app.settings import Settings
from app.tenancy.cli import create_operator
from app.tenancy.security import issue_token, read_token
from tests.mailbox import MAILBOX, Mailbox
from tests.reports.conftest import SyncedFirm
from tests.tenancy.helpers import (
    ACCESS_KEY,
    BEARER_TOKEN,
    PASSWORD,
    Firm,
    bearer,
    connect,
    fake_karbon,
    join,
    put_credentials,
    sign_in,
    sign_up,
)

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}
REPORTS, SYNC, PAY = "reports:read", "sync:read", "pay:read"
KEY_SCOPES = {"reports_key": [REPORTS], "sync_key": [SYNC], "pay_key": [REPORTS, PAY]}
CALLERS = (
    "admin",
    "member",
    "operator",
    *KEY_SCOPES,
    "other_admin",
    "anonymous",
    "expired",
    "tampered",
)
PEOPLE = ("admin", "member", "operator", "other_admin")
SEES_PAY = {"admin": True, "pay_key": True, "member": False, "reports_key": False}
"""The callers of the firm whose pay is checked, and whether each sees it."""
WINDOW = {"from": "2026-01-01", "to": "2026-11-02"}
"""Where the sandbox firm has time, so breakdowns by person have rows."""

Expected = Mapping[str, int]

# -- profiles: the expected status per caller -------------------------------------------

UNAUTHENTICATED = {"anonymous": 401, "expired": 401, "tampered": 401}
NO_KEY = dict.fromkeys(KEY_SCOPES, 403)


def public(ok: int) -> Expected:
    return dict.fromkeys(CALLERS, ok)


def signed_in(ok: int) -> Expected:
    """Any person, operators included; no key."""
    people = dict.fromkeys(PEOPLE, ok)
    return {**people, **NO_KEY, **UNAUTHENTICATED}


def firm_member(ok: int, *, other: int | None = None) -> Expected:
    """The firm's people; `other`: what another firm's admin gets (its own firm's answer
    unless a path names this firm's things)."""
    people = {"admin": ok, "member": ok, "other_admin": other or ok, "operator": 403}
    return {**people, **NO_KEY, **UNAUTHENTICATED}


def firm_admin(ok: int, *, other: int | None = None) -> Expected:
    people = {"admin": ok, "member": 403, "other_admin": other or ok, "operator": 403}
    return {**people, **NO_KEY, **UNAUTHENTICATED}


def operator(ok: int) -> Expected:
    people = {"operator": ok, "admin": 403, "member": 403, "other_admin": 403}
    return {**people, **NO_KEY, **UNAUTHENTICATED}


def reader(scope: str, ok: int, *, other: int | None = None) -> Expected:
    """The firm's people, and its keys that have `scope`."""
    keys = {key: ok if scope in scopes else 403 for key, scopes in KEY_SCOPES.items()}
    people = {"admin": ok, "member": ok, "other_admin": other or ok, "operator": 403}
    return {**people, **keys, **UNAUTHENTICATED}


# -- the world the calls are made in ----------------------------------------------------


@dataclass
class World:
    client: AsyncClient
    ops_settings: Settings
    """Where `create_operator` makes operators: the test's database."""
    firm: Firm
    other: Firm
    other_tenant_id: str
    """The firm operators act on: connected through the API, so its trial has begun."""
    headers: dict[str, dict[str, str]]
    member_email: str
    key_id: str
    staff_key: str
    client_key: str

    async def new_member_id(self) -> str:
        """A member invited and not yet joined."""
        created = await self.client.post(
            "/api/v1/members", headers=self.firm.headers, json=_new_member(_fresh("removable"))
        )
        assert created.status_code == 201, created.text
        member_id: str = created.json()["id"]
        return member_id

    async def invitation_token(self) -> str:
        email = _fresh("invited")
        invited = await self.client.post(
            "/api/v1/members", headers=self.firm.headers, json=_new_member(email)
        )
        assert invited.status_code == 201, invited.text
        return await MAILBOX.link_token(email)

    async def reset_token(self) -> str:
        """A reset link of a firm's owner who asked for no other e-mail."""
        owner = await sign_up(self.client, "Resetting", _fresh("resetting"))
        asked = await self.client.post("/api/v1/auth/password-reset", json={"email": owner.email})
        assert asked.status_code == 202, asked.text
        return await MAILBOX.link_token(owner.email)

    async def fresh_headers(self, caller: str) -> dict[str, str]:
        """A new person of `caller`'s kind, signed in; the same headers for other callers."""
        if caller == "operator":
            return bearer(await _operator_token(self.client, self.ops_settings, _fresh("ops")))
        inviter = {"admin": self.firm, "member": self.firm, "other_admin": self.other}
        if caller not in inviter:
            return self.headers[caller]
        role = "member" if caller == "member" else "admin"
        _, headers = await join(self.client, inviter[caller].headers, _fresh(caller), role)
        return headers

    async def new_key_id(self) -> str:
        created = await self.client.post(
            "/api/v1/api-keys", headers=self.firm.headers, json=_new_key([SYNC])
        )
        assert created.status_code == 201, created.text
        key_id: str = created.json()["id"]
        return key_id


def _fresh(who: str) -> str:
    return f"{who}-{uuid.uuid4().hex[:8]}@matrix-firm.com"


def _new_member(email: str) -> dict[str, str]:
    return {"email": email, "role": "member"}


def _new_key(scopes: list[str]) -> dict[str, Any]:
    return {"name": "+".join(scopes), "scopes": scopes}


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _tampered(token: str, **claims: Any) -> str:
    """The token with `claims` rewritten in its payload and its signature left as it was."""
    header, payload, signature = token.split(".")
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    rewritten = json.dumps({**decoded, **claims}).encode()
    return f"{header}.{_base64url(rewritten)}.{signature}"


async def _operator_token(client: AsyncClient, ops_settings: Settings, email: str) -> str:
    await asyncio.to_thread(create_operator, email, PASSWORD, ops_settings)
    token: str = (await sign_in(client, email)).json()["access_token"]
    return token


async def _key(client: AsyncClient, firm: Firm, scopes: list[str]) -> dict[str, Any]:
    created = await client.post("/api/v1/api-keys", headers=firm.headers, json=_new_key(scopes))
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def _first(client: AsyncClient, firm: Firm, path: str, params: dict[str, Any]) -> str:
    items = (await client.get(path, headers=firm.headers, params=params)).json()["items"]
    key: str = next(item["key"] for item in items if item["key"])
    return key


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Stripe's webhook set up, so that it judges signatures."""
    return settings.model_copy(update={"stripe_webhook_secret": "whsec_matrix_" + "s" * 24})


@pytest.fixture
async def world(
    client: AsyncClient,
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    service_urls: ServiceUrls,
    mailbox: Mailbox,
) -> World:
    await refresh_reports(sessions, synced_firm.tenant_id)
    admin_token = synced_firm.headers["Authorization"].removeprefix("Bearer ")
    firm = Firm("Acme CPA", "", admin_token)
    member_email = "member@matrix-firm.com"
    _, member_headers = await join(client, firm.headers, member_email)
    keys = {caller: await _key(client, firm, scopes) for caller, scopes in KEY_SCOPES.items()}
    other = await sign_up(client, "Other Firm", "admin@other-matrix-firm.com")
    await connect(client, other)
    other_me = (await client.get("/api/v1/me", headers=other.headers)).json()
    signing_keys = resolve_secrets(settings).signing_keys
    admin = read_token(signing_keys, admin_token)
    assert admin is not None
    # The admin's own token in all but its expiry, signed as sign-in signs.
    expired = issue_token(signing_keys, admin.user_id, admin.generation, ttl=-60).token
    ops_settings = settings.model_copy(
        update={"database_url": service_urls.database_url, "redis_url": service_urls.redis_url}
    )
    headers = {
        "admin": firm.headers,
        "member": member_headers,
        "operator": bearer(await _operator_token(client, ops_settings, "ops@matrix-ops.com")),
        **{caller: bearer(key["key"]) for caller, key in keys.items()},
        "other_admin": other.headers,
        "anonymous": {},
        "expired": bearer(expired),
        # The expired token made to last another hour, without the key to sign it.
        "tampered": bearer(_tampered(expired, exp=int(time.time()) + 3600)),
    }
    return World(
        client=client,
        ops_settings=ops_settings,
        firm=firm,
        other=other,
        other_tenant_id=other_me["tenant"]["id"],
        headers=headers,
        member_email=member_email,
        key_id=keys["reports_key"]["id"],
        staff_key=await _first(client, firm, "/api/v1/staff", {}),
        client_key=await _first(client, firm, "/api/v1/reports/client-profitability", WINDOW),
    )


# -- how each route is called -----------------------------------------------------------

Request = Callable[[World, str], Awaitable[dict[str, Any]]]
"""The arguments of a call to a route's path that succeeds for the callers allowed."""


async def bare(_: World, path: str) -> dict[str, Any]:
    return {"url": path}


def with_body(body: Mapping[str, Any]) -> Request:
    async def request(_: World, path: str) -> dict[str, Any]:
        return {"url": path, "json": dict(body)}

    return request


def with_params(params: Mapping[str, Any]) -> Request:
    async def request(_: World, path: str) -> dict[str, Any]:
        return {"url": path, "params": dict(params)}

    return request


async def new_firm(_: World, path: str) -> dict[str, Any]:
    email = f"owner-{uuid.uuid4().hex[:8]}@new-matrix-firm.com"
    return {"url": path, "json": {"firm_name": "New", "email": email, "password": PASSWORD}}


async def member_sign_in(world: World, path: str) -> dict[str, Any]:
    return {"url": path, "data": {"username": world.member_email, "password": PASSWORD}}


async def new_member(_: World, path: str) -> dict[str, Any]:
    return {"url": path, "json": _new_member(f"new-{uuid.uuid4().hex[:8]}@matrix-firm.com")}


async def removable_member(world: World, path: str) -> dict[str, Any]:
    return {"url": path.format(member_id=await world.new_member_id())}


async def a_key(world: World, path: str) -> dict[str, Any]:
    return {"url": path.format(key_id=world.key_id)}


async def revocable_key(world: World, path: str) -> dict[str, Any]:
    return {"url": path.format(key_id=await world.new_key_id())}


async def invitation(world: World, path: str) -> dict[str, Any]:
    return {"url": path, "json": {"token": await world.invitation_token(), "password": PASSWORD}}


async def reset_link(world: World, path: str) -> dict[str, Any]:
    return {"url": path, "json": {"token": await world.reset_token(), "password": PASSWORD}}


async def unsigned_event(_: World, path: str) -> dict[str, Any]:
    """A well-formed event Stripe did not sign: no `Stripe-Signature`."""
    event = {"id": "evt_unsigned", "object": "event", "type": "checkout.session.completed"}
    return {"url": path, "json": {**event, "created": 0, "data": {"object": {}}}}


async def deletable_firm(world: World, path: str) -> dict[str, Any]:
    """A firm made for the call, so deleting it leaves the others to the calls after it."""
    name = f"Deletable {uuid.uuid4().hex[:8]}"
    firm = await sign_up(world.client, name, f"owner-{uuid.uuid4().hex[:8]}@deletable.com")
    me = (await world.client.get("/api/v1/me", headers=firm.headers)).json()
    return {"url": path.format(tenant_id=me["tenant"]["id"]), "params": {"confirm": name}}


def a_firm(body: Mapping[str, Any]) -> Request:
    async def request(world: World, path: str) -> dict[str, Any]:
        return {"url": path.format(tenant_id=world.other_tenant_id), "json": dict(body)}

    return request


async def karbon_keys(_: World, path: str) -> dict[str, Any]:
    return {"url": path, "json": {"access_key": ACCESS_KEY, "bearer_token": BEARER_TOKEN}}


async def staff_pay(world: World, path: str) -> dict[str, Any]:
    body = {"effective_from": "2024-01-01", "annual_amount": "65000"}
    return {"url": path.format(key=world.staff_key), "json": body}


async def a_client(world: World, path: str) -> dict[str, Any]:
    return {"url": path.format(client_key=world.client_key), "params": WINDOW}


async def reconnect(world: World) -> None:
    """Both firms connected again after a caller disconnected one."""
    for firm in (world.firm, world.other):
        assert (await put_credentials(world.client, firm)).status_code == 200


COST_SETTINGS = {
    "overhead_rate": "0.2",
    "working_weeks_per_year": "47",
    "default_capacity_hours_per_week": "37.5",
    "recognition_policy": "billing",
}

# -- where pay is -----------------------------------------------------------------------


@dataclass(frozen=True)
class Pay:
    """A person's pay fields in a route's answer: in each of `rows(json)`, and as CSV
    columns when `csv` (the same request with `format=csv`)."""

    fields: frozenset[str]
    rows: Callable[[dict[str, Any]], list[dict[str, Any]]]
    csv: bool = False


PERSON_COST = frozenset({"cost", "cost_complete"})


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = body["items"]
    return items


def _by_staff(body: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = body["by_staff"]
    return rows


# -- the matrix -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    expected: Expected
    request: Request = bare
    pay: Pay | None = None
    restore: Callable[[World], Awaitable[None]] | None = None
    """Run after each call: puts back what the call undid for the calls after it."""
    fresh_caller: bool = False
    """The call signs its caller out: made by a new person of the caller's kind."""


P = "/api/v1"
MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/healthz"): Row(public(200)),
    ("GET", "/readyz"): Row(public(200)),
    ("GET", "/metrics"): Row(public(200)),
    ("POST", f"{P}/signup"): Row(public(201), new_firm),
    ("POST", f"{P}/auth/token"): Row(public(200), member_sign_in),
    ("POST", f"{P}/auth/logout"): Row(signed_in(204), fresh_caller=True),
    ("POST", f"{P}/auth/password-reset"): Row(
        public(202), with_body({"email": "member@matrix-firm.com"})
    ),
    ("POST", f"{P}/auth/password-reset/confirm"): Row(public(200), reset_link),
    ("POST", f"{P}/invitations/accept"): Row(public(200), invitation),
    ("GET", f"{P}/me"): Row(signed_in(200)),
    ("POST", f"{P}/me/password"): Row(
        signed_in(200),
        with_body({"current_password": PASSWORD, "new_password": "another horse battery"}),
        fresh_caller=True,
    ),
    ("GET", f"{P}/members"): Row(firm_member(200)),
    ("POST", f"{P}/members"): Row(firm_admin(201), new_member),
    ("DELETE", f"{P}/members/{{member_id}}"): Row(firm_admin(204, other=404), removable_member),
    ("POST", f"{P}/api-keys"): Row(firm_admin(201), with_body(_new_key([REPORTS]))),
    ("GET", f"{P}/api-keys"): Row(firm_admin(200)),
    ("GET", f"{P}/api-keys/{{key_id}}"): Row(firm_admin(200, other=404), a_key),
    ("DELETE", f"{P}/api-keys/{{key_id}}"): Row(firm_admin(204, other=404), revocable_key),
    ("GET", f"{P}/audit"): Row(firm_admin(200)),
    ("GET", f"{P}/ops/tenants"): Row(operator(200)),
    ("PUT", f"{P}/ops/tenants/{{tenant_id}}/subscription"): Row(
        operator(200), a_firm({"status": "active"})
    ),
    ("POST", f"{P}/ops/tenants/{{tenant_id}}/trial-extension"): Row(
        operator(200), a_firm({"days": 7})
    ),
    ("DELETE", f"{P}/ops/tenants/{{tenant_id}}"): Row(operator(204), deletable_firm),
    ("GET", f"{P}/billing"): Row(firm_member(200)),
    ("GET", f"{P}/data-quality"): Row(reader(REPORTS, 200)),
    ("POST", f"{P}/billing/stripe-webhook"): Row(public(400), unsigned_event),
    ("PUT", f"{P}/karbon/credentials"): Row(firm_admin(200), karbon_keys),
    ("DELETE", f"{P}/karbon/credentials"): Row(firm_admin(200), restore=reconnect),
    ("GET", f"{P}/karbon/connection"): Row(firm_member(200)),
    ("GET", f"{P}/sync"): Row(reader(SYNC, 200)),
    ("POST", f"{P}/sync"): Row(firm_admin(202)),
    ("GET", f"{P}/sync/runs"): Row(reader(SYNC, 200)),
    ("GET", f"{P}/sync/settings"): Row(reader(SYNC, 200)),
    ("PATCH", f"{P}/sync/settings"): Row(
        firm_admin(200), with_body({"nightly_reconciliation": True})
    ),
    ("GET", f"{P}/ops/sync"): Row(operator(200)),
    ("GET", f"{P}/staff"): Row(
        reader(REPORTS, 200), pay=Pay(frozenset({"compensation", "hourly_cost"}), _items)
    ),
    ("PUT", f"{P}/staff/{{key}}/cost"): Row(firm_admin(200, other=404), staff_pay),
    ("GET", f"{P}/cost-settings"): Row(firm_member(200)),
    ("PUT", f"{P}/cost-settings"): Row(firm_admin(200), with_body(COST_SETTINGS)),
    ("GET", f"{P}/reports/client-profitability"): Row(reader(REPORTS, 200), with_params(WINDOW)),
    ("GET", f"{P}/reports/clients/{{client_key}}"): Row(
        reader(REPORTS, 200, other=404), a_client, pay=Pay(PERSON_COST, _by_staff)
    ),
    ("GET", f"{P}/reports/unbilled-work"): Row(reader(REPORTS, 200)),
    ("GET", f"{P}/reports/staff-utilization"): Row(
        reader(REPORTS, 200), with_params(WINDOW), pay=Pay(PERSON_COST, _items, csv=True)
    ),
    ("GET", f"{P}/reports/summary"): Row(reader(REPORTS, 200), with_params(WINDOW)),
}


def _routes(spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for path, item in spec["paths"].items():
        for method in item:
            if method in HTTP_METHODS:
                yield method.upper(), path


def test_every_row_names_every_caller() -> None:
    for route, row in MATRIX.items():
        assert set(row.expected) == set(CALLERS), route


async def test_every_route_of_the_app_has_a_row(app: FastAPI) -> None:
    routes = set(_routes(app.openapi()))
    assert not routes - set(MATRIX), f"give these routes a row in MATRIX: {routes - set(MATRIX)}"
    assert not set(MATRIX) - routes, f"these rows name no route: {set(MATRIX) - routes}"


# -- the walk ---------------------------------------------------------------------------


def _pay_shown(pay: Pay, response: Response) -> bool | str:
    """Whether every row shows the pay fields; a description when some do and some don't."""
    rows = pay.rows(response.json())
    if not rows:
        return "no rows: nothing to check"
    shown = [pay.fields & set(row) for row in rows]
    if all(fields == pay.fields for fields in shown):
        return True
    if not any(shown):
        return False
    return f"some pay fields only: {shown}"


def _csv_pay_shown(pay: Pay, response: Response) -> bool | str:
    header = next(csv.reader(io.StringIO(response.text)))
    shown = pay.fields & set(header)
    if shown == pay.fields:
        return True
    return False if not shown else f"some pay columns only: {shown}"


async def _pay_failures(
    world: World,
    caller: str,
    method: str,
    row: Row,
    call: dict[str, Any],
    response: Response,
    headers: dict[str, str],
) -> list[str]:
    assert row.pay is not None
    where = f"{method} {call['url']} as {caller}"
    failures = []
    if (shown := _pay_shown(row.pay, response)) is not SEES_PAY[caller]:
        failures.append(f"{where}: pay shown in JSON: {shown}, expected {SEES_PAY[caller]}")
    if row.pay.csv:
        params = {**call.get("params", {}), "format": "csv"}
        answer = await world.client.request(method, headers=headers, **{**call, "params": params})
        if answer.status_code != 200:
            failures.append(f"{where} as CSV: {answer.status_code} {answer.text[:200]}")
        elif (shown := _csv_pay_shown(row.pay, answer)) is not SEES_PAY[caller]:
            failures.append(f"{where}: pay shown in CSV: {shown}, expected {SEES_PAY[caller]}")
    return failures


async def test_each_caller_gets_the_status_and_the_pay_the_matrix_gives(
    app: FastAPI, world: World
) -> None:
    failures = []
    checked_pay = 0
    with fake_karbon():  # what `PUT /karbon/credentials` validates the keys against
        for (method, path), row in MATRIX.items():
            for caller in CALLERS:
                call = await row.request(world, path)
                fresh = row.fresh_caller
                headers = await world.fresh_headers(caller) if fresh else world.headers[caller]
                response = await world.client.request(method, headers=headers, **call)
                expected = row.expected[caller]
                if response.status_code != expected:
                    failures.append(
                        f"{method} {call['url']} as {caller}: {response.status_code}, "
                        f"expected {expected}: {response.text[:200]}"
                    )
                elif row.pay and caller in SEES_PAY and expected == 200:
                    failures += await _pay_failures(
                        world, caller, method, row, call, response, headers
                    )
                    checked_pay += 1
                if row.restore:
                    await row.restore(world)
    assert not failures, "\n".join(failures)
    assert checked_pay == len(SEES_PAY) * sum(1 for row in MATRIX.values() if row.pay)
