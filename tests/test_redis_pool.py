"""Concurrent Redis commands from a busy worker do not queue behind one another."""

import asyncio

from redis.asyncio.connection import AbstractConnection

from app.embedded import ServiceUrls
from app.redis_pool import ConcurrentConnectionPool


async def test_a_connection_being_checked_does_not_hold_up_the_next(
    service_urls: ServiceUrls,
) -> None:
    # The readiness check of a handed-out connection waits a turn of the event loop, which on a
    # busy worker is a tenth of a second: a hundred syncs starting together must not take their
    # locks one check after another.
    pool = ConcurrentConnectionPool.from_url(service_urls.redis_url)
    check = pool.ensure_connection
    first_check_may_end = asyncio.Event()
    checks = 0

    async def first_check_slow(connection: AbstractConnection) -> None:
        nonlocal checks
        checks += 1
        if checks == 1:
            await first_check_may_end.wait()
        await check(connection)

    pool.ensure_connection = first_check_slow  # type: ignore[method-assign]
    try:
        first = asyncio.create_task(pool.get_connection())
        await asyncio.sleep(0.01)
        second = await asyncio.wait_for(pool.get_connection(), timeout=5)
        assert not first.done()
        first_check_may_end.set()
        await pool.release(await first)
        await pool.release(second)
    finally:
        await pool.disconnect()
