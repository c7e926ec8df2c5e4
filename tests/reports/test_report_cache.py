"""Served reports change exactly when a refresh lands, and a served page costs the database
one query: the principal read together with its firm."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import caching
from app.models import CompensationPeriod, Staff
from app.reports import cache
from app.reports.cache import TenantTtlCache
from app.reports.refresh import refresh_reports
from tests.reports.conftest import SyncedFirm
from tests.tenancy.helpers import READ_SCOPES

PATH = "/api/v1/reports/client-profitability"
WINDOW = {"from": "2020-01-01", "to": "2026-11-02", "limit": 200}
SERVED = {
    PATH: WINDOW,
    "/api/v1/reports/summary": {"from": WINDOW["from"], "to": WINDOW["to"]},
}
"""The reports served from memory between refreshes, with their parameters."""


async def _pay_everyone(sessions: async_sessionmaker[AsyncSession], firm: SyncedFirm) -> None:
    async with sessions.begin() as session:
        staff = (await session.scalars(select(Staff.user_key))).all()
        for key in staff:
            session.add(
                CompensationPeriod(
                    tenant_id=firm.tenant_id,
                    staff_key=key,
                    effective_from=date(2000, 1, 1),
                    annual_amount=Decimal(90_000),
                )
            )


@pytest.mark.parametrize("path", SERVED)
async def test_a_served_report_changes_when_a_refresh_lands(
    client: AsyncClient,
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
    path: str,
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    first = await client.get(path, headers=synced_firm.headers, params=SERVED[path])
    assert first.status_code == 200, first.text
    assert first.json()["totals"]["cost"] == "0.00"

    await _pay_everyone(sessions, synced_firm)
    before_refresh = await client.get(path, headers=synced_firm.headers, params=SERVED[path])
    assert before_refresh.content == first.content

    await refresh_reports(sessions, synced_firm.tenant_id)
    after_refresh = await client.get(path, headers=synced_firm.headers, params=SERVED[path])
    assert Decimal(after_refresh.json()["totals"]["cost"]) > 0
    assert after_refresh.json()["totals"] != first.json()["totals"]


@contextmanager
def statements_on(app: FastAPI) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM" in statement.upper():
            seen.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("path", SERVED)
async def test_a_served_page_reads_the_database_only_for_a_principal_not_yet_known(
    app: FastAPI,
    client: AsyncClient,
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
    path: str,
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    created = await client.post(
        "/api/v1/api-keys", headers=synced_firm.headers, json={"name": "BI", "scopes": READ_SCOPES}
    )
    key_headers = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (await client.get(path, headers=synced_firm.headers, params=SERVED[path])).is_success
    # A key's first request reads it with its tenant, and marks its use (once a minute).
    first_key_use = ["tenants", "UPDATE api_keys SET last_used_at"]
    for headers, expected in (
        (synced_firm.headers, []),
        (key_headers, first_key_use),
        (key_headers, []),
    ):
        with statements_on(app) as statements:
            response = await client.get(path, headers=headers, params=SERVED[path])
        assert response.status_code == 200, response.text
        assert len(statements) == len(expected), statements
        assert all(part in statement for part, statement in zip(expected, statements, strict=True))


def test_a_tenant_cache_entry_lives_for_its_ttl_or_until_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(caching.time, "monotonic", lambda: now[0])
    entries: TenantTtlCache[str] = TenantTtlCache(ttl=1.0)
    tenant, other = uuid4(), uuid4()
    entries.put(tenant, "version 1")
    entries.put(other, "version 7")
    assert entries.get(tenant) == "version 1"
    now[0] += 1.5
    assert entries.get(tenant) is None
    entries.put(tenant, "version 2")
    cache.forget_tenant(tenant)
    assert entries.get(tenant) is None
    now[0] -= 1.5
    assert entries.get(other) == "version 7"
