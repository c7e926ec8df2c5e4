"""A firm's plan: the 7-day trial from the first successful Karbon key validation, then a
subscription that is `active`, `past_due` or `cancelled`.

A firm that pays (active, or past due while Stripe retries the card) reads reports and syncs;
any other firm does while its trial runs. No plan change touches the firm's data.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from app.kit.problems import ProblemError
from app.models import SubscriptionStatus

TRIAL_LENGTH = timedelta(days=7)
PAYING = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})


class PlanTerms(Protocol):
    """What the plan reads of a tenant."""

    @property
    def trial_started_at(self) -> datetime | None: ...

    @property
    def trial_extended_until(self) -> datetime | None: ...

    @property
    def subscription_status(self) -> str: ...


class TrialStatus(StrEnum):
    NOT_STARTED = "not_started"
    ACTIVE = "active"
    ENDED = "ended"
    SUBSCRIBED = "subscribed"


@dataclass(frozen=True)
class TrialState:
    status: TrialStatus
    started_at: datetime | None
    ends_at: datetime | None
    days_left: int | None


@dataclass(frozen=True)
class PlanState:
    status: SubscriptionStatus
    trial: TrialState

    @property
    def allows_reports_and_syncs(self) -> bool:
        return self.trial.status is not TrialStatus.ENDED

    @property
    def subscribed(self) -> bool:
        return self.status in PAYING


def trial_ends_at(tenant: PlanTerms) -> datetime | None:
    """7 days after the start, or later when an operator extended it; None before it starts."""
    started = tenant.trial_started_at
    if started is None:
        return None
    extended = tenant.trial_extended_until
    return max(started + TRIAL_LENGTH, extended) if extended else started + TRIAL_LENGTH


def plan_state(tenant: PlanTerms, now: datetime) -> PlanState:
    status = SubscriptionStatus(tenant.subscription_status)
    started = tenant.trial_started_at
    ends = trial_ends_at(tenant)
    days_left = max(0, math.ceil((ends - now) / timedelta(days=1))) if ends else None
    if status in PAYING:
        trial = TrialStatus.SUBSCRIBED
    elif ends is None:
        trial = TrialStatus.NOT_STARTED
    elif now < ends:
        trial = TrialStatus.ACTIVE
    else:
        trial = TrialStatus.ENDED
    return PlanState(status, TrialState(trial, started, ends, days_left))


def subscription_required(state: PlanState, what: str) -> ProblemError:
    """The 402 for a firm whose trial has ended and that does not pay; `what` was refused."""
    ended = f"{state.trial.ends_at:%Y-%m-%d}" if state.trial.ends_at else "its end"
    lapsed = (
        "The subscription was cancelled"
        if state.status is SubscriptionStatus.CANCELLED
        else "No subscription is active"
    )
    return ProblemError(
        402,
        "subscription-required",
        f"The trial ended on {ended}. {lapsed}: subscribe ({what} resume at once; "
        "GET /api/v1/billing gives the link). Your synced data is kept.",
        title="Subscription required",
        trial_ended_at=state.trial.ends_at.isoformat() if state.trial.ends_at else None,
        subscription_status=state.status.value,
    )
