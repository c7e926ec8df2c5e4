"""How long a firm's synced data is kept, and what keeping it costs.

- Raw responses: superseded versions are pruned `RECKONRY_RAW_RETENTION_DAYS` after they were
  last read, hourly, in short batches that skip firms syncing now; the latest version of
  every record lives in its normalized row and is kept as long as the firm's data.
- Footprints: each firm's rows and bytes, growth per day and pruning, measured daily; totals
  become metrics, per-firm figures the operators' firm list.
- Deleting a firm (an operator's act, confirmed by the firm's name) stops its sync and deletes
  every row of it; disconnecting Karbon keeps the data.
"""

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from arq.connections import ArqRedis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import after_commit, unit_of_work
from app.kit.problems import ProblemError
from app.metrics import (
    RAW_PRUNED_AT,
    RAW_PRUNED_BYTES,
    RAW_PRUNED_ROWS,
    STORAGE_LARGEST_FIRM_BYTES,
    STORAGE_MEASURED_AT,
    STORAGE_NORMALIZED_BYTES,
    STORAGE_NORMALIZED_ROWS,
    STORAGE_RAW_BYTES,
    STORAGE_RAW_BYTES_PER_DAY,
    STORAGE_RAW_ROWS,
)
from app.models import StorageFootprint, Tenant
from app.settings import Settings
from app.sync import footprints
from app.sync.control import stop_syncing
from app.sync.raw_versions import prune_superseded
from app.tenancy import repository as tenancy_repository
from app.tenancy.principal_cache import forget_principals
from app.tenancy.schemas import StorageFigures

logger = logging.getLogger(__name__)

PRUNE_SECONDS_PER_RUN = 300.0
"""A prune stops starting batches after this long; the next hour's goes on."""


class StorageJobDeps(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...


# -- pruning ----------------------------------------------------------------------------


async def prune_raw_responses(ctx: dict[str, Any]) -> int:
    """Hourly: delete superseded raw versions past retention. Returns the rows deleted."""
    deps: StorageJobDeps = ctx["deps"]
    return await prune(deps.sessions, deps.settings, datetime.now(UTC))


async def prune(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> int:
    cutoff = now - timedelta(days=settings.raw_retention_days)
    started, deleted = time.monotonic(), 0
    while time.monotonic() - started < PRUNE_SECONDS_PER_RUN:
        async with unit_of_work(sessions) as session:
            pruned = await prune_superseded(
                session, cutoff=cutoff, batch_size=settings.raw_prune_batch_size
            )
            await footprints.save_pruned(session, pruned, now)
        rows = sum(firm.rows for firm in pruned)
        deleted += rows
        RAW_PRUNED_ROWS.inc(rows)
        RAW_PRUNED_BYTES.inc(sum(firm.bytes for firm in pruned))
        if rows < settings.raw_prune_batch_size:
            break
    RAW_PRUNED_AT.set(now.timestamp())
    if deleted:
        logger.info("pruned %d superseded raw responses", deleted)
    return deleted


# -- measuring --------------------------------------------------------------------------


async def measure_storage(ctx: dict[str, Any]) -> int:
    """Daily: measure every firm's footprint. Returns the firms measured."""
    deps: StorageJobDeps = ctx["deps"]
    return await measure_all(deps.sessions, datetime.now(UTC))


async def measure_all(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    async with sessions() as session:
        tenant_ids = list((await session.execute(select(Tenant.id))).scalars())
    for tenant_id in tenant_ids:  # one short transaction per firm
        async with unit_of_work(sessions) as session:
            footprint = await footprints.measure(session, tenant_id, now)
            await footprints.save_measure(session, tenant_id, footprint, now)
    async with sessions() as session:
        export_totals(list((await footprints.footprints(session)).values()), now)
    return len(tenant_ids)


def export_totals(kept: Sequence[StorageFootprint], now: datetime) -> None:
    STORAGE_RAW_ROWS.set(sum(f.raw_rows for f in kept))
    STORAGE_RAW_BYTES.set(sum(f.raw_bytes for f in kept))
    STORAGE_NORMALIZED_ROWS.set(sum(f.normalized_rows for f in kept))
    STORAGE_NORMALIZED_BYTES.set(sum(f.normalized_bytes for f in kept))
    STORAGE_RAW_BYTES_PER_DAY.set(sum(f.raw_bytes_last_day for f in kept))
    STORAGE_LARGEST_FIRM_BYTES.set(max((f.raw_bytes + f.normalized_bytes for f in kept), default=0))
    STORAGE_MEASURED_AT.set(now.timestamp())


async def storage_figures(
    session: AsyncSession, tenant_ids: Sequence[UUID]
) -> dict[UUID, StorageFigures]:
    """The operators' view of each firm's footprint (firms never measured are absent)."""
    return {
        tenant_id: StorageFigures(
            measured_at=kept.measured_at,
            raw_rows=kept.raw_rows,
            raw_bytes=kept.raw_bytes,
            normalized_rows=kept.normalized_rows,
            normalized_bytes=kept.normalized_bytes,
            raw_rows_per_day=kept.raw_rows_last_day,
            raw_bytes_per_day=kept.raw_bytes_last_day,
            last_pruned_at=kept.last_pruned_at,
            pruned_rows=kept.pruned_rows,
            pruned_bytes=kept.pruned_bytes,
        )
        for tenant_id, kept in (await footprints.footprints(session, tenant_ids)).items()
    }


# -- deleting a firm --------------------------------------------------------------------


async def delete_firm(
    session: AsyncSession, redis: ArqRedis, settings: Settings, tenant_id: UUID, confirm: str
) -> str:
    """Delete every row the firm owns, once `confirm` repeats its name exactly. A queued or
    running sync is cancelled first (its job is aborted once this commits). Returns the name."""
    tenant = await tenancy_repository.tenant(session, tenant_id, for_update=True)
    if tenant is None:
        raise ProblemError(404, "not-found", f"No firm has the tenant id {tenant_id}.")
    if confirm != tenant.name:
        raise ProblemError(
            400,
            "confirmation-mismatch",
            f"To delete the firm and all its data, confirm with its exact name: {tenant.name!r}.",
            title="Deletion not confirmed",
        )
    name = tenant.name
    await stop_syncing(session, redis, settings, tenant_id, reason="the firm was deleted")
    # Every table with a tenant_id references tenants ON DELETE CASCADE.
    await session.execute(delete(Tenant).where(Tenant.id == tenant_id))
    after_commit(session, forget_principals)
    logger.warning("firm %s (%s) deleted with all its data", tenant_id, name)
    return name
