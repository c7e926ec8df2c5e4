"""Rebuild one firm's report tables from its synced rows and cost assumptions.

This module is the refresh's order of work: evaluate the synced rows (read by
`app.reports.loading`) with the domain, turn the results into rows, and choose the windows whose
sums are kept. The statements that write the report tables, and read the refresh's `as_of` and
currency, are built in `app.reports.kept_sums`; the report queries in `app.reports.repository`.

A full refresh replaces every row; an incremental one (after a sync that changed a few
records) replaces the rows of the clients those records count for, before and now, evaluated
from those clients' records alone (`app.reports.changes` says which, and when only a full
refresh is sure). Either way everything is written in one transaction, so a report reads either
the previous refresh or this one, never a mix. Rows are written with COPY: a large firm has
over half a million facts. The monthly and window sums are then summed from the facts in SQL,
in the same transaction.
"""

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.costs.service import domain_settings
from app.db import analyze_stale, unit_of_work
from app.domain import (
    MEASURE_NAMES,
    CostSettings,
    DataWarning,
    Directory,
    Evaluation,
    Fact,
    FactSource,
    FixedFeePosition,
    TenantRecords,
    WarningKind,
    WipItem,
    billing_lines,
    evaluate,
    last_365_days,
    staff_warnings,
)
from app.models import (
    Client,
    Invoice,
    InvoiceLine,
    ReportFact,
    ReportFixedFee,
    ReportWarning,
    ReportWipItem,
    Staff,
    TimeEntry,
    WorkItem,
)
from app.reports import changes, completeness, kept_sums, repository
from app.reports.cache import forget_tenant
from app.reports.changes import Scope
from app.reports.kept_sums import Refreshed
from app.reports.loading import (
    load_client_records,
    load_compensation,
    load_data_issues,
    load_records,
    load_work_item_statuses,
)

logger = logging.getLogger(__name__)

WRITTEN = [model.__tablename__ for model in kept_sums.REPORT_TABLES]
READ = [model.__tablename__ for model in (Client, WorkItem, TimeEntry, Invoice, InvoiceLine, Staff)]

FACT_COLUMNS = (
    "tenant_id",
    "source",
    "source_key",
    "record_key",
    "fact_date",
    "client_key",
    "client_known",
    "work_item_key",
    "staff_key",
    "fee_type",
    "work_type",
    "work_item_status",
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
    "work_item_status",
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
    "scope_key",
)


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    version: int
    facts: int
    seconds: float
    clients: int | None = None
    """How many clients an incremental refresh recomputed; None for a full refresh."""

    @property
    def kind(self) -> str:
        return "full" if self.clients is None else "incremental"


async def refresh_reports(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, *, full: bool = False
) -> RefreshOutcome:
    """Rebuild the firm's report tables: only the clients whose records changed since the
    last refresh when that is sure to give the same tables (see `app.reports.changes`),
    everything otherwise or when `full`."""
    started = time.perf_counter()
    async with unit_of_work(sessions) as session:  # the sync's writes, before they are read
        await analyze_stale(session, READ)
    async with unit_of_work(sessions) as session:
        await kept_sums.take_turn(session, tenant_id)
        # Before any record is read: a detail landing meanwhile is still counted as owed.
        await completeness.record(session, tenant_id)
        changes_since = await changes.oldest_transaction_start(session)
        as_of = await kept_sums.last_completed_sync(session, tenant_id)
        day = (as_of or datetime.now(UTC)).date()
        settings = await domain_settings(session, tenant_id)
        digest = changes.inputs_digest(settings, await load_compensation(session, tenant_id))
        previous = None if full else await repository.refresh_state(session, tenant_id)
        scope = await changes.incremental_scope(session, tenant_id, previous, as_of, digest)
        clients = None
        if scope is not None:
            clients = await _refresh_clients(session, tenant_id, settings, day, scope)
        if clients is None:
            await _refresh_all(session, tenant_id, settings, day)
        facts = await kept_sums.fact_count(session, tenant_id)
        await analyze_stale(session, WRITTEN)  # before the reports read them
        seconds = time.perf_counter() - started
        version = await kept_sums.mark_refreshed(
            session, tenant_id, as_of, Refreshed(facts, seconds, changes_since, digest)
        )
    forget_tenant(tenant_id)
    outcome = RefreshOutcome(version, facts, time.perf_counter() - started, clients)
    logger.info(
        "reports refreshed",
        extra={
            "tenant_id": str(tenant_id),
            "facts": facts,
            "seconds": outcome.seconds,
            "kind": outcome.kind,
        },
    )
    return outcome


