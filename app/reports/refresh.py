"""Rebuild one tenant's report tables from its synced rows and cost assumptions.

Everything is replaced in one transaction, so a report reads either the previous refresh or
this one, never a mix. Rows are written with COPY: a large firm has over half a million facts.
The monthly sums are then summed from the facts in SQL, in the same transaction.
"""

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, insert, literal, select, text, union_all
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as upsert_into
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.costs.service import domain_settings
from app.db import unit_of_work
from app.domain import (
    MEASURE_NAMES,
    DataWarning,
    Evaluation,
    Fact,
    FixedFeePosition,
    WipItem,
    evaluate,
    last_365_days,
)
from app.models import (
    Client,
    Invoice,
    ReportClientName,
    ReportFact,
    ReportFixedFee,
    ReportRefresh,
    ReportSummedWindow,
    ReportWarning,
    ReportWindowSum,
    ReportWipItem,
    SyncRun,
    SyncState,
    WorkItem,
)
from app.models.reports import ReportMonthlySum
from app.reports import repository
from app.reports.cache import forget_tenant
from app.reports.loading import load_records
from app.reports.repository import SUM_NAMES, FactFilter
from app.reports.schemas import GroupBy

logger = logging.getLogger(__name__)

FACT_COLUMNS = (
    "tenant_id",
    "source",
    "source_key",
    "fact_date",
    "client_key",
    "client_known",
    "work_item_key",
    "staff_key",
    "fee_type",
    "work_type",
    *MEASURE_NAMES,
)
WIP_COLUMNS = (
    "tenant_id",
    "client_key",
    "client_known",
    "work_item_key",
    "fee_type",
    "work_type",
    "amount",
    "since",
    "age_days",
)
FIXED_FEE_COLUMNS = (
    "tenant_id",
    "work_item_key",
    "client_key",
    "fee_value",
    "invoiced",
    "minutes",
    "standard_value",
    "write_up_down",
    "wip",
    "first_entry_date",
)
WARNING_COLUMNS = ("tenant_id", "kind", "subject_key", "subject_name", "minutes")
REPORT_TABLES = (
    ReportFact,
    ReportMonthlySum,
    ReportClientName,
    ReportSummedWindow,
    ReportWindowSum,
    ReportWipItem,
    ReportFixedFee,
    ReportWarning,
)
MONTHLY_DIMENSIONS = ("client_key", "fee_type", "work_type")


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    version: int
    facts: int
    seconds: float


async def refresh_reports(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> RefreshOutcome:
    started = time.perf_counter()
    async with unit_of_work(sessions) as session:
        # Refreshes of one tenant take turns; the later one reads the later data.
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"reports:{tenant_id}"}
        )
        as_of = await last_completed_sync(session, tenant_id)
        records = await load_records(session, tenant_id)
        settings = await domain_settings(session, tenant_id)
        evaluation = evaluate(records, settings, (as_of or datetime.now(UTC)).date())
        await _replace_rows(session, tenant_id, evaluation)
        await _sum_windows(session, tenant_id, (as_of or datetime.now(UTC)).date())
        version = await _mark_refreshed(
            session, tenant_id, as_of, len(evaluation.facts), time.perf_counter() - started
        )
    forget_tenant(tenant_id)
    seconds = time.perf_counter() - started
    logger.info(
        "reports refreshed",
        extra={"tenant_id": str(tenant_id), "facts": len(evaluation.facts), "seconds": seconds},
    )
    return RefreshOutcome(version, len(evaluation.facts), seconds)


async def last_completed_sync(session: AsyncSession, tenant_id: UUID) -> datetime | None:
    query = select(func.max(SyncRun.finished_at)).where(
        SyncRun.tenant_id == tenant_id, SyncRun.state == SyncState.SUCCEEDED
    )
    finished: datetime | None = (await session.execute(query)).scalar_one()
    return finished


async def _replace_rows(session: AsyncSession, tenant_id: UUID, evaluation: Evaluation) -> None:
    for model in REPORT_TABLES:
        await session.execute(delete(model).where(model.tenant_id == tenant_id))
    await _copy(session, ReportFact, FACT_COLUMNS, _fact_rows(tenant_id, evaluation.facts))
    await _copy(session, ReportWipItem, WIP_COLUMNS, _wip_rows(tenant_id, evaluation.wip))
    await _copy(
        session,
        ReportFixedFee,
        FIXED_FEE_COLUMNS,
        _fixed_fee_rows(tenant_id, evaluation.fixed_fees),
    )
    await _copy(
        session, ReportWarning, WARNING_COLUMNS, _warning_rows(tenant_id, evaluation.warnings)
    )
    await _sum_months(session, tenant_id)
    await _name_clients(session, tenant_id)


async def _sum_months(session: AsyncSession, tenant_id: UUID) -> None:
    month = func.date_trunc("month", ReportFact.fact_date).cast(ReportMonthlySum.month.type)
    dimensions = [getattr(ReportFact, name) for name in MONTHLY_DIMENSIONS]
    sums = [func.sum(getattr(ReportFact, name)) for name in MEASURE_NAMES]
    monthly = (
        select(ReportFact.tenant_id, month, *dimensions, *sums)
        .where(ReportFact.tenant_id == tenant_id)
        .group_by(ReportFact.tenant_id, month, *dimensions)
    )
    columns = ["tenant_id", "month", *MONTHLY_DIMENSIONS, *MEASURE_NAMES]
    await session.execute(insert(ReportMonthlySum).from_select(columns, monthly))


