"""Error responses for the OpenAPI spec: every route lists the problems it can answer.

Every error body is a `Problem`; a 422 is a `ValidationProblem`, whose `errors` name each
invalid field. Both are components of the spec, so generated clients get one type for each.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from app.api.problems import PROBLEM_MEDIA_TYPE

COMPONENT_REF = "#/components/schemas/{model}"


class Problem(BaseModel):
    """RFC 9457 problem details; some problems add fields such as `retryable`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URL ending in a stable slug, e.g. `.../karbon-unavailable`")
    title: str
    status: int
    detail: str = Field(description="What happened and what to do, in plain words")


class FieldError(BaseModel):
    field: str = Field(description="The request field, e.g. `email`, `query.from`, `path.key_id`")
    message: str


class ValidationProblem(Problem):
    """A 422: `errors` names each invalid field (empty when no one field is to blame)."""

    errors: list[FieldError]


def problem_components() -> dict[str, Any]:
    """`Problem`, `ValidationProblem` and `FieldError`, for `components/schemas`."""
    _, schema = models_json_schema(
        [(Problem, "serialization"), (ValidationProblem, "serialization")],
        ref_template=COMPONENT_REF,
    )
    components: dict[str, Any] = schema["$defs"]
    return components


def _schema_ref(status: int) -> dict[str, str]:
    model = ValidationProblem if status == 422 else Problem
    return {"$ref": COMPONENT_REF.format(model=model.__name__)}


def problem_response(status: int, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": _schema_ref(status)}},
    }


def problems(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries: each status with its problem types explained."""
    return {status: problem_response(status, text) for status, text in described.items()}


NOT_AUTHENTICATED = {
    401: "`not-authenticated`: no bearer token. `invalid-token`: expired or unknown sign-in "
    "token, sign in again. `invalid-api-key`: unknown or revoked integrator key.",
}
SIGNED_IN = {
    **NOT_AUTHENTICATED,
    403: "`api-key-not-allowed`: integrator keys may only read reports and sync status.",
}
MEMBER = {
    **NOT_AUTHENTICATED,
    403: "`api-key-not-allowed`: integrator keys may only read reports and sync status. "
    "`tenant-access-only`: platform operators see only `/api/v1/ops`.",
}
ADMIN = {
    **NOT_AUTHENTICATED,
    403: "`admin-required`: only the firm's admins may do this. `api-key-not-allowed`, "
    "`tenant-access-only` as for every firm endpoint.",
}
OPERATOR = {
    **NOT_AUTHENTICATED,
    403: "`operator-required`: platform operators only.",
}
READER = {
    **NOT_AUTHENTICATED,
    403: "`tenant-access-only`: platform operators see only `/api/v1/ops`. `scope-required`: "
    "the integrator key was not created with the scope this endpoint needs.",
}
"""A firm's people and its integrator keys with the endpoint's scope."""
SUBSCRIPTION = {402: "`subscription-required`: the trial has ended; the data is kept."}
VALIDATION = {422: "`validation-error`: `errors` names each invalid field."}
UNAVAILABLE = {
    503: "`database-unavailable`, `redis-unavailable`: that server is unreachable right now "
    "and nothing was changed; retry after `Retry-After` seconds.",
}
TEXT = {"schema": {"type": "string"}}
"""The schema of a `text/csv` or `text/plain` body."""
