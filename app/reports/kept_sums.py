"""The kept sums: every row a report refresh writes, and what it reads to write them.

`app.reports.refresh` evaluates a firm's synced rows with the domain and writes the results
through this module, in its one transaction: the report tables are emptied, the facts, WIP,
fixed-fee positions and warnings are copied in, and the monthly sums, the per-client sums over
each summed window and the clients' names are summed from them in SQL; the refresh's version,
`as_of` and currency are recorded last. The report queries that read these tables are built in
`app.reports.repository`, beside this module.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as upsert_into
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import MEASURE_NAMES
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
from app.models.reports import (
    ReportFirmMonthlySum,
    ReportManagerMonthlySum,
    ReportMonthlySum,
    ReportOwnerMonthlySum,
    ReportStaffMonthlySum,
)
from app.reports import repository
from app.reports.keys import one_of
from app.reports.repository import SUM_NAMES, FactFilter
from app.reports.schemas import GroupBy

REPORT_TABLES = (
    ReportFact,
    ReportMonthlySum,
    ReportStaffMonthlySum,
    ReportFirmMonthlySum,
    ReportOwnerMonthlySum,
    ReportManagerMonthlySum,
    ReportClientName,
    ReportSummedWindow,
    ReportWindowSum,
    ReportWipItem,
    ReportFixedFee,
    ReportWarning,
)
MONTHLY_DIMENSIONS = ("client_key", "fee_type", "work_type")
TEAM = ("owner_email", "manager_email")


async def take_turn(session: AsyncSession, tenant_id: UUID) -> None:
    """Refreshes of one firm take turns, until the transaction ends; the later one reads the
    later data."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"reports:{tenant_id}"}
    )


async def last_completed_sync(session: AsyncSession, tenant_id: UUID) -> datetime | None:
    """The refresh's `as_of`: when the last successful sync finished."""
    query = select(func.max(SyncRun.finished_at)).where(
        SyncRun.tenant_id == tenant_id, SyncRun.state == SyncState.SUCCEEDED
    )
    finished: datetime | None = (await session.execute(query)).scalar_one()
    return finished


async def clear(session: AsyncSession, tenant_id: UUID) -> None:
    """Delete the firm's rows from every report table."""
    for model in REPORT_TABLES:
        await session.execute(delete(model).where(model.tenant_id == tenant_id))


async def clear_clients(
    session: AsyncSession,
    tenant_id: UUID,
    clients: Collection[str],
    warning_kinds: Collection[str],
) -> None:
    """Delete the rows of `clients` from every table a refresh fills per client, and the
    warnings of `warning_kinds` (the firm-wide ones rewritten every time)."""
    for model in (ReportFact, ReportMonthlySum, ReportClientName, ReportWipItem, ReportFixedFee):
        await session.execute(
            delete(model).where(model.tenant_id == tenant_id, one_of(model.client_key, clients))
        )
    await session.execute(
        delete(ReportWindowSum).where(
            ReportWindowSum.tenant_id == tenant_id, one_of(ReportWindowSum.client_key, clients)
        )
    )
    await session.execute(
        delete(ReportWarning).where(
            ReportWarning.tenant_id == tenant_id,
            or_(
                one_of(ReportWarning.scope_key, clients),
                ReportWarning.kind.in_(list(warning_kinds)),
            ),
        )
    )


async def clear_windows(session: AsyncSession, tenant_id: UUID) -> None:
    """Forget every kept window and its sums."""
    for model in (ReportSummedWindow, ReportWindowSum):
        await session.execute(delete(model).where(model.tenant_id == tenant_id))


