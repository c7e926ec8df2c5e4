"""The nightly rotation: which held details each night's full run re-checks.

A full run reads every list (that is what finds deletions), but re-reading every detail as
well takes a large firm about 11 hours at 1.8 requests/second. Instead each record held with
its detail (a stream whose detail policy is not NEVER, and a row that holds `raw_detail`)
falls into one of `period` buckets by a stable hash of its stream and key, and each night
re-checks the bucket its date names: any `period` consecutive nights re-check every record
once. Invoices count only when they were read in detail (their list fell short): an invoice
whose list carries its lines has its whole figures from the list, which the nightly reads
anyway. `period` is the smallest number of nights (1 to 7) whose share, plus a read of every
list, fits the night (01:00-05:00 at the firm's request rate). When even seven nights do not
fit, the share is queued all the same: what the night leaves stays queued for later runs,
and ops see the warning.

Re-checks go to the queue of owed details at `RECHECK_PRIORITY` or above, each night's after
those earlier nights left (a night too short for its share leaves the rest first in line,
never the same records behind every night); a record whose detail is owed, or already queued
for a re-check, keeps its place (ON CONFLICT DO NOTHING). The run's share is written with its
`NightlyRotation` row in one transaction, and a run that already has that row queues nothing:
a resumed run does not re-read what it already re-checked.
"""

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Table,
    cast,
    func,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import BIT, distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import RECHECK_PRIORITY, NightlyRotation, PendingDetail, SyncKind
from app.sync.repository import last_finished_run
from app.sync.streams import STREAMS, DetailPolicy, Stream

logger = logging.getLogger(__name__)

NIGHTLY_WINDOW_START_HOUR = 1
NIGHTLY_WINDOW_MINUTES = 240
"""Nightly reconciliations start between 01:00 and 05:00 UTC, each tenant at its own minute;
the window is also the night a firm's nightly work is sized to."""
MAX_PERIOD = 7
"""Every held detail is re-checked at least weekly."""
MIN_RECHECK_MARGIN = timedelta(minutes=2)


def night_requests(rate_per_second: float) -> int:
    """What one firm's budget sends in the night window: 25,920 at 1.8 requests/second."""
    return round(NIGHTLY_WINDOW_MINUTES * 60 * rate_per_second)


@dataclass(frozen=True)
class RotationSize:
    """The rotation a firm's size calls for (pure: figures in, figures out)."""

    period: int
    list_pages: int
    detail_records: int
    night_requests: int

    @property
    def expected_share(self) -> int:
        """Records per night when the hash spreads them evenly."""
        return math.ceil(self.detail_records / self.period)

    @property
    def planned_requests(self) -> int:
        return self.list_pages + self.expected_share

    @property
    def fits(self) -> bool:
        return self.planned_requests <= self.night_requests


def choose_period(list_pages: int, detail_records: int, night: int) -> RotationSize:
    """The fewest nights whose share and a read of every list fit `night` requests; seven
    when none does (then `fits` is False)."""
    for period in range(1, MAX_PERIOD + 1):
        size = RotationSize(period, list_pages, detail_records, night)
        if size.fits:
            return size
    return RotationSize(MAX_PERIOD, list_pages, detail_records, night)


