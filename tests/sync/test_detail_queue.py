"""Lists first, then the owed details from the queue by value, each batch checkpointed."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import (
    RECHECK_PRIORITY,
    PendingDetail,
    Staff,
    SyncKind,
    SyncRun,
    SyncState,
    WorkItem,
)
from app.sync import repository
from app.sync.access import KarbonAccess
from app.sync.engine import (
    DETAIL_FAILURES_IN_A_ROW,
    DETAIL_WINDOW,
    RunPlan,
    SyncEngine,
    capture_response,
)
from app.sync.jobs import run_sync
from app.sync.karbon.budget import BudgetRegistry
from app.sync.karbon.client import KarbonClient, KarbonResponse
from app.sync.karbon.endpoints import Resource
from app.sync.karbon.errors import KarbonRequestError
from app.sync.streams import (
    ACTIVE_CLIENT_PRIORITY,
    ACTIVE_PRIORITY,
    ACTIVITY_DAYS,
    CAPACITY_PRIORITY,
    INVOICES_STREAM,
    REST_PRIORITY,
    USERS_STREAM,
    invoice_priority,
)
from sandbox.model import Firm
from sandbox.state import Sandbox
from tests.sync.conftest import (
    FAST_RETRIES,
    SANDBOX_TODAY,
    connect_tenant,
    queue_sync,
    sync_now,
)
from tests.sync.test_engine import assert_same, expected_from, stored

FIRM = "Demo firm"
DETAIL_PATHS = {
    "Users": "users",
    "WorkItems": "work_items",
    "Organizations": "organizations",
    "Invoices": "invoices",
}


def test_priorities_put_capacity_first_and_re_checks_last() -> None:
    assert USERS_STREAM.detail_priority({"Id": "u"}, SANDBOX_TODAY) == CAPACITY_PRIORITY
    levels = [CAPACITY_PRIORITY, ACTIVE_PRIORITY, ACTIVE_CLIENT_PRIORITY, REST_PRIORITY]
    assert levels == sorted(set(levels)) and REST_PRIORITY < RECHECK_PRIORITY


def test_an_invoice_dated_in_the_last_twelve_months_is_read_with_the_active_work() -> None:
    def dated(day: str | None) -> int:
        return invoice_priority({"InvoiceKey": "i", "InvoiceDate": day}, SANDBOX_TODAY)

    recent = (SANDBOX_TODAY - timedelta(days=ACTIVITY_DAYS - 1)).isoformat()
    old = (SANDBOX_TODAY - timedelta(days=ACTIVITY_DAYS + 1)).isoformat()
    assert dated(f"{recent}T00:00:00Z") == ACTIVE_PRIORITY
    assert dated(f"{old}T00:00:00Z") == REST_PRIORITY
    assert dated(None) == dated("soon") == REST_PRIORITY, "no readable date: not recent"


def test_a_voided_invoice_is_owed_no_detail() -> None:
    # Its lines are in no figure (rules 1 and 9): not even a new one whose list lacks them.
    invoice = {"InvoiceKey": "i", "UpdatedAt": "2024-01-01T00:00:00Z"}
    assert INVOICES_STREAM.needs_detail({**invoice, "InvoiceStatus": "Paid"}, None, token="t")
    for voided in ("Voided", "voided", "Vo ided"):
        raw = {**invoice, "InvoiceStatus": voided}
        assert not INVOICES_STREAM.needs_detail(raw, None, token="t"), voided


@dataclass
class Recorded:
    """Every response the engine received, in order of arrival."""

    urls: list[str]

    def calls(self) -> list[tuple[str, str | None]]:
        """(resource, key) of each response: key None for a list page."""
        out = []
        for url in self.urls:
            parts = urlsplit(url).path.rstrip("/").split("/")
            resource_at = parts.index("v3") + 1
            key = parts[resource_at + 1] if len(parts) > resource_at + 1 else None
            out.append((parts[resource_at], key))
        return out

    def details(self) -> list[tuple[str, str]]:
        return [(DETAIL_PATHS[r], key) for r, key in self.calls() if key is not None]


@asynccontextmanager
async def engine_for(
    job_context: dict[str, Any],
    sandbox: Sandbox,
    tenant_id: UUID,
    *,
    kind: SyncKind = SyncKind.INITIAL,
    recheck_until: datetime | None = None,
    in_flight: int = 8,
) -> AsyncIterator[tuple[SyncEngine, Recorded]]:
    """A running sync run's engine, with `in_flight` requests at most (1: in queue order)."""
    deps = job_context["deps"]
    run_id = await queue_sync(job_context, tenant_id, kind)
    now = datetime.now(UTC)
    async with unit_of_work(deps.sessions) as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None
        run.state, run.started_at = SyncState.RUNNING, now
        plan = RunPlan(
            run_id=run_id,
            tenant_id=tenant_id,
            kind=kind,
            started_at=now,
            today=SANDBOX_TODAY,
            high_water_marks=await repository.high_water_marks(session, tenant_id),
            open_periods=await repository.open_periods(session, tenant_id),
            recheck_until=recheck_until,
        )
    recorded = Recorded([])

    async def record(response: KarbonResponse) -> None:
        recorded.urls.append(response.url)
        await capture_response(response)

    access = KarbonAccess(
        base_url=deps.settings.karbon_base_url,
        budgets=BudgetRegistry(rate_per_second=400.0, max_in_flight=in_flight),
        retry=FAST_RETRIES,
        timeout=httpx.Timeout(2.0),
    )
    keys = sandbox.tenant(FIRM)
    async with access.client(tenant_id, keys.access_key, keys.bearer_token, record) as client:
        yield SyncEngine(deps.sessions, client, plan, {}, {}), recorded
    async with unit_of_work(deps.sessions) as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None
        run.state = SyncState.SUCCEEDED


