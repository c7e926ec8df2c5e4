"""Every operation of the OpenAPI document, called with no token, a wrong kind of token and
bad input: each answer's status is declared for that operation and its body validates
against the declared schema. The operations come from the document itself, so routes added
later are walked without editing this file."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from jsonschema import Draft202012Validator

from tests.tenancy.helpers import READ_SCOPES, bearer, join, sign_up

HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def parameters(self) -> list[dict[str, Any]]:
        params: list[dict[str, Any]] = self.spec.get("parameters", [])
        return params


def _operations(spec: dict[str, Any]) -> Iterator[Operation]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield Operation(method.upper(), path, operation)


def _concrete(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional parameter's schema."""
    for branch in schema.get("anyOf", []):
        if branch.get("type") != "null":
            return _concrete(branch)
    return schema


def _invalid(schema: dict[str, Any], spec: dict[str, Any]) -> str | None:
    """A value the parameter must refuse, or None when every string is acceptable."""
    schema = _concrete(schema)
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    if "enum" in schema:
        return "not-one-of-them"
    if schema.get("type") == "integer":
        return "not-a-number"
    if schema.get("format") in {"date", "uuid"}:
        return f"not-a-{schema['format']}"
    if "maxLength" in schema:
        return "k" * (schema["maxLength"] + 1)
    return None


def _url(operation: Operation, spec: dict[str, Any], *, bad_path: bool) -> str:
    url = operation.path
    for param in operation.parameters:
        if param["in"] == "path":
            value = _invalid(param["schema"], spec) if bad_path else None
            url = url.replace("{" + param["name"] + "}", value or "unknown-key")
    return url


def _bad_query(operation: Operation, spec: dict[str, Any]) -> dict[str, str]:
    bad = {
        p["name"]: _invalid(p["schema"], spec) for p in operation.parameters if p["in"] == "query"
    }
    return {name: value for name, value in bad.items() if value is not None}


def _attempts(operation: Operation, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Request arguments: as bare as possible, then each kind of bad input the route reads."""
    yield {"url": _url(operation, spec, bad_path=False)}
    if any(p["in"] == "path" for p in operation.parameters):
        yield {"url": _url(operation, spec, bad_path=True)}
    if query := _bad_query(operation, spec):
        yield {"url": _url(operation, spec, bad_path=False), "params": query}
    if "requestBody" in operation.spec:
        yield {"url": _url(operation, spec, bad_path=False), "json": ["not", "an", "object"]}


def _check(operation: Operation, response: Response, spec: dict[str, Any]) -> None:
    where = (operation.method, str(response.request.url), response.status_code, response.text)
    declared = operation.spec["responses"]
    assert str(response.status_code) in declared, where
    content = declared[str(response.status_code)].get("content", {})
    media_type = response.headers.get("content-type", "").split(";")[0]
    if response.status_code >= 400:
        assert media_type == "application/problem+json", where
    if media_type.endswith("json"):
        assert media_type in content, where
        schema = {**content[media_type]["schema"], "components": spec["components"]}
        errors = [e.message for e in Draft202012Validator(schema).iter_errors(response.json())]
        assert not errors, (*where, errors)


@dataclass(frozen=True)
class Callers:
    admin: dict[str, str]
    member: dict[str, str]
    integrator: dict[str, str]


@pytest.fixture
async def callers(client: AsyncClient) -> Callers:
    firm = await sign_up(client, "Contract Walkers", "admin@contract-walkers.com")
    _, member = await join(client, firm.headers, "member@contract-walkers.com")
    key = await client.post(
        "/api/v1/api-keys", headers=firm.headers, json={"name": "walker", "scopes": READ_SCOPES}
    )
    return Callers(firm.headers, member, bearer(key.json()["key"]))


async def _walk(client: AsyncClient, spec: dict[str, Any], headers: dict[str, str]) -> set[int]:
    seen = set()
    for operation in _operations(spec):
        for attempt in _attempts(operation, spec):
            response = await client.request(operation.method, headers=headers, **attempt)
            _check(operation, response, spec)
            seen.add(response.status_code)
    return seen


async def test_every_answer_without_a_token_is_declared(app: FastAPI, client: AsyncClient) -> None:
    spec = app.openapi()
    assert 401 in await _walk(client, spec, {})


async def test_every_answer_to_bad_input_is_declared(
    app: FastAPI, client: AsyncClient, callers: Callers
) -> None:
    spec = app.openapi()
    seen = set()
    for headers in (callers.admin, callers.member, callers.integrator):
        seen |= await _walk(client, spec, headers)
    assert {200, 403, 404, 422} <= seen


async def test_the_document_has_one_problem_type_and_no_fastapi_validation_error(
    app: FastAPI,
) -> None:
    spec = app.openapi()
    text = str(spec)
    assert "HTTPValidationError" not in text and "'ValidationError'" not in text
    for operation in _operations(spec):
        for status, response in operation.spec["responses"].items():
            if status >= "400":
                schema = response["content"]["application/problem+json"]["schema"]
                expected = "ValidationProblem" if status == "422" else "Problem"
                assert schema == {"$ref": f"#/components/schemas/{expected}"}, operation


async def test_operation_ids_are_short_unique_camel_case(app: FastAPI) -> None:
    ids = [operation.spec["operationId"] for operation in _operations(app.openapi())]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert operation_id[0].islower() and operation_id.isalnum() and len(operation_id) <= 30
    assert {"signUp", "connectKarbon", "getSyncStatus", "listSyncRuns"} <= set(ids)
    assert "getClientProfitability" in ids


async def test_declared_response_headers_are_sent(
    app: FastAPI, client: AsyncClient, callers: Callers
) -> None:
    """A header a 200 declares (a CSV report's `Report-Complete`, say) is in the answer."""
    spec = app.openapi()
    checked = 0
    for operation in _operations(spec):
        declared = operation.spec["responses"].get("200", {}).get("headers", {})
        if operation.method != "GET" or not declared:
            continue
        csv = any(p["name"] == "format" for p in operation.parameters)
        response = await client.get(
            _url(operation, spec, bad_path=False),
            headers=callers.admin,
            params={"format": "csv"} if csv else {},
        )
        if response.status_code != 200:
            continue  # e.g. an unknown client's 404
        missing = {name for name in declared if name.lower() not in response.headers}
        assert not missing, (operation.path, missing)
        checked += 1
    assert checked >= 3
