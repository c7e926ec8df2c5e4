"""A write is committed before its response is sent, and a commit that fails is the client's
5xx. Served by uvicorn over TCP, as in production: an in-process transport waits for the
whole application, so it cannot see what happens after the response has gone out."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any, NoReturn

import pytest
import uvicorn
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from tests.processes import free_port
from tests.tenancy.helpers import READ_SCOPES, Firm, bearer, join, sign_up

TRIALS = 20


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test stops it; signals stay pytest's


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client of `app` (its lifespan already entered) served by uvicorn on a free port."""
    port = free_port()
    config = uvicorn.Config(app, port=port, lifespan="off", log_config=None, access_log=False)
    server = _QuietServer(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), serving
        await asyncio.sleep(0.01)
    async with AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        yield client
    server.should_exit = True
    await serving


async def test_a_read_right_after_a_settings_change_sees_it(served: AsyncClient) -> None:
    firm = await sign_up(served, "Read Your Writes", "admin@read-your-writes.com")
    for trial in range(TRIALS):
        weeks = str(30 + trial)
        body = {
            "overhead_rate": "0.25",
            "working_weeks_per_year": weeks,
            "default_capacity_hours_per_week": "35",
            "recognition_policy": "billing",
        }
        saved = await served.put("/api/v1/cost-settings", headers=firm.headers, json=body)
        assert saved.status_code == 200, saved.text
        read = await served.get("/api/v1/cost-settings", headers=firm.headers)
        assert Decimal(read.json()["working_weeks_per_year"]) == Decimal(weeks), trial


async def _add_member(client: AsyncClient, firm: Firm, email: str) -> tuple[str, dict[str, str]]:
    return await join(client, firm.headers, email)


async def test_a_removed_member_is_refused_at_once(served: AsyncClient) -> None:
    firm = await sign_up(served, "Prompt Removals", "admin@prompt-removals.com")
    for trial in range(TRIALS // 2):
        member_id, member = await _add_member(served, firm, f"m{trial}@prompt-removals.com")
        assert (await served.get("/api/v1/me", headers=member)).status_code == 200
        removed = await served.delete(f"/api/v1/members/{member_id}", headers=firm.headers)
        assert removed.status_code == 204, removed.text
        assert (await served.get("/api/v1/me", headers=member)).status_code == 401, trial


async def test_a_created_or_revoked_api_key_is_so_at_once(served: AsyncClient) -> None:
    firm = await sign_up(served, "Prompt Keys", "admin@prompt-keys.com")
    for trial in range(TRIALS):
        created = await served.post(
            "/api/v1/api-keys", headers=firm.headers, json={"name": "k", "scopes": READ_SCOPES}
        )
        assert created.status_code == 201, created.text
        key_id, key = created.json()["id"], bearer(created.json()["key"])
        fetched = await served.get(f"/api/v1/api-keys/{key_id}", headers=firm.headers)
        assert fetched.status_code == 200, (trial, fetched.text)
        revoked = await served.delete(f"/api/v1/api-keys/{key_id}", headers=firm.headers)
        assert revoked.status_code == 204, revoked.text
        assert (await served.get("/api/v1/sync", headers=key)).status_code == 401, trial


async def test_a_commit_that_fails_is_a_5xx_the_client_sees(
    served: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    firm = await sign_up(served, "Failed Commits", "admin@failed-commits.com")
    before = (await served.get("/api/v1/cost-settings", headers=firm.headers)).json()

    async def failing_commit(self: AsyncSession, *args: Any) -> NoReturn:
        raise OperationalError("COMMIT", {}, ConnectionResetError("connection lost at commit"))

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    body = {**before, "working_weeks_per_year": "40"}
    del body["is_default"]
    response = await served.put("/api/v1/cost-settings", headers=firm.headers, json=body)
    assert response.status_code >= 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    monkeypatch.undo()
    after = (await served.get("/api/v1/cost-settings", headers=firm.headers)).json()
    assert after == before
