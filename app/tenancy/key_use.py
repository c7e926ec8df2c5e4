"""When each integrator key was last used, to the minute, without a write per request.

The database row is rewritten only when its `last_used_at` is a minute old or more (so several
processes together write it at most about once a minute), and this process does not even ask
for a minute after its own write committed. A request that fails rolls its mark back; the key's
next request marks it.
"""

from datetime import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.caching import TtlCache
from app.db import after_commit
from app.tenancy import repository

_marked_recently: TtlCache[UUID, bool] = TtlCache(60.0)


async def mark_used(session: AsyncSession, key_id: UUID, now: datetime) -> None:
    if _marked_recently.get(key_id):
        return
    await repository.mark_api_key_used(session, key_id, now)

    async def remember() -> None:
        _marked_recently.put(key_id, True)

    after_commit(session, remember)


def forget_marks() -> None:
    """For tests: the next use of every key asks the database again."""
    _marked_recently.clear()
