"""Rebuild the normalized tables from the raw JSON they keep, with no request to Karbon.

Every normalized row keeps the latest raw JSON of its record (`raw` from the list,
`raw_detail` from its detail call; a timesheet's entries each in their own row). Parsing
them again through the same parsers and upserts as a sync re-derives every normalized column
(new ones included). What only a sync can know stays as the last sync left it: which records
Karbon deleted, which run last saw each, and each record's change token. Records set aside
whole as unreadable (kept in the data-quality list) are parsed again too: one that a
corrected parser now accepts is stored.

The raw responses table is the history of what Karbon answered; the rebuild does not need it,
so pruning superseded responses never changes what a rebuild gives.
"""

from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.sync import repository
from app.sync.records import ParsedBatch, Raw
from app.sync.store import RecordStore
from app.sync.streams import STREAMS, Stream


@dataclass
class RebuildSummary:
    records: int = 0
    rejected: int = 0
    by_stream: dict[str, int] = field(default_factory=dict)

    def add(self, stream: Stream, batch: ParsedBatch) -> None:
        self.records += len(batch.records)
        self.rejected += len(batch.rejects)
        self.by_stream[stream.name] = self.by_stream.get(stream.name, 0) + len(batch.records)


async def rebuild_from_raw(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> RebuildSummary:
    summary = RebuildSummary()
    for stream in STREAMS:
        async with unit_of_work(sessions) as session:
            store = RecordStore(session, tenant_id, run_id=None)
            async for kept in repository.kept_records(session, tenant_id, stream.storage):
                records = [record.raw for record in kept]
                details = {
                    stream.key_of(record.raw): record.detail
                    for record in kept
                    if record.detail is not None
                }
                summary.add(stream, await _rewrite(store, stream, records, details))
            set_aside = await repository.set_aside_records(session, tenant_id, stream.name)
            summary.add(stream, await _rewrite(store, stream, set_aside, {}))
    return summary


async def _rewrite(
    store: RecordStore, stream: Stream, records: list[Raw], details: dict[str, Raw]
) -> ParsedBatch:
    tokens = stream.tokens(records)
    return await stream.write(store, records, details, tokens, keep_deleted_at=True)
