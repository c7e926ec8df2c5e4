"""What a failed sync tells the firm: the likely cause, the steps to fix it, and (for
rejected keys) one e-mail to the firm's admins per incident."""

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
    KarbonProtocolError,
    KarbonRequestError,
    KarbonUnavailable,
)
from app.tenancy import repository

logger = logging.getLogger(__name__)

ALERT_SUBJECT = "Reckonry stopped syncing from Karbon: your API keys were rejected"
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
    await send_email(settings, admins, ALERT_SUBJECT, _body(failure))
    await mark_error_alerted(session, tenant_id, datetime.now(UTC))
    return True


def _body(failure: SyncFailure) -> str:
    steps = "\n".join(f"{number}. {step}" for number, step in enumerate(failure.steps, 1))
    return (
        "Reckonry's last sync from Karbon stopped because Karbon refused the API keys.\n\n"
        f"Likely cause: {failure.likely_cause}\n\n"
        f"What to do:\n{steps}\n\n"
        "Everything already synced stays available in Reckonry; reports keep working.\n"
    )
