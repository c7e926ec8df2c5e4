"""The audit record: each change names who made it, holds no secret or pay amount, is written
with the change or not at all, cannot be rewritten, and goes with its firm. Keys' last use."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.embedded import ServiceUrls
from app.models import ActorKind, ApiKey, ApiScope, AuditEvent, Staff
from app.settings import Settings
from app.tenancy import service
from app.tenancy.audit import Actor
from app.tenancy.cli import set_plan
from app.tenancy.key_use import forget_marks
from app.tenancy.principal_cache import forget_principals
from app.tenancy.schemas import NewApiKeyRequest
from tests.sync.test_retention import operator_token
from tests.tenancy.helpers import (
    ACCESS_KEY,
    BEARER_TOKEN,
    Firm,
    bearer,
    connect,
    join,
    sign_up,
)

AUDIT = "/api/v1/audit"
SALARY = "98765.43"
COST_SETTINGS = {
    "overhead_rate": "0.25",
    "working_weeks_per_year": "46",
    "default_capacity_hours_per_week": "35",
    "recognition_policy": "completion",
}


async def _tenant_id(client: AsyncClient, firm: Firm) -> uuid.UUID:
    me = (await client.get("/api/v1/me", headers=firm.headers)).json()
    return uuid.UUID(me["tenant"]["id"])


async def _synced_staff(sessions: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> None:
    async with unit_of_work(sessions) as session:
        session.add(Staff(tenant_id=tenant_id, user_key="jane", name="Jane Ledger", raw={}))


async def _events(client: AsyncClient, firm: Firm, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(AUDIT, headers=firm.headers, params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _firm_changes(client: AsyncClient, firm: Firm) -> str:
    """Every audited change a firm's admin makes; returns the integrator key made meanwhile."""
    await connect(client, firm)
    headers = firm.headers
    cost = await client.put(
        "/api/v1/staff/jane/cost",
        headers=headers,
        json={"effective_from": "2024-01-01", "annual_amount": SALARY},
    )
    assert cost.status_code == 200, cost.text
    assert (
        await client.put("/api/v1/cost-settings", headers=headers, json=COST_SETTINGS)
    ).is_success
    member_id, _ = await join(client, headers, "pat@acme.com")
    assert (await client.delete(f"/api/v1/members/{member_id}", headers=headers)).is_success
    created = await client.post(
        "/api/v1/api-keys", headers=headers, json={"name": "BI", "scopes": ["sync:read"]}
    )
    key = created.json()
    assert (await client.delete(f"/api/v1/api-keys/{key['id']}", headers=headers)).is_success
    settings = await client.patch(
        "/api/v1/sync/settings", headers=headers, json={"incremental_interval_minutes": 30}
    )
    assert settings.is_success, settings.text
    assert (await client.post("/api/v1/sync", headers=headers)).status_code == 202
    assert (await client.delete("/api/v1/karbon/credentials", headers=headers)).is_success
    key_text: str = key["key"]
    return key_text


GENERATED = ("id", "occurred_at", "actor_id")
"""An audit event's fields the server generates."""