async def _refresh_all(
    session: AsyncSession, tenant_id: UUID, settings: CostSettings, day: date
) -> None:
    records = await load_records(session, tenant_id)
    evaluation = evaluate(records, settings, day)
    unread = await load_data_issues(session, tenant_id)
    await kept_sums.clear(session, tenant_id)
    await _copy(session, tenant_id, records, evaluation, [*evaluation.warnings, *unread])
    await kept_sums.name_clients(session, tenant_id)
    await kept_sums.sum_months(session, tenant_id)
    await kept_sums.sum_firm_months(session, tenant_id)
    await kept_sums.sum_staff_months(session, tenant_id)
    await _sum_windows(session, tenant_id, day)


MAX_ROUNDS = 4
"""Rounds of widening an incremental refresh's clients to those its invoices also count for."""


async def _refresh_clients(
    session: AsyncSession, tenant_id: UUID, settings: CostSettings, day: date, scope: Scope
) -> int | None:
    """Recompute the report rows of `scope.clients`, widened to every client their invoices
    count for; None (nothing written) when that is not sure to match a full refresh."""
    clients = scope.clients
    for _ in range(MAX_ROUNDS):
        records = await load_client_records(session, tenant_id, clients, scope.invoices)
        counted_for = _invoice_clients(records)
        if None in counted_for:
            return None
        if counted_for <= clients:
            break
        clients |= {key for key in counted_for if key is not None}
    else:
        return None
    evaluation = evaluate(records, settings, day)
    work_item_clients = {item.key: item.client_key for item in records.work_items}
    warnings = [
        w
        for w in evaluation.warnings
        if w.kind not in STAFF_WARNINGS and _scope(w, work_item_clients) in clients
    ]
    if any(_unscoped_work(w, work_item_clients) for w in evaluation.warnings):
        return None
    kept = _ClientsOnly(clients).of(evaluation)
    staff = await kept_sums.staff_of_clients(session, tenant_id, clients)
    staff |= {fact.staff_key for fact in kept.facts if fact.staff_key is not None}
    teams_before = await kept_sums.teams_of_clients(session, tenant_id, clients)
    await kept_sums.clear_clients(session, tenant_id, clients, REWRITTEN_EVERY_TIME)
    await _copy(session, tenant_id, records, kept, warnings)
    await _write_firm_warnings(session, tenant_id, records)
    await kept_sums.name_clients(session, tenant_id, clients)
    await kept_sums.sum_months(session, tenant_id, clients)
    teams = teams_before | await kept_sums.teams_of_clients(session, tenant_id, clients)
    await kept_sums.sum_firm_months(session, tenant_id, teams)
    await kept_sums.sum_staff_months(session, tenant_id, staff)
    await _sum_windows(session, tenant_id, day, clients)
    return len(clients)


STAFF_WARNINGS = frozenset({WarningKind.MISSING_COMPENSATION, WarningKind.MISSING_CAPACITY})
UNREAD_WARNINGS = frozenset({WarningKind.UNREADABLE_FIELD, WarningKind.SET_ASIDE_RECORD})
REWRITTEN_EVERY_TIME = tuple(kind.value for kind in STAFF_WARNINGS | UNREAD_WARNINGS)
"""Warnings an incremental refresh rewrites for the whole firm: they sum every client's
time (staff) or come from the sync's data issues."""


def _invoice_clients(records: TenantRecords) -> set[str | None]:
    """Every client the invoices among `records` count for (None: one without a client)."""
    directory = Directory(records)
    clients: set[str | None] = set()
    for invoice in records.invoices:
        if not invoice.is_voided:
            clients.add(invoice.client_key)
            clients |= {line.client_key for line in directory.attribute(invoice)}
    return clients


@dataclass(frozen=True, slots=True)
class _ClientsOnly:
    clients: frozenset[str]

    def of(self, evaluation: Evaluation) -> Evaluation:
        """The part of `evaluation` about `clients`."""
        return replace(
            evaluation,
            facts=tuple(f for f in evaluation.facts if f.client_key in self.clients),
            wip=tuple(w for w in evaluation.wip if w.client_key in self.clients),
            fixed_fees=tuple(
                p for p in evaluation.fixed_fees if p.work_item.client_key in self.clients
            ),
        )


async def _write_firm_warnings(
    session: AsyncSession, tenant_id: UUID, records: TenantRecords
) -> None:
    """The staff warnings from every client's facts, as now stored, and the data issues."""
    uncosted, defaulted = await kept_sums.staff_minutes(session, tenant_id)
    warnings = staff_warnings(records.staff, records.compensation, uncosted, defaulted)
    warnings += await load_data_issues(session, tenant_id)
    await kept_sums.copy_rows(
        session, ReportWarning, WARNING_COLUMNS, _warning_rows(tenant_id, warnings, {})
    )


