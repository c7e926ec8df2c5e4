"""A firm whose trial ended subscribes through Stripe (signed webhooks) or an operator, and its
reports answer again at once; events are applied once, in order, and never for an unknown
firm; no plan change touches the firm's data."""

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.embedded import ServiceUrls
from app.models import StripeEvent, Tenant
from app.settings import Settings
from app.tenancy.cli import create_operator, extend_trial, set_plan
from app.tenancy.principal_cache import forget_principals
from tests.tenancy.helpers import PASSWORD, Firm, bearer, join, problem_type, sign_in, sign_up
from tests.tenancy.test_api_keys_and_trial import REPORT, probe_routes  # noqa: F401 - fixture

WEBHOOK = "/api/v1/billing/stripe-webhook"
SECRET = "whsec_test_" + "s" * 24
PAYMENT_LINK = "https://buy.stripe.com/test_abc123?locale=en"
pytestmark = pytest.mark.usefixtures("probe_routes")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"stripe_webhook_secret": SECRET, "stripe_payment_link": PAYMENT_LINK}
    )


def _signed(event: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """Stripe's scheme: `t=<unix time>,v1=<HMAC-SHA256 of "t.payload" with the secret>`."""
    payload = json.dumps(event).encode()
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, {"Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"}


def _event(kind: str, item: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": kind,
        "created": created or int(time.time()),
        "data": {"object": item},
    }


def _checkout(tenant_id: str) -> dict[str, Any]:
    return _event(
        "checkout.session.completed",
        {
            "object": "checkout.session",
            "client_reference_id": tenant_id,
            "customer": "cus_123",
            "subscription": "sub_123",
            "payment_status": "paid",
        },
    )


def _subscription(kind: str, status: str, *, created: int | None = None) -> dict[str, Any]:
    item = {"id": "sub_123", "customer": "cus_123", "status": status}
    item["items"] = {"data": [{"current_period_end": int(time.time()) + 30 * 86400}]}
    return _event(f"customer.subscription.{kind}", item, created=created)


async def _post(client: AsyncClient, event: dict[str, Any]) -> httpx.Response:
    payload, headers = _signed(event)
    return await client.post(WEBHOOK, content=payload, headers=headers)


async def _tenant_id(client: AsyncClient, firm: Firm) -> str:
    me = (await client.get("/api/v1/me", headers=firm.headers)).json()
    tenant_id: str = me["tenant"]["id"]
    return tenant_id


async def _end_trial(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        started = datetime.now(UTC) - timedelta(days=8)
        await session.execute(update(Tenant).values(trial_started_at=started))
    await forget_principals()


async def _plan(client: AsyncClient, firm: Firm) -> dict[str, Any]:
    plan: dict[str, Any] = (await client.get("/api/v1/me", headers=firm.headers)).json()
    return plan["tenant"]["plan"]


async def test_admins_get_the_subscribe_link_with_their_firm_and_members_do_not(
    client: AsyncClient,
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    _, member = await join(client, firm.headers, "staff@acme.com")
    billing = (await client.get("/api/v1/billing", headers=firm.headers)).json()
    assert billing["plan"]["status"] == "trialing"
    link = urlsplit(billing["subscribe_url"])
    assert link.netloc == "buy.stripe.com" and link.path == "/test_abc123"
    query = parse_qs(link.query)
    assert query["client_reference_id"] == [await _tenant_id(client, firm)]
    assert query["prefilled_email"] == ["owner@acme.com"] and query["locale"] == ["en"]
    as_member = (await client.get("/api/v1/billing", headers=member)).json()
    assert as_member["subscribe_url"] is None and as_member["plan"]["status"] == "trialing"


async def test_a_signed_checkout_reactivates_an_ended_trial_at_once(
    client: AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    await _end_trial(sessions)
    assert (await client.get(REPORT, headers=firm.headers)).status_code == 402
    event = _checkout(await _tenant_id(client, firm))

    applied = await _post(client, event)
    assert applied.status_code == 200, applied.text
    assert applied.json() == {"event_id": event["id"], "outcome": "applied"}
    assert (await client.get(REPORT, headers=firm.headers)).status_code == 200
    plan = await _plan(client, firm)
    assert plan["status"] == "active" and plan["status_since"] is not None
    billing = (await client.get("/api/v1/billing", headers=firm.headers)).json()
    assert billing["subscribe_url"] is None

    again = await _post(client, event)
    assert again.json()["outcome"] == "duplicate"
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(StripeEvent)) == 1
        tenant = await session.scalar(select(Tenant))
    assert tenant is not None and tenant.stripe_subscription_id == "sub_123"
    audit = (await client.get("/api/v1/audit", headers=firm.headers)).json()["items"]
    assert [(e["action"], e["actor_kind"], e["actor_label"]) for e in audit] == [
        ("subscription.stripe_event", "stripe", "Stripe")  # once: the repeat changed nothing
    ]
    assert (
        audit[0]["detail"]
        == f"Stripe event checkout.session.completed ({event['id']}): plan active"
    )


async def test_subscription_events_follow_stripe_in_order(
    client: AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    await _end_trial(sessions)
    await _post(client, _checkout(await _tenant_id(client, firm)))

    past_due = await _post(client, _subscription("updated", "past_due"))
    assert past_due.json()["outcome"] == "applied"
    plan = await _plan(client, firm)
    assert plan["status"] == "past_due" and plan["current_period_ends_at"] is not None
    assert (await client.get(REPORT, headers=firm.headers)).status_code == 200  # Stripe retries

    late = await _post(client, _subscription("updated", "active", created=int(time.time()) - 60))
    assert late.json()["outcome"] == "stale"
    assert (await _plan(client, firm))["status"] == "past_due"

    deleted = await _post(client, _subscription("deleted", "canceled"))
    assert deleted.json()["outcome"] == "applied"
    assert (await _plan(client, firm))["status"] == "cancelled"
    refused = await client.get(REPORT, headers=firm.headers)
    assert refused.status_code == 402 and problem_type(refused) == "subscription-required"
    assert "cancelled" in refused.json()["detail"]


async def test_unknown_firms_and_bad_signatures_change_nothing(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    unknown = await _post(client, _checkout(str(uuid.uuid4())))
    assert unknown.status_code == 200 and unknown.json()["outcome"] == "unknown-firm"
    orphan = await _post(client, _subscription("created", "active"))
    assert orphan.json()["outcome"] == "unknown-firm"

    payload, headers = _signed(_checkout(await _tenant_id(client, firm)), secret="whsec_other")
    forged = await client.post(WEBHOOK, content=payload, headers=headers)
    assert forged.status_code == 400 and problem_type(forged) == "invalid-signature"
    unsigned = await client.post(WEBHOOK, content=payload)
    assert unsigned.status_code == 400
    assert (await _plan(client, firm))["status"] == "trialing"
    async with sessions() as session:
        outcomes = (await session.scalars(select(StripeEvent.outcome))).all()
    assert sorted(outcomes) == ["unknown-firm", "unknown-firm"]


async def test_two_deliveries_of_one_event_at_once_apply_it_once(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    event = _checkout(await _tenant_id(client, firm))
    answers = await asyncio.gather(_post(client, event), _post(client, event))
    assert sorted(answer.json()["outcome"] for answer in answers) == ["applied", "duplicate"]


async def test_operators_set_the_plan_and_extend_the_trial(
    client: AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    service_urls: ServiceUrls,
    settings: Settings,
) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    tenant_id = await _tenant_id(client, firm)
    ops_settings = settings.model_copy(
        update={"database_url": service_urls.database_url, "redis_url": service_urls.redis_url}
    )
    await asyncio.to_thread(create_operator, "ops@reckonry.com", PASSWORD, ops_settings)
    operator = bearer((await sign_in(client, "ops@reckonry.com")).json()["access_token"])
    plan_url = f"/api/v1/ops/tenants/{tenant_id}/subscription"
    extension_url = f"/api/v1/ops/tenants/{tenant_id}/trial-extension"

    not_started = await client.post(extension_url, headers=operator, json={"days": 7})
    assert not_started.status_code == 409 and problem_type(not_started) == "trial-not-started"
    await _end_trial(sessions)
    assert (await client.get(REPORT, headers=firm.headers)).status_code == 402

    extended = await client.post(extension_url, headers=operator, json={"days": 3})
    assert extended.status_code == 200, extended.text
    assert extended.json()["trial"]["status"] == "active"
    assert extended.json()["trial"]["days_left"] == 3
    assert (await client.get(REPORT, headers=firm.headers)).status_code == 200

    cancelled = await client.put(plan_url, headers=operator, json={"status": "cancelled"})
    assert cancelled.json()["plan"]["status"] == "cancelled"
    active = await client.put(plan_url, headers=operator, json={"status": "active"})
    assert active.status_code == 200 and active.json()["subscription_active"] is True
    assert (await client.get(REPORT, headers=firm.headers)).status_code == 200

    refused = await client.put(plan_url, headers=firm.headers, json={"status": "active"})
    assert refused.status_code == 403
    unknown = await client.put(
        f"/api/v1/ops/tenants/{uuid.uuid4()}/subscription", headers=operator, json={"status": "x"}
    )
    assert unknown.status_code == 422

    # The same from the command line.
    await asyncio.to_thread(set_plan, uuid.UUID(tenant_id), "past_due", ops_settings)
    assert (await _plan(client, firm))["status"] == "past_due"
    ends = await asyncio.to_thread(extend_trial, uuid.UUID(tenant_id), 10, ops_settings)
    assert ends > datetime.now(UTC) + timedelta(days=9)
