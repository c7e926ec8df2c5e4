"""Queries on sync runs, settings, stream state, open periods, the records a sync kept and the
detail calls it still owes."""

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Float,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    null,
    or_,
    select,
    tuple_,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.values import UNBILLED_STATUSES
from app.kit.pagination import PageParams
from app.models import (
    ACTIVE_STATES,
    DataQualityIssue,
    Invoice,
    InvoiceLine,
    PendingDetail,
    StreamState,
    SyncKind,
    SyncRun,
    SyncSettings,
    SyncState,
    TimeEntry,
    WorkItem,
)
from app.sync.records import Raw
from app.sync.store import Storage
from app.sync.streams import Activity, OpenPeriod
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


async def current_and_last_run(
    session: AsyncSession, tenant_id: UUID, *, states: Sequence[SyncState]
) -> tuple[SyncRun | None, SyncRun | None]:
    """`active_run` and `last_finished_run(states=states)` in one round trip."""
    last_id = (
        select(SyncRun.id)
        .where(SyncRun.tenant_id == tenant_id, SyncRun.state.in_(states))
        .order_by(SyncRun.finished_at.desc().nulls_last())
        .limit(1)
        .scalar_subquery()
    )
    query = select(SyncRun).where(
        SyncRun.tenant_id == tenant_id,
        or_(SyncRun.state.in_(ACTIVE_STATES), SyncRun.id == last_id),
    )
    runs = (await session.scalars(query)).all()
    current = next((run for run in runs if run.state in ACTIVE_STATES), None)
    last = next((run for run in runs if run.state not in ACTIVE_STATES), None)
    return current, last


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
    kept_in = storage.detail_kept_in
    kept = table.c[kept_in[1]] if kept_in is not None else null()
    query = (
        select(key, table.c.raw, detail, kept)
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
            KeptRecord(
                _with_children(storage, row[1], children.get(row[0])),
                _with_kept_field(storage, row[2], row[3]),
            )
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


def _with_kept_field(storage: Storage, detail: Raw | None, kept: Any) -> Raw | None:
    """The detail with its field a column keeps put back, as it was read."""
    kept_in = storage.detail_kept_in
    if detail is None or kept_in is None or kept is None or kept_in[0] in detail:
        return detail
    return {**detail, kept_in[0]: kept}


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


# -- detail calls owed (pending_details) -----------------------------------------------------


@dataclass(frozen=True)
class OwedDetail:
    """A queued detail call: a record of `stream`, read in `priority` order."""

    stream: str
    record_key: str
    priority: int
    client_key: str | None = None

    @property
    def order(self) -> tuple[int, str, str]:
        return (self.priority, self.stream, self.record_key)


async def enqueue_details(
    session: AsyncSession, tenant_id: UUID, run_id: UUID, owed: Sequence[OwedDetail]
) -> int:
    """Queue detail calls (one stream's, from one list page); a record already queued keeps the
    sooner of its two priorities. Returns how many were not queued before."""
    if not owed:
        return 0
    now = datetime.now(UTC)
    rows = {
        (d.stream, d.record_key): {
            "tenant_id": tenant_id,
            "stream": d.stream,
            "record_key": d.record_key,
            "priority": d.priority,
            "client_key": d.client_key,
            "run_id": run_id,
            "enqueued_at": now,
        }
        for d in owed
    }
    statement = insert(PendingDetail).values(list(rows.values()))
    upsert: Any = statement.on_conflict_do_update(
        index_elements=["tenant_id", "stream", "record_key"],
        set_={
            "priority": func.least(PendingDetail.priority, statement.excluded.priority),
            "client_key": func.coalesce(statement.excluded.client_key, PendingDetail.client_key),
            "run_id": statement.excluded.run_id,
        },
    ).returning(literal_column("xmax = 0"))
    return sum(1 for inserted in (await session.execute(upsert)).scalars() if inserted)


async def forget_details(
    session: AsyncSession, tenant_id: UUID, stream: str, keys: Sequence[str]
) -> int:
    """Take records off the queue (read, or no longer owed); returns how many were on it."""
    if not keys:
        return 0
    statement = delete(PendingDetail).where(
        PendingDetail.tenant_id == tenant_id,
        PendingDetail.stream == stream,
        PendingDetail.record_key.in_(list(keys)),
    )
    return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


async def forget_details_of_gone(
    session: AsyncSession, tenant_id: UUID, stream: str, storage: Storage
) -> int:
    """Take off the queue the records no longer held live (deleted in Karbon, or set aside as
    unreadable): no figure uses their detail."""
    model: Any = storage.model
    table: Table = model.__table__
    key = table.c[_record_key_column(table)]
    live = exists().where(
        table.c.tenant_id == PendingDetail.tenant_id,
        key == PendingDetail.record_key,
        table.c.deleted_at.is_(None),
    )
    statement = delete(PendingDetail).where(
        PendingDetail.tenant_id == tenant_id, PendingDetail.stream == stream, ~live
    )
    return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


async def promote_details(
    session: AsyncSession,
    tenant_id: UUID,
    stream: str,
    activity: Activity,
    priority: int,
    since: date,
    below: int,
) -> int:
    """Bring forward to `priority` the owed details (priority under `below`) of a stream's
    records with time or revenue since `since`."""
    active = _active_work_items(tenant_id, since)
    if activity is Activity.CLIENT:
        active = _active_clients(tenant_id, since)
    statement = (
        update(PendingDetail)
        .where(
            PendingDetail.tenant_id == tenant_id,
            PendingDetail.stream == stream,
            PendingDetail.priority > priority,
            PendingDetail.priority < below,
            PendingDetail.record_key.in_(active),
        )
        .values(priority=priority)
    )
    return int((await session.execute(statement)).rowcount)  # type: ignore[attr-defined]


def _active_work_items(tenant_id: UUID, since: date) -> Select[tuple[str | None]]:
    """Work items with time since `since`, or named by a line of an invoice dated since."""
    timed = select(TimeEntry.work_item_key).where(
        TimeEntry.tenant_id == tenant_id,
        TimeEntry.deleted_at.is_(None),
        TimeEntry.entry_date >= since,
        TimeEntry.work_item_key.is_not(None),
    )
    billed = (
        select(InvoiceLine.billable_item_entity_key)
        .join(
            Invoice,
            and_(
                Invoice.tenant_id == InvoiceLine.tenant_id,
                Invoice.invoice_key == InvoiceLine.invoice_key,
            ),
        )
        .where(InvoiceLine.tenant_id == tenant_id, Invoice.invoice_date >= since)
    )
    return select(union(timed, billed).subquery().c[0])


def _active_clients(tenant_id: UUID, since: date) -> Select[tuple[str | None]]:
    """Clients with time since `since` (on the entry or its work item), or an invoice since."""
    timed = select(TimeEntry.client_key).where(
        TimeEntry.tenant_id == tenant_id,
        TimeEntry.deleted_at.is_(None),
        TimeEntry.entry_date >= since,
    )
    worked = select(WorkItem.client_key).where(
        WorkItem.tenant_id == tenant_id,
        WorkItem.work_item_key.in_(_active_work_items(tenant_id, since)),
    )
    invoiced = select(Invoice.client_key).where(
        Invoice.tenant_id == tenant_id, Invoice.invoice_date >= since
    )
    return select(union(timed, worked, invoiced).subquery().c[0])


async def next_details(
    session: AsyncSession,
    tenant_id: UUID,
    *,
    after: tuple[int, str, str] | None,
    limit: int,
    streams: Sequence[str] | None = None,
) -> list[OwedDetail]:
    """The next queued detail calls in read order (priority, stream, key), after `after`, of
    `streams` only when given."""
    query = select(
        PendingDetail.stream,
        PendingDetail.record_key,
        PendingDetail.priority,
        PendingDetail.client_key,
    ).where(PendingDetail.tenant_id == tenant_id)
    if streams is not None:
        query = query.where(PendingDetail.stream.in_(list(streams)))
    if after is not None:
        query = query.where(
            tuple_(PendingDetail.priority, PendingDetail.stream, PendingDetail.record_key)
            > tuple_(*after)
        )
    query = query.order_by(
        PendingDetail.priority, PendingDetail.stream, PendingDetail.record_key
    ).limit(limit)
    return [OwedDetail(*row) for row in await session.execute(query)]


async def details_pending(
    session: AsyncSession, tenant_id: UUID, *, below: int | None = None
) -> dict[str, int]:
    """Queued detail calls per stream (those under priority `below` only, when given)."""
    query = (
        select(PendingDetail.stream, func.count())
        .where(PendingDetail.tenant_id == tenant_id)
        .group_by(PendingDetail.stream)
    )
    if below is not None:
        query = query.where(PendingDetail.priority < below)
    return {stream: int(count) for stream, count in await session.execute(query)}


async def listed_records(
    session: AsyncSession, tenant_id: UUID, storage: Storage, keys: Sequence[str]
) -> dict[str, tuple[Raw, str | None]]:
    """The list JSON (children put back) and change token of the live records of `keys`: what
    a detail is merged with."""
    model: Any = storage.model
    table: Table = model.__table__
    key = table.c[_record_key_column(table)]
    query = select(key, table.c.raw, table.c.change_token).where(
        table.c.tenant_id == tenant_id, key.in_(list(keys)), table.c.deleted_at.is_(None)
    )
    rows = (await session.execute(query)).all()
    children = await _kept_children(session, tenant_id, storage, [row[0] for row in rows])
    return {row[0]: (_with_children(storage, row[1], children.get(row[0])), row[2]) for row in rows}


async def forget_change_tokens(
    session: AsyncSession, tenant_id: UUID, storage: Storage, keys: Sequence[str]
) -> None:
    """Records whose detail Karbon no longer has: the next list that still shows one finds its
    token changed and owes its detail again; a complete read that does not marks it deleted."""
    if not keys:
        return
    model: Any = storage.model
    table: Table = model.__table__
    key = table.c[_record_key_column(table)]
    await session.execute(
        update(table)
        .where(table.c.tenant_id == tenant_id, key.in_(list(keys)))
        .values(change_token=None)
    )


def _record_key_column(table: Table) -> str:
    return next(c.name for c in table.primary_key.columns if c.name != "tenant_id")
