import asyncio
import contextlib
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


async def test_one_call_renews_every_lock_and_reports_only_the_lost_one(
    redis: Redis, redis_prefix: str
) -> None:
    # Renewing lock by lock queued behind redis-py's pool on a busy worker until locks expired.
    renewals = 0
    evaluate = redis.eval

    async def counting_eval(script: str, *args: object) -> object:
        nonlocal renewals
        renewals += "pexpire" in script
        return await evaluate(script, *args)  # type: ignore[misc]

    redis.eval = counting_eval  # type: ignore[method-assign]
    keys = [_key(redis_prefix) for _ in range(40)]
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        started = loop.time()
        held = [await stack.enter_async_context(hold_lock(redis, k, ttl_seconds=0.3)) for k in keys]
        await asyncio.sleep(0.5)
        # One call per 0.1 s (a third of the TTL) for all forty, not forty.
        assert 1 <= renewals <= (loop.time() - started) / 0.1 + 1
        await redis.set(keys[7], "someone-else")
        await asyncio.wait_for(_set(held[7]), timeout=2)
        await asyncio.sleep(0.3)
        assert [i for i, lost in enumerate(held) if lost is None or lost.is_set()] == [7]
        assert await redis.exists(*keys) == len(keys)


async def _set(event: asyncio.Event | None) -> None:
    assert event is not None
    await event.wait()