def bucket_of(stream: str, record_key: str, period: int) -> int:
    """The night of the rotation a record is re-checked in (the same hash as `_bucket`)."""
    digest = hashlib.md5(f"{stream}:{record_key}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % period


def tonight_bucket(night: date, period: int) -> int:
    """Consecutive nights name consecutive buckets, so any `period` of them name every one."""
    return night.toordinal() % period


def rechecked_streams() -> tuple[Stream, ...]:
    return tuple(stream for stream in STREAMS if stream.detail is not DetailPolicy.NEVER)


# -- measuring a firm and queueing its share ----------------------------------------------


@dataclass(frozen=True)
class FirmSize:
    list_pages: int
    detail_records: int


async def measure(session: AsyncSession, tenant_id: UUID) -> FirmSize:
    """Pages of a read of every list (records held ÷ page size, at least one page a list) and
    the records held with their detail."""
    pages = 0
    details = 0
    for stream in STREAMS:
        table = _table(stream)
        live = _live(stream, table, tenant_id)
        held = func.count()
        with_detail = (
            func.count().filter(table.c.raw_detail.is_not(None))
            if stream.detail is not DetailPolicy.NEVER
            else literal(0)
        )
        row = (await session.execute(select(held, with_detail).where(*live))).one()
        pages += max(1, math.ceil(row[0] / stream.page_size))
        details += int(row[1])
    return FirmSize(list_pages=pages, detail_records=details)


async def list_pages_read(session: AsyncSession, tenant_id: UUID) -> int:
    """The pages a read of every list takes, as the firm's last complete read (its first sync
    or a nightly run) took them: one row read, where `measure` counts every record the firm
    holds. None yet: 0."""
    run = await last_finished_run(session, tenant_id, kinds=(SyncKind.INITIAL, SyncKind.FULL))
    if run is None:
        return 0
    return sum(
        int(saved.get("pages_done") or 0)
        for saved in run.progress.values()
        if isinstance(saved, dict)
    )


async def enqueue_tonight(
    session: AsyncSession,
    tenant_id: UUID,
    run_id: UUID,
    night: date,
    night_capacity: int,
    now: datetime,
) -> NightlyRotation:
    """Queue the run's share of re-checks once; a resumed run gets the row written first."""
    existing = await session.get(NightlyRotation, run_id)
    if existing is not None:
        return existing
    firm = await measure(session, tenant_id)
    size = choose_period(firm.list_pages, firm.detail_records, night_capacity)
    bucket = tonight_bucket(night, size.period)
    level = await _tonight_level(session, tenant_id)
    share = 0
    for stream in rechecked_streams():
        share += await _enqueue_bucket(
            session, stream, tenant_id, run_id, (size.period, bucket), level, now
        )
    rotation = NightlyRotation(
        run_id=run_id,
        tenant_id=tenant_id,
        night=night,
        period=size.period,
        bucket=bucket,
        list_pages=size.list_pages,
        detail_records=size.detail_records,
        share=share,
        night_requests=night_capacity,
        created_at=now,
    )
    session.add(rotation)
    # The primary key makes a second worker racing on the same run fail here, rolling back
    # its share: the queue never holds a run's share twice.
    await session.flush()
    if not size.fits:
        logger.warning(
            "nightly rotation does not fit the night: re-checks left over stay queued",
            extra={
                "tenant_id": str(tenant_id),
                "planned_requests": size.planned_requests,
                "night_requests": night_capacity,
            },
        )
    return rotation


async def _tonight_level(session: AsyncSession, tenant_id: UUID) -> int:
    """Where tonight's re-checks queue: after every re-check earlier nights left, so a night
    too short for its share never leaves the same records (the last in key order) behind
    night after night. The levels in use are first moved down to start at
    `RECHECK_PRIORITY`, so they stay few."""
    rechecks = (PendingDetail.tenant_id == tenant_id, PendingDetail.priority >= RECHECK_PRIORITY)
    lowest, highest = (
        await session.execute(
            select(func.min(PendingDetail.priority), func.max(PendingDetail.priority)).where(
                *rechecks
            )
        )
    ).one()
    if lowest is None:
        return RECHECK_PRIORITY
    if lowest > RECHECK_PRIORITY:
        shift = lowest - RECHECK_PRIORITY
        await session.execute(
            update(PendingDetail).where(*rechecks).values(priority=PendingDetail.priority - shift)
        )
        highest -= shift
    return int(highest) + 1


async def _enqueue_bucket(
    session: AsyncSession,
    stream: Stream,
    tenant_id: UUID,
    run_id: UUID,
    rotation: tuple[int, int],
    level: int,
    now: datetime,
) -> int:
    """Queue one stream's records of tonight's bucket (`rotation`: the period and tonight's
    bucket) at `level`; returns how many the bucket holds."""
    period, bucket = rotation
    table = _table(stream)
    key = table.c[_key_column(table)]
    where = (*_live(stream, table, tenant_id), table.c.raw_detail.is_not(None))
    in_bucket = _bucket(stream.name, key, period) == bucket
    client = table.c.client_key if "client_key" in table.c else null()
    rows = select(
        literal(tenant_id),
        literal(stream.name),
        key,
        literal(level),
        client,
        literal(run_id),
        literal(now),
    ).where(*where, in_bucket)
    columns = ["tenant_id", "stream", "record_key", "priority", "client_key", "run_id"]
    statement = insert(PendingDetail).from_select([*columns, "enqueued_at"], rows)
    # An owed detail (a lower priority) keeps its place: a re-check never demotes it.
    await session.execute(statement.on_conflict_do_nothing())
    counted = select(func.count()).where(*where, in_bucket)
    return int((await session.execute(counted)).scalar_one())


def _bucket(stream: str, key: ColumnElement[Any], period: int) -> ColumnElement[int]:
    """`bucket_of` in SQL: the first 32 bits of md5(stream:key), modulo the period."""
    digest = func.md5(literal(f"{stream}:") + key)
    first_bits = cast(literal("x") + func.left(digest, 8), BIT(32))
    return cast(first_bits, BigInteger) % period


def _table(stream: Stream) -> Table:
    table = stream.storage.model.__table__
    assert isinstance(table, Table)
    return table


def _key_column(table: Table) -> str:
    return next(column.name for column in table.primary_key.columns if column.name != "tenant_id")


def _live(stream: Stream, table: Table, tenant_id: UUID) -> tuple[ColumnElement[bool], ...]:
    scope = tuple(table.c[name] == value for name, value in stream.storage.scope.items())
    return (table.c.tenant_id == tenant_id, table.c.deleted_at.is_(None), *scope)


async def rechecks_queued(session: AsyncSession, tenant_ids: list[UUID]) -> dict[UUID, int]:
    """Re-checks still waiting in each firm's queue."""
    query = (
        select(PendingDetail.tenant_id, func.count())
        .where(PendingDetail.tenant_id.in_(tenant_ids), PendingDetail.priority >= RECHECK_PRIORITY)
        .group_by(PendingDetail.tenant_id)
    )
    return {tenant_id: int(count) for tenant_id, count in (await session.execute(query)).all()}


async def latest_rotations(
    session: AsyncSession, tenant_ids: list[UUID]
) -> dict[UUID, NightlyRotation]:
    """Each firm's most recent rotation share."""
    query = (
        select(NightlyRotation)
        .where(NightlyRotation.tenant_id.in_(tenant_ids))
        .order_by(NightlyRotation.tenant_id, NightlyRotation.created_at.desc())
        .ext(distinct_on(NightlyRotation.tenant_id))
    )
    return {row.tenant_id: row for row in (await session.execute(query)).scalars()}


def recheck_until(
    started_at: datetime, interval: timedelta, list_pages: int, rate_per_second: float
) -> datetime:
    """When a run stops taking re-checks: one incremental interval after its start, less the
    time a read of every list takes (at least two minutes, at most half the interval). The
    run then ends within the interval, so the firm's next incremental is never held back
    more than its interval, and that margin is what the next run's lists take."""
    lists = timedelta(seconds=list_pages / rate_per_second)
    margin = min(max(lists, MIN_RECHECK_MARGIN), interval / 2)
    return started_at + interval - margin
