"""Whether an error means the database or Redis cannot be reached: the API answers 503 with a
reason and the CLI one line naming the setting to check, both from this one judgement."""

import traceback
from dataclasses import dataclass
from typing import Literal

import asyncpg  # type: ignore[import-untyped]
import redis.exceptions
import sqlalchemy.exc

Service = Literal["database", "redis"]

# The server answered, but refuses this URL's user or database: unreachable as configured.
_REFUSED_BY_DATABASE = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


@dataclass(frozen=True)
class Unreachable:
    service: Service
    cause: BaseException


def unreachable_service(error: BaseException | None) -> Unreachable | None:
    """The server `error`, or what caused it, says cannot be reached; None for any other error."""
    while error is not None:
        if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return Unreachable("redis", error)
        if _database_unreachable(error):
            return Unreachable("database", error)
        error = error.__cause__ or error.__context__
    return None


def _database_unreachable(error: BaseException) -> bool:
    if isinstance(error, sqlalchemy.exc.TimeoutError | sqlalchemy.exc.InterfaceError):
        return True
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        return error.connection_invalidated or isinstance(error, sqlalchemy.exc.OperationalError)
    if isinstance(error, _REFUSED_BY_DATABASE):
        return True
    # asyncpg's connect lets socket errors (refused, unknown host) through unwrapped; the
    # same errors from anything else (mail, Karbon) are not the database's.
    return isinstance(error, OSError) and _raised_by_database_driver(error)


def _raised_by_database_driver(error: OSError) -> bool:
    return any(
        "/asyncpg/" in frame.filename or "/sqlalchemy/" in frame.filename
        for frame in traceback.extract_tb(error.__traceback__)
    )
