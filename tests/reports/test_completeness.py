"""Reports during the first sync: `complete`, per-entity progress and the clients that may
still move, from a refresh in the middle of a real first sync to one after it."""

import asyncio
import csv
import dataclasses
import io
from collections.abc import AsyncGenerator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from alembic import command
from httpx import AsyncClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.embedded import ServiceUrls
from app.migrations import alembic_config
from app.models import (
    RECHECK_PRIORITY,
    PendingDetail,
    Staff,
    SyncRun,
    TimeEntry,
    WorkItem,
)
from app.reports.completeness import KARBON_ENTITIES, LISTED_STATES
from app.reports.queue import partial_refresh_job_id
from app.reports.refresh import refresh_reports
from app.settings import Settings
from app.sync import jobs
from app.sync.jobs import run_sync
from app.sync.karbon.client import KarbonClient, Page
from app.sync.karbon.endpoints import INVOICES, Resource
from app.sync.streams import STREAMS
from sandbox.state import Sandbox
from tests.reports.conftest import SyncedFirm, admin_headers
from tests.services import scratch_database
from tests.sync.conftest import connect_tenant, queue_sync

REPORTS = "/api/v1/reports"
EVERY_REPORT = (
    "client-profitability",
    "client-profitability?interval=month",
    "client-profitability?group_by=owner",
    "unbilled-work",
    "staff-utilization",
    "summary",
)


async def test_refreshes_before_the_migration_are_complete_when_a_sync_had_completed(
    server_urls: ServiceUrls,
) -> None:
    async with scratch_database(server_urls.database_url, migrate=False) as url:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "0015")
        synced, first_sync = uuid4(), uuid4()
        connection = await asyncpg.connect(url)
        try:
            for tenant_id, as_of in ((synced, datetime.now(UTC)), (first_sync, None)):
                await connection.execute(
                    "INSERT INTO tenants (id, name) VALUES ($1, 'Firm')", tenant_id
                )
                await connection.execute(
                    "INSERT INTO report_refreshes (tenant_id, version, as_of, refreshed_at, "
                    "facts, duration_ms) VALUES ($1, 4, $2, now(), 0, 0)",
                    tenant_id,
                    as_of,
                )
            await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
            rows = await connection.fetch(
                "SELECT tenant_id, complete, lists_in, moving_clients FROM report_completeness"
            )
        finally:
            await connection.close()
    assert {row["tenant_id"]: (row["complete"], row["lists_in"]) for row in rows} == {
        synced: (True, True),
        first_sync: (False, False),
    }
    assert all(row["moving_clients"] == [] for row in rows)


def test_the_entities_shown_are_the_syncs_streams() -> None:
    assert tuple(stream.name for stream in STREAMS) == KARBON_ENTITIES


