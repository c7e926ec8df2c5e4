import asyncio
import uuid

from redis.asyncio import Redis

from app.sync.lock import hold_lock


def _key(prefix: str) -> str:
    return f"{prefix}:sync-lock:{uuid.uuid4()}"


async def test_second_holder_is_refused_while_the_first_holds(
    redis: Redis, redis_prefix: str
) -> None:
    key = _key(redis_prefix)
    async with hold_lock(redis, key) as first:
        assert first is not None
        async with hold_lock(redis, key) as second:
            assert second is None
    async with hold_lock(redis, key) as third:
        assert third is not None


async def test_a_crashed_holders_lock_expires(redis: Redis, redis_prefix: str) -> None:
    key = _key(redis_prefix)
    await redis.set(key, "token-of-a-dead-worker", px=200)
    async with hold_lock(redis, key) as refused:
        assert refused is None
    await asyncio.sleep(0.3)
    async with hold_lock(redis, key) as acquired:
        assert acquired is not None


async def test_renewal_keeps_the_lock_past_its_ttl(redis: Redis, redis_prefix: str) -> None:
    key = _key(redis_prefix)
    async with hold_lock(redis, key, ttl_seconds=0.3) as lost:
        assert lost is not None
        await asyncio.sleep(0.8)
        assert not lost.is_set()
        assert await redis.exists(key) == 1
    assert await redis.exists(key) == 0


async def test_a_holder_that_lost_the_lock_learns_it_and_frees_nothing(
    redis: Redis, redis_prefix: str
) -> None:
    key = _key(redis_prefix)
    async with hold_lock(redis, key, ttl_seconds=0.3) as lost:
        assert lost is not None
        await redis.set(key, "someone-else")
        await asyncio.wait_for(lost.wait(), timeout=2)
    assert await redis.get(key) == b"someone-else"
