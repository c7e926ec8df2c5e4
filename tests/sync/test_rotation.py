"""The nightly rotation: every record held with its detail is re-checked within seven nights,
the period is the fewest nights that fit the night, queueing is idempotent and never demotes
an owed detail, every run's re-checks end before its next incremental is due, and operators
see it all."""

import logging
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.kit.pagination import PageParams
from app.models import (
    RECHECK_PRIORITY,
    Client,
    Invoice,
    NightlyRotation,
    PendingDetail,
    Staff,
    SyncKind,
    SyncRun,
    SyncSettings,
    SyncState,
    SyncTrigger,
    WorkItem,
)
from app.settings import Settings
from app.sync import repository
from app.sync.jobs import _plan
from app.sync.rotation import (
    MAX_PERIOD,
    RotationSize,
    bucket_of,
    choose_period,
    enqueue_tonight,
    list_pages_read,
    measure,
)
from app.sync.status import firm_syncs_page
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, queue_sync, sync_now

NIGHT = date(2026, 11, 3)
LARGE_NIGHT = 25_920


async def _seeded(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> UUID:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"
    return tenant_id


async def _full_run(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, started: datetime
) -> UUID:
    async with unit_of_work(sessions) as session:
        run = SyncRun(
            tenant_id=tenant_id,
            kind=SyncKind.FULL,
            trigger=SyncTrigger.SCHEDULE,
            state=SyncState.SUCCEEDED,
            requested_at=started,
            started_at=started,
            finished_at=started + timedelta(hours=1),
            progress={},
            checkpoint={},
        )
        session.add(run)
        await session.flush()
        return run.id


async def _held_with_detail(session: AsyncSession, tenant_id: UUID) -> set[tuple[str, str]]:
    """Every live record holding a detail, read from each table on its own."""
    tables: list[tuple[str, Any, Any]] = [
        ("users", Staff, Staff.user_key),
        ("organizations", Client, Client.client_key),
        ("work_items", WorkItem, WorkItem.work_item_key),
        ("invoices", Invoice, Invoice.invoice_key),
    ]
    held: set[tuple[str, str]] = set()
    for stream, model, key in tables:
        query = select(key).where(
            model.tenant_id == tenant_id,
            model.deleted_at.is_(None),
            model.raw_detail.is_not(None),
        )
        held |= {(stream, k) for k in (await session.execute(query)).scalars()}
    return held


async def _queued(sessions: async_sessionmaker[AsyncSession], run_id: UUID) -> list[PendingDetail]:
    async with sessions() as session:
        query = select(PendingDetail).where(PendingDetail.run_id == run_id)
        return list((await session.execute(query)).scalars())


async def _drain(sessions: async_sessionmaker[AsyncSession], run_id: UUID) -> None:
    """As the engine does: each re-check read is deleted from the queue."""
    async with unit_of_work(sessions) as session:
        await session.execute(delete(PendingDetail).where(PendingDetail.run_id == run_id))


async def test_seven_nights_re_check_every_record_held_with_its_detail_exactly_once(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await _seeded(sandbox, job_context, sessions)
    async with sessions() as session:
        firm = await measure(session, tenant_id)
        held = await _held_with_detail(session, tenant_id)
    assert firm.detail_records == len(held) > 2 * MAX_PERIOD
    assert {stream for stream, _ in held} == {"users", "organizations", "work_items", "invoices"}
    # A night that holds the lists and just a seventh of the details: a weekly rotation.
    night = firm.list_pages + math.ceil(len(held) / MAX_PERIOD)
    rechecked: list[tuple[str, str]] = []
    for day in range(MAX_PERIOD):
        started = datetime(2026, 11, 3, 2, 0, tzinfo=UTC) + timedelta(days=day)
        run_id = await _full_run(sessions, tenant_id, started)
        async with unit_of_work(sessions) as session:
            rotation = await enqueue_tonight(
                session, tenant_id, run_id, started.date(), night, started
            )
        assert rotation.period == MAX_PERIOD
        tonight = [(row.stream, row.record_key) for row in await _queued(sessions, run_id)]
        assert len(tonight) == rotation.share
        assert all(bucket_of(s, k, MAX_PERIOD) == rotation.bucket for s, k in tonight)
        rechecked += tonight
        await _drain(sessions, run_id)
    assert sorted(rechecked) == sorted(held)


def test_the_period_is_the_fewest_nights_that_fit() -> None:
    for list_pages, records in [(40, 300), (1_000, 24_000), (1_200, 70_000), (1_200, 140_000)]:
        size = choose_period(list_pages, records, LARGE_NIGHT)
        assert size.fits and size.list_pages + size.expected_share <= LARGE_NIGHT
        shorter = RotationSize(size.period - 1, list_pages, records, LARGE_NIGHT)
        assert size.period == 1 or not shorter.fits
    assert choose_period(40, 300, LARGE_NIGHT).period == 1
    assert choose_period(1_200, 70_000, LARGE_NIGHT).period == 3


def test_seven_nights_that_do_not_fit_are_said_so() -> None:
    size = choose_period(1_200, 200_000, LARGE_NIGHT)
    assert (size.period, size.fits) == (MAX_PERIOD, False)


async def test_a_rotation_that_does_not_fit_warns_and_queues_its_share_all_the_same(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant_id = await _seeded(sandbox, job_context, sessions)
    started = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    run_id = await _full_run(sessions, tenant_id, started)
    with caplog.at_level(logging.WARNING, logger="app.sync.rotation"):
        async with unit_of_work(sessions) as session:
            firm = await measure(session, tenant_id)
            rotation = await enqueue_tonight(
                session, tenant_id, run_id, NIGHT, firm.list_pages, started
            )
    assert rotation.period == MAX_PERIOD and rotation.share > 0
    assert len(await _queued(sessions, run_id)) == rotation.share
    assert any("does not fit the night" in r.getMessage() for r in caplog.records)


async def test_queueing_again_for_a_resumed_run_changes_nothing_and_never_demotes(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await _seeded(sandbox, job_context, sessions)
    async with sessions() as session:
        owed_stream, owed_key = sorted(await _held_with_detail(session, tenant_id))[0]
    started = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    async with unit_of_work(sessions) as session:
        session.add(
            PendingDetail(
                tenant_id=tenant_id,
                stream=owed_stream,
                record_key=owed_key,
                priority=3,
                client_key=None,
                run_id=None,
                enqueued_at=started,
            )
        )
    run_id = await _full_run(sessions, tenant_id, started)
    for _ in range(2):  # the run, then the same run resumed
        async with unit_of_work(sessions) as session:
            rotation = await enqueue_tonight(
                session, tenant_id, run_id, NIGHT, LARGE_NIGHT, started
            )
    assert rotation.period == 1  # a tiny firm re-checks everything every night
    async with sessions() as session:
        rows = list((await session.execute(select(PendingDetail))).scalars())
        held = await _held_with_detail(session, tenant_id)
    assert sorted((r.stream, r.record_key) for r in rows) == sorted(held)
    owed = next(r for r in rows if (r.stream, r.record_key) == (owed_stream, owed_key))
    assert (owed.priority, owed.run_id) == (3, None)
    assert all(r.priority == RECHECK_PRIORITY for r in rows if r is not owed)
    # Drained, then resumed once more: what the run already re-checked is not queued again.
    await _drain(sessions, run_id)
    async with unit_of_work(sessions) as session:
        await enqueue_tonight(session, tenant_id, run_id, NIGHT, LARGE_NIGHT, started)
    assert await _queued(sessions, run_id) == []


@pytest.mark.parametrize("interval_minutes", [15, 120, 1440])
async def test_a_full_runs_re_checks_end_before_its_next_incremental_is_due(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    interval_minutes: int,
) -> None:
    tenant_id = await _seeded(sandbox, job_context, sessions)
    async with unit_of_work(sessions) as session:
        session.add(
            SyncSettings(
                tenant_id=tenant_id,
                incremental_interval_minutes=interval_minutes,
                nightly_reconciliation=True,
            )
        )
    started = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    run_id = await _full_run(sessions, tenant_id, started)
    settings: Settings = job_context["deps"].settings
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None
        plan = await _plan(session, run, settings)
    interval = timedelta(minutes=interval_minutes)
    assert plan.recheck_until is not None
    assert started + interval / 2 <= plan.recheck_until < started + interval


async def test_a_full_run_queues_its_share_and_operators_see_the_rotation(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await _seeded(sandbox, job_context, sessions)
    run_id, outcome = await sync_now(job_context, tenant_id, SyncKind.FULL)
    assert outcome == "succeeded"
    async with sessions() as session:
        rotation = await session.get(NightlyRotation, run_id)
        held = await _held_with_detail(session, tenant_id)
    assert rotation is not None and rotation.share == len(held) == rotation.detail_records
    queued = len([r for r in await _queued(sessions, run_id) if r.priority >= RECHECK_PRIORITY])
    now = datetime.now(UTC)
    async with sessions() as session:
        page = await firm_syncs_page(session, PageParams(limit=10, offset=0), now)
    [firm] = page.items
    assert firm.rotation is not None
    assert (firm.rotation.period_nights, firm.rotation.share) == (1, len(held))
    assert firm.rotation.planned_requests == rotation.list_pages + len(held)
    assert firm.rotation.fits_the_night and firm.rotation.night_requests == 25_920
    assert firm.rechecks_queued == queued
    assert firm.last_nightly is not None and firm.last_nightly.run_id == run_id
    assert firm.last_nightly.requests_made > 0
    assert firm.next_nightly_at is not None and firm.next_nightly_at > now
    assert firm.next_incremental_at is not None and firm.next_incremental_at > now


async def test_planning_a_run_counts_none_of_the_firms_records(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    """Every run's plan needs what a read of every list takes; counting the firm's records
    for it at every run start scans a large firm's tables every few minutes."""
    tenant_id = await _seeded(sandbox, job_context, sessions)
    run_id = await queue_sync(job_context, tenant_id, SyncKind.INCREMENTAL)
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.lower())

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        async with sessions() as session:
            run = await session.get(SyncRun, run_id)
            assert run is not None
            plan = await _plan(session, run, job_context["deps"].settings)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)
    assert plan.recheck_until is not None
    counted = [s for s in statements if "count(" in s]
    assert counted == [], counted
    async with sessions() as session:
        firm = await measure(session, tenant_id)
    # What the plan uses instead: the pages the first sync read.
    assert await list_pages_read_for(sessions, tenant_id) >= firm.list_pages > 0


async def list_pages_read_for(sessions: async_sessionmaker[AsyncSession], tenant_id: UUID) -> int:
    async with sessions() as session:
        return await list_pages_read(session, tenant_id)


async def test_re_checks_a_night_left_are_read_before_the_next_nights_share(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A short incremental interval ends every run's re-checks early, so a night's share may
    be left in part: what is left goes first the next night, or the same records (the last
    in key order) would wait behind every new share and miss their weekly re-check."""
    tenant_id = await _seeded(sandbox, job_context, sessions)
    async with sessions() as session:
        firm = await measure(session, tenant_id)
        held = await _held_with_detail(session, tenant_id)
    night = firm.list_pages + math.ceil(len(held) / MAX_PERIOD)
    shares: list[set[tuple[str, str]]] = []
    for day in range(3):  # nothing read in between: every run's re-checks ended at once
        started = datetime(2026, 11, 3, 2, 0, tzinfo=UTC) + timedelta(days=day)
        run_id = await _full_run(sessions, tenant_id, started)
        async with unit_of_work(sessions) as session:
            await enqueue_tonight(session, tenant_id, run_id, started.date(), night, started)
        shares.append({(row.stream, row.record_key) for row in await _queued(sessions, run_id)})
    assert all(shares)
    async with sessions() as session:
        order = await repository.next_details(session, tenant_id, after=None, limit=len(held))
    night_of = {call: n for n, share in enumerate(shares) for call in share}
    nights = [night_of[(owed.stream, owed.record_key)] for owed in order]
    assert nights == sorted(nights)
    assert {owed.priority for owed in order} == {RECHECK_PRIORITY + n for n in range(3)}

    # Once the first night's are read, the levels move down: they stay few.
    await _drain(sessions, (await _full_runs(sessions, tenant_id))[0])
    run_id = await _full_run(sessions, tenant_id, datetime(2026, 11, 6, 2, 0, tzinfo=UTC))
    async with unit_of_work(sessions) as session:
        await enqueue_tonight(session, tenant_id, run_id, NIGHT + timedelta(days=3), night, NOW)
    async with sessions() as session:
        levels = {owed.priority for owed in await repository.next_details(
            session, tenant_id, after=None, limit=len(held)
        )}  # fmt: skip
    assert levels <= {RECHECK_PRIORITY + n for n in range(3)}


NOW = datetime(2026, 11, 6, 2, 0, tzinfo=UTC)


async def _full_runs(sessions: async_sessionmaker[AsyncSession], tenant_id: UUID) -> list[UUID]:
    async with sessions() as session:
        query = (
            select(SyncRun.id)
            .where(SyncRun.tenant_id == tenant_id, SyncRun.kind == SyncKind.FULL)
            .order_by(SyncRun.started_at)
        )
        return list((await session.execute(query)).scalars())
