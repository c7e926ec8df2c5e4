"""Where each stream's records are stored, and which rows a stream's complete read covers."""

from typing import Any

from app.models import Client, Invoice, Staff, Timesheet, WorkItem

STREAM_MODELS: dict[str, Any] = {
    "users": Staff,
    "contacts": Client,
    "organizations": Client,
    "work_items": WorkItem,
    "timesheets": Timesheet,
    "invoices": Invoice,
}


def deletion_scope(stream: str) -> dict[str, str]:
    """Contacts and Organizations share the clients table: each read covers its own type."""
    return {
        "contacts": {"client_type": "Contact"},
        "organizations": {"client_type": "Organization"},
    }.get(stream, {})
