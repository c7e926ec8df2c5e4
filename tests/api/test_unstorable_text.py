"""Text PostgreSQL cannot store (a NUL, a lone surrogate) is a 422 naming the field, on every
route: each string parameter and body field of the OpenAPI document is sent one such value.
The routes come from the document itself, so routes added later are walked too."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from tests.api.test_contract import (  # noqa: F401 - fixture
    Callers,
    Operation,
    _concrete,
    _operations,
    callers,
)
from tests.tenancy.helpers import PASSWORD, READ_SCOPES, bearer, problem_type, sign_up

NUL = "nul\x00here"


def _resolved(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    schema = _concrete(schema)
    if "$ref" in schema:
        return _resolved(spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]], spec)
    return schema


def _is_string(schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    return _resolved(schema, spec).get("type") == "string"


def _sample(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A value the field accepts, as far as its schema says."""
    schema = _resolved(schema, spec)
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("type") in {"number", "integer"}:
        return 15
    if schema.get("type") == "boolean":
        return True
    formats = {"email": "someone@example.com", "date": "2024-01-01"}
    return formats.get(schema.get("format", ""), "x" * max(schema.get("minLength", 1), 1))


def _unstorable(schema: dict[str, Any], spec: dict[str, Any]) -> str:
    """A value of the field's shape with a NUL inside."""
    return "a\x00b@example.com" if _resolved(schema, spec).get("format") == "email" else NUL


def _url(operation: Operation, spec: dict[str, Any], **values: str) -> str:
    url = operation.path
    for param in operation.parameters:
        if param["in"] == "path":
            value = values.get(param["name"], str(_sample(param["schema"], spec)))
            url = url.replace("{" + param["name"] + "}", value.replace("\x00", "%00"))
    return url


def _body_attempts(operation: Operation, spec: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    content = operation.spec.get("requestBody", {}).get("content", {})
    for media_type, item in content.items():
        schema = _resolved(item["schema"], spec)
        properties = schema.get("properties", {})
        valid = {name: _sample(field, spec) for name, field in properties.items()}
        kind = "json" if media_type == "application/json" else "data"
        for name, field in properties.items():
            if _is_string(field, spec):
                yield name, {kind: {**valid, name: _unstorable(field, spec)}}


def _attempts(operation: Operation, spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(the field that must be named, request arguments) for each string input of the route."""
    for param in operation.parameters:
        if not _is_string(param["schema"], spec):
            continue
        name, where = param["name"], param["in"]
        if where == "path":
            yield f"path.{name}", {"url": _url(operation, spec, **{name: NUL})}
        elif where == "query":
            yield f"query.{name}", {"url": _url(operation, spec), "params": {name: NUL}}
    for field, arguments in _body_attempts(operation, spec):
        yield field, {"url": _url(operation, spec), **arguments}


def _assert_names(field: str, response: Response, where: Any) -> None:
    assert response.status_code == 422, where
    assert problem_type(response) == "validation-error", where
    assert field in {error["field"] for error in response.json()["errors"]}, where


async def test_every_string_input_of_every_route_refuses_a_nul(
    app: FastAPI,
    client: AsyncClient,
    callers: Callers,  # noqa: F811 - the fixture
) -> None:
    spec = app.openapi()
    walked = set()
    for operation in _operations(spec):
        for field, arguments in _attempts(operation, spec):
            response = await client.request(operation.method, headers=callers.admin, **arguments)
            where = (operation.method, operation.path, field, response.text)
            assert response.status_code < 500, where
            _assert_names(field, response, where)
            walked.add((operation.path, field))
    assert {
        ("/api/v1/signup", "firm_name"),
        ("/api/v1/auth/token", "username"),
        ("/api/v1/api-keys", "name"),
        ("/api/v1/reports/clients/{client_key}", "path.client_key"),
        ("/api/v1/reports/client-profitability", "query.owner"),
    } <= walked


@pytest.mark.parametrize(
    ("field", "value"),
    [("firm_name", "Nul\x00 & Co"), ("firm_name", "Lone \ud800 surrogate"), ("email", NUL)],
)
async def test_sign_up_with_unstorable_text_names_the_field(
    client: AsyncClient, field: str, value: str
) -> None:
    body = {"firm_name": "Fine Firm", "email": "owner@fine-firm.com", "password": PASSWORD}
    # Escaped as JSON allows (`\ud800`): a lone surrogate has no UTF-8 form to send raw.
    response = await client.post(
        "/api/v1/signup",
        content=json.dumps({**body, field: value}),
        headers={"Content-Type": "application/json"},
    )
    _assert_names(field, response, response.text)


async def test_sign_in_with_a_nul_in_the_user_name_names_it(client: AsyncClient) -> None:
    form = {"username": "owner\x00@fine-firm.com", "password": PASSWORD}
    response = await client.post("/api/v1/auth/token", data=form)
    _assert_names("username", response, response.text)


async def test_api_key_name_and_report_filters_with_a_nul_name_the_field(
    client: AsyncClient,
) -> None:
    firm = await sign_up(client, "Nul Testers", "admin@nul-testers.com")
    key = await client.post(
        "/api/v1/api-keys", headers=firm.headers, json={"name": NUL, "scopes": READ_SCOPES}
    )
    _assert_names("name", key, key.text)
    owner = await client.get(
        "/api/v1/reports/unbilled-work", headers=firm.headers, params={"owner": NUL}
    )
    _assert_names("query.owner", owner, owner.text)
    client_report = await client.get("/api/v1/reports/clients/a%00b", headers=firm.headers)
    _assert_names("path.client_key", client_report, client_report.text)


async def test_text_without_a_nul_is_still_accepted(client: AsyncClient) -> None:
    firm = await sign_up(client, "Ünïcode & Søns 🧾", "admin@unicode-sons.com")
    response = await client.post(
        "/api/v1/api-keys", headers=firm.headers, json={"name": "Ωmega", "scopes": READ_SCOPES}
    )
    assert response.status_code == 201, response.text
    listed = await client.get("/api/v1/api-keys", headers=bearer(firm.token))
    assert listed.json()["items"][0]["name"] == "Ωmega"
