"""Error responses for the OpenAPI spec: every route lists the problems it can answer."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.problems import PROBLEM_MEDIA_TYPE


class Problem(BaseModel):
    """RFC 9457 problem details; some problems add fields such as `errors` or `retryable`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URL ending in a stable slug, e.g. `.../karbon-unavailable`")
    title: str
    status: int
    detail: str = Field(description="What happened and what to do, in plain words")
    errors: list[dict[str, str]] | None = Field(
        default=None,
        description="Field errors, each `{field, message}`; `field` names the request field",
    )


_PROBLEM_SCHEMA = Problem.model_json_schema()


def problems(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries: each status with its problem types explained."""
    return {
        status: {
            "description": description,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}},
        }
        for status, description in described.items()
    }


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
VALIDATION = {422: "`validation-error`: `errors` names each invalid field."}
