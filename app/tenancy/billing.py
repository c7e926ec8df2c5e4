"""How a firm becomes a customer: the subscribe link, Stripe's signed events, and operators
setting a plan or extending a trial. None of it touches the firm's synced data.

Stripe delivers events at least once and in no guaranteed order. Every event id is recorded
before anything is applied, so a repeated delivery changes nothing (a concurrent repeat waits
on the first one's row); an event older than the last one applied to its firm is recorded and
not applied; an event for a firm this deployment does not know is recorded and ignored.
"""

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

import stripe
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import after_commit
from app.kit.problems import ProblemError
from app.models import AuditKind, SubscriptionStatus, Tenant
from app.tenancy import audit, repository
from app.tenancy.plan import PAYING, plan_state, trial_ends_at
from app.tenancy.principal_cache import forget_principals
from app.tenancy.schemas import Billing, Plan, StripeEventReceipt, Trial

logger = logging.getLogger(__name__)

# Stripe's subscription statuses, as this product's plans. `incomplete` (the first payment is
# still being attempted) changes nothing: checkout's completion or a later update decides.
_STRIPE_STATUSES = {
    "active": SubscriptionStatus.ACTIVE,
    "trialing": SubscriptionStatus.ACTIVE,  # a trial granted in Stripe is a paid plan here
    "past_due": SubscriptionStatus.PAST_DUE,
    "unpaid": SubscriptionStatus.CANCELLED,
    "canceled": SubscriptionStatus.CANCELLED,
    "incomplete_expired": SubscriptionStatus.CANCELLED,
    "paused": SubscriptionStatus.CANCELLED,
}
_SUBSCRIPTION_EVENTS = {
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
}
_CHECKOUT_COMPLETED = "checkout.session.completed"


class _EventData(BaseModel):
    object: dict[str, Any]


class StripeEventEnvelope(BaseModel):
    id: str
    type: str
    created: int
    data: _EventData


def subscribe_url(payment_link: str, tenant_id: UUID, email: str) -> str:
    """The Payment Link carrying the firm's id back to us in `client_reference_id`."""
    parts = urlsplit(payment_link)
    query = [*parse_qsl(parts.query), ("client_reference_id", str(tenant_id))]
    query.append(("prefilled_email", email))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def billing(
    session: AsyncSession,
    payment_link: str | None,
    tenant_id: UUID,
    admin_email: str | None,
    now: datetime,
) -> Billing:
    """The plan; for an admin (`admin_email` given) of a firm that does not pay, the link."""
    tenant = await repository.tenant(session, tenant_id)
    assert tenant is not None
    state = plan_state(tenant, now)
    link = None
    if payment_link and admin_email and state.status not in PAYING:
        link = subscribe_url(payment_link, tenant.id, admin_email)
    return Billing(
        plan=Plan.of(tenant, state), trial=Trial.from_state(state.trial), subscribe_url=link
    )


def verified_event(
    payload: bytes, signature: str | None, secret: str | None
) -> StripeEventEnvelope:
    """The event, once Stripe's library has checked its signature and timestamp."""
    if secret is None:
        raise ProblemError(
            503,
            "billing-not-configured",
            "Stripe webhooks are not set up here: set RECKONRY_STRIPE_WEBHOOK_SECRET.",
            title="Billing not configured",
        )
    try:
        stripe.Webhook.construct_event(payload, signature or "", secret)
        return StripeEventEnvelope.model_validate(json.loads(payload))
    except stripe.SignatureVerificationError:
        raise ProblemError(
            400,
            "invalid-signature",
            "The Stripe-Signature header does not match this payload and the webhook secret, "
            "or its timestamp is too old.",
            title="Invalid signature",
        ) from None
    except (ValueError, ValidationError):
        raise ProblemError(
            400, "invalid-event", "The body is not a Stripe event.", title="Invalid event"
        ) from None


async def apply_event(
    session: AsyncSession, event: StripeEventEnvelope, now: datetime
) -> StripeEventReceipt:
    if not await repository.record_stripe_event(session, event.id, event.type):
        return StripeEventReceipt(event_id=event.id, outcome="duplicate")
    tenant = await _event_tenant(session, event)
    outcome = _apply(tenant, event, now) if tenant else "unknown-firm"
    if outcome == "unknown-firm":
        logger.warning(
            "stripe event for no known firm: recorded, not applied",
            extra={"event_id": event.id, "event_type": event.type},
        )
    await repository.set_stripe_event_outcome(
        session, event.id, tenant.id if tenant else None, outcome
    )
    if outcome == "applied":
        assert tenant is not None
        detail = f"Stripe event {event.type} ({event.id}): plan {tenant.subscription_status}"
        await _record(session, audit.STRIPE, tenant, "subscription.stripe_event", detail)
        after_commit(session, forget_principals)
    return StripeEventReceipt(event_id=event.id, outcome=outcome)


