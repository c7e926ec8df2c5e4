"""How complete a report's facts are: the sync as each refresh found it.

A refresh records this before it reads a single synced record, in its own transaction, so a
report never claims more than its facts hold: a detail that lands while the refresh reads is
still counted as owed. Facts are complete when a sync of the firm has completed and no detail
is owed (`pending_details` rows below `RECHECK_PRIORITY`); re-checks of details already read
leave figures as they are. While lists are still being read, every client may still move;
once they are in, only the clients whose records wait for a detail, and the clients of staff
whose detail (capacity) is owed.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import CompoundSelect, func, select, union
from sqlalchemy.dialects.postgresql import insert as upsert_into
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    RECHECK_PRIORITY,
    PendingDetail,
    ReportCompleteness,
    ReportRefresh,
    SyncRun,
    SyncState,
    TimeEntry,
    WorkItem,
)
from app.reports.keys import one_of

KARBON_ENTITIES = ("users", "contacts", "organizations", "work_items", "timesheets", "invoices")
"""The sync's streams (`app.sync.streams.STREAMS`, which this layer may not import; a test
keeps the two in step): during a first sync, one not yet begun is shown `waiting`."""
LISTED_STATES = frozenset({"listed", "done"})
"""A stream's run progress `state` once its lists are in (`running` before)."""
OWED = PendingDetail.priority < RECHECK_PRIORITY


@dataclass(frozen=True, slots=True)
class EntityProgress:
    entity: str
    state: str
    records: int
    details_owed: int


@dataclass(frozen=True, slots=True)
class Completeness:
    complete: bool
    first_sync_completed: bool
    lists_in: bool
    progress: tuple[EntityProgress, ...]
    moving_clients: frozenset[str]

    def may_move(self, client_key: str | None) -> bool:
        """Whether the figures of this client (None: of no known client) may still move."""
        if self.complete:
            return False
        return not self.lists_in or client_key is None or client_key in self.moving_clients


NOT_REFRESHED = Completeness(False, False, False, (), frozenset())
"""No refresh has run: there are no facts to be complete."""


async def record(session: AsyncSession, tenant_id: UUID) -> Completeness:
    """Find how complete the synced data is now and keep it for the refresh under way."""
    completeness = await _measure(session, tenant_id)
    values = {
        "complete": completeness.complete,
        "first_sync_completed": completeness.first_sync_completed,
        "lists_in": completeness.lists_in,
        "progress": [_progress_json(p) for p in completeness.progress],
        "moving_clients": sorted(completeness.moving_clients),
    }
    statement = upsert_into(ReportCompleteness).values(tenant_id=tenant_id, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=["tenant_id"], set_=values)
    )
    return completeness


async def refresh_with_completeness(
    session: AsyncSession, tenant_id: UUID
) -> tuple[ReportRefresh | None, Completeness]:
    """The last refresh and its completeness, read together so they always match."""
    query = (
        select(ReportRefresh, ReportCompleteness)
        .outerjoin(ReportCompleteness, ReportCompleteness.tenant_id == ReportRefresh.tenant_id)
        .where(ReportRefresh.tenant_id == tenant_id)
    )
    row = (await session.execute(query)).first()
    if row is None:
        return None, NOT_REFRESHED
    refresh, kept = row
    return refresh, _from_row(kept) if kept is not None else NOT_REFRESHED


def _from_row(row: ReportCompleteness) -> Completeness:
    return Completeness(
        complete=row.complete,
        first_sync_completed=row.first_sync_completed,
        lists_in=row.lists_in,
        progress=tuple(EntityProgress(**p) for p in row.progress),
        moving_clients=frozenset(row.moving_clients),
    )


def _progress_json(progress: EntityProgress) -> dict[str, Any]:
    return {
        "entity": progress.entity,
        "state": progress.state,
        "records": progress.records,
        "details_owed": progress.details_owed,
    }


