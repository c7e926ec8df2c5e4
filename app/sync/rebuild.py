"""Rebuild the normalized tables from the stored raw responses, with no request to Karbon.

Every page and detail Karbon returned is kept in `raw_responses`; replaying them in the
order they arrived through the same parsers and upserts as a sync re-derives every
normalized column (new ones included). What a sync marked deleted stays deleted.
"""

from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.sync import repository
from app.sync.karbon.client import list_records
from app.sync.records import Raw
from app.sync.store import RecordStore
from app.sync.streams import STREAMS, Stream


@dataclass
class RebuildSummary:
    pages: int = 0
    records: int = 0
    rejected: int = 0
    by_stream: dict[str, int] = field(default_factory=dict)


async def rebuild_from_raw(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> RebuildSummary:
    summary = RebuildSummary()
    for stream in STREAMS:
        details = await _latest_details(sessions, tenant_id, stream)
        async with unit_of_work(sessions) as session:
            async for response in repository.raw_responses(session, tenant_id, stream.name, "page"):
                records = list_records(response.body) or []
                store = RecordStore(session, tenant_id, response.run_id)
                tokens = stream.tokens(records)
                batch = await stream.write(store, records, details, tokens, keep_deleted_at=True)
                summary.pages += 1
                summary.records += len(batch.records)
                summary.rejected += len(batch.rejects)
                summary.by_stream[stream.name] = summary.by_stream.get(stream.name, 0) + len(
                    batch.records
                )
    return summary


async def _latest_details(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, stream: Stream
) -> dict[str, Raw]:
    details: dict[str, Raw] = {}
    async with sessions() as session:
        async for response in repository.raw_responses(session, tenant_id, stream.name, "detail"):
            if isinstance(response.body, dict) and stream.key_field in response.body:
                details[stream.key_of(response.body)] = response.body
    return details
