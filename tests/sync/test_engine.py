"""The sync against the sandbox Karbon: what it stores, incrementally and under faults."""

import gc
import weakref
from collections.abc import AsyncGenerator
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import (
    Client,
    Invoice,
    InvoiceLine,
    RawResponse,
    Staff,
    SyncKind,
    SyncRun,
    SyncState,
    TimeEntry,
    WorkItem,
)
from app.sync.engine import _prefetching
from sandbox.model import Firm
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, sync_now

Snapshot = dict[str, dict[str, tuple[Any, ...]]]


def expected_from(firm: Firm) -> Snapshot:
    """What a complete sync must hold, computed from the sandbox's own data."""
    email = {user.key: user.email for user in firm.users.values()}
    clients = {
        **{
            c.key: (
                "Contact",
                email.get(c.team.owner_key or ""),
                email.get(c.team.manager_key or ""),
            )
            for c in firm.contacts.values()
        },
        **{
            o.key: (
                "Organization",
                email.get(o.team.owner_key or ""),
                email.get(o.team.manager_key or ""),
            )
            for o in firm.organizations.values()
        },
    }
    return {
        "staff": {u.key: (u.name, u.capacity_minutes_per_week) for u in firm.users.values()},
        "clients": clients,
        "work_items": {
            w.key: (w.client_key, w.fee_type, w.fee_value, w.primary_status, w.completed_date)
            for w in firm.work_items.values()
        },
        "time_entries": {
            e.key: (e.user_key, e.minutes, Decimal(e.hourly_rate), e.billed_status, e.work_item_key)
            for e in firm.time_entries()
        },
        "invoices": {
            i.key: _invoice(i.status, i.client.client_key, [line.amount for line in i.line_items])
            for i in firm.visible_invoices()
        },
    }


async def stored(sessions: async_sessionmaker[AsyncSession], tenant_id: UUID) -> Snapshot:
    """The live (not deleted) rows of the tenant, in the same shape as `expected_from`."""
    async with sessions() as session:

        def live(model: Any) -> Any:
            return select(model).where(model.tenant_id == tenant_id, model.deleted_at.is_(None))

        staff = (await session.execute(live(Staff))).scalars().all()
        clients = (await session.execute(live(Client))).scalars().all()
        work_items = (await session.execute(live(WorkItem))).scalars().all()
        entries = (await session.execute(live(TimeEntry))).scalars().all()
        invoices = (await session.execute(live(Invoice))).scalars().all()
        lines = (
            (await session.execute(select(InvoiceLine).where(InvoiceLine.tenant_id == tenant_id)))
            .scalars()
            .all()
        )
    lines_of: dict[str, list[Decimal]] = {}
    for line in lines:
        lines_of.setdefault(line.invoice_key, []).append(line.amount)
    return {
        "staff": {s.user_key: (s.name, s.capacity_minutes_per_week) for s in staff},
        "clients": {c.client_key: (c.client_type, c.owner_email, c.manager_email) for c in clients},
        "work_items": {
            w.work_item_key: (
                w.client_key,
                w.fee_type,
                w.fee_value,
                w.primary_status,
                w.completed_date,
            )
            for w in work_items
        },
        "time_entries": {
            e.time_entry_key: (
                e.user_key,
                e.minutes,
                e.hourly_rate,
                e.billed_status,
                e.work_item_key,
            )
            for e in entries
        },
        "invoices": {
            i.invoice_key: _invoice(i.status, i.client_key, lines_of.get(i.invoice_key, []))
            for i in invoices
        },
    }


def _invoice(status: str | None, client_key: str | None, lines: list[Decimal]) -> tuple[Any, ...]:
    """An invoice as compared: a voided one's lines are in no figure, so the sync does not read
    them (the list alone says it is voided) and they are not compared."""
    if status == "Voided":
        return (status, client_key)
    return (status, client_key, len(lines), sum(lines, Decimal(0)))


def assert_same(actual: Snapshot, expected: Snapshot) -> None:
    for entity in expected:
        missing = expected[entity].keys() - actual[entity].keys()
        extra = actual[entity].keys() - expected[entity].keys()
        assert not missing and not extra, f"{entity}: missing {missing}, extra {extra}"
        wrong = {
            k: (actual[entity][k], v) for k, v in expected[entity].items() if actual[entity][k] != v
        }
        assert not wrong, f"{entity}: (stored, expected) differ for {wrong}"


async def test_a_full_sync_stores_exactly_the_sandbox_data(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    run_id, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"
    assert_same(await stored(sessions, tenant_id), expected_from(sandbox.tenant("Demo firm").firm))
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
        responses = select(RawResponse.id).where(RawResponse.kind != "record")
        raw_count = len((await session.execute(responses)).all())
    assert run is not None and run.state == SyncState.SUCCEEDED
    counters = sandbox.counters("Demo firm")
    assert run.requests_made == counters["requests"] == raw_count
    assert all(stream["state"] == "done" for stream in run.progress.values())


async def test_an_incremental_sync_after_changes_equals_a_fresh_full_sync(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = job_context["deps"].settings
    incremental_tenant = await connect_tenant(sessions, settings, sandbox)
    await sync_now(job_context, incremental_tenant)
    changes = sandbox.advance("Demo firm", 120)
    # The comparison only proves something if Karbon deleted, voided and edited records.
    for change in ("contacts_deleted", "invoices_voided", "clients_edited", "time_entries_deleted"):
        assert changes.get(change), f"the sandbox made no {change} in 120 days"
    _, outcome = await sync_now(job_context, incremental_tenant, SyncKind.INCREMENTAL)
    assert outcome == "succeeded"
    fresh_tenant = await connect_tenant(sessions, settings, sandbox, name="Fresh LLP")
    await sync_now(job_context, fresh_tenant, SyncKind.FULL)
    firm = sandbox.tenant("Demo firm").firm
    assert_same(await stored(sessions, fresh_tenant), expected_from(firm))
    assert_same(await stored(sessions, incremental_tenant), expected_from(firm))


async def test_text_postgresql_cannot_store_does_not_stop_the_sync(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    # PostgreSQL holds no NUL character; Karbon's JSON may. The record is kept, the NUL
    # replaced, and the rest of the firm synced.
    firm = sandbox.tenant("Demo firm").firm
    organization = next(iter(firm.organizations.values()))
    organization.full_name = "Acme\x00 Ltd"
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"
    assert_same(await stored(sessions, tenant_id), expected_from(firm))
    async with sessions() as session:
        client = await session.get(Client, (tenant_id, organization.key))
    assert client is not None and client.name == "Acme\ufffd Ltd"
    assert client.raw["FullName"] == "Acme\ufffd Ltd"


class _Page:
    """A stand-in page that can be weakly referenced."""


async def test_reading_ahead_lets_the_last_page_go_once_the_list_ends() -> None:
    """The read-ahead's end must not tie the last page into a cycle that only the garbage
    collector frees: at many tenants those collections stopped the event loop."""
    seen: list[weakref.ref[_Page]] = []

    async def pages() -> AsyncGenerator[_Page, None]:
        for _ in range(3):
            page = _Page()
            seen.append(weakref.ref(page))
            yield page

    gc.collect()
    gc.disable()
    try:
        read = [page async for page in _prefetching(pages())]  # type: ignore[arg-type]
        assert len(read) == 3
        del read
        assert all(ref() is None for ref in seen)
    finally:
        gc.enable()