def windows_to_sum(as_of: date, first: date, last: date) -> set[tuple[date, date]]:
    """The windows reports are most often asked for: the trailing year a report opens on and
    each calendar year from the first fact's to the later of the last fact's and `as_of`'s."""
    years = range(first.year, max(last.year, as_of.year) + 1)
    return {last_365_days(as_of)} | {(date(y, 1, 1), date(y, 12, 31)) for y in years}


async def _sum_windows(session: AsyncSession, tenant_id: UUID, as_of: date) -> None:
    """Each client's sums over each window of `windows_to_sum`, exactly as a report over that
    window would sum them from the monthly sums and the facts."""
    span = select(func.min(ReportFact.fact_date), func.max(ReportFact.fact_date)).where(
        ReportFact.tenant_id == tenant_id
    )
    first, last = (await session.execute(span)).one()
    for start, end in sorted(windows_to_sum(as_of, first or as_of, last or as_of)):
        session.add(ReportSummedWindow(tenant_id=tenant_id, window_start=start, window_end=end))
        sums = repository.grouped_sums(
            tenant_id, FactFilter(start, end), GroupBy.CLIENT, monthly=False
        )
        rows = select(literal(tenant_id), literal(start), literal(end), sums.c.key, *sums.c[2:])
        columns = ["tenant_id", "window_start", "window_end", "client_key", *SUM_NAMES]
        await session.execute(insert(ReportWindowSum).from_select(columns, rows))
    await session.flush()


async def _name_clients(session: AsyncSession, tenant_id: UUID) -> None:
    """Synced clients by their name; Client Groups (not synced as clients) by the name their
    work items, else their invoices, give them."""
    sources = union_all(
        select(Client.client_key, Client.name, literal(0).label("rank")).where(
            Client.tenant_id == tenant_id
        ),
        select(WorkItem.client_key, WorkItem.client_name, literal(1)).where(
            WorkItem.tenant_id == tenant_id
        ),
        select(Invoice.client_key, Invoice.client_name, literal(2)).where(
            Invoice.tenant_id == tenant_id
        ),
    ).subquery()
    key, name, rank = sources.c
    names = (
        select(literal(tenant_id), key, name)
        .where(key.is_not(None), name.is_not(None), name != "")
        .ext(distinct_on(key))
        .order_by(key, rank)
    )
    columns = ["tenant_id", "client_key", "name"]
    await session.execute(insert(ReportClientName).from_select(columns, names))


async def _copy(
    session: AsyncSession, model: Any, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    records = list(rows)
    if not records:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.copy_records_to_table(model.__tablename__, records=records, columns=list(columns))


def _fact_rows(tenant_id: UUID, facts: Iterable[Fact]) -> Iterable[tuple[Any, ...]]:
    for fact in facts:
        measures = fact.measures
        yield (
            tenant_id,
            fact.source.value,
            fact.source_key,
            fact.fact_date,
            fact.client_key,
            fact.client_known,
            fact.work_item_key,
            fact.staff_key,
            fact.fee_type.value if fact.fee_type else None,
            fact.work_type,
            *(getattr(measures, name) for name in MEASURE_NAMES),
        )


def _wip_rows(tenant_id: UUID, items: Iterable[WipItem]) -> Iterable[tuple[Any, ...]]:
    for item in items:
        yield (
            tenant_id,
            item.client_key,
            item.client_known,
            item.work_item_key,
            item.fee_type.value if item.fee_type else None,
            item.work_type,
            item.amount,
            item.since,
            item.age_days,
        )


def _fixed_fee_rows(
    tenant_id: UUID, positions: Iterable[FixedFeePosition]
) -> Iterable[tuple[Any, ...]]:
    for position in positions:
        yield (
            tenant_id,
            position.work_item.key,
            position.work_item.client_key,
            position.fee_value,
            position.invoiced,
            position.minutes,
            position.standard_value,
            position.write_up_down,
            position.wip,
            position.first_entry_date,
        )


def _warning_rows(tenant_id: UUID, warnings: Iterable[DataWarning]) -> Iterable[tuple[Any, ...]]:
    for warning in warnings:
        yield (
            tenant_id,
            warning.kind.value,
            warning.subject_key,
            warning.subject_name,
            warning.minutes,
        )


async def _mark_refreshed(
    session: AsyncSession, tenant_id: UUID, as_of: datetime | None, facts: int, seconds: float
) -> int:
    values = {
        "as_of": as_of,
        "refreshed_at": datetime.now(UTC),
        "currency": await _main_currency(session, tenant_id),
        "facts": facts,
        "duration_ms": int(seconds * 1000),
    }
    statement = upsert_into(ReportRefresh).values(tenant_id=tenant_id, version=1, **values)
    upsert = statement.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={**values, "version": ReportRefresh.version + 1},
    ).returning(ReportRefresh.version)
    version: int = (await session.execute(upsert)).scalar_one()
    return version


async def _main_currency(session: AsyncSession, tenant_id: UUID) -> str | None:
    """The currency most of the firm's invoices are in (a Karbon tenant bills in one)."""
    query = (
        select(Invoice.currency_code)
        .where(
            Invoice.tenant_id == tenant_id,
            Invoice.deleted_at.is_(None),
            Invoice.currency_code.is_not(None),
        )
        .group_by(Invoice.currency_code)
        .order_by(func.count().desc(), Invoice.currency_code)
        .limit(1)
    )
    currency: str | None = (await session.execute(query)).scalar_one_or_none()
    return currency
