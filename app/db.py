"""Async SQLAlchemy engine and sessions.

Sessions are opened per request (API dependency) and per job step (worker). Only
those boundaries commit; services and repositories at most `flush()`.
"""

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def async_database_url(url: str) -> str:
    """`postgresql://...` as given by users and pgserver, with the asyncpg driver."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def json_text(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """JSON for JSON/JSONB columns, by orjson: raw Karbon bodies are the bulk of what a sync
    writes, and orjson encodes them several times faster than the standard library. Integers
    beyond 64 bits, which orjson declines, go through the standard library. `default` gives
    a JSON form to values that have none (orjson itself writes UUIDs and date-times)."""
    try:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=default)


def create_engine(
    database_url: str, *, pool_size: int = 10, pool_timeout: float = 30.0
) -> AsyncEngine:
    return create_async_engine(
        async_database_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        json_serializer=json_text,
        # PostgreSQL's JIT compiles any plan estimated above its cost threshold, which a
        # report over a large firm's monthly sums is; compiling took ~90 ms of a query that
        # runs in 50 ms. The queries here are short, so JIT only ever costs.
        connect_args={"server_settings": {"jit": "off"}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


AfterCommit = Callable[[], Awaitable[object]]


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Run `action` once the session's transaction has committed (e.g. enqueue a job that
    reads the rows just written); it is dropped if the transaction rolls back."""
    session.info.setdefault("after_commit", []).append(action)


async def _run_after_commit(session: AsyncSession) -> None:
    actions: list[AfterCommit] = session.info.pop("after_commit", [])
    for action in actions:
        await action()


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    async with sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            session.info.pop("after_commit", None)
            await session.rollback()
            raise
        await _run_after_commit(session)


_STALE = text(
    """
SELECT s.relid::regclass::text
FROM pg_stat_user_tables AS s
JOIN pg_stat_xact_user_tables AS x ON x.relid = s.relid
JOIN pg_class AS c ON c.oid = s.relid
WHERE s.relid IN (SELECT to_regclass(name) FROM unnest(CAST(:tables AS text[])) AS name)
  AND s.n_mod_since_analyze + x.n_tup_ins + x.n_tup_upd + x.n_tup_del
    > current_setting('autovacuum_analyze_threshold')::float8
      + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)
ORDER BY 1
"""
)


async def analyze_stale(session: AsyncSession, tables: Sequence[str]) -> list[str]:
    """ANALYZE those of `tables` with more rows written since their last ANALYZE (this
    transaction's included) than autovacuum waits for before analyzing (by the server's
    thresholds, not per-table ones); their names. A large firm's first sync or full refresh
    writes hundreds of thousands of rows at once: until autovacuum (which a server may run
    without) gets there, the planner takes the table for nearly empty, and a lookup of a few
    thousand keys planned as a nested loop over the whole firm ran for minutes. A table another
    transaction is analyzing or vacuuming is skipped, not waited for: it is being done."""
    stale = list((await session.execute(_STALE, {"tables": list(tables)})).scalars())
    connection = await session.connection()
    for name in stale:  # a regclass's text: quoted and qualified as needed
        await connection.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {name}")
    return stale