async def _event_tenant(session: AsyncSession, event: StripeEventEnvelope) -> Tenant | None:
    item = event.data.object
    if event.type == _CHECKOUT_COMPLETED:
        return await _tenant_by_id(session, item.get("client_reference_id"))
    if event.type in _SUBSCRIPTION_EVENTS:
        return await repository.tenant_by_stripe_ids(
            session, _text(item.get("id")), _text(item.get("customer"))
        )
    return None


async def _tenant_by_id(session: AsyncSession, value: object) -> Tenant | None:
    try:
        tenant_id = UUID(str(value))
    except ValueError:
        return None
    return await repository.tenant(session, tenant_id, for_update=True)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _apply(tenant: Tenant, event: StripeEventEnvelope, now: datetime) -> str:
    created = datetime.fromtimestamp(event.created, UTC)
    if tenant.stripe_event_at is not None and created < tenant.stripe_event_at:
        return "stale"
    item = event.data.object
    if event.type == _CHECKOUT_COMPLETED:
        if item.get("payment_status") == "unpaid":
            return "ignored"
        tenant.stripe_customer_id = _text(item.get("customer")) or tenant.stripe_customer_id
        tenant.stripe_subscription_id = (
            _text(item.get("subscription")) or tenant.stripe_subscription_id
        )
        status: SubscriptionStatus | None = SubscriptionStatus.ACTIVE
    else:
        deleted = event.type == "customer.subscription.deleted"
        status = (
            SubscriptionStatus.CANCELLED
            if deleted
            else _STRIPE_STATUSES.get(str(item.get("status")))
        )
        tenant.current_period_ends_at = _period_end(item) or tenant.current_period_ends_at
    if status is None:
        return "ignored"
    tenant.stripe_event_at = created
    set_status(tenant, status, now)
    return "applied"


def _period_end(subscription: dict[str, Any]) -> datetime | None:
    """`current_period_end` sits on the subscription in older Stripe API versions and on its
    items in newer ones."""
    end = subscription.get("current_period_end")
    if end is None:
        items = (subscription.get("items") or {}).get("data") or [{}]
        end = items[0].get("current_period_end")
    return datetime.fromtimestamp(int(end), UTC) if isinstance(end, int | float) else None


def set_status(tenant: Tenant, status: SubscriptionStatus, now: datetime) -> None:
    if tenant.subscription_status != status:
        tenant.subscription_status = status
        tenant.subscription_status_since = now


async def _ops_tenant(session: AsyncSession, tenant_id: UUID) -> Tenant:
    tenant = await repository.tenant(session, tenant_id, for_update=True)
    if tenant is None:
        raise ProblemError(404, "not-found", f"No firm has the tenant id {tenant_id}.")
    return tenant


async def _record(
    session: AsyncSession, actor: audit.Actor, tenant: Tenant, action: str, detail: str
) -> None:
    await audit.record(
        session, tenant.id, actor, AuditKind.SUBSCRIPTION, action, "the firm's plan", detail
    )


async def set_plan(
    session: AsyncSession,
    actor: audit.Actor,
    tenant_id: UUID,
    status: SubscriptionStatus,
    now: datetime,
) -> Tenant:
    """An operator's decision, e.g. a firm paying by invoice; reports follow at once."""
    tenant = await _ops_tenant(session, tenant_id)
    before = tenant.subscription_status
    set_status(tenant, status, now)
    await session.flush()
    await _record(session, actor, tenant, "subscription.set", f"plan {before} → {status}")
    after_commit(session, forget_principals)
    return tenant


async def extend_trial(
    session: AsyncSession, actor: audit.Actor, tenant_id: UUID, days: int, now: datetime
) -> Tenant:
    """`days` more than the trial's end, or than now when it has already ended."""
    tenant = await _ops_tenant(session, tenant_id)
    ends = trial_ends_at(tenant)
    if ends is None:
        raise ProblemError(
            409,
            "trial-not-started",
            "This firm's trial has not started (it starts when Karbon first accepts its keys): "
            "there is nothing to extend yet.",
            title="Trial not started",
        )
    tenant.trial_extended_until = max(ends, now) + timedelta(days=days)
    await session.flush()
    until = tenant.trial_extended_until.isoformat(timespec="minutes")
    await _record(session, actor, tenant, "trial.extended", f"{days} more days, until {until}")
    after_commit(session, forget_principals)
    return tenant