async def _get(client: AsyncClient, headers: dict[str, str], path: str) -> dict[str, Any]:
    response = await client.get(f"{REPORTS}/{path}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _progress(sessions: async_sessionmaker[AsyncSession], run_id: UUID) -> dict[str, Any]:
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None
        return dict(run.progress)


async def _until(condition: Any, seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@dataclasses.dataclass
class InvoicesGate:
    """Holds the invoices list after its first page until opened: the first sync stands
    still half-way, its other entities done."""

    opened: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    holding: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        pages_of = KarbonClient.iter_pages
        gate = self

        async def iter_pages(
            client: KarbonClient, resource: Resource, *args: Any, **kwargs: Any
        ) -> AsyncGenerator[Page, None]:
            async for page in pages_of(client, resource, *args, **kwargs):
                yield page
                if resource is INVOICES and not gate.opened.is_set():
                    gate.holding.set()
                    await gate.opened.wait()

        monkeypatch.setattr(KarbonClient, "iter_pages", iter_pages)


async def _owe_a_work_items_detail(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, run_id: UUID
) -> tuple[str, str, str]:
    """What the sync does when it holds a work item from its list only: no fee type yet, a
    detail owed. Returns the work item, its client and the fee type its detail gives."""
    recent = date.today() - timedelta(days=300)
    async with unit_of_work(sessions) as session:
        key, client_key, fee_type = (
            await session.execute(
                select(WorkItem.work_item_key, WorkItem.client_key, WorkItem.fee_type)
                .join(
                    TimeEntry,
                    (TimeEntry.tenant_id == WorkItem.tenant_id)
                    & (TimeEntry.work_item_key == WorkItem.work_item_key),
                )
                .where(
                    WorkItem.tenant_id == tenant_id,
                    WorkItem.fee_type.is_not(None),
                    WorkItem.client_key.is_not(None),
                    TimeEntry.entry_date >= recent,
                )
                .order_by(WorkItem.work_item_key)
                .limit(1)
            )
        ).one()
        await session.execute(
            update(WorkItem)
            .where(WorkItem.tenant_id == tenant_id, WorkItem.work_item_key == key)
            .values(fee_type=None)
        )
        session.add(
            PendingDetail(
                tenant_id=tenant_id,
                stream="work_items",
                record_key=key,
                priority=10,
                client_key=client_key,
                run_id=run_id,
                enqueued_at=datetime.now(UTC),
            )
        )
    return key, client_key, fee_type


async def _owed_by_stream(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(PendingDetail.stream, func.count())
            .where(PendingDetail.tenant_id == tenant_id, PendingDetail.priority < RECHECK_PRIORITY)
            .group_by(PendingDetail.stream)
        )
        return {stream: count for stream, count in rows}


async def _read_the_owed_detail(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, key: str, fee_type: str
) -> None:
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(WorkItem)
            .where(WorkItem.tenant_id == tenant_id, WorkItem.work_item_key == key)
            .values(fee_type=fee_type)
        )
        await session.execute(delete(PendingDetail).where(PendingDetail.tenant_id == tenant_id))


async def test_a_report_is_incomplete_during_the_first_sync_and_complete_after_it(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deps = job_context["deps"]
    monkeypatch.setattr(jobs, "FIRST_SYNC_POLL_SECONDS", 0.05)
    gate = InvoicesGate()
    gate.install(monkeypatch)
    tenant_id = await connect_tenant(sessions, deps.settings, sandbox)
    headers = await admin_headers(sessions, settings, tenant_id)
    run_id = await queue_sync(job_context, tenant_id)
    sync = asyncio.ensure_future(run_sync(job_context, str(run_id)))

    async def half_way() -> bool:
        """The invoices list held, every other list in, and the users' details read: the
        only details whose order is final before the invoices list (which shows what work
        is active) is in."""
        progress = await _progress(sessions, run_id)
        others = [progress.get(name, {}).get("state") for name in KARBON_ENTITIES[:-1]]
        users_done = progress.get("users", {}).get("state") == "done"
        return gate.holding.is_set() and all(s in LISTED_STATES for s in others) and users_done

    await _until(half_way)
    # The watcher queued a refresh when the first entity's lists were in.
    refresh_job = partial_refresh_job_id(deps.settings, tenant_id)
    queued = await deps.redis.queued_jobs(queue_name=deps.settings.queue_name)
    assert refresh_job in {job.job_id for job in queued}

    await refresh_reports(sessions, tenant_id)
    owed_now = await _owed_by_stream(sessions, tenant_id)
    # Work items' details wait for the list showing which work is active.
    assert owed_now.get("work_items", 0) > 0 and "users" not in owed_now
    for path in EVERY_REPORT:
        report = await _get(client, headers, path)
        assert report["complete"] is False and report["as_of"] is None, path
        assert report["refreshed_at"] is not None and report["all_clients_may_move"] is True
        assert [p["entity"] for p in report["progress"]] == list(KARBON_ENTITIES)
        states = {p["entity"]: p["state"] for p in report["progress"]}
        assert states["invoices"] == "running" and states["users"] == "done", path
        assert states["work_items"] == "listed", path
        owed = {p["entity"]: p["details_owed"] for p in report["progress"]}
        assert owed == {name: owed_now.get(name, 0) for name in KARBON_ENTITIES}, path
        kinds = {w["kind"] for w in report["warnings"]}
        assert {"sync_not_completed", "details_owed"} <= kinds, path
    profitability = await _get(client, headers, "client-profitability?limit=200")
    assert profitability["items"] and all(row["may_move"] for row in profitability["items"])
    assert profitability["totals"]["may_move"] is True

    gate.opened.set()
    assert await asyncio.wait_for(sync, 60) == "succeeded"
    assert await _owed_by_stream(sessions, tenant_id) == {}
    work_item, client_key, fee_type = await _owe_a_work_items_detail(sessions, tenant_id, run_id)
    await refresh_reports(sessions, tenant_id)
    # The first sync is done, but one work item still waits for its detail: only its client
    # may move.
    waiting = await _get(client, headers, "client-profitability?limit=200")
    assert waiting["complete"] is False and waiting["as_of"] is not None
    assert waiting["all_clients_may_move"] is False and waiting["moving_clients"] == 1
    flagged = {row["key"] for row in waiting["items"] if row["may_move"]}
    assert flagged == {client_key}
    assert waiting["totals"]["may_move"] is True
    unknown = [w for w in waiting["warnings"] if w["kind"] == "unknown_fee_type"]
    assert [w["subject_key"] for w in unknown] == [work_item]
    summary = await _get(client, headers, "summary")
    assert summary["clients_that_may_move"] == [client_key]
    one_client = await _get(client, headers, f"clients/{client_key}")
    assert one_client["complete"] is False and one_client["may_move"] is True

    await _read_the_owed_detail(sessions, tenant_id, work_item, fee_type)
    await refresh_reports(sessions, tenant_id)
    for path in EVERY_REPORT:
        report = await _get(client, headers, path)
        assert report["complete"] is True and report["as_of"] is not None, path
        assert report["all_clients_may_move"] is False and report["moving_clients"] == 0
        assert all(p["details_owed"] == 0 for p in report["progress"])
        kinds = {w["kind"] for w in report["warnings"]}
        assert not kinds & {"sync_not_completed", "details_owed"}, path
        assert not any(row.get("may_move") for row in report.get("items", [])), path
    assert (await _get(client, headers, f"clients/{client_key}"))["may_move"] is False


async def test_a_csv_report_says_whether_it_is_complete(
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    path = f"{REPORTS}/client-profitability"
    complete = await client.get(path, headers=synced_firm.headers, params={"format": "csv"})
    assert complete.headers["report-complete"] == "true"
    assert datetime.fromisoformat(complete.headers["report-as-of"]).tzinfo is not None
    rows = list(csv.DictReader(io.StringIO(complete.text)))
    assert rows and {row["may_move"] for row in rows} == {"false"}

    client_key = rows[0]["key"]
    await _pending(sessions, synced_firm.tenant_id, "work_items", "wi-owed", 5, client_key)
    await refresh_reports(sessions, synced_firm.tenant_id)
    for report in ("client-profitability", "unbilled-work", "staff-utilization"):
        response = await client.get(
            f"{REPORTS}/{report}", headers=synced_firm.headers, params={"format": "csv"}
        )
        assert response.headers["report-complete"] == "false", report
    incomplete = await client.get(path, headers=synced_firm.headers, params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(incomplete.text)))
    moving = {row["key"] for row in rows if row["may_move"] == "true"}
    assert moving == {client_key, ""}  # "": the totals row


async def _pending(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: UUID,
    stream: str,
    record_key: str,
    priority: int,
    client_key: str | None,
) -> None:
    async with unit_of_work(sessions) as session:
        session.add(
            PendingDetail(
                tenant_id=tenant_id,
                stream=stream,
                record_key=record_key,
                priority=priority,
                client_key=client_key,
                enqueued_at=datetime.now(UTC),
            )
        )


async def _clients_of_time_by(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, user_key: str
) -> set[str]:
    """Rule 6, in Python: an entry's client is its work item's when known, else its own."""
    async with sessions() as session:
        entries = (
            await session.execute(
                select(TimeEntry.work_item_key, TimeEntry.client_key).where(
                    TimeEntry.tenant_id == tenant_id, TimeEntry.user_key == user_key
                )
            )
        ).all()
        items = dict(
            (
                await session.execute(
                    select(WorkItem.work_item_key, WorkItem.client_key).where(
                        WorkItem.tenant_id == tenant_id
                    )
                )
            ).all()
        )
    clients = {items.get(work_item) or own for work_item, own in entries}
    return {key for key in clients if key}


async def test_owed_details_move_their_clients_and_re_checks_move_none(
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
) -> None:
    tenant_id = synced_firm.tenant_id
    async with sessions() as session:
        work_items = (
            await session.execute(
                select(WorkItem.work_item_key, WorkItem.client_key)
                .where(WorkItem.tenant_id == tenant_id, WorkItem.client_key.is_not(None))
                .order_by(WorkItem.work_item_key)
            )
        ).all()
        user_key = await session.scalar(
            select(TimeEntry.user_key)
            .where(
                TimeEntry.tenant_id == tenant_id,
                TimeEntry.entry_date >= date.today() - timedelta(days=300),
            )
            .limit(1)
        )
        staff = (
            (await session.execute(select(Staff.user_key).where(Staff.tenant_id == tenant_id)))
            .scalars()
            .all()
        )
    assert user_key is not None and len(work_items) >= 2
    # Nightly re-checks of every detail already read: figures are known, nothing moves.
    for key, owner in work_items:
        await _pending(sessions, tenant_id, "work_items", key, RECHECK_PRIORITY, owner)
    for key in staff:
        await _pending(sessions, tenant_id, "users", key, RECHECK_PRIORITY + 5, None)
    await refresh_reports(sessions, tenant_id)
    report = await _get(client, synced_firm.headers, "client-profitability?limit=200")
    assert report["complete"] is True and report["moving_clients"] == 0
    assert not any(row["may_move"] for row in report["items"])

    # Owed: one work item's detail whose list record named no client (its client is found
    # through the work item), and one person's (capacity prices all their time).
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(PendingDetail)
            .where(
                PendingDetail.tenant_id == tenant_id,
                PendingDetail.record_key.in_([work_items[0][0], user_key]),
            )
            .values(priority=20, client_key=None)
        )
        # Held from the list only, the person has no capacity yet.
        await session.execute(
            update(Staff)
            .where(Staff.tenant_id == tenant_id, Staff.user_key == user_key)
            .values(capacity_minutes_per_week=None)
        )
    await refresh_reports(sessions, tenant_id)
    expected = {work_items[0][1]} | await _clients_of_time_by(sessions, tenant_id, user_key)
    summary = await _get(client, synced_firm.headers, "summary")
    assert summary["complete"] is False and summary["all_clients_may_move"] is False
    assert set(summary["clients_that_may_move"]) == expected
    assert user_key in {
        w["subject_key"] for w in summary["warnings"] if w["kind"] == "missing_capacity"
    }
    assert summary["moving_clients"] == len(expected)
    owed = {p["entity"]: p["details_owed"] for p in summary["progress"]}
    assert owed["work_items"] == 1 and owed["users"] == 1
    report = await _get(client, synced_firm.headers, "client-profitability?limit=200")
    assert {row["key"] for row in report["items"] if row["may_move"]} == expected & {
        row["key"] for row in report["items"]
    }
    by_owner = await _get(client, synced_firm.headers, "client-profitability?group_by=owner")
    assert all(row["may_move"] for row in by_owner["items"])
    details_owed = [w for w in report["warnings"] if w["kind"] == "details_owed"]
    assert [w["records"] for w in details_owed] == [2]