async def _measure(session: AsyncSession, tenant_id: UUID) -> Completeness:
    first_sync_completed = await _has_completed_sync(session, tenant_id)
    run_progress = await _latest_run_progress(session, tenant_id)
    owed = await _owed_by_stream(session, tenant_id)
    expected = () if first_sync_completed else KARBON_ENTITIES
    progress = _entity_progress(run_progress, owed, expected)
    lists_in = first_sync_completed or all(p.state in LISTED_STATES for p in progress)
    return Completeness(
        complete=first_sync_completed and not owed,
        first_sync_completed=first_sync_completed,
        lists_in=lists_in,
        progress=progress,
        moving_clients=await _moving_clients(session, tenant_id) if owed else frozenset(),
    )


async def _has_completed_sync(session: AsyncSession, tenant_id: UUID) -> bool:
    query = select(
        select(SyncRun.id)
        .where(SyncRun.tenant_id == tenant_id, SyncRun.state == SyncState.SUCCEEDED)
        .exists()
    )
    return bool((await session.execute(query)).scalar_one())


async def _latest_run_progress(session: AsyncSession, tenant_id: UUID) -> Mapping[str, Any]:
    query = (
        select(SyncRun.progress)
        .where(SyncRun.tenant_id == tenant_id)
        .order_by(SyncRun.requested_at.desc())
        .limit(1)
    )
    progress: Mapping[str, Any] | None = (await session.execute(query)).scalar_one_or_none()
    return progress or {}


async def _owed_by_stream(session: AsyncSession, tenant_id: UUID) -> dict[str, int]:
    query = (
        select(PendingDetail.stream, func.count())
        .where(PendingDetail.tenant_id == tenant_id, OWED)
        .group_by(PendingDetail.stream)
    )
    return {stream: count for stream, count in (await session.execute(query)).all()}


def _entity_progress(
    run_progress: Mapping[str, Any], owed: Mapping[str, int], expected: Sequence[str]
) -> tuple[EntityProgress, ...]:
    """Each entity the latest run reads, any other with details still owed, and the
    `expected` ones (`waiting` until the run begins them), in the sync's order."""
    entities: list[EntityProgress] = []
    present = {*run_progress, *owed, *expected}
    known = [entity for entity in KARBON_ENTITIES if entity in present]
    for entity in [*known, *sorted(present - set(KARBON_ENTITIES))]:
        stream = run_progress.get(entity)
        saved = stream if isinstance(stream, Mapping) else {}
        default_state = "listed" if entity in owed else "waiting"
        entities.append(
            EntityProgress(
                entity=entity,
                state=str(saved.get("state") or default_state),
                records=int(saved.get("records") or 0),
                details_owed=owed.get(entity, 0),
            )
        )
    return tuple(entities)


async def _moving_clients(session: AsyncSession, tenant_id: UUID) -> frozenset[str]:
    """Clients named by an owed detail; for an owed record that named none, its client as a
    work item, or the clients of its time as a person (capacity prices all of it)."""
    owed = (PendingDetail.tenant_id == tenant_id) & OWED
    named = select(PendingDetail.client_key).where(owed, PendingDetail.client_key.is_not(None))
    clients = set((await session.execute(named.distinct())).scalars())
    unnamed = select(PendingDetail.record_key).where(owed, PendingDetail.client_key.is_(None))
    keys = list((await session.execute(unnamed)).scalars())
    if keys:
        clients |= set(await session.scalars(_clients_of_records(tenant_id, keys)))
    return frozenset(key for key in clients if key is not None)


def _clients_of_records(tenant_id: UUID, keys: Sequence[str]) -> CompoundSelect[tuple[str | None]]:
    of_work_items = select(WorkItem.client_key).where(
        WorkItem.tenant_id == tenant_id, one_of(WorkItem.work_item_key, keys)
    )
    # Rule 6: an entry's client is its work item's when known, else its own.
    of_time = (
        select(func.coalesce(WorkItem.client_key, TimeEntry.client_key))
        .select_from(TimeEntry)
        .outerjoin(
            WorkItem,
            (WorkItem.tenant_id == TimeEntry.tenant_id)
            & (WorkItem.work_item_key == TimeEntry.work_item_key),
        )
        .where(TimeEntry.tenant_id == tenant_id, one_of(TimeEntry.user_key, keys))
    )
    return union(of_work_items, of_time)
