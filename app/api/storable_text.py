"""Refuse text PostgreSQL cannot store, on every route, before any handler reads it.

PostgreSQL's text types cannot hold the NUL character; one in a string would make asyncpg
fail deep inside a query. (Lone surrogates, the other unstorable text, pydantic already
refuses.) Checked once for the whole application, as an application dependency, so every
path and query parameter and body field is covered, routes added later too: the answer is
the usual 422 naming each field.
"""

from collections.abc import Iterator, Mapping
from typing import Any
from weakref import ReferenceType, ref

from fastapi import Request, params
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

Location = tuple[str | int, ...]

_MESSAGE = "Text must not contain the NUL character (\\u0000)."


def is_storable(text: str) -> bool:
    return "\x00" not in text


def _unstorable_in(value: Any, location: Location) -> Iterator[Location]:
    """Where `value` (parsed JSON or a form) holds unstorable text, keys included."""
    if isinstance(value, str):
        if not is_storable(value):
            yield location
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and not is_storable(key):
                yield (*location, key)
            yield from _unstorable_in(item, (*location, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable_in(item, (*location, index))


_query_names: dict[int, tuple["ReferenceType[APIRoute]", frozenset[str]]] = {}
"""By route (routes cannot be hashed; a route that is gone drops its entry)."""


def _declared_query_names(route: APIRoute) -> frozenset[str]:
    """Read from the route's dependencies once per route, not at every request."""
    known = _query_names.get(id(route))
    if known is not None and known[0]() is route:
        return known[1]
    fields = get_flat_params(route.dependant)
    names = frozenset(f.alias for f in fields if isinstance(f.field_info, params.Query))
    key = id(route)
    _query_names[key] = (ref(route, lambda _: _query_names.pop(key, None)), names)
    return names


async def _parsed_body(request: Request, route: APIRoute) -> Any:
    """The body as the route already read it (Starlette keeps it on the request); a body
    that is not JSON is left to the route's own validation."""
    if route.body_field is None:
        return None
    if isinstance(route.body_field.field_info, params.Form):
        return dict(await request.form())
    try:
        return await request.json()
    except ValueError:
        return None


async def refuse_unstorable_text(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _declared_query_names(route)
    query = [
        (name, value) for name, value in request.query_params.multi_items() if name in declared
    ]
    found = [
        *_unstorable_in(dict(request.path_params), ("path",)),
        *(("query", name) for name, value in query if not is_storable(value)),
        *_unstorable_in(await _parsed_body(request, route), ("body",)),
    ]
    if found:
        raise RequestValidationError(
            [{"loc": loc, "msg": _MESSAGE, "type": "unstorable_text"} for loc in found]
        )
