"""The OpenAPI document, shaped for client generators.

Operation ids are the route functions' names in camelCase (`get_client_profitability` is
`getClientProfitability`); every route that reads parameters or a body declares its 422 as a
`ValidationProblem`, so FastAPI's own `HTTPValidationError` never appears.

`python -m app.api.openapi` prints the document without starting any server.
"""

import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.deps import get_redis, get_session
from app.api.responses import UNAVAILABLE, VALIDATION, problem_components, problem_response


def operation_id(route: APIRoute) -> str:
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _reads_input(route: APIRoute) -> bool:
    return bool(get_flat_params(route.dependant) or route.body_field)


def _api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every route of the app, those of included routers too."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context.original_route


def _declare_validation_errors(app: FastAPI) -> None:
    for route in _api_routes(app):
        if _reads_input(route) and 422 not in route.responses:
            route.responses[422] = problem_response(422, VALIDATION[422])


def _uses(dependant: Dependant, calls: set[Callable[..., Any]]) -> bool:
    return any(d.call in calls or _uses(d, calls) for d in dependant.dependencies)


def _declare_unavailability(app: FastAPI, spec: dict[str, Any]) -> None:
    """A route that reads the database or Redis answers 503 while either is unreachable."""
    for route in _api_routes(app):
        if not _uses(route.dependant, {get_session, get_redis}):
            continue
        for method in route.methods or ():
            responses = spec["paths"][route.path_format][method.lower()]["responses"]
            declared = responses.setdefault("503", problem_response(503, UNAVAILABLE[503]))
            if UNAVAILABLE[503] not in declared["description"]:
                declared["description"] += " " + UNAVAILABLE[503]


def _link(operation: str, parameter: str, value: str) -> dict[str, Any]:
    return {"operationId": operation, "parameters": {parameter: f"$response.body#{value}"}}


LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("inviteMember", "201"): {"RemoveMember": _link("removeMember", "member_id", "/id")},
    ("listMembers", "200"): {"RemoveMember": _link("removeMember", "member_id", "/items/0/id")},
    ("createApiKey", "201"): {
        "GetApiKey": _link("getApiKey", "key_id", "/id"),
        "RevokeApiKey": _link("revokeApiKey", "key_id", "/id"),
    },
    ("listApiKeys", "200"): {"GetApiKey": _link("getApiKey", "key_id", "/items/0/id")},
    ("listStaff", "200"): {
        "AddStaffCompensation": _link("addStaffCompensation", "key", "/items/0/key")
    },
    ("getClientProfitability", "200"): {
        "GetClientReport": _link("getClientReport", "client_key", "/items/0/key")
    },
    ("listFirms", "200"): {
        "SetFirmPlan": _link("setFirmPlan", "tenant_id", "/items/0/id"),
        "ExtendFirmTrial": _link("extendFirmTrial", "tenant_id", "/items/0/id"),
        "DeleteFirm": _link("deleteFirm", "tenant_id", "/items/0/id"),
    },
}
"""Where one answer gives the identifier another operation takes (OpenAPI links), so a client
or a tester can follow them: `(operationId, status)`: the links of that response."""


def _declare_links(spec: dict[str, Any]) -> None:
    operations = {
        operation["operationId"]: operation
        for item in spec["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    for (operation_id, status), links in LINKS.items():
        operations[operation_id]["responses"][status]["links"] = links


DESCRIPTION = """\
Errors are `application/problem+json`: a `Problem`, or for a 422 a `ValidationProblem` whose
`errors` name each field. Money is a decimal string to the cent beside a `currency` code,
ratios are decimal strings to 4 places (`0.2500` is 25%), hours to 2 places. The list reports
take `format=csv` and then stream every row, with a `Total` row where the report has totals.
Operation ids are stable; generate a client from this document (see the README)."""


def install_openapi(app: FastAPI) -> None:
    """Replace `app.openapi` with one that adds the problem schemas and the 422s."""
    app.description = app.description or DESCRIPTION
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _declare_validation_errors(app)
            spec = generate()
            _declare_unavailability(app, spec)
            _declare_links(spec)
            spec.setdefault("components", {}).setdefault("schemas", {}).update(problem_components())
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def main() -> None:
    from app.api.app import create_app
    from app.settings import Settings

    spec = create_app(Settings(_env_file=None)).openapi()
    json.dump(spec, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
