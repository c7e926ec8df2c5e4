"""Typed failures of the Karbon client.

Every message is built by this module from Karbon's own words and our context; none of them
ever carries the AccessKey or the Bearer token (see ``redact``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

RejectedKey = Literal["access_key", "bearer_token", "unknown"]

_REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Remove every secret from ``text``; a defence in depth should Karbon echo one back."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def karbon_message(body: Any) -> str | None:
    """Karbon's human message from any of its error shapes, or None."""
    if not isinstance(body, dict):
        return None
    nested = body.get("error")
    for holder in (nested, body):
        if isinstance(holder, dict):
            for field in ("message", "Message"):
                value = holder.get(field)
                if isinstance(value, str) and value:
                    return value
    return None


def classify_rejected_key(message: str | None) -> RejectedKey:
    """Which key Karbon rejected, judged from its 401 message.

    Karbon reports AccessKey problems in JWT terms ("JWT not present.", "JWT is invalid.") and
    Bearer problems in Authorization/token terms. A Bearer message may also name the AccessKey
    ("The Bearer token is not valid for this AccessKey."), so JWT is checked first, then the
    Bearer vocabulary, and a bare AccessKey mention last.
    """
    text = (message or "").lower()
    if "jwt" in text:
        return "access_key"
    if any(word in text for word in ("bearer", "authorization", "token", "application")):
        return "bearer_token"
    if "accesskey" in text or "access key" in text:
        return "access_key"
    return "unknown"


WHERE_TO_FIND_KEYS: Final = "In Karbon, open Settings → Developer (Connected Apps → Manage)."
WHERE_TO_GRANT_ENDPOINTS: Final = (
    "In Karbon, open Settings → API Applications (Settings → Developer, Connected Apps → "
    "Manage), edit Reckonry's API application and grant it read access to"
)


def grant_steps(endpoints: Iterable[str]) -> str:
    """The Karbon setting to change so this API application may read ``endpoints``."""
    return f"{WHERE_TO_GRANT_ENDPOINTS} {', '.join(f'GET {e}' for e in endpoints)}."


@dataclass(frozen=True)
class Rejection:
    """What the firm is told when Karbon rejects a key."""

    slug: str
    """The problem type the key check answers with."""
    field: str | None
    """The pasted field Karbon rejected, when it said which."""
    when_pasted: str
    """The key check's detail: the keys were just pasted."""
    likely_cause: str
    """A sync's failure report: the keys worked before."""


REJECTIONS: Final[Mapping[RejectedKey, Rejection]] = {
    "access_key": Rejection(
        slug="karbon-rejected-access-key",
        field="access_key",
        when_pasted="Karbon rejected the AccessKey. Copy the whole AccessKey again (the long "
        "JWT) and check it was not regenerated since. " + WHERE_TO_FIND_KEYS,
        likely_cause="Karbon rejected the AccessKey: it was most likely rotated or revoked in "
        "Karbon, or its API application was removed.",
    ),
    "bearer_token": Rejection(
        slug="karbon-rejected-bearer-token",
        field="bearer_token",
        when_pasted="Karbon rejected the Bearer token for this AccessKey. Copy the Bearer token "
        "of the same API application again; it changes when it is regenerated. "
        + WHERE_TO_FIND_KEYS,
        likely_cause="Karbon rejected the Bearer token: it was most likely regenerated in "
        "Karbon, or it does not belong to the same API application as the AccessKey.",
    ),
    "unknown": Rejection(
        slug="karbon-rejected-unknown",
        field=None,
        when_pasted="Karbon rejected the keys without saying which one. Generate both again in "
        "Karbon and paste them together. " + WHERE_TO_FIND_KEYS,
        likely_cause="Karbon rejected the keys: they were most likely rotated or revoked in "
        "Karbon.",
    ),
}


class KarbonError(Exception):
    """Base of every failure raised by the Karbon client."""


class ReadOnlyViolation(KarbonError):  # noqa: N818 (the name the product uses)
    """A request that is not a GET on an allowed endpoint; raised before anything is sent."""


class KarbonAuthError(KarbonError):
    """Karbon answered 401: the keys are wrong, revoked or swapped. Not retryable."""

    def __init__(self, status: int, rejected_key: RejectedKey, karbon_message: str | None) -> None:
        self.status = status
        self.rejected_key: RejectedKey = rejected_key
        self.karbon_message = karbon_message
        super().__init__(
            f"Karbon authentication failed ({status}, rejected: {rejected_key}): "
            f"{karbon_message or 'no message'}"
        )


class KarbonPermissionError(KarbonError):
    """Karbon answered 403: the keys work, but their API application may not read this
    endpoint (Karbon grants endpoints to each application one by one). Not retryable."""

    def __init__(self, endpoint: str, karbon_message: str | None) -> None:
        self.endpoint = endpoint
        """The path template refused, e.g. ``/v3/Invoices`` or ``/v3/Invoices/{key}``."""
        self.karbon_message = karbon_message
        super().__init__(
            f"Karbon refused GET {endpoint} (403): this API application may not read it; "
            f"{karbon_message or 'no message'}"
        )


class KarbonRequestError(KarbonError):
    """Karbon refused the request itself (a 4xx other than 401/403/429). Not retryable."""

    def __init__(self, status: int, url: str, karbon_message: str | None) -> None:
        self.status = status
        self.url = url
        self.karbon_message = karbon_message
        super().__init__(f"Karbon answered {status} for {url}: {karbon_message or 'no message'}")


class KarbonUnavailable(KarbonError):  # noqa: N818 (the name the product uses)
    """Retries on 429/5xx/transport errors ran out; the whole sync can be retried later."""

    def __init__(self, url: str, attempts: int, last_failure: str) -> None:
        self.url = url
        self.attempts = attempts
        self.last_failure = last_failure
        super().__init__(
            f"Karbon unavailable for {url} after {attempts} attempts; last failure: {last_failure}"
        )


class KarbonProtocolError(KarbonError):
    """Karbon's answer cannot be used: unreadable JSON, a paging loop or a foreign next link."""
