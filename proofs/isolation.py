"""Isolation and secrets: no firm reads or changes another's data, and no secret is shown or
kept in the clear.

Two sandbox firms of the same seed are synced into two firms, so every Karbon id (clients,
staff, work items) exists in both; each is then given data of its own (pay, cost settings,
members, keys). Every operation of the OpenAPI document is called by each firm's admin,
member, integrator keys with and without `pay:read`, with the other firm's identifiers in its
path (the shared Karbon ids, the other firm's member, key and firm ids); a platform operator
makes every read. No answer may show the other firm's things, and the other firm's rows must be
the same before and after. Meanwhile every log line is captured: the Karbon keys, passwords,
the signing and encryption keys and the integrator keys must appear in no log line, answer,
`/metrics`, database table or Redis key or value of the deployment.
"""

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from redis.asyncio import Redis

from app.api.app import create_app
from app.secrets import resolve_secrets
from app.tenancy.cli import create_operator
from proofs import Outcome, Proof
from proofs._world import (
    Scratch,
    SyncedFirm,
    sandbox_of,
    sandbox_served,
    scratch_services,
    served,
    sync_sandbox_firms,
)
from sandbox.state import Sandbox
from tests.tenancy.helpers import PASSWORD as MEMBER_PASSWORD
from tests.tenancy.helpers import join

PASSWORD = "isolation horse battery staple"
STRIPE_SECRET = "whsec_isolation_" + "s" * 24
HTTP_METHODS = ("get", "put", "post", "patch", "delete")
WINDOW = {"from": "2026-01-01", "to": "2026-11-02"}
SIGN_OUT = {"logOut", "changePassword"}
"""Called last by each caller: they end its sign-in."""


@dataclass
class Side:
    """One firm: its callers' headers, and what only it has (to spot in the other's answers)."""

    firm: SyncedFirm
    callers: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    """Its identifiers a path takes: member_id, key_id, tenant_id."""
    markers: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)


@dataclass
class Walk:
    calls: int = 0
    leaks: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    own_seen: int = 0
    """Answers showing the caller's own firm's things: the leak check can see them."""


async def _prepare(client: httpx.AsyncClient, firm: SyncedFirm, tag: str, pay: str) -> Side:
    """The firm given data of its own: members, two keys, pay."""
    side = Side(firm, callers={"admin": firm.admin})
    me = (await client.get("/api/v1/me", headers=firm.admin)).json()
    member_email = f"member-{tag}@{tag}.example"
    member_id, side.callers["member"] = await join(client, firm.admin, member_email)
    await join(client, firm.admin, f"member2-{tag}@{tag}.example")
    for caller, scopes in (
        ("pay key", ["reports:read", "sync:read", "pay:read"]),
        ("key without pay", ["reports:read", "sync:read"]),
    ):
        created = await client.post(
            "/api/v1/api-keys",
            headers=firm.admin,
            json={"name": f"{tag} {caller}", "scopes": scopes},
        )
        created.raise_for_status()
        side.callers[caller] = {"Authorization": f"Bearer {created.json()['key']}"}
        side.secrets.add(created.json()["key"])
        side.ids["key_id"] = created.json()["id"]
    staff = (await client.get("/api/v1/staff", headers=firm.admin)).json()["items"]
    for person in staff:
        answer = await client.put(
            f"/api/v1/staff/{person['key']}/cost",
            headers=firm.admin,
            json={"effective_from": "2024-01-01", "annual_amount": pay},
        )
        answer.raise_for_status()
    side.ids |= {"member_id": member_id, "tenant_id": me["tenant"]["id"]}
    side.markers |= {member_email, me["email"], me["tenant"]["id"], member_id, pay, firm.name}
    side.markers.add(side.ids["key_id"])
    return side


def _shared_keys(client_key: str, staff_key: str) -> dict[str, str]:
    return {"client_key": client_key, "key": staff_key}


