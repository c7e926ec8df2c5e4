"""A body that is not text at all (bytes that are not UTF-8) is a 422 naming the body, as
any other body that is not the JSON a route reads: the OpenAPI document declares no 400."""

from httpx import AsyncClient

from tests.tenancy.helpers import problem_type

NOT_UTF8 = b"\x80{\xc3("


async def test_a_body_that_is_not_utf8_is_a_422_naming_the_body(client: AsyncClient) -> None:
    response = await client.post(
        "/api/v1/signup", content=NOT_UTF8, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert problem_type(response) == "validation-error"
    assert [error["field"] for error in response.json()["errors"]] == ["body"]
