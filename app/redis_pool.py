"""The Redis client the API and the worker share their Redis through.

redis-py 5.3 (the newest that arq allows) hands out pooled connections one at a time: it
holds the pool's lock while it checks that the connection is ready, and the check waits a
turn of the event loop (redis-py#3692; redis-py 7 checks outside the lock). A worker busy
with a hundred tenants takes a tenth of a second or more per turn, so a hundred syncs
starting together took their tenant locks one by one and the last ones started half a
minute late. This pool takes the lock only to pick a connection, as later redis-py does.
"""

from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection


class ConcurrentConnectionPool(ConnectionPool):
    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        async with self._lock:
            connection: AbstractConnection = self.get_available_connection()  # type: ignore[no-untyped-call]
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection


def create_redis(url: str) -> ArqRedis:
    return ArqRedis(connection_pool=ConcurrentConnectionPool.from_url(url))
