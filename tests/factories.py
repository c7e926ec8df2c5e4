"""Rows the tests need, created through the ORM on the real database."""

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Tenant


async def create_tenant(sessions: async_sessionmaker[AsyncSession], name: str = "Acme CPA") -> UUID:
    async with sessions() as session:
        tenant = Tenant(name=name, subscription_active=False)
        session.add(tenant)
        await session.commit()
        return tenant.id
