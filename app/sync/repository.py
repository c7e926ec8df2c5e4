"""Queries on sync runs, settings, stream state, open periods and the records a sync kept."""

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Float, Integer, Table, bindparam, func, null, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.values import UNBILLED_STATUSES
from app.kit.pagination import PageParams
from app.models import (
    ACTIVE_STATES,
    DataQualityIssue,
    StreamState,
    SyncKind,
    SyncRun,
    SyncSettings,
    SyncState,
    TimeEntry,
)
from app.sync.records import Raw
from app.sync.store import Storage
from app.sync.streams import OpenPeriod
from app.tenancy import repository as tenancy_repository

_RECORD_PROGRESS = (
    update(SyncRun)
    .where(SyncRun.id == bindparam("run"), SyncRun.state == SyncState.RUNNING)
    .values(
        progress=SyncRun.progress.op("||")(bindparam("progress_change", type_=JSONB)),
        checkpoint=SyncRun.checkpoint.op("||")(bindparam("checkpoint_change", type_=JSONB)),
        requests_made=SyncRun.requests_made + bindparam("new_requests", type_=Integer),
        request_rate=bindparam("rate", type_=Float),
        heartbeat_at=bindparam("heartbeat", type_=SyncRun.heartbeat_at.type),
    )
    .returning(SyncRun.id)
)
"""A page's progress and checkpoint, merged into its run's while the run still runs.
Built once: it runs after every page of every tenant."""


async def active_run(session: AsyncSession, tenant_id: UUID) -> SyncRun | None:
    query = select(SyncRun).where(SyncRun.tenant_id == tenant_id, SyncRun.state.in_(ACTIVE_STATES))
    return (await session.execute(query)).scalar_one_or_none()


async def get_run(session: AsyncSession, run_id: UUID) -> SyncRun | None:
    return await session.get(SyncRun, run_id)


async def run_for_update(session: AsyncSession, run_id: UUID) -> SyncRun | None:
    """The run, locked until the transaction ends."""
    return await session.get(SyncRun, run_id, with_for_update=True)


async def active_runs(session: AsyncSession) -> Sequence[SyncRun]:
    """Every tenant's queued and running runs."""
    return (await session.scalars(select(SyncRun).where(SyncRun.state.in_(ACTIVE_STATES)))).all()


async def latest_runs(
    session: AsyncSession, tenant_id: UUID, *, limit: int, offset: int = 0
) -> Sequence[SyncRun]:
    query = (
        select(SyncRun)
        .where(SyncRun.tenant_id == tenant_id)
        .order_by(SyncRun.requested_at.desc())
        .limit(limit)
        .offset(offset)
    )
    return (await session.execute(query)).scalars().all()


async def count_runs(session: AsyncSession, tenant_id: UUID) -> int:
    query = select(func.count()).select_from(SyncRun).where(SyncRun.tenant_id == tenant_id)
    return int((await session.execute(query)).scalar_one())


FINISHED_STATES = (
    SyncState.SUCCEEDED,
    SyncState.FAILED,
    SyncState.AUTH_FAILED,
    SyncState.PERMISSION_DENIED,
)
"""How a run ends when it was not cancelled: what the schedule counts from."""


async def last_finished_run(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    states: Sequence[SyncState] = (SyncState.SUCCEEDED,),
    kinds: Sequence[SyncKind] = tuple(SyncKind),
) -> SyncRun | None:
    query = (
        select(SyncRun)
        .where(SyncRun.tenant_id == tenant_id, SyncRun.state.in_(states), SyncRun.kind.in_(kinds))
        .order_by(SyncRun.finished_at.desc().nulls_last())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def cancel_active_runs(
    session: AsyncSession, tenant_id: UUID, *, now: datetime, reason: str
) -> list[UUID]:
    statement = (
        update(SyncRun)
        .where(SyncRun.tenant_id == tenant_id, SyncRun.state.in_(ACTIVE_STATES))
        .values(state=SyncState.CANCELLED, finished_at=now, error_message=reason)
        .returning(SyncRun.id)
    )
    return list((await session.execute(statement)).scalars().all())


async def sync_settings(session: AsyncSession, tenant_id: UUID) -> SyncSettings:
    """The tenant's settings, created with the defaults on first use."""
    found = await session.get(SyncSettings, tenant_id)
    if found is None:
        # First uses at once (two API processes, say): one inserts, the others wait for its
        # commit and read its row instead of failing on the duplicate key.
        create = insert(SyncSettings).values(tenant_id=tenant_id).on_conflict_do_nothing()
        await session.execute(create)
        found = await session.get(SyncSettings, tenant_id)
        assert found is not None
    return found


async def high_water_marks(session: AsyncSession, tenant_id: UUID) -> dict[str, datetime | None]:
    query = select(StreamState).where(StreamState.tenant_id == tenant_id)
    rows = (await session.execute(query)).scalars().all()
    return {row.stream: row.high_water_mark for row in rows}


async def record_progress(session: AsyncSession, values: Mapping[str, Any]) -> bool:
    """Merge a page's progress into its run (``values`` binds ``_RECORD_PROGRESS``); False
    when the run no longer runs."""
    return (await session.execute(_RECORD_PROGRESS, values)).scalar_one_or_none() is not None


async def save_high_water_mark(
    session: AsyncSession, tenant_id: UUID, stream: str, mark: datetime | None
) -> None:
    if mark is None:
        return
    values = {"high_water_mark": mark, "updated_at": datetime.now(UTC)}
    statement = insert(StreamState).values(tenant_id=tenant_id, stream=stream, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["tenant_id", "stream"], set_=values)
    )


