"""When and how long to wait before asking Karbon again.

Karbon's ``Retry-After`` is honoured exactly (no jitter: jitter on top of it made other
clients retry too early or too late), only capped when absurd. When the header is missing the
429 body's "Try again in N seconds" is used. Jitter applies only to our own computed backoff.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from app.sync.karbon.errors import karbon_message

_TRY_AGAIN_IN = re.compile(r"try again in\s+(\d+(?:\.\d+)?)\s*second", re.IGNORECASE)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    """Attempts per request for 429, 5xx and transport errors (the first one included)."""
    max_malformed_attempts: int = 3
    """Attempts per request when a 200 carries unreadable JSON."""
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0
    """A longer Retry-After is treated as this; waiting hours would only stall the sync."""
    default_throttle_delay: float = 10.0
    """Wait on a 429 that says nothing about how long."""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter for the ``attempt``-th failure (1-based)."""
        ceiling: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def throttle_delay(self, response: httpx.Response, body: Any) -> float:
        """How long Karbon asked us to wait after a 429, capped."""
        delay = retry_after_seconds(response.headers.get("Retry-After"))
        if delay is None:
            delay = _seconds_from_message(karbon_message(body))
        if delay is None:
            delay = self.default_throttle_delay
        return min(max(delay, 0.0), self.max_retry_after)


def retry_after_seconds(header: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), None if unusable."""
    if not header:
        return None
    value = header.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - (now or datetime.now(UTC))).total_seconds()


def _seconds_from_message(message: str | None) -> float | None:
    match = _TRY_AGAIN_IN.search(message or "")
    return float(match.group(1)) if match else None