async def copy_rows(
    session: AsyncSession, model: Any, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """COPY `rows` (tuples in the order of `columns`) into `model`'s table."""
    records = list(rows)
    if not records:
        return
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.copy_records_to_table(model.__tablename__, records=records, columns=list(columns))


async def sum_months(
    session: AsyncSession, tenant_id: UUID, clients: Collection[str] | None = None
) -> None:
    """The facts summed per month, client, fee type, work type and work status (of `clients`
    only), with the client's owner and manager as its name row now holds them (named
    first)."""
    month = func.date_trunc("month", ReportFact.fact_date).cast(ReportMonthlySum.month.type)
    dimensions = [getattr(ReportFact, name) for name in MONTHLY_DIMENSIONS]
    dimensions.append(repository.fact_work_status())
    team = [ReportClientName.owner_email, ReportClientName.manager_email]
    sums = [func.sum(getattr(ReportFact, name)) for name in MEASURE_NAMES]
    monthly = (
        select(ReportFact.tenant_id, month, *dimensions, *team, *sums)
        .outerjoin(
            ReportClientName,
            (ReportClientName.tenant_id == ReportFact.tenant_id)
            & (ReportClientName.client_key == ReportFact.client_key),
        )
        .where(ReportFact.tenant_id == tenant_id, *_of(ReportFact.client_key, clients))
        .group_by(ReportFact.tenant_id, month, *dimensions, *team)
    )
    columns = ["tenant_id", "month", *MONTHLY_DIMENSIONS, "work_status", *TEAM, *MEASURE_NAMES]
    await session.execute(insert(ReportMonthlySum).from_select(columns, monthly))


async def sum_staff_months(
    session: AsyncSession, tenant_id: UUID, staff: Collection[str] | None = None
) -> None:
    """The facts with a staff member summed per month and staff member (of `staff` only,
    whose earlier sums are replaced)."""
    table = ReportStaffMonthlySum
    if staff is not None:
        await session.execute(
            delete(table).where(table.tenant_id == tenant_id, *_of(table.staff_key, staff))
        )
    month = func.date_trunc("month", ReportFact.fact_date).cast(table.month.type)
    sums = [func.sum(getattr(ReportFact, name)) for name in MEASURE_NAMES]
    monthly = (
        select(ReportFact.tenant_id, month, ReportFact.staff_key, *sums)
        .where(
            ReportFact.tenant_id == tenant_id,
            ReportFact.staff_key.is_not(None),
            *_of(ReportFact.staff_key, staff),
        )
        .group_by(ReportFact.tenant_id, month, ReportFact.staff_key)
    )
    columns = ["tenant_id", "month", "staff_key", *MEASURE_NAMES]
    await session.execute(insert(table).from_select(columns, monthly))


FIRM_DIMENSIONS = ("fee_type", "work_type", "work_status")


TEAM_MONTHLY_SUMS = {"owner_email": ReportOwnerMonthlySum, "manager_email": ReportManagerMonthlySum}


async def teams_of_clients(
    session: AsyncSession, tenant_id: UUID, clients: Collection[str]
) -> set[tuple[str, str | None]]:
    """The owners and managers the monthly sums of `clients` carry, each as the monthly-sums
    column holding it and its e-mail."""
    columns = [getattr(ReportMonthlySum, email) for email in TEAM_MONTHLY_SUMS]
    query = select(*columns).where(
        ReportMonthlySum.tenant_id == tenant_id, one_of(ReportMonthlySum.client_key, clients)
    )
    rows = (await session.execute(query.distinct())).all()
    return {(email, row[index]) for row in rows for index, email in enumerate(TEAM_MONTHLY_SUMS)}


async def sum_firm_months(
    session: AsyncSession,
    tenant_id: UUID,
    teams: Collection[tuple[str, str | None]] | None = None,
) -> None:
    """The firm's monthly sums per fee type, work type and work status, and per owner and
    per manager too (only those of `teams`, see `teams_of_clients`), from the monthly sums
    per client (replacing earlier ones)."""
    await _sum_client_months(session, tenant_id, ReportFirmMonthlySum, FIRM_DIMENSIONS)
    for email, table in TEAM_MONTHLY_SUMS.items():
        only = None if teams is None else {value for kind, value in teams if kind == email}
        if only is None or only:
            await _sum_client_months(session, tenant_id, table, (email, *FIRM_DIMENSIONS), only)


async def _sum_client_months(
    session: AsyncSession,
    tenant_id: UUID,
    table: Any,
    kept: Sequence[str],
    only: Collection[str | None] | None = None,
) -> None:
    """`table`'s rows again: the monthly sums per client summed per month and `kept`; with
    `only`, just the rows whose first of `kept` is one of `only` (None: no one)."""
    source = ReportMonthlySum
    replaced = [] if only is None else [_one_of_team(getattr(table, kept[0]), only)]
    await session.execute(delete(table).where(table.tenant_id == tenant_id, *replaced))
    dimensions = [getattr(source, name) for name in kept]
    sums = [func.sum(getattr(source, name)) for name in MEASURE_NAMES]
    summed = [] if only is None else [_one_of_team(getattr(source, kept[0]), only)]
    monthly = (
        select(source.tenant_id, source.month, *dimensions, *sums)
        .where(source.tenant_id == tenant_id, *summed)
        .group_by(source.tenant_id, source.month, *dimensions)
    )
    columns = ["tenant_id", "month", *kept, *MEASURE_NAMES]
    await session.execute(insert(table).from_select(columns, monthly))


def _one_of_team(column: Any, emails: Collection[str | None]) -> ColumnElement[bool]:
    """`column` is one of `emails` (None: no one)."""
    condition = one_of(column, [email for email in emails if email is not None])
    return or_(condition, column.is_(None)) if None in emails else condition


async def staff_of_clients(
    session: AsyncSession, tenant_id: UUID, clients: Collection[str]
) -> set[str]:
    """The staff members with facts of `clients`."""
    query = (
        select(ReportFact.staff_key)
        .where(
            ReportFact.tenant_id == tenant_id,
            one_of(ReportFact.client_key, clients),
            ReportFact.staff_key.is_not(None),
        )
        .distinct()
    )
    return {str(key) for key in (await session.execute(query)).scalars()}


async def name_clients(
    session: AsyncSession, tenant_id: UUID, clients: Collection[str] | None = None
) -> None:
    """Synced clients by their name; Client Groups (not synced as clients) by the name their
    work items, else their invoices, give them (`clients` only)."""
    sources = union_all(
        select(Client.client_key, Client.name, literal(0).label("rank")).where(
            Client.tenant_id == tenant_id, *_of(Client.client_key, clients)
        ),
        select(WorkItem.client_key, WorkItem.client_name, literal(1)).where(
            WorkItem.tenant_id == tenant_id, *_of(WorkItem.client_key, clients)
        ),
        select(Invoice.client_key, Invoice.client_name, literal(2)).where(
            Invoice.tenant_id == tenant_id, *_of(Invoice.client_key, clients)
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
    await _name_teams(session, tenant_id, clients)


def _of(column: Any, clients: Collection[str] | None) -> list[ColumnElement[bool]]:
    """The condition that `column` is one of `clients`; none when `clients` is None (all)."""
    return [] if clients is None else [one_of(column, clients)]


async def _name_teams(
    session: AsyncSession, tenant_id: UUID, clients: Collection[str] | None
) -> None:
    """Each live client's owner and manager, by e-mail."""
    named = ReportClientName
    await session.execute(
        update(named)
        .where(
            named.tenant_id == tenant_id,
            *_of(named.client_key, clients),
            Client.tenant_id == tenant_id,
            Client.client_key == named.client_key,
            Client.deleted_at.is_(None),
        )
        .values(
            owner_email=repository.user_email(tenant_id, Client.owner_email),
            manager_email=repository.user_email(tenant_id, Client.manager_email),
        )
    )


async def fact_span(session: AsyncSession, tenant_id: UUID) -> tuple[date | None, date | None]:
    """The first and last fact dates just copied in; None for a firm with no facts."""
    span = select(func.min(ReportFact.fact_date), func.max(ReportFact.fact_date)).where(
        ReportFact.tenant_id == tenant_id
    )
    first, last = (await session.execute(span)).one()
    return first, last


async def sum_windows(
    session: AsyncSession,
    tenant_id: UUID,
    windows: Iterable[tuple[date, date]],
    clients: Collection[str] | None = None,
) -> None:
    """Each client's sums over each window, exactly as a report over that window would sum
    them from the monthly sums and the facts. With `clients`: the sums of those clients over
    windows already kept."""
    only = None if clients is None else frozenset(clients)
    for start, end in windows:
        if only is None:
            session.add(ReportSummedWindow(tenant_id=tenant_id, window_start=start, window_end=end))
        sums = repository.grouped_sums(
            tenant_id, FactFilter(start, end, clients=only), GroupBy.CLIENT, monthly=False
        )
        rows = select(literal(tenant_id), literal(start), literal(end), sums.c.key, *sums.c[2:])
        columns = ["tenant_id", "window_start", "window_end", "client_key", *SUM_NAMES]
        await session.execute(insert(ReportWindowSum).from_select(columns, rows))
    await session.flush()


async def fact_count(session: AsyncSession, tenant_id: UUID) -> int:
    query = select(func.count()).select_from(ReportFact).where(ReportFact.tenant_id == tenant_id)
    count: int = (await session.execute(query)).scalar_one()
    return count


async def staff_minutes(
    session: AsyncSession, tenant_id: UUID
) -> tuple[dict[str, int], dict[str, int]]:
    """Per staff member, the minutes of all their time left uncosted and those costed at the
    default capacity, as the facts now hold them."""
    query = (
        select(
            ReportFact.staff_key,
            func.sum(ReportFact.uncosted_minutes),
            func.sum(ReportFact.defaulted_capacity_minutes),
        )
        .where(ReportFact.tenant_id == tenant_id, ReportFact.staff_key.is_not(None))
        .group_by(ReportFact.staff_key)
    )
    uncosted: dict[str, int] = {}
    defaulted: dict[str, int] = {}
    for key, uncosted_minutes, defaulted_minutes in await session.execute(query):
        uncosted[str(key)], defaulted[str(key)] = int(uncosted_minutes), int(defaulted_minutes)
    return uncosted, defaulted


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What a refresh records besides its `as_of`."""

    facts: int
    seconds: float
    changes_since: datetime
    """See `ReportRefresh.changes_since`."""
    inputs_digest: str


async def mark_refreshed(
    session: AsyncSession, tenant_id: UUID, as_of: datetime | None, refreshed: Refreshed
) -> int:
    """Record the refresh (its `as_of`, the firm's currency, its size, what the next one
    reads changes from) and return its version, one more than the previous refresh's."""
    values = {
        "as_of": as_of,
        "refreshed_at": datetime.now(UTC),
        "currency": await _main_currency(session, tenant_id),
        "facts": refreshed.facts,
        "duration_ms": int(refreshed.seconds * 1000),
        "changes_since": refreshed.changes_since,
        "inputs_digest": refreshed.inputs_digest,
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
