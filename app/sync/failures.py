"""What a failed sync tells the firm: the likely cause, the steps to fix it, and (for
rejected keys or a missing permission) one e-mail to the firm's admins per incident."""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.mail import send_email
from app.settings import Settings
from app.sync.connection import mark_error_alerted, record_sync_error
from app.sync.karbon.errors import (
    REJECTIONS,
    WHERE_TO_FIND_KEYS,
    KarbonAuthError,
    KarbonError,
    KarbonPermissionError,
    KarbonProtocolError,
    KarbonRequestError,
    KarbonUnavailable,
    grant_steps,
)
from app.tenancy import repository

logger = logging.getLogger(__name__)

ALERT_SUBJECT = "Reckonry stopped syncing from Karbon: your API keys were rejected"
PERMISSION_ALERT_SUBJECT = (
    "Reckonry stopped syncing from Karbon: an endpoint is not granted to its API application"
)
PASTE_AGAIN = (
    "Paste the new AccessKey and Bearer token in Reckonry under Settings → Karbon; "
    "syncing resumes on its own."
)


@dataclass(frozen=True)
class SyncFailure:
    code: str
    message: str
    likely_cause: str | None
    steps: list[str]
    alert_subject: str = ALERT_SUBJECT
    alert_reason: str = "Karbon refused the API keys"
    """Why the sync stopped, in the admins' e-mail."""


def describe(error: Exception) -> SyncFailure:
    match error:
        case KarbonAuthError():
            return SyncFailure(
                code=f"karbon_rejected_{error.rejected_key}",
                message=str(error),
                likely_cause=REJECTIONS[error.rejected_key].likely_cause,
                steps=[
                    WHERE_TO_FIND_KEYS,
                    "Generate a new AccessKey and Bearer token.",
                    PASTE_AGAIN,
                ],
            )
        case KarbonPermissionError():
            return SyncFailure(
                code="karbon_permission_denied",
                message=str(error),
                likely_cause=f"The keys work, but their Karbon API application may not read "
                f"{error.endpoint}: Karbon grants endpoints to each API application one by one, "
                "and this one was not granted (or no longer is).",
                steps=[
                    grant_steps([error.endpoint]),
                    "Nothing to paste in Reckonry: the keys stay the same. The next scheduled "
                    "sync picks up once the endpoint is granted, or start one under Settings → "
                    "Karbon.",
                ],
                alert_subject=PERMISSION_ALERT_SUBJECT,
                alert_reason=f"Karbon refused to let its API application read {error.endpoint}",
            )
        case KarbonUnavailable():
            return SyncFailure(
                code="karbon_unavailable",
                message=str(error),
                likely_cause="Karbon did not answer or kept rate-limiting after several retries.",
                steps=["Nothing to do: the next scheduled sync retries on its own."],
            )
        case KarbonRequestError() | KarbonProtocolError():
            return SyncFailure(
                code="karbon_unexpected_response",
                message=str(error),
                likely_cause="Karbon answered in a way Reckonry did not expect.",
                steps=["The next sync retries; if this persists, contact Reckonry support."],
            )
        case KarbonError():
            return SyncFailure("karbon_error", str(error), None, [])
    return SyncFailure(
        code="internal_error",
        message="The sync stopped because of an internal error; it has been logged.",
        likely_cause=None,
        steps=["The next scheduled sync retries; contact Reckonry support if this persists."],
    )


async def report_failure(session: AsyncSession, tenant_id: UUID, failure: SyncFailure) -> None:
    await record_sync_error(
        session,
        tenant_id,
        code=failure.code,
        message=failure.message,
        likely_cause=failure.likely_cause,
        steps=failure.steps,
    )


async def alert_admins_once(
    session: AsyncSession, settings: Settings, tenant_id: UUID, failure: SyncFailure
) -> bool:
    """E-mail the firm's admins unless this incident was already alerted; True if sent."""
    connection = await repository.connection(session, tenant_id)
    if connection is None or connection.alerted_at is not None:
        return False
    admins = await repository.active_admin_emails(session, tenant_id)
    await send_email(settings, admins, failure.alert_subject, _body(failure))
    await mark_error_alerted(session, tenant_id, datetime.now(UTC))
    return True


def _body(failure: SyncFailure) -> str:
    steps = "\n".join(f"{number}. {step}" for number, step in enumerate(failure.steps, 1))
    return (
        f"Reckonry's last sync from Karbon stopped because {failure.alert_reason}.\n\n"
        f"Likely cause: {failure.likely_cause}\n\n"
        f"What to do:\n{steps}\n\n"
        "Everything already synced stays available in Reckonry; reports keep working.\n"
    )