async def _copy(
    session: AsyncSession,
    tenant_id: UUID,
    records: TenantRecords,
    evaluation: Evaluation,
    warnings: Iterable[DataWarning],
) -> None:
    invoice_of_line = {
        line.key: invoice.key for invoice in records.invoices for line in billing_lines(invoice)
    }
    work_item_clients = {item.key: item.client_key for item in records.work_items}
    worked_on = [
        *(f.work_item_key for f in evaluation.facts),
        *(w.work_item_key for w in evaluation.wip),
    ]
    statuses = await load_work_item_statuses(session, tenant_id, {k for k in worked_on if k})
    await kept_sums.copy_rows(
        session,
        ReportFact,
        FACT_COLUMNS,
        _fact_rows(tenant_id, evaluation.facts, invoice_of_line, statuses),
    )
    await kept_sums.copy_rows(
        session, ReportWipItem, WIP_COLUMNS, _wip_rows(tenant_id, evaluation.wip, statuses)
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
        _warning_rows(tenant_id, warnings, work_item_clients),
    )


def _scope(warning: DataWarning, work_item_clients: Mapping[str, str]) -> str | None:
    """The client whose facts `warning` is derived from (see `ReportWarning.scope_key`)."""
    match warning.kind:
        case WarningKind.UNKNOWN_FEE_TYPE:
            return work_item_clients.get(warning.subject_key)
        case WarningKind.UNKNOWN_CLIENT_TIME | WarningKind.UNKNOWN_CLIENT_INVOICE:
            return warning.subject_key or None
        case WarningKind.DELETED_WORK_ITEM:
            return warning.client_key
    return None


def _unscoped_work(warning: DataWarning, work_item_clients: Mapping[str, str]) -> bool:
    """Time on a work item that is not synced: its warning sums the time of several clients."""
    return (
        warning.kind is WarningKind.UNKNOWN_FEE_TYPE
        and warning.subject_key not in work_item_clients
    )


def windows_to_sum(as_of: date, first: date, last: date) -> set[tuple[date, date]]:
    """The windows reports are most often asked for: the trailing year a report opens on and
    each calendar year from the first fact's to the later of the last fact's and `as_of`'s."""
    years = range(first.year, max(last.year, as_of.year) + 1)
    return {last_365_days(as_of)} | {(date(y, 1, 1), date(y, 12, 31)) for y in years}


async def _sum_windows(
    session: AsyncSession, tenant_id: UUID, as_of: date, clients: frozenset[str] | None = None
) -> None:
    """Keep each client's sums over each window of `windows_to_sum`: only those of `clients`
    when the windows are the ones already kept."""
    first, last = await kept_sums.fact_span(session, tenant_id)
    windows = windows_to_sum(as_of, first or as_of, last or as_of)
    if clients is not None and windows == await repository.summed_windows(session, tenant_id):
        await kept_sums.sum_windows(session, tenant_id, sorted(windows), clients)
        return
    await kept_sums.clear_windows(session, tenant_id)
    await kept_sums.sum_windows(session, tenant_id, sorted(windows))


def _fact_rows(
    tenant_id: UUID,
    facts: Iterable[Fact],
    invoice_of_line: Mapping[str, str],
    statuses: Mapping[str, str],
) -> Iterable[tuple[Any, ...]]:
    """`statuses`: each synced work item's (see `load_work_item_statuses`)."""
    for fact in facts:
        measures = fact.measures
        line = fact.source is FactSource.INVOICE_LINE
        yield (
            tenant_id,
            fact.source.value,
            fact.source_key,
            invoice_of_line[fact.source_key] if line else fact.source_key,
            fact.fact_date,
            fact.client_key,
            fact.client_known,
            fact.work_item_key,
            fact.staff_key,
            fact.fee_type.value if fact.fee_type else None,
            fact.work_type,
            statuses.get(fact.work_item_key or ""),
            *(getattr(measures, name) for name in MEASURE_NAMES),
        )


def _wip_rows(
    tenant_id: UUID, items: Iterable[WipItem], statuses: Mapping[str, str]
) -> Iterable[tuple[Any, ...]]:
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
            statuses.get(item.work_item_key or ""),
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


def _warning_rows(
    tenant_id: UUID, warnings: Iterable[DataWarning], work_item_clients: Mapping[str, str]
) -> Iterable[tuple[Any, ...]]:
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
            _scope(warning, work_item_clients),
        )
