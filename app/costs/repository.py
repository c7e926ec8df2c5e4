"""Queries for cost assumptions and the synced staff they apply to."""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import CompensationPeriod, CostSettings, Staff


async def cost_settings(session: AsyncSession, tenant_id: UUID) -> CostSettings | None:
    return await session.get(CostSettings, tenant_id)


async def cost_settings_to_change(session: AsyncSession, tenant_id: UUID) -> CostSettings:
    """The firm's settings, created with the defaults if it has none, locked until commit.
    First saves at once: one inserts, the others wait for its commit and change its row."""
    create = insert(CostSettings).values(tenant_id=tenant_id).on_conflict_do_nothing()
    await session.execute(create)
    query = select(CostSettings).where(CostSettings.tenant_id == tenant_id).with_for_update()
    return (await session.execute(query)).scalar_one()


async def live_staff_page(
    session: AsyncSession, tenant_id: UUID, *, limit: int, offset: int
) -> Sequence[Staff]:
    query = (
        select(Staff)
        .where(Staff.tenant_id == tenant_id, Staff.deleted_at.is_(None))
        .order_by(Staff.name, Staff.user_key)
        .limit(limit)
        .offset(offset)
    )
    return (await session.execute(query)).scalars().all()


async def count_live_staff(session: AsyncSession, tenant_id: UUID) -> int:
    query = select(func.count()).where(Staff.tenant_id == tenant_id, Staff.deleted_at.is_(None))
    return int((await session.execute(query)).scalar_one())


async def live_staff_member(session: AsyncSession, tenant_id: UUID, key: str) -> Staff | None:
    query = select(Staff).where(
        Staff.tenant_id == tenant_id, Staff.user_key == key, Staff.deleted_at.is_(None)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def compensation_periods(
    session: AsyncSession, tenant_id: UUID, staff_keys: Sequence[str] | None = None
) -> Sequence[CompensationPeriod]:
    query = select(CompensationPeriod).where(CompensationPeriod.tenant_id == tenant_id)
    if staff_keys is not None:
        query = query.where(CompensationPeriod.staff_key.in_(list(staff_keys)))
    query = query.order_by(CompensationPeriod.staff_key, CompensationPeriod.effective_from)
    return (await session.execute(query)).scalars().all()


async def put_compensation_period(session: AsyncSession, period: CompensationPeriod) -> None:
    """A second period from the same date corrects the first instead of adding another."""
    statement = insert(CompensationPeriod).values(
        tenant_id=period.tenant_id,
        staff_key=period.staff_key,
        effective_from=period.effective_from,
        annual_amount=period.annual_amount,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "staff_key", "effective_from"],
            set_={"annual_amount": statement.excluded.annual_amount},
        )
    )