BODIES: dict[str, dict[str, Any]] = {
    "updateCostSettings": {
        "overhead_rate": "0.3",
        "working_weeks_per_year": "46",
        "default_capacity_hours_per_week": "35",
        "recognition_policy": "billing",
    },
    "addStaffCompensation": {"effective_from": "2025-01-01", "annual_amount": "99999"},
    "updateSyncSettings": {"nightly_reconciliation": True},
    "createApiKey": {"name": "walk", "scopes": ["reports:read"]},
    "setFirmPlan": {"status": "active"},
    "extendFirmTrial": {"days": 7},
}


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every operation, those that sign out last."""
    found = [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]
    found.sort(key=lambda entry: entry[2]["operationId"] in SIGN_OUT)
    yield from found


def _request(
    method: str, path: str, operation: dict[str, Any], ids: dict[str, str]
) -> dict[str, Any]:
    """The call of `operation` naming the things of `ids` in its path."""
    url = path
    for name, value in ids.items():
        url = url.replace(f"{{{name}}}", value)
    query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"} & set(WINDOW)
    call: dict[str, Any] = {"method": method.upper(), "url": url}
    if query:
        call["params"] = {name: WINDOW[name] for name in query}
    if operation["operationId"] == "deleteFirm":
        call["params"] = {"confirm": "the other firm"}  # never its name: a refusal is expected
    if "requestBody" in operation:
        call["json"] = BODIES.get(operation["operationId"], {})
    return call


async def _walk(
    client: httpx.AsyncClient,
    spec: dict[str, Any],
    callers: dict[str, dict[str, str]],
    target: dict[str, str],
    markers: set[str],
    own: set[str],
    *,
    reads_only: bool = False,
) -> Walk:
    walk = Walk()
    for caller, headers in callers.items():
        for method, path, operation in _operations(spec):
            if reads_only and method != "get":
                continue
            call = _request(method, path, operation, target)
            answer = await client.request(headers=headers, **call)
            walk.calls += 1
            walk.bodies.append(answer.text)
            where = f"{call['method']} {call['url']} as {caller}: {answer.status_code}"
            if answer.status_code >= 500:
                walk.server_errors.append(f"{where} {answer.text[:200]}")
            walk.own_seen += any(marker in answer.text for marker in own)
            shown = sorted(marker for marker in markers if marker in answer.text)
            if shown:
                walk.leaks.append(f"{where} shows the other firm's {shown}")
    return walk


async def _firm_rows(database_url: str, tenant_id: str) -> list[str]:
    """Every row of the firm's, in every table that has a tenant_id, as text."""
    connection = await asyncpg.connect(database_url)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY 1"
        )
        rows = []
        for (table,) in tables:
            found = await connection.fetch(
                f'SELECT t::text FROM "{table}" t WHERE tenant_id = $1 ORDER BY 1',
                uuid.UUID(tenant_id),
            )
            rows += [f"{table}: {row[0]}" for row in found]
        return rows
    finally:
        await connection.close()


