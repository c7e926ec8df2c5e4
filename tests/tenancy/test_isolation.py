"""Every `/api/v1` route, walked with another firm's ids and tokens: 403 or 404, never data.

The routes come from `app.routes`, so endpoints added later are covered without editing
this file. A route with path parameters is called with each of firm A's identifiers by
firm B's admin and B's integrator key; every route is also called without a token and with
an operator token, and no answer may contain anything of firm A.
"""

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from httpx import AsyncClient, Response

from app.api.app import API_PREFIX
from app.api.auth import INTEGRATOR_DEPENDENCIES, TENANT_DEPENDENCIES, get_principal
from app.embedded import ServiceUrls
from app.settings import Settings
from app.tenancy.cli import create_operator
from tests.tenancy.helpers import (
    ACCESS_KEY,
    BEARER_TOKEN,
    PASSWORD,
    READ_SCOPES,
    Firm,
    bearer,
    connect,
    sign_in,
    sign_up,
)

PUBLIC = {
    f"{API_PREFIX}/{path}"
    for path in (
        "signup",
        "auth/token",
        "auth/password-reset",
        "auth/password-reset/confirm",
        "invitations/accept",
        "billing/stripe-webhook",
    )
}
SIGN_OUT = f"{API_PREFIX}/auth/logout"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    dependant: Dependant


def _endpoints(app: FastAPI) -> Iterator[Endpoint]:
    """Every API operation as served, with the prefixes of included routers applied."""
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not isinstance(route.original_route, APIRoute) or not path.startswith(API_PREFIX):
            continue
        if path in PUBLIC or path.startswith(f"{API_PREFIX}/_test"):
            continue
        for method in sorted(route.methods or ()):
            yield Endpoint(method, path, route.dependant)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _depends_on(endpoint: Endpoint, targets: tuple[Callable[..., Any], ...]) -> bool:
    return any(call in targets for call in _calls(endpoint.dependant))


@dataclass
class World:
    alpha: Firm
    alpha_member_id: str
    alpha_key_id: str
    alpha_key: str
    alpha_tenant_id: str
    alpha_markers: list[str]
    beta: Firm
    beta_key: str
    operator_token: str


async def _build_world(client: AsyncClient, settings: Settings, urls: ServiceUrls) -> World:
    alpha = await sign_up(client, "Alpha Accounting Partners", "alpha-owner@alpha-cpa.com")
    await connect(client, alpha)
    member = await client.post(
        "/api/v1/members",
        headers=alpha.headers,
        json={"email": "alpha-staff@alpha-cpa.com"},
    )
    key = await client.post(
        "/api/v1/api-keys",
        headers=alpha.headers,
        json={"name": "alpha-warehouse-export", "scopes": READ_SCOPES},
    )
    alpha_me = (await client.get("/api/v1/me", headers=alpha.headers)).json()

    beta = await sign_up(client, "Beta Bookkeeping", "beta-owner@beta-cpa.com")
    beta_key = await client.post(
        "/api/v1/api-keys", headers=beta.headers, json={"name": "b", "scopes": READ_SCOPES}
    )

    operator_settings = settings.model_copy(
        update={"database_url": urls.database_url, "redis_url": urls.redis_url}
    )
    await asyncio.to_thread(create_operator, "ops@reckonry-ops.com", PASSWORD, operator_settings)
    operator = (await sign_in(client, "ops@reckonry-ops.com")).json()["access_token"]

    return World(
        alpha=alpha,
        alpha_member_id=member.json()["id"],
        alpha_key_id=key.json()["id"],
        alpha_key=key.json()["key"],
        alpha_tenant_id=alpha_me["tenant"]["id"],
        alpha_markers=[
            "Alpha Accounting",
            "alpha-cpa.com",
            "alpha-warehouse-export",
            alpha_me["tenant"]["id"],
            alpha_me["user_id"],
            member.json()["id"],
            key.json()["id"],
            key.json()["display_prefix"],
            ACCESS_KEY[-4:],
            BEARER_TOKEN[-4:],
        ],
        beta=beta,
        beta_key=beta_key.json()["key"],
        operator_token=operator,
    )


def _path_param_types(dependant: Dependant) -> dict[str, Any]:
    types = {field.name: field.field_info.annotation for field in dependant.path_params}
    for dependency in dependant.dependencies:
        types.update(_path_param_types(dependency))
    return types


