"""Rows the tests need, created through the ORM on the real database."""

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import KarbonConnection, Role, Tenant, User
from app.secrets import Secrets
from app.tenancy.crypto import CredentialCipher, mask


async def create_tenant(sessions: async_sessionmaker[AsyncSession], name: str = "Acme CPA") -> UUID:
    async with sessions() as session:
        tenant = Tenant(name=name)
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


async def connect_karbon(
    sessions: async_sessionmaker[AsyncSession],
    secrets: Secrets,
    tenant_id: UUID,
    access_key: str,
    bearer_token: str,
) -> None:
    """Store Karbon keys for a tenant, encrypted as the product stores them."""
    cipher = CredentialCipher(secrets)
    async with sessions() as session:
        session.add(
            KarbonConnection(
                tenant_id=tenant_id,
                access_key_encrypted=cipher.encrypt(access_key),
                bearer_token_encrypted=cipher.encrypt(bearer_token),
                access_key_masked=mask(access_key),
                bearer_token_masked=mask(bearer_token),
            )
        )
        await session.commit()