async def open_periods(session: AsyncSession, tenant_id: UUID) -> tuple[OpenPeriod, ...]:
    """Timesheet periods that still hold unbilled time, with the users holding it."""
    query = (
        select(TimeEntry.entry_date, TimeEntry.period_end, TimeEntry.user_key)
        .where(
            TimeEntry.tenant_id == tenant_id,
            TimeEntry.deleted_at.is_(None),
            TimeEntry.billed_status.in_(sorted(UNBILLED_STATUSES)),
        )
        .distinct()
    )
    users: dict[tuple[date, date], set[str]] = {}
    for start, end, user_key in await session.execute(query):
        users.setdefault((start, end), set()).add(user_key)
    return tuple(
        OpenPeriod(start, end, frozenset(keys)) for (start, end), keys in sorted(users.items())
    )


@dataclass(frozen=True)
class KeptRecord:
    """A record as a sync last stored it: its list JSON (children put back) and its detail."""

    raw: Raw
    detail: Raw | None


async def kept_records(
    session: AsyncSession, tenant_id: UUID, storage: Storage, *, batch_size: int = 500
) -> AsyncIterator[list[KeptRecord]]:
    """Every stored record of a stream (deleted ones too), in batches, streamed rather than
    loaded at once."""
    model: Any = storage.model
    table: Table = model.__table__
    key = table.c[next(c.name for c in table.primary_key.columns if c.name != "tenant_id")]
    detail = table.c["raw_detail"] if "raw_detail" in table.c else null()
    query = (
        select(key, table.c.raw, detail)
        .where(
            table.c.tenant_id == tenant_id,
            *(table.c[name] == value for name, value in storage.scope.items()),
        )
        .order_by(key)
        .execution_options(yield_per=batch_size)
    )
    result = await session.stream(query)
    async for rows in result.partitions():
        children = await _kept_children(session, tenant_id, storage, [row[0] for row in rows])
        yield [
            KeptRecord(_with_children(storage, row[1], children.get(row[0])), row[2])
            for row in rows
        ]


async def _kept_children(
    session: AsyncSession, tenant_id: UUID, storage: Storage, parent_keys: list[str]
) -> dict[str, list[Raw]]:
    kept = storage.kept_children
    if kept is None:
        return {}
    child: Any = kept.model
    table: Table = child.__table__
    parent = table.c[kept.parent_key]
    order = [c for c in table.primary_key.columns if c.name != "tenant_id"]
    query = (
        select(parent, table.c.raw)
        .where(table.c.tenant_id == tenant_id, parent.in_(parent_keys))
        .order_by(parent, *order)
    )
    children: dict[str, list[Raw]] = {}
    for parent_key, raw in await session.execute(query):
        children.setdefault(parent_key, []).append(raw)
    return children


def _with_children(storage: Storage, raw: Raw, children: list[Raw] | None) -> Raw:
    if storage.kept_children is None:
        return raw
    return {**raw, storage.kept_children.field: children or []}


async def data_quality_issues(
    session: AsyncSession, tenant_id: UUID, params: PageParams
) -> tuple[Sequence[DataQualityIssue], int]:
    """A page of the firm's data-quality issues, most recently seen first."""
    issue = DataQualityIssue
    query = (
        select(issue)
        .where(issue.tenant_id == tenant_id)
        .order_by(
            issue.last_seen_at.desc(),
            issue.stream,
            issue.record_key,
            issue.subject_key,
            issue.field,
        )
    )
    return await tenancy_repository.paged(session, query, params)


async def set_aside_records(session: AsyncSession, tenant_id: UUID, stream: str) -> list[Raw]:
    """The JSON of a stream's records that could not be read at all (set aside whole)."""
    issue = DataQualityIssue
    query = select(issue.raw).where(
        issue.tenant_id == tenant_id,
        issue.stream == stream,
        issue.set_aside == "record",
        issue.record_key == issue.subject_key,
        issue.raw.is_not(None),
    )
    return [raw for raw in (await session.execute(query)).scalars() if raw is not None]
