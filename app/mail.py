"""Sending e-mail through the configured SMTP server.

Without `SMTP_HOST` (development), messages are written to the log instead of sent.
"""

import logging
from collections.abc import Sequence
from email.message import EmailMessage

import aiosmtplib

from app.settings import Settings

logger = logging.getLogger(__name__)


async def send_email(settings: Settings, to: Sequence[str], subject: str, body: str) -> None:
    if not to:
        return
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message.set_content(body)
    if settings.smtp_host is None:
        logger.warning(
            "e-mail not sent: SMTP_HOST is not set",
            extra={"to": list(to), "subject": subject},
        )
        return
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        start_tls=settings.smtp_starttls,
        timeout=30,
    )
