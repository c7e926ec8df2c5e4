"""What each firm's data costs to keep: rows and bytes of raw and normalized data, growth per
day and pruning, measured by the storage job into `storage_footprints`.

Bytes are PostgreSQL's own sizes of the stored values (`pg_column_size`): a raw body as kept
(compressed when large), a normalized row as a whole. Indexes and free space are not counted.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Table, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Client,
    DataQualityIssue,
    Invoice,
    InvoiceLine,
    RawResponse,
    Staff,
    StorageFootprint,
    TimeEntry,
    Timesheet,
    WorkItem,
)
from app.sync.raw_versions import Pruned

NORMALIZED: tuple[Any, ...] = (
    Staff,
    Client,
    WorkItem,
    Timesheet,
    TimeEntry,
    Invoice,
    InvoiceLine,
    DataQualityIssue,
)
"""The tables a sync derives from Karbon's JSON (data-quality issues included)."""

_MEASURED = (
    "raw_rows",
    "raw_bytes",
    "normalized_rows",
    "normalized_bytes",
    "raw_rows_last_day",
    "raw_bytes_last_day",
)


@dataclass(frozen=True)
class Footprint:
    raw_rows: int
    raw_bytes: int
    normalized_rows: int
    normalized_bytes: int
    raw_rows_last_day: int
    raw_bytes_last_day: int


async def measure(session: AsyncSession, tenant_id: UUID, now: datetime) -> Footprint:
    body_bytes = func.coalesce(func.pg_column_size(RawResponse.body), 0)
    last_day = RawResponse.fetched_at > now - timedelta(days=1)
    raw = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(body_bytes), 0),
                func.count().filter(last_day),
                func.coalesce(func.sum(body_bytes).filter(last_day), 0),
            ).where(RawResponse.tenant_id == tenant_id)
        )
    ).one()
    rows = size = 0
    for model in NORMALIZED:
        table: Table = model.__table__
        whole_row = func.pg_column_size(literal_column(f"{table.name}.*"))
        count, total = (
            await session.execute(
                select(func.count(), func.coalesce(func.sum(whole_row), 0))
                .select_from(table)
                .where(table.c.tenant_id == tenant_id)
            )
        ).one()
        rows, size = rows + int(count), size + int(total)
    return Footprint(int(raw[0]), int(raw[1]), rows, size, int(raw[2]), int(raw[3]))


async def save_measure(
    session: AsyncSession, tenant_id: UUID, footprint: Footprint, now: datetime
) -> None:
    values = {name: getattr(footprint, name) for name in _MEASURED}
    statement = insert(StorageFootprint).values(
        tenant_id=tenant_id, measured_at=now, pruned_rows=0, pruned_bytes=0, **values
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[StorageFootprint.tenant_id],
            set_={"measured_at": now, **{name: statement.excluded[name] for name in _MEASURED}},
        )
    )


async def save_pruned(session: AsyncSession, pruned: Sequence[Pruned], now: datetime) -> None:
    for firm in pruned:
        statement = insert(StorageFootprint).values(
            tenant_id=firm.tenant_id,
            last_pruned_at=now,
            pruned_rows=firm.rows,
            pruned_bytes=firm.bytes,
            **dict.fromkeys(_MEASURED, 0),
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[StorageFootprint.tenant_id],
                set_={
                    "last_pruned_at": now,
                    "pruned_rows": StorageFootprint.pruned_rows + firm.rows,
                    "pruned_bytes": StorageFootprint.pruned_bytes + firm.bytes,
                },
            )
        )


async def footprints(
    session: AsyncSession, tenant_ids: Sequence[UUID] | None = None
) -> dict[UUID, StorageFootprint]:
    """Stored footprints, of the given firms or of all."""
    query = select(StorageFootprint)
    if tenant_ids is not None:
        query = query.where(StorageFootprint.tenant_id.in_(list(tenant_ids)))
    return {row.tenant_id: row for row in (await session.execute(query)).scalars()}