async def test_each_change_records_who_made_it_without_secrets_or_amounts(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    await _synced_staff(sessions, await _tenant_id(client, firm))
    plaintext_key = await _firm_changes(client, firm)

    events = await _events(client, firm)

    assert [event["action"] for event in reversed(events)] == [
        "karbon_keys.connected",
        "compensation.added",
        "cost_settings.changed",
        "member.invited",
        "member.removed",
        "api_key.created",
        "api_key.revoked",
        "sync_settings.changed",
        "sync.requested",
        "karbon_keys.disconnected",
    ]
    assert {(event["actor_kind"], event["actor_label"]) for event in events} == {
        ("person", "owner@acme.com")
    }
    by_action = {event["action"]: event for event in events}
    assert by_action["compensation.added"]["subject"] == "compensation of Jane Ledger"
    assert by_action["compensation.added"]["kind"] == "compensation"
    assert by_action["member.removed"]["subject"] == "pat@acme.com"
    assert "sync:read" in by_action["api_key.created"]["detail"]
    assert "overhead_rate" in by_action["cost_settings.changed"]["detail"]
    # What people wrote or changed, not the ids and times, whose digits can hold "0.25".
    record = str([{k: v for k, v in e.items() if k not in GENERATED} for e in events])
    for secret in (SALARY, "98765", ACCESS_KEY, BEARER_TOKEN, plaintext_key, "0.25"):
        assert secret not in record
    assert ACCESS_KEY[-4:] in by_action["karbon_keys.connected"]["detail"]  # masked, not absent


async def test_the_record_filters_by_kind_and_pages_newest_first(client: AsyncClient) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    for name in ("first", "second", "third"):
        body = {"name": name, "scopes": ["reports:read"]}
        assert (await client.post("/api/v1/api-keys", headers=firm.headers, json=body)).is_success
    await client.patch(
        "/api/v1/sync/settings", headers=firm.headers, json={"nightly_reconciliation": False}
    )

    page = await client.get(
        AUDIT, headers=firm.headers, params={"kind": "api_keys", "limit": 2, "offset": 1}
    )

    assert page.status_code == 200
    assert page.json()["total"] == 3
    assert [event["subject"][:8] for event in page.json()["items"]] == ["'second'", "'first' "]
    unknown = await client.get(AUDIT, headers=firm.headers, params={"kind": "salaries"})
    assert unknown.status_code == 422


async def test_members_and_keys_may_not_read_the_record(client: AsyncClient) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    _, member = await join(client, firm.headers, "pat@acme.com")
    created = await client.post(
        "/api/v1/api-keys",
        headers=firm.headers,
        json={"name": "BI", "scopes": ["reports:read", "pay:read"]},
    )
    other = await sign_up(client, "Other", "owner@other.com")

    assert (await client.get(AUDIT, headers=member)).status_code == 403
    assert (await client.get(AUDIT, headers=bearer(created.json()["key"]))).status_code == 403
    assert await _events(client, other) == []


async def test_operators_stripe_and_the_command_line_are_named(
    client: AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    service_urls: ServiceUrls,
    settings: Settings,
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    await connect(client, firm)
    tenant_id = await _tenant_id(client, firm)
    operator = bearer(await operator_token(client, sessions))
    ops = f"/api/v1/ops/tenants/{tenant_id}"
    assert (
        await client.put(f"{ops}/subscription", headers=operator, json={"status": "active"})
    ).is_success
    assert (
        await client.post(f"{ops}/trial-extension", headers=operator, json={"days": 3})
    ).is_success
    cli_settings = settings.model_copy(
        update={"database_url": service_urls.database_url, "redis_url": service_urls.redis_url}
    )
    await asyncio.to_thread(set_plan, tenant_id, "past_due", cli_settings)

    events = await _events(client, firm, kind="subscription")

    assert [(e["action"], e["actor_kind"], e["actor_label"]) for e in events] == [
        ("subscription.set", "command_line", "an operator on the command line"),
        ("trial.extended", "operator", "ops@reckonry-ops.com"),
        ("subscription.set", "operator", "ops@reckonry-ops.com"),
    ]
    assert events[0]["detail"] == "plan active → past_due"


async def test_a_change_rolled_back_leaves_no_record(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    tenant_id = await _tenant_id(client, firm)
    request = NewApiKeyRequest(name="BI", scopes=[ApiScope.REPORTS_READ])

    with pytest.raises(RuntimeError):
        async with unit_of_work(sessions) as session:
            await service.create_api_key(session, tenant_id, Actor(ActorKind.COMMAND_LINE), request)
            assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 1
            raise RuntimeError("the change fails after its event was written")

    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 0
        assert await session.scalar(select(func.count()).select_from(ApiKey)) == 0


async def test_the_database_refuses_to_rewrite_the_record_but_deletes_it_with_its_firm(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    body = {"name": "BI", "scopes": ["reports:read"]}
    assert (await client.post("/api/v1/api-keys", headers=firm.headers, json=body)).is_success
    tenant_id = await _tenant_id(client, firm)

    for change in (update(AuditEvent).values(subject="nothing happened"), delete(AuditEvent)):
        with pytest.raises(DBAPIError, match="append-only"):
            async with unit_of_work(sessions) as session:
                await session.execute(change)
    async with sessions() as session:
        subjects = (await session.scalars(select(AuditEvent.subject))).all()
    assert len(subjects) == 1 and subjects[0].startswith("'BI' (rk_live_")

    operator = bearer(await operator_token(client, sessions))
    deleted = await client.delete(
        f"/api/v1/ops/tenants/{tenant_id}", params={"confirm": "Acme"}, headers=operator
    )
    assert deleted.status_code == 204, deleted.text
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEvent)) == 0


async def _last_used(client: AsyncClient, firm: Firm, key_id: str) -> str | None:
    view = (await client.get(f"/api/v1/api-keys/{key_id}", headers=firm.headers)).json()
    used: str | None = view["last_used_at"]
    return used


async def test_keys_show_their_last_use_rewritten_at_most_once_a_minute(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    created = await client.post(
        "/api/v1/api-keys", headers=firm.headers, json={"name": "BI", "scopes": ["sync:read"]}
    )
    key_id, key = created.json()["id"], bearer(created.json()["key"])
    assert await _last_used(client, firm, key_id) is None

    assert (await client.get("/api/v1/sync", headers=key)).status_code == 200
    first = await _last_used(client, firm, key_id)
    assert first is not None
    assert datetime.now(UTC) - datetime.fromisoformat(first) < timedelta(seconds=30)

    forget_marks()  # as another process would: it asks the database, which declines
    await forget_principals()
    assert (await client.get("/api/v1/sync", headers=key)).status_code == 200
    assert await _last_used(client, firm, key_id) == first

    async with unit_of_work(sessions) as session:
        await session.execute(text("UPDATE api_keys SET last_used_at = now() - interval '61 s'"))
    aged = await _last_used(client, firm, key_id)
    forget_marks()
    assert (await client.get("/api/v1/sync", headers=key)).status_code == 200
    assert (await _last_used(client, firm, key_id) or "") > (aged or "")
