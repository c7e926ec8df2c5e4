"""Shared fixtures: sandboxes with fixed dates, an in-process client, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import httpx
import pytest

from sandbox.app import create_sandbox_app
from sandbox.state import Sandbox, SandboxConfig, Tenant

TODAY = date(2026, 8, 19)
BASE = "http://sandbox.test"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def auth(tenant: Tenant) -> dict[str, str]:
    return {"AccessKey": tenant.access_key, "Authorization": f"Bearer {tenant.bearer_token}"}


def client_for(sandbox: Sandbox, tenant: Tenant | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_sandbox_app(sandbox)),
        base_url=BASE,
        headers=auth(tenant) if tenant else None,
    )


def make_sandbox(
    *specs: tuple[str, str, int], clock: Callable[[], float] | None = None, **config: Any
) -> Sandbox:
    kwargs: dict[str, Any] = {"config": SandboxConfig(**config), "today": TODAY}
    if clock is not None:
        kwargs["clock"] = clock
    return Sandbox.create(*(specs or (("Firm A", "small", 0),)), **kwargs)


@pytest.fixture(scope="session")
def shared_sandbox() -> Sandbox:
    """Two read-only tenants (small and tiny); tests must not advance them."""
    return make_sandbox(("Firm A", "small", 0), ("Firm B", "tiny", 1), rate_limit_enabled=False)


@pytest.fixture
async def shared_client(shared_sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    shared_sandbox.config.max_page_size = 100
    async with client_for(shared_sandbox, shared_sandbox.tenant("Firm A")) as c:
        yield c


async def get_all(client: httpx.AsyncClient, url: str) -> tuple[list[dict[str, Any]], int]:
    """Follow @odata.nextLink from ``url``; returns (records, pages)."""
    records: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    seen: set[str] = set()
    while next_url:
        assert next_url not in seen, f"nextLink loop at {next_url}"
        seen.add(next_url)
        r = await client.get(next_url)
        assert r.status_code == 200, r.text
        body = r.json()
        records.extend(body["value"])
        pages += 1
        next_url = body.get("@odata.nextLink")
    return records, pages
