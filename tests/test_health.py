import json
import logging

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel

from app.api.app import create_app
from app.embedded import ServiceUrls
from app.observability import JsonFormatter
from app.settings import Settings
from tests.services import scratch_database

PROBLEM = "application/problem+json"


async def test_healthz_answers_while_the_process_is_alive(client: AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_with_migrated_database_and_redis(client: AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}


async def test_readyz_reports_unmigrated_database(
    settings: Settings, server_urls: ServiceUrls
) -> None:
    async with scratch_database(server_urls.database_url, migrate=False) as empty_db:
        app = create_app(settings, ServiceUrls(empty_db, server_urls.redis_url))
        async with app.router.lifespan_context(app):
            transport = ASGITransport(app=app)
            async with AsyncClient(transport=transport, base_url="http://t") as http:
                response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert "not migrated" in response.json()["detail"]


async def test_readyz_reports_unreachable_redis(settings: Settings, database_url: str) -> None:
    app = create_app(settings, ServiceUrls(database_url, "redis://127.0.0.1:1/0"))
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app)
        async with AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/readyz")
    assert response.status_code == 503
    assert "redis unreachable" in response.json()["detail"]


async def test_metrics_are_prometheus_text_and_count_requests(client: AsyncClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'reckonry_http_requests_total{method="GET",route="/healthz",status="200"}' in (
        response.text
    )


async def test_unknown_path_is_a_problem_document(client: AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 404 and body["title"] == "Not Found"
    assert body["type"].endswith("/not-found")


async def test_wrong_method_is_a_problem_document(client: AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM


class _Payload(BaseModel):
    amount: int


async def test_validation_errors_name_each_field(app: FastAPI, client: AsyncClient) -> None:
    @app.post("/_test/validate")
    async def validate(payload: _Payload) -> dict[str, int]:
        return {"amount": payload.amount}

    response = await client.post("/_test/validate", json={"amount": "lots"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["field"] == "amount"


async def test_unhandled_errors_hide_internals(app: FastAPI, client: AsyncClient) -> None:
    @app.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    response = await client.get("/_test/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text


async def test_request_id_is_echoed_and_logged(client: AsyncClient, caplog: object) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("reckonry.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    finally:
        access.removeHandler(handler)
    assert response.headers["x-request-id"] == "abc-123"
    logged = [json.loads(handler.format(record)) for record in records]
    assert any(entry["request_id"] == "abc-123" and entry["path"] == "/healthz" for entry in logged)


async def test_a_generated_request_id_replaces_an_unsafe_one(client: AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert response.headers["x-request-id"] != "bad id\nwith newline"
    assert len(response.headers["x-request-id"]) == 32
