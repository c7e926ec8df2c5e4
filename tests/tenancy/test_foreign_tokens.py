"""A bearer token with characters outside ASCII is refused like any other invalid token."""

from uuid import uuid4

import pytest
from httpx import AsyncClient

from app.tenancy.security import issue_token, read_token
from tests.tenancy.helpers import problem_type, sign_up

KEYS = ("test-signing-key-" + "x" * 32,)


@pytest.mark.parametrize("token", ["é", "abc.défg", "eyJzdWIiOiJ4In0.sïgnature", "a.\u00ff"])
def test_a_token_outside_ascii_reads_as_no_user(token: str) -> None:
    assert read_token(KEYS, token) is None


def test_a_valid_token_with_a_foreign_character_appended_is_refused() -> None:
    token = issue_token(KEYS, uuid4(), 0).token
    assert read_token(KEYS, token + "é") is None


@pytest.mark.parametrize("token", ["abc.d\xe9f", "\xe9t\xe9", "rk_live_\xe9"])
async def test_a_latin_1_bearer_header_is_a_401(client: AsyncClient, token: str) -> None:
    firm = await sign_up(client, "Foreign Tokens", "admin@foreign-tokens.com")
    assert (await client.get("/api/v1/me", headers=firm.headers)).status_code == 200
    header = {"Authorization": b"Bearer " + token.encode("latin-1")}
    response = await client.get("/api/v1/me", headers=header)
    assert response.status_code == 401, response.text
    assert problem_type(response) in {"invalid-token", "invalid-api-key"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