def _urls(endpoint: Endpoint, world: World) -> list[str]:
    """The path filled with each of Alpha's identifiers that fits its parameters' types."""
    types = _path_param_types(endpoint.dependant)
    if not types:
        return [endpoint.path]
    uuids = [world.alpha_tenant_id, world.alpha_member_id, world.alpha_key_id]
    candidates = uuids if all(t is uuid.UUID for t in types.values()) else [*uuids, "C-ALPHA-1"]
    return [_PATH_PARAM.sub(candidate, endpoint.path) for candidate in candidates]


async def _call(client: AsyncClient, method: str, url: str, headers: dict[str, str]) -> Response:
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    return await client.request(method, url, headers=headers, json=body)


def _only_body_invalid(response: Response) -> bool:
    """A 422 about the request body: the route's guards passed, its code never ran."""
    if response.status_code != 422:
        return False
    fields = [error["field"] for error in response.json().get("errors", [])]
    return bool(fields) and not any(field.startswith("path") for field in fields)


def _leaks(response: Response, world: World) -> list[str]:
    return [marker for marker in world.alpha_markers if marker in response.text]


@pytest.fixture
async def world(client: AsyncClient, settings: Settings, service_urls: ServiceUrls) -> World:
    return await _build_world(client, settings, service_urls)


async def test_the_walk_covers_the_tenancy_routes(app: FastAPI) -> None:
    walked = {(e.method, e.path) for e in _endpoints(app)}
    assert {
        ("GET", "/api/v1/me"),
        ("DELETE", "/api/v1/api-keys/{key_id}"),
        ("DELETE", "/api/v1/members/{member_id}"),
        ("PUT", "/api/v1/karbon/credentials"),
        ("GET", "/api/v1/ops/tenants"),
    } <= walked


async def test_every_route_needs_a_token(app: FastAPI, client: AsyncClient) -> None:
    for endpoint in _endpoints(app):
        assert _depends_on(endpoint, (get_principal,)), endpoint.path
        url = _PATH_PARAM.sub(str(uuid.uuid4()), endpoint.path)
        response = await _call(client, endpoint.method, url, {})
        assert response.status_code == 401, (endpoint.method, url, response.text)


async def test_another_firm_gets_403_or_404_never_data(
    app: FastAPI, client: AsyncClient, world: World
) -> None:
    walked = 0
    for endpoint in _endpoints(app):
        if endpoint.path == SIGN_OUT:
            continue  # it would end Beta's token for the rest of the walk; it reads no ids
        has_path_params = bool(_PATH_PARAM.search(endpoint.path))
        for headers in (world.beta.headers, bearer(world.beta_key)):
            for url in _urls(endpoint, world):
                response = await _call(client, endpoint.method, url, headers)
                walked += 1
                where = (endpoint.method, url, response.status_code, response.text[:300])
                assert response.status_code < 500, where
                assert not _leaks(response, world), where
                if has_path_params:
                    assert response.status_code in {403, 404} or _only_body_invalid(response), where
    assert walked > 0

    # Nothing of Alpha's changed either.
    alpha = world.alpha.headers
    assert (await client.get("/api/v1/karbon/connection", headers=alpha)).json()["connected"]
    members = (await client.get("/api/v1/members", headers=alpha)).json()["items"]
    assert all(member["is_active"] for member in members) and len(members) == 2
    key = (await client.get(f"/api/v1/api-keys/{world.alpha_key_id}", headers=alpha)).json()
    assert key["revoked_at"] is None


async def test_integrator_keys_reach_only_reader_routes(
    app: FastAPI, client: AsyncClient, world: World
) -> None:
    for endpoint in _endpoints(app):
        if _depends_on(endpoint, INTEGRATOR_DEPENDENCIES):
            continue
        url = _PATH_PARAM.sub(world.alpha_key_id, endpoint.path)
        response = await _call(client, endpoint.method, url, bearer(world.alpha_key))
        assert response.status_code == 403, (endpoint.method, url, response.text)


async def test_operators_reach_no_firm_route(
    app: FastAPI, client: AsyncClient, world: World
) -> None:
    tenant_routes = [e for e in _endpoints(app) if _depends_on(e, TENANT_DEPENDENCIES)]
    assert tenant_routes
    for endpoint in tenant_routes:
        url = _PATH_PARAM.sub(world.alpha_key_id, endpoint.path)
        response = await _call(client, endpoint.method, url, bearer(world.operator_token))
        assert response.status_code == 403, (endpoint.method, url, response.text)
        assert not _leaks(response, world)
    others = {e.path for e in _endpoints(app)} - {e.path for e in tenant_routes}
    own_account = {f"{API_PREFIX}/{path}" for path in ("me", "me/password", "auth/logout")}
    assert all(path.startswith(f"{API_PREFIX}/ops/") or path in own_account for path in others), (
        "every route is scoped to a firm, to operators or to the caller's own account"
    )
