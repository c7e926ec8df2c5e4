"""`reckonry delete-firm`: an operator deletes a firm and all its data."""

from uuid import UUID

from app.db import create_engine, create_sessionmaker, unit_of_work
from app.embedded import ServiceUrls
from app.redis_pool import create_redis
from app.settings import Settings
from app.sync import retention


async def delete_firm(settings: Settings, urls: ServiceUrls, tenant_id: UUID, confirm: str) -> str:
    """Delete the firm once `confirm` repeats its name; returns the name. Raises
    `ProblemError` (404 unknown firm, 400 wrong name) and deletes nothing then."""
    engine = create_engine(urls.database_url, pool_size=1)
    redis = create_redis(urls.redis_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            return await retention.delete_firm(session, redis, settings, tenant_id, confirm)
    finally:
        await redis.aclose()
        await engine.dispose()
