"""Rows the tests need, created through the ORM on the real database."""

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Role, Tenant, User


async def create_tenant(sessions: async_sessionmaker[AsyncSession], name: str = "Acme CPA") -> UUID:
    async with sessions() as session:
        tenant = Tenant(name=name, subscription_active=False)
        session.add(tenant)
        await session.commit()
        return tenant.id


async def create_user(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: UUID | None,
    email: str,
    role: Role = Role.ADMIN,
) -> UUID:
    async with sessions() as session:
        user = User(tenant_id=tenant_id, email=email, password_hash="not-used", role=role)
        session.add(user)
        await session.commit()
        return user.id
