"""The OpenAPI document, shaped for client generators.

Operation ids are the route functions' names in camelCase (`get_client_profitability` is
`getClientProfitability`); every route that reads parameters or a body declares its 422 as a
`ValidationProblem`, so FastAPI's own `HTTPValidationError` never appears.

`python -m app.api.openapi` prints the document without starting any server.
"""

import json
import sys
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute

from app.api.responses import VALIDATION, problem_components, problem_response


def operation_id(route: APIRoute) -> str:
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _reads_input(route: APIRoute) -> bool:
    return bool(get_flat_params(route.dependant) or route.body_field)


def _declare_validation_errors(app: FastAPI) -> None:
    for route in app.routes:
        if isinstance(route, APIRoute) and _reads_input(route) and 422 not in route.responses:
            route.responses[422] = problem_response(422, VALIDATION[422])


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
