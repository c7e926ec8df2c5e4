"""Numbers beyond what PostgreSQL's bigint holds are a 422 naming the field on every paged
route (the routes come from the OpenAPI document)."""

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.api.test_contract import Callers, _operations, callers  # noqa: F401 - fixture
from tests.tenancy.helpers import problem_type

BEYOND_BIGINT = str(2**63)
MAX_OFFSET = 1_000_000  # the bound the OpenAPI document declares


@pytest.mark.parametrize("field", ["offset", "limit"])
async def test_paging_beyond_bigint_names_the_field_on_every_paged_route(
    app: FastAPI,
    client: AsyncClient,
    callers: Callers,  # noqa: F811 - the fixture
    field: str,
) -> None:
    paged = [
        operation
        for operation in _operations(app.openapi())
        if any(param["name"] == field for param in operation.parameters)
    ]
    assert len(paged) >= 6
    for operation in paged:
        response = await client.request(
            operation.method,
            operation.path,
            headers=callers.admin,
            params={field: BEYOND_BIGINT},
        )
        where = (operation.path, response.text)
        if operation.path.startswith("/api/v1/ops/"):
            assert response.status_code == 403, where  # an admin is not an operator
            continue
        assert response.status_code == 422 and problem_type(response) == "validation-error", where
        assert [error["field"] for error in response.json()["errors"]] == [f"query.{field}"]


async def test_the_largest_offset_allowed_is_an_empty_page(
    app: FastAPI,
    client: AsyncClient,
    callers: Callers,  # noqa: F811 - the fixture
) -> None:
    offset = app.openapi()["paths"]["/api/v1/members"]["get"]["parameters"]
    assert [p["schema"]["maximum"] for p in offset if p["name"] == "offset"] == [MAX_OFFSET]
    response = await client.get(
        "/api/v1/members", headers=callers.admin, params={"offset": MAX_OFFSET}
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == [] and response.json()["offset"] == MAX_OFFSET
