"""The trial clock: 7 days from the first successful Karbon key validation."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

TRIAL_LENGTH = timedelta(days=7)


class TrialTerms(Protocol):
    """What the trial clock reads of a tenant."""

    @property
    def trial_started_at(self) -> datetime | None: ...

    @property
    def subscription_active(self) -> bool: ...


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

    @property
    def allows_reports_and_syncs(self) -> bool:
        return self.status is not TrialStatus.ENDED


def trial_state(tenant: TrialTerms, now: datetime) -> TrialState:
    started = tenant.trial_started_at
    ends = started + TRIAL_LENGTH if started else None
    days_left = max(0, math.ceil((ends - now) / timedelta(days=1))) if ends else None
    if tenant.subscription_active:
        status = TrialStatus.SUBSCRIBED
    elif ends is None:
        status = TrialStatus.NOT_STARTED
    elif now < ends:
        status = TrialStatus.ACTIVE
    else:
        status = TrialStatus.ENDED
    return TrialState(status, started, ends, days_left)
