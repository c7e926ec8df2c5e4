"""Queries on sync runs, settings and stream state."""

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ACTIVE_STATES, StreamState, SyncKind, SyncRun, SyncSettings, SyncState


async def active_run(session: AsyncSession, tenant_id: UUID) -> SyncRun | None:
    query = select(SyncRun).where(SyncRun.tenant_id == tenant_id, SyncRun.state.in_(ACTIVE_STATES))
    return (await session.execute(query)).scalar_one_or_none()


async def get_run(session: AsyncSession, run_id: UUID) -> SyncRun | None:
    return await session.get(SyncRun, run_id)


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
        found = SyncSettings(tenant_id=tenant_id)
        session.add(found)
        await session.flush()  # fills in the model's column defaults
    return found


async def high_water_marks(session: AsyncSession, tenant_id: UUID) -> dict[str, datetime | None]:
    query = select(StreamState).where(StreamState.tenant_id == tenant_id)
    rows = (await session.execute(query)).scalars().all()
    return {row.stream: row.high_water_mark for row in rows}