async def pending(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> dict[tuple[str, str], int]:
    async with sessions() as session:
        query = select(PendingDetail).where(PendingDetail.tenant_id == tenant_id)
        return {(p.stream, p.record_key): p.priority for p in (await session.scalars(query))}


def expected_priorities(firm: Firm) -> dict[tuple[str, str], int]:
    """Each first-sync detail's priority by the rules, from the sandbox's own data. The
    sandbox's invoice list carries no lines: on a first sync, a work item's activity is its
    time."""
    since = SANDBOX_TODAY - timedelta(days=ACTIVITY_DAYS)
    entries = [
        e for sheet in firm.timesheets.values() if sheet.start_date >= since for e in sheet.entries
    ]
    recent_invoices = [i for i in firm.visible_invoices() if i.invoice_date > since]
    worked = {e.work_item_key for e in entries}
    active_clients = (
        {e.client_key for e in entries}
        | {firm.work_items[k].client_key for k in worked if k in firm.work_items}
        | {i.client.client_key for i in recent_invoices if not i.client_withheld}
    )
    priorities = {("users", key): CAPACITY_PRIORITY for key in firm.users}
    for key in firm.work_items:
        priorities["work_items", key] = ACTIVE_PRIORITY if key in worked else REST_PRIORITY
    for key in firm.organizations:
        active = key in active_clients
        priorities["organizations", key] = ACTIVE_CLIENT_PRIORITY if active else REST_PRIORITY
    for invoice in firm.visible_invoices():
        if invoice.status != "Voided":
            recent = invoice in recent_invoices
            priorities["invoices", invoice.key] = ACTIVE_PRIORITY if recent else REST_PRIORITY
    return priorities


async def test_with_every_list_in_the_details_go_by_priority(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    firm = sandbox.tenant(FIRM).firm
    async with engine_for(job_context, sandbox, tenant_id, in_flight=1) as (engine, recorded):
        await engine.read_lists()
        await engine.read_details()
    calls = recorded.calls()
    first_detail = next(n for n, (_, key) in enumerate(calls) if key is not None)
    assert all(key is not None for _, key in calls[first_detail:]), "a list page after a detail"

    priority = expected_priorities(firm)
    details = recorded.details()
    assert sorted(details) == sorted(priority), "each owed detail read once, voided ones never"
    order = [(priority[d], d[0], d[1]) for d in details]
    assert order == sorted(order), "details read in (priority, stream, key) order"
    # Several levels take part, and the streams interleave by them.
    assert {p for p, _, _ in order} >= {CAPACITY_PRIORITY, ACTIVE_PRIORITY, REST_PRIORITY}
    assert_same(await stored(sessions, tenant_id), expected_from(firm))
    assert await pending(sessions, tenant_id) == {}


async def test_details_fill_the_turns_lists_leave_once_their_order_is_final(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """While lists are read, a stream's details are read once its lists are in and, for one
    whose details are brought forward by activity, the lists showing the activity too: each
    read in its final order, in turns the paging leaves idle."""
    sandbox.update_config({"latency": {"distribution": "constant", "median_seconds": 0.02}})
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    async with engine_for(job_context, sandbox, tenant_id) as (engine, recorded):
        await engine.run()
    calls = recorded.calls()
    last_page = {
        DETAIL_PATHS.get(resource, resource): n for n, (resource, key) in enumerate(calls)
        if key is None
    }  # fmt: skip
    waits_for = {
        "users": ["users"],
        "invoices": ["invoices"],
        "work_items": ["work_items", "Timesheets", "invoices"],
        "organizations": ["organizations", "Timesheets", "work_items", "invoices"],
    }
    for n, (resource, key) in enumerate(calls):
        if key is not None:
            stream = DETAIL_PATHS[resource]
            assert all(last_page[s] < n for s in waits_for[stream]), (stream, key)
    first_detail = next(n for n, (_, key) in enumerate(calls) if key is not None)
    assert first_detail < max(last_page.values()), "details fill in while lists are read"
    assert_same(await stored(sessions, tenant_id), expected_from(sandbox.tenant(FIRM).firm))
    assert await pending(sessions, tenant_id) == {}


async def test_a_changed_records_list_write_keeps_its_detail_values_until_the_detail_lands(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await sync_now(job_context, tenant_id)
    firm = sandbox.tenant(FIRM).firm
    user = next(u for u in firm.users.values() if u.capacity_minutes_per_week)
    work_item = next(w for w in firm.work_items.values() if w.fee_type == "FixedFee")
    old_capacity, old_fee = user.capacity_minutes_per_week, work_item.fee_value
    user.name, user.capacity_minutes_per_week = "Renamed Person", old_capacity + 60
    work_item.title, work_item.fee_type, work_item.fee_value = "Renamed work", "NonBillable", None
    sandbox.tenant(FIRM).data.invalidate()

    async with engine_for(job_context, sandbox, tenant_id, kind=SyncKind.FULL) as (engine, _):
        await engine.read_lists()
        async with sessions() as session:
            staff = await session.get(Staff, (tenant_id, user.key))
            item = await session.get(WorkItem, (tenant_id, work_item.key))
        assert staff is not None and item is not None
        assert staff.name == "Renamed Person", "the list's own fields are written"
        assert staff.capacity_minutes_per_week == old_capacity, "capacity kept until the detail"
        assert item.title == "Renamed work"
        assert (item.fee_type, item.fee_value) == ("FixedFee", old_fee)
        queued = await pending(sessions, tenant_id)
        assert set(queued) == {("users", user.key), ("work_items", work_item.key)}

        await engine.read_details()
    assert_same(await stored(sessions, tenant_id), expected_from(firm))
    assert await pending(sessions, tenant_id) == {}


async def test_a_full_run_reads_only_owed_details(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await sync_now(job_context, tenant_id)
    async with engine_for(job_context, sandbox, tenant_id, kind=SyncKind.FULL) as (engine, rec):
        await engine.run()
    assert rec.details() == [], "nothing changed: no detail is owed"
    assert rec.calls(), "every list was read"


async def test_re_checks_stop_at_recheck_until_and_owed_details_do_not(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    run_id, _ = await sync_now(job_context, tenant_id)
    firm = sandbox.tenant(FIRM).firm
    owed = [("work_items", key) for key in sorted(firm.work_items)[:3]]
    rechecks = [("users", key) for key in sorted(firm.users)]
    async with unit_of_work(sessions) as session:
        await repository.enqueue_details(
            session,
            tenant_id,
            run_id,
            [repository.OwedDetail(s, k, REST_PRIORITY) for s, k in owed]
            + [repository.OwedDetail(s, k, RECHECK_PRIORITY) for s, k in rechecks],
        )

    past = datetime.now(UTC) - timedelta(seconds=1)
    async with engine_for(job_context, sandbox, tenant_id, recheck_until=past) as (engine, rec):
        await engine.read_details()
    assert sorted(rec.details()) == sorted(owed)
    assert set(await pending(sessions, tenant_id)) == set(rechecks)

    async with engine_for(job_context, sandbox, tenant_id) as (engine, rec):
        await engine.read_details()
    assert sorted(rec.details()) == sorted(rechecks), "no limit: the re-checks are read"
    assert await pending(sessions, tenant_id) == {}


async def test_a_detail_gone_since_listing_does_not_fail_the_run(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    firm = sandbox.tenant(FIRM).firm
    async with engine_for(job_context, sandbox, tenant_id) as (engine, _):
        await engine.read_lists()
        gone = sorted(firm.work_items)[0]
        del firm.work_items[gone]
        sandbox.tenant(FIRM).data.invalidate()
        await engine.read_details()
    async with sessions() as session:
        item = await session.get(WorkItem, (tenant_id, gone))
    assert item is not None and item.deleted_at is None, "kept as listed"
    assert item.change_token is None, "its detail is owed again if it is listed again"
    assert await pending(sessions, tenant_id) == {}
    # The next complete read no longer lists it: it is marked deleted.
    _, outcome = await sync_now(job_context, tenant_id, SyncKind.FULL)
    assert outcome == "succeeded"
    async with sessions() as session:
        item = await session.get(WorkItem, (tenant_id, gone), populate_existing=True)
    assert item is not None and item.deleted_at is not None


async def _details_committed(
    sessions: async_sessionmaker[AsyncSession], run_id: UUID, at_least: int
) -> None:
    while True:
        async with sessions() as session:
            run = await session.get(SyncRun, run_id, populate_existing=True)
            assert run is not None and run.state in (SyncState.QUEUED, SyncState.RUNNING)
            if sum(s.get("details_done", 0) for s in run.progress.values()) >= at_least:
                return
        await asyncio.sleep(0.005)


def _requests(sandbox: Sandbox) -> int:
    return int(sandbox.counters(FIRM)["requests"])


async def _killed_mid_details(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> tuple[UUID, UUID]:
    """A first sync killed once some detail batches are committed; its tenant and run. Each
    request takes long enough that the details left outlast the poll for the commits on a busy
    machine (at 0.01 s a loaded machine saw the run finish before the kill)."""
    sandbox.update_config({"latency": {"distribution": "constant", "median_seconds": 0.1}})
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox, name="Kill")
    run_id = await queue_sync(job_context, tenant_id)
    worker = asyncio.create_task(run_sync(job_context, str(run_id)))
    await asyncio.wait_for(_details_committed(sessions, run_id, 2 * DETAIL_WINDOW), 60)
    worker.cancel()  # the worker dies mid-detail-phase, wherever it was
    await asyncio.gather(worker, return_exceptions=True)
    return tenant_id, run_id


async def test_a_kill_mid_details_repeats_at_most_one_window_and_ends_as_a_clean_run(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = job_context["deps"].settings
    clean_tenant = await connect_tenant(sessions, settings, sandbox)
    before = _requests(sandbox)
    await sync_now(job_context, clean_tenant)
    clean = _requests(sandbox) - before

    before = _requests(sandbox)
    tenant_id, run_id = await _killed_mid_details(sandbox, job_context, sessions)
    assert await pending(sessions, tenant_id), "killed with details still queued"
    assert await asyncio.wait_for(run_sync(job_context, str(run_id)), 60) == "succeeded"
    made = _requests(sandbox) - before

    assert clean <= made <= clean + DETAIL_WINDOW, (made, clean)
    assert await stored(sessions, tenant_id) == await stored(sessions, clean_tenant)
    assert_same(await stored(sessions, tenant_id), expected_from(sandbox.tenant(FIRM).firm))
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
    assert run is not None and run.state == SyncState.SUCCEEDED
    assert all(s["state"] == "done" and s["details_pending"] == 0 for s in run.progress.values())


async def test_details_a_failed_run_left_are_read_by_the_next_run(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id, run_id = await _killed_mid_details(sandbox, job_context, sessions)
    async with unit_of_work(sessions) as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None
        run.state, run.finished_at = SyncState.FAILED, datetime.now(UTC)
    left = await pending(sessions, tenant_id)
    assert left

    async with engine_for(job_context, sandbox, tenant_id, kind=SyncKind.INCREMENTAL) as (
        engine,
        recorded,
    ):
        await engine.run()
    assert sorted(recorded.details()) == sorted(left), "exactly what was left, nothing more"
    assert await pending(sessions, tenant_id) == {}
    assert_same(await stored(sessions, tenant_id), expected_from(sandbox.tenant(FIRM).firm))


async def test_a_queued_invoice_listed_as_voided_is_taken_off_unread(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    run_id, _ = await sync_now(job_context, tenant_id)
    firm = sandbox.tenant(FIRM).firm
    voided = next(i.key for i in firm.visible_invoices() if i.status == "Voided")
    paid = next(i.key for i in firm.visible_invoices() if i.status == "Paid")
    async with unit_of_work(sessions) as session:
        owed = [repository.OwedDetail("invoices", key, REST_PRIORITY) for key in (voided, paid)]
        await repository.enqueue_details(session, tenant_id, run_id, owed)
    async with engine_for(job_context, sandbox, tenant_id, kind=SyncKind.FULL) as (engine, rec):
        await engine.run()
    assert rec.details() == [("invoices", paid)], "the voided one is never read"
    assert await pending(sessions, tenant_id) == {}


async def test_a_queued_detail_of_a_record_no_longer_held_is_dropped_unread(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    run_id, _ = await sync_now(job_context, tenant_id)
    deleted = sorted(sandbox.tenant(FIRM).firm.work_items)[0]
    async with unit_of_work(sessions) as session:
        item = await session.get(WorkItem, (tenant_id, deleted))
        assert item is not None
        item.deleted_at = datetime.now(UTC)  # a complete read found it gone
        owed = [
            repository.OwedDetail("work_items", deleted, REST_PRIORITY),
            repository.OwedDetail("work_items", "never-listed", REST_PRIORITY),
        ]
        await repository.enqueue_details(session, tenant_id, run_id, owed)
    async with engine_for(job_context, sandbox, tenant_id) as (engine, recorded):
        await engine.read_details()
    assert recorded.details() == []
    assert await pending(sessions, tenant_id) == {}


async def test_a_detail_karbon_always_refuses_stays_owed_without_failing_any_run(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One record whose detail Karbon refuses (a 400, an unreadable body) must not stop every
    later run of the firm at the head of the queue: it is left owed, so reports say so."""
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    refused = sorted(sandbox.tenant(FIRM).firm.work_items)[0]
    get_detail = KarbonClient.get_detail

    async def refusing(
        client: KarbonClient, resource: Resource, key: str, *args: Any, **kwargs: Any
    ) -> KarbonResponse:
        if key == refused:
            raise KarbonRequestError(400, f"{resource.list_path}/{key}", "The request is invalid")
        return await get_detail(client, resource, key, *args, **kwargs)

    monkeypatch.setattr(KarbonClient, "get_detail", refusing)
    for kind in (SyncKind.INITIAL, SyncKind.INCREMENTAL):
        _, outcome = await sync_now(job_context, tenant_id, kind)
        assert outcome == "succeeded", kind
        assert list(await pending(sessions, tenant_id)) == [("work_items", refused)], kind


async def test_details_refused_one_after_another_fail_the_run(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Karbon refusing every detail is Karbon failing, not one bad record: the run fails (and
    is tried again later) rather than ending as if all were read."""
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    firm = sandbox.tenant(FIRM).firm
    owed = len(firm.users) + len(firm.organizations) + len(firm.work_items)
    assert owed > DETAIL_FAILURES_IN_A_ROW

    async def refusing(
        client: KarbonClient, resource: Resource, key: str, *args: Any, **kwargs: Any
    ) -> KarbonResponse:
        raise KarbonRequestError(400, f"{resource.list_path}/{key}", "The request is invalid")

    monkeypatch.setattr(KarbonClient, "get_detail", refusing)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "failed"