async def _database_text(database_url: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
        parts = []
        for (table,) in tables:
            found = await connection.fetch(f'SELECT t::text FROM "{table}" t')
            parts += [row[0] for row in found]
        return "\n".join(parts)
    finally:
        await connection.close()


async def _redis_text(scratch: Scratch) -> tuple[int, str]:
    redis: Redis = Redis.from_url(scratch.urls.redis_url)
    parts: list[str] = []
    keys = 0
    try:
        async for key in redis.scan_iter(match=f"{scratch.redis_prefix}*"):
            keys += 1
            parts.append(key.decode(errors="replace"))
            kind = (await redis.type(key)).decode()
            parts.append(repr(await _redis_value(redis, key, kind)))
    finally:
        await redis.aclose()
    return keys, "\n".join(parts)


async def _redis_value(redis: Redis, key: bytes, kind: str) -> Any:
    if kind == "string":
        return await redis.get(key)
    if kind == "zset":
        return await redis.zrange(key, 0, -1)
    command = {"hash": "HGETALL", "list": "LRANGE", "set": "SMEMBERS", "stream": "XRANGE"}
    if kind not in command:
        return f"<{kind}>"
    extra = {"list": (0, -1), "stream": ("-", "+")}.get(kind, ())
    return await redis.execute_command(command[kind], key, *extra)  # type: ignore[no-untyped-call]


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {vars(record)}")


@contextmanager
def _captured_logs() -> Iterator[_Captured]:
    """Every record logged at INFO and above (the production default), with its extras."""
    handler = _Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _karbon_secrets(sandbox: Sandbox) -> set[str]:
    return {
        secret
        for tenant in sandbox.tenants.values()
        for secret in (tenant.access_key, tenant.bearer_token)
    }


async def _run(long: bool) -> Outcome:
    del long  # every route and role is walked in both runs; the long run is no bigger
    sandbox = sandbox_of(("Firm A", 11), ("Firm B", 11))
    outcome = Outcome()
    with _captured_logs() as logs:
        async with scratch_services(RECKONRY_STRIPE_WEBHOOK_SECRET=STRIPE_SECRET) as scratch:
            first, second = await sync_sandbox_firms(scratch, sandbox)
            with sandbox_served(sandbox) as karbon_url:
                settings = scratch.settings.model_copy(update={"karbon_base_url": karbon_url})
                app = create_app(settings, scratch.urls)
                async with served(app) as base, httpx.AsyncClient(base_url=base) as client:
                    bodies, api_keys, tokens = await _prove(
                        client, app.openapi(), scratch, first, second, outcome
                    )
                    metrics = (await client.get("/metrics")).text
            database = await _database_text(scratch.urls.database_url)
            redis_keys, redis = await _redis_text(scratch)
    keys = resolve_secrets(scratch.settings)
    secrets = _karbon_secrets(sandbox) | {PASSWORD, MEMBER_PASSWORD, STRIPE_SECRET} | api_keys
    secrets |= {*keys.signing_keys, *keys.encryption_keys}
    places = {"log lines": "\n".join(logs.lines), "/metrics": metrics, "the database": database}
    places["Redis"] = redis
    places["answers"] = "\n".join(bodies)
    outcome.measure("log lines captured", len(logs.lines))
    outcome.measure("database text searched (characters)", len(database))
    outcome.measure("Redis keys searched", redis_keys)
    found = [
        f"a secret ({secret[:4]}...) appears in {place}"
        for place, text in places.items()
        for secret in secrets | (tokens if place != "answers" else set())
        if secret and secret in text
    ]
    outcome.measure("secrets looked for (and sign-in tokens, but in answers)", len(secrets))
    outcome.measure("secrets found", len(found), "0", held=not found)
    outcome.failures += found
    return outcome


async def _prove(
    client: httpx.AsyncClient,
    spec: dict[str, Any],
    scratch: Scratch,
    first: SyncedFirm,
    second: SyncedFirm,
    outcome: Outcome,
) -> tuple[list[str], set[str], set[str]]:
    """Walks every operation across firms and roles; the answers' texts, the API keys and the
    sign-in tokens of the callers."""
    sides = [
        await _prepare(client, first, "first", "111111"),
        await _prepare(client, second, "second", "222222"),
    ]
    client_key, staff_key = await _shared_ids(client, sides)
    outcome.measure("Karbon ids in both firms (clients, staff)", await _overlap(client, sides))
    operator = await _operator(client, scratch)
    calls, own_seen, bodies = 0, 0, []
    leaks: list[str] = []
    changed: list[str] = []
    errors: list[str] = []
    for acting, other in (sides, sides[::-1]):
        target = other.ids | _shared_keys(client_key, staff_key)
        before = await _firm_rows(scratch.urls.database_url, other.ids["tenant_id"])
        walk = await _walk(client, spec, acting.callers, target, other.markers, acting.markers)
        after = await _firm_rows(scratch.urls.database_url, other.ids["tenant_id"])
        if before != after:
            difference = sorted(set(before) ^ set(after))[:5]
            changed.append(f"{acting.firm.name}'s callers changed {other.firm.name}: {difference}")
        calls += walk.calls
        bodies += walk.bodies
        leaks += walk.leaks
        errors += walk.server_errors
        own_seen += walk.own_seen
    # An operator sees firms (names, plans), never a firm's data.
    data_markers = {m for side in sides for m in side.markers if "@" in m or m.isdigit()}
    walk = await _walk(
        client, spec, {"operator": operator}, target, data_markers, set(), reads_only=True
    )
    calls += walk.calls
    bodies += walk.bodies
    leaks += walk.leaks
    errors += walk.server_errors
    outcome.measure("calls across firms and roles", calls)
    outcome.measure(
        "answers showing the caller's own firm's data", own_seen, "> 0", held=own_seen > 0
    )
    outcome.measure("answers showing the other firm's data", len(leaks), "0", held=not leaks)
    outcome.measure("firms changed by the other's calls", len(changed), "0", held=not changed)
    outcome.measure("5xx answers", len(errors), "0", held=not errors)
    outcome.failures += leaks + changed + errors
    tokens = {
        headers["Authorization"].removeprefix("Bearer ")
        for side in sides
        for headers in side.callers.values()
    } - {secret for side in sides for secret in side.secrets}
    return bodies, {secret for side in sides for secret in side.secrets}, tokens


async def _shared_ids(client: httpx.AsyncClient, sides: list[Side]) -> tuple[str, str]:
    headers = sides[0].firm.admin
    report = "/api/v1/reports/client-profitability"
    clients = (await client.get(report, headers=headers, params=WINDOW)).json()["items"]
    staff = (await client.get("/api/v1/staff", headers=headers)).json()["items"]
    client_key = next(row["key"] for row in clients if row["key"])
    return client_key, staff[0]["key"]


async def _overlap(client: httpx.AsyncClient, sides: list[Side]) -> str:
    staff = [
        {
            row["key"]
            for row in (await client.get("/api/v1/staff", headers=s.firm.admin)).json()["items"]
        }
        for s in sides
    ]
    report = "/api/v1/reports/client-profitability"
    clients = [
        {
            row["key"]
            for row in (await client.get(report, headers=s.firm.admin, params=WINDOW)).json()[
                "items"
            ]
        }
        for s in sides
    ]
    return f"{len(clients[0] & clients[1])}, {len(staff[0] & staff[1])}"


async def _operator(client: httpx.AsyncClient, scratch: Scratch) -> dict[str, str]:
    settings = scratch.settings.model_copy(
        update={"database_url": scratch.urls.database_url, "redis_url": scratch.urls.redis_url}
    )
    await asyncio.to_thread(create_operator, "ops@isolation.example", PASSWORD, settings)
    token = await client.post(
        "/api/v1/auth/token", data={"username": "ops@isolation.example", "password": PASSWORD}
    )
    token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


PROOF = Proof(
    name="isolation",
    claim="Two firms sharing every Karbon id: no caller of one (admin, member, keys with and "
    "without pay, on every operation) reads or changes the other's data, operators read no "
    "firm's data, and no secret is in logs, answers, /metrics, the database or Redis.",
    run=_run,
)
