"""Rebuild one firm's report tables from its synced rows and cost assumptions.

This module is the refresh's order of work: evaluate the synced rows (read by
`app.reports.loading`) with the domain, turn the results into rows, and choose the windows whose
sums are kept. The statements that write the report tables, and read the refresh's `as_of` and
currency, are built in `app.reports.kept_sums`; the report queries in `app.reports.repository`.

Everything is replaced in one transaction, so a report reads either the previous refresh or
this one, never a mix. Rows are written with COPY: a large firm has over half a million facts.
The monthly sums are then summed from the facts in SQL, in the same transaction.
"""

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

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
from app.models import ReportFact, ReportFixedFee, ReportWarning, ReportWipItem
from app.reports import completeness, kept_sums
from app.reports.cache import forget_tenant
from app.reports.loading import load_data_issues, load_records

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
WARNING_COLUMNS = (
    "tenant_id",
    "kind",
    "subject_key",
    "subject_name",
    "minutes",
    "amount",
    "client_key",
    "warning_date",
)


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
        await kept_sums.take_turn(session, tenant_id)
        # Before any record is read: a detail landing meanwhile is still counted as owed.
        await completeness.record(session, tenant_id)
        as_of = await kept_sums.last_completed_sync(session, tenant_id)
        records = await load_records(session, tenant_id)
        settings = await domain_settings(session, tenant_id)
        evaluation = evaluate(records, settings, (as_of or datetime.now(UTC)).date())
        unread = await load_data_issues(session, tenant_id)
        await _replace_rows(session, tenant_id, evaluation, unread)
        await _sum_windows(session, tenant_id, (as_of or datetime.now(UTC)).date())
        version = await kept_sums.mark_refreshed(
            session, tenant_id, as_of, len(evaluation.facts), time.perf_counter() - started
        )
    forget_tenant(tenant_id)
    seconds = time.perf_counter() - started
    logger.info(
        "reports refreshed",
        extra={"tenant_id": str(tenant_id), "facts": len(evaluation.facts), "seconds": seconds},
    )
    return RefreshOutcome(version, len(evaluation.facts), seconds)


async def _replace_rows(
    session: AsyncSession,
    tenant_id: UUID,
    evaluation: Evaluation,
    unread: Iterable[DataWarning],
) -> None:
    await kept_sums.clear(session, tenant_id)
    await kept_sums.copy_rows(
        session, ReportFact, FACT_COLUMNS, _fact_rows(tenant_id, evaluation.facts)
    )
    await kept_sums.copy_rows(
        session, ReportWipItem, WIP_COLUMNS, _wip_rows(tenant_id, evaluation.wip)
    )
    await kept_sums.copy_rows(
        session,
        ReportFixedFee,
        FIXED_FEE_COLUMNS,
        _fixed_fee_rows(tenant_id, evaluation.fixed_fees),
    )
    await kept_sums.copy_rows(
        session,
        ReportWarning,
        WARNING_COLUMNS,
        _warning_rows(tenant_id, [*evaluation.warnings, *unread]),
    )
    await kept_sums.sum_months(session, tenant_id)
    await kept_sums.name_clients(session, tenant_id)


def windows_to_sum(as_of: date, first: date, last: date) -> set[tuple[date, date]]:
    """The windows reports are most often asked for: the trailing year a report opens on and
    each calendar year from the first fact's to the later of the last fact's and `as_of`'s."""
    years = range(first.year, max(last.year, as_of.year) + 1)
    return {last_365_days(as_of)} | {(date(y, 1, 1), date(y, 12, 31)) for y in years}


async def _sum_windows(session: AsyncSession, tenant_id: UUID, as_of: date) -> None:
    """Keep each client's sums over each window of `windows_to_sum`."""
    first, last = await kept_sums.fact_span(session, tenant_id)
    windows = windows_to_sum(as_of, first or as_of, last or as_of)
    await kept_sums.sum_windows(session, tenant_id, sorted(windows))


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
            warning.amount,
            warning.client_key,
            warning.on,
        )
