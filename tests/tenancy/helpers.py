"""Shared steps of the tenancy tests: sign up a firm, connect Karbon through a fake Karbon."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import respx
from httpx import AsyncClient

from tests.mailbox import MAILBOX

KARBON = "http://karbon.invalid"
ACCESS_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0ZW5hbnQiOiJhY21lIiwiYXBwIjoicmVja29ucnkifQ"
    ".c2VjcmV0LXNpZ25hdHVyZS1vZi10aGUtYWNjZXNzLWtleQ"
)
BEARER_TOKEN = "6f1c2a8e-93b4-4d7e-a0f5-1b2c3d4e5f60"
PASSWORD = "correct horse battery staple"
READ_SCOPES = ["reports:read", "sync:read"]
"""What integrator keys read without pay: all they could before keys had scopes."""

JWT_NOT_PRESENT = {"error": {"statusCode": "401", "message": "JWT not present."}}
JWT_INVALID = {"error": {"statusCode": "401", "message": "JWT is invalid."}}
BEARER_DENIED = {
    "error": {
        "statusCode": "401",
        "message": "Authorization has been denied for this request. "
        "The Bearer token is not valid for this AccessKey.",
    }
}


@dataclass(frozen=True)
class Firm:
    name: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def join(
    client: AsyncClient, admin: dict[str, str], email: str, role: str = "member"
) -> tuple[str, dict[str, str]]:
    """Invite `email` as `admin` and accept from the e-mailed link: the member's id and
    headers."""
    invited = await client.post(
        "/api/v1/members", headers=admin, json={"email": email, "role": role}
    )
    assert invited.status_code == 201, invited.text
    accepted = await client.post(
        "/api/v1/invitations/accept",
        json={"token": await MAILBOX.link_token(email), "password": PASSWORD},
    )
    assert accepted.status_code == 200, accepted.text
    return invited.json()["id"], bearer(accepted.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_up(client: AsyncClient, name: str, email: str) -> Firm:
    response = await client.post(
        "/api/v1/signup", json={"firm_name": name, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return Firm(name, email, response.json()["access_token"])


async def sign_in(client: AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


READ_ENDPOINTS = (
    "/v3/Users",
    "/v3/Contacts",
    "/v3/Organizations",
    "/v3/WorkItems",
    "/v3/Timesheets",
    "/v3/Invoices",
)
PERMISSION_DENIED = {"error": {"statusCode": "403", "message": "Forbidden"}}


@contextmanager
def fake_karbon(
    status: int = 200, body: Any = None, *, denied: Iterable[str] = ()
) -> Iterator[respx.Route]:
    """Karbon's `GET /v3/Users` answering `status` with `body` (the route yielded), and the
    other read endpoints answering an empty page, or 403 for those in `denied`."""
    refused = set(denied)
    with respx.mock(base_url=KARBON, assert_all_called=False) as karbon:
        for path in READ_ENDPOINTS[1:]:
            answer = (
                httpx.Response(403, json=PERMISSION_DENIED)
                if path in refused
                else httpx.Response(200, json={"@odata.count": 0, "value": []})
            )
            karbon.get(path).mock(return_value=answer)
        if "/v3/Users" in refused:
            status, body = 403, PERMISSION_DENIED
        yield karbon.get("/v3/Users").mock(
            return_value=httpx.Response(status, json=body if body is not None else {"value": []})
        )


async def put_credentials(
    client: AsyncClient,
    firm: Firm,
    access_key: str = ACCESS_KEY,
    bearer_token: str = BEARER_TOKEN,
) -> httpx.Response:
    return await client.put(
        "/api/v1/karbon/credentials",
        headers=firm.headers,
        json={"access_key": access_key, "bearer_token": bearer_token},
    )


async def connect(client: AsyncClient, firm: Firm) -> dict[str, Any]:
    with fake_karbon():
        response = await put_credentials(client, firm)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    slug: str = response.json()["type"].rsplit("/", 1)[-1]
    return slug
