"""With the database or Redis down, the API answers 503 with the reason and `Retry-After`,
as its OpenAPI document declares, instead of a bare 500."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from app.api.app import create_app
from app.embedded import ServiceUrls
from app.settings import Settings
from tests.processes import free_port


def _closed(scheme: str) -> str:
    """A URL of a server that is not there: a port nothing listens on."""
    return f"{scheme}://postgres@127.0.0.1:{free_port()}/postgres"


async def _client(settings: Settings, urls: ServiceUrls) -> AsyncIterator[AsyncClient]:
    app = create_app(settings, urls)
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app, raise_app_exceptions=False)
        async with AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
async def without_database(
    settings: Settings, service_urls: ServiceUrls
) -> AsyncIterator[AsyncClient]:
    urls = ServiceUrls(database_url=_closed("postgresql"), redis_url=service_urls.redis_url)
    async for http in _client(settings, urls):
        yield http


@pytest.fixture
async def without_redis(
    settings: Settings, service_urls: ServiceUrls
) -> AsyncIterator[AsyncClient]:
    urls = ServiceUrls(database_url=service_urls.database_url, redis_url=_closed("redis"))
    async for http in _client(settings, urls):
        yield http


def _assert_unavailable(response: Any, slug: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["type"].endswith(f"/{slug}")
    assert body["status"] == 503


async def test_a_request_needing_the_database_while_it_is_down_is_a_503(
    without_database: AsyncClient,
) -> None:
    response = await without_database.post(
        "/api/v1/signup",
        json={"firm_name": "Down LLP", "email": "down@example.com", "password": "a long password"},
    )
    _assert_unavailable(response, "database-unavailable")
    assert "database" in response.json()["detail"]


async def test_a_request_needing_redis_while_it_is_down_is_a_503(
    without_redis: AsyncClient,
) -> None:
    response = await without_redis.post(
        "/api/v1/auth/token", data={"username": "someone@example.com", "password": "whatever"}
    )
    _assert_unavailable(response, "redis-unavailable")
    assert "Redis" in response.json()["detail"]


async def test_every_route_that_uses_the_database_or_redis_declares_its_503(
    without_database: AsyncClient,
) -> None:
    spec = (await without_database.get("/openapi.json")).json()
    undeclared = [
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if path not in {"/healthz", "/metrics"} and "503" not in operation["responses"]
    ]
    assert undeclared == []
