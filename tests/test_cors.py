"""Browser frontends on other origins: preflights and exposed headers (RECKONRY_CORS_ORIGINS)."""

from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient

from app.api.app import create_app
from app.embedded import ServiceUrls
from app.settings import Settings

REPORT = "/api/v1/reports/client-profitability"


def _preflight_headers(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_preflight_from_a_local_dev_server_is_allowed(client: AsyncClient) -> None:
    response = await client.options(REPORT, headers=_preflight_headers("http://localhost:5173"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "GET" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type"} <= set(allowed_headers.split(", "))
    assert "access-control-allow-credentials" not in response.headers


async def test_preflight_from_another_origin_is_not_allowed(client: AsyncClient) -> None:
    response = await client.options(REPORT, headers=_preflight_headers("https://evil.example"))
    # Without Access-Control-Allow-Origin the browser refuses the real request.
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_a_request_from_an_allowed_origin_can_read_the_request_id(
    client: AsyncClient,
) -> None:
    response = await client.get("/healthz", headers={"Origin": "http://127.0.0.1:3000"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://127.0.0.1:3000"
    exposed = response.headers["access-control-expose-headers"].lower().split(", ")
    assert {"x-request-id", "retry-after"} <= set(exposed)
    assert response.headers["x-request-id"]


@pytest.fixture
async def production_client(
    request: pytest.FixtureRequest, service_urls: ServiceUrls
) -> AsyncIterator[AsyncClient]:
    settings = Settings(_env_file=None, RECKONRY_ENV="production", **request.param)
    transport = ASGITransport(app=create_app(settings, service_urls))
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.mark.parametrize("production_client", [{}], indirect=True)
async def test_production_allows_no_origin_by_default(production_client: AsyncClient) -> None:
    response = await production_client.options(
        REPORT, headers=_preflight_headers("http://localhost:5173")
    )
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "production_client",
    [{"RECKONRY_CORS_ORIGINS": "https://app.firm.example, https://staging.firm.example:8443"}],
    indirect=True,
)
async def test_production_allows_the_configured_origins(production_client: AsyncClient) -> None:
    for origin in ("https://app.firm.example", "https://staging.firm.example:8443"):
        response = await production_client.options(REPORT, headers=_preflight_headers(origin))
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
    response = await production_client.options(
        REPORT, headers=_preflight_headers("http://localhost:5173")
    )
    assert "access-control-allow-origin" not in response.headers
