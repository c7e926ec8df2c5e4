"""Writing synced records: idempotent upserts keyed by tenant and Karbon key.

Columns that only a detail call provides (capacity, owner/manager, fee settings, line
items) are written only when this run made that detail call: an unchanged record whose
detail was not re-read keeps what was stored.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from operator import itemgetter
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BindParameter,
    Select,
    String,
    Table,
    Text,
    all_,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, Insert, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from app.db import json_text
from app.models import Base, DataQualityIssue, InvoiceLine, TimeEntry, Timesheet
from app.sync.karbon.client import KarbonResponse
from app.sync.raw_versions import canonical_json, read_again_unchanged, save_versions
from app.sync.records import (
    ClientRecord,
    FieldIssue,
    InvoiceRecord,
    Raw,
    Record,
    SetAside,
    TimesheetRecord,
    UserRecord,
    WorkItemRecord,
)

Row = dict[str, Any]
ChildWriter = Callable[["RecordStore", Sequence[Any], bool], Awaitable[None]]
"""Writes the rows a stream's records carry inside them: (store, records, keep_deleted_at)."""


@dataclass(frozen=True)
class Storage:
    """Where a stream's records are written, and what its complete read covers."""

    model: type[Base]
    row: Callable[[Any], Row]
    """The model's columns from one parsed record."""
    scope: Mapping[str, str] = field(default_factory=dict)
    """Column values a complete read covers, for streams sharing a table."""
    children: ChildWriter | None = None
    deletes_with: tuple[type[Base], ...] = ()
    """Tables whose rows a complete read also marks deleted when it did not see them."""
    kept_children: "KeptChildren | None" = None
    """Children each kept in a row of their own: the record's `raw` is stored without them."""
    detail_kept_in: tuple[str, str] | None = None
    """(field, column): a detail field a column keeps as sent, so `raw_detail` leaves it out
    when the column holds the same, and the rebuild puts it back from the column."""


@dataclass(frozen=True)
class KeptChildren:
    """A list inside a record whose items `children` keeps one per row, with its own raw JSON;
    the parent's `raw` leaves the list out, so each item's JSON is kept once, and the rebuild
    puts the list back from the child rows."""

    field: str
    """The record's key holding the list (`TimeEntries`)."""
    model: type[Base]
    parent_key: str
    """The child table's column naming the parent (`timesheet_key`)."""
    keys: Callable[[Any], list[str]]
    """The keys of a parsed record's children."""


def _keys(name: str) -> BindParameter[Any]:
    """A list of keys as one array parameter: `= ANY(:name)` is one statement for any number
    of keys, where an IN list makes a new statement for every length."""
    return bindparam(name, type_=ARRAY(String))


_TENANT = bindparam("tenant", type_=PG_UUID(as_uuid=True))

_ENTRIES_GONE = (
    update(TimeEntry)
    .where(
        TimeEntry.tenant_id == _TENANT,
        TimeEntry.timesheet_key == any_(_keys("timesheets")),
        TimeEntry.time_entry_key != all_(_keys("kept")),
        TimeEntry.deleted_at.is_(None),
    )
    .values(deleted_at=func.now())
)
_LINES_OF = delete(InvoiceLine).where(
    InvoiceLine.tenant_id == _TENANT, InvoiceLine.invoice_key == any_(_keys("invoices"))
)
_ISSUES_RESOLVED = delete(DataQualityIssue).where(
    DataQualityIssue.tenant_id == _TENANT,
    DataQualityIssue.stream == bindparam("stream", type_=String),
    DataQualityIssue.record_key == any_(_keys("records")),
    DataQualityIssue.last_seen_at != bindparam("seen_at"),
)


_SYNC_BOOKKEEPING = frozenset({"deleted_at", "last_seen_run_id", "change_token"})
_NOT_CONTENT = frozenset({"last_seen_run_id", "synced_at"})
"""Written on every upsert whether or not the record changed."""
"""Whether Karbon still lists a record, which run last saw it, and the token the next run
compares: a rebuild reads no Karbon, so it keeps them as the last sync left them."""


@cache
def _key_column(table: Table) -> str:
    return next(name for name in _primary_key(table) if name != "tenant_id")


@cache
def _insert_statement(table: Table, columns: tuple[str, ...]) -> Insert:
    """`INSERT ... SELECT FROM jsonb_to_recordset(:rows)`: any number of rows in one statement,
    sent as one JSON document. Built once per column set: building statements per page cost
    CPU and left cyclic garbage that the collector then had to clear while every tenant waited.

    One document, not one array per column: the driver encodes an array element by element in
    Python (a page of time entries is some ten thousand elements), while orjson writes the
    document, raw JSON of every row included, in one call: writing a page of timesheets or
    invoices takes about a third less CPU. Not executemany: asyncpg cannot cancel an
    executemany while it streams rows (the task waits forever on the server, which waits for
    the rest of the rows), and a sync can be cancelled at any moment. Rows come out in
    document order, so serial ids follow it."""
    rows = func.jsonb_to_recordset(cast(bindparam("rows", type_=Text), JSONB))
    source = rows.table_valued(*(column(name, table.c[name].type) for name in columns))
    derived = source.render_derived(with_types=True)
    return insert(table).from_select(list(columns), select(*(derived.c[name] for name in columns)))


@cache
def _upsert_statement(table: Table, columns: tuple[str, ...], keep_deleted_at: bool) -> Insert:
    """On conflict every given column is written, bar the keys and, when a rebuild re-derives
    rows (`keep_deleted_at`), what only a sync can know: `_SYNC_BOOKKEEPING`."""
    statement = _insert_statement(table, columns)
    keys = _primary_key(table)
    written = [name for name in columns if name not in keys]
    if keep_deleted_at:
        written = [name for name in written if name not in _SYNC_BOOKKEEPING]
    changes: dict[str, Any] = {name: statement.excluded[name] for name in written}
    if "synced_at" in table.c:
        changes["synced_at"] = _synced_at_when_changed(table, statement, written)
    return statement.on_conflict_do_update(index_elements=sorted(keys), set_=changes)


def _synced_at_when_changed(table: Table, statement: Insert, written: list[str]) -> Any:
    """`now()` when the row's content changes, else its old `synced_at`: runs write back many
    rows unchanged (every list read whole), and what changed since a report refresh is told by
    `synced_at` (`app.reports.changes`)."""
    content = [name for name in written if name not in _NOT_CONTENT]
    old = tuple_(*(table.c[name] for name in content))
    new = tuple_(*(statement.excluded[name] for name in content))
    return case((old.is_distinct_from(new), func.now()), else_=table.c.synced_at)


@cache
def _seen_statement(table: Table) -> TextClause:
    """Rows read again unchanged: seen by this run, listed again (`deleted_at` cleared) and
    holding the change token they were read with, as an upsert of the same rows leaves them."""
    key = _key_column(table)
    return text(
        f"""
UPDATE {table.name} AS kept
SET last_seen_run_id = :run, deleted_at = NULL, change_token = seen.token,
    synced_at = CASE
        WHEN kept.deleted_at IS NOT NULL OR kept.change_token IS DISTINCT FROM seen.token
        THEN now() ELSE kept.synced_at END
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS seen(key text, token text)
WHERE kept.tenant_id = :tenant AND kept.{key} = seen.key
"""
    )


@cache
def _tokens_query(table: Table) -> Select[str, str | None]:
    key = table.c[_key_column(table)]
    return select(key, table.c.change_token).where(
        table.c.tenant_id == _TENANT, key == any_(_keys("keys"))
    )


@cache
def _primary_key(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.primary_key.columns)


def _rows_document(rows: Sequence[Row]) -> dict[str, str]:
    return {"rows": json_text(rows, default=_exact_text)}


def _exact_text(value: Any) -> str:
    """Column values JSON has no form for, as text PostgreSQL reads back exactly: money stays
    a decimal, never a float."""
    if isinstance(value, date):  # a datetime too
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no JSON form")


async def _insert(session: AsyncSession, model: Any, rows: Sequence[Row]) -> None:
    if rows:
        statement = _insert_statement(model.__table__, tuple(rows[0]))
        await session.execute(statement, _rows_document(rows))


async def _upsert(
    session: AsyncSession, model: Any, rows: Sequence[Row], *, keep_deleted_at: bool = False
) -> None:
    """Insert or update `rows` (all with the same columns). Of rows with the same key, the
    last is written: one statement cannot update a row twice."""
    if not rows:
        return
    table: Table = model.__table__
    key_of = itemgetter(*_primary_key(table))  # in C: a page holds hundreds of rows
    rows = list({key_of(row): row for row in rows}.values())
    statement = _upsert_statement(table, tuple(rows[0]), keep_deleted_at)
    await session.execute(statement, _rows_document(rows))


def without(raw: Raw, field: str) -> Raw:
    return {name: value for name, value in raw.items() if name != field}


def _synced(record: Record, tenant_id: UUID, run_id: UUID | None, token: str | None) -> Row:
    return {
        "tenant_id": tenant_id,
        "raw": record.raw,
        "change_token": token,
        "last_seen_run_id": run_id,
        "deleted_at": None,
    }


def staff_row(record: UserRecord) -> Row:
    row: Row = {"user_key": record.user_key, "name": record.name, "email": record.email}
    if record.raw_detail is not None:
        row |= {
            "capacity_minutes_per_week": record.capacity_minutes_per_week,
            "billable_rate": record.billable_rate,
            "raw_detail": record.raw_detail,
        }
    return row


def contact_row(record: ClientRecord) -> Row:
    """Contacts carry their owner and manager in the list."""
    return _client_columns(record) | _owners(record)


def organization_row(record: ClientRecord) -> Row:
    """Organizations carry their owner and manager only in the detail."""
    row = _client_columns(record)
    if record.raw_detail is not None:
        row |= _owners(record)
    return row


def _client_columns(record: ClientRecord) -> Row:
    return {
        "client_key": record.client_key,
        "client_type": record.client_type.value,
        "name": record.full_name,
        "contact_type": record.contact_type,
        "user_defined_identifier": record.user_defined_identifier,
        "last_modified_at": record.last_modified,
    }


def _owners(record: ClientRecord) -> Row:
    return {
        "owner_email": record.owner_email,
        "manager_email": record.manager_email,
        "raw_detail": record.raw_detail,
    }


def work_item_row(record: WorkItemRecord) -> Row:
    row: Row = {
        "work_item_key": record.work_item_key,
        "client_key": record.client_key,
        "client_type": record.client_type.value if record.client_type else None,
        "client_name": record.client_name,
        "related_client_group_key": record.related_client_group_key,
        "assignee_key": record.assignee_key,
        "title": record.title,
        "start_date": record.start_date,
        "due_date": record.due_date,
        "completed_date": record.completed_date,
        "work_type": record.work_type,
        "work_status": record.work_status,
        "primary_status": _as_sent(record.primary_status),
        "secondary_status": record.secondary_status,
    }
    if record.raw_detail is not None:
        row |= {
            "fee_type": record.known_fee_type.value if record.known_fee_type else None,
            "fee_value": record.fee_value,
            "raw_detail": record.raw_detail,
        }
    return row


def timesheet_row(record: TimesheetRecord) -> Row:
    return {
        "timesheet_key": record.timesheet_key,
        "user_key": record.user_key,
        "start_date": record.start_date,
        "end_date": record.end_date,
        "status": _as_sent(record.status),
    }


def invoice_row(record: InvoiceRecord) -> Row:
    row: Row = {
        "invoice_key": record.invoice_key,
        "invoice_number": record.invoice_number,
        "status": _as_sent(record.status),
        "invoice_date": record.invoice_date,
        "payment_due_date": record.payment_due_date,
        "karbon_updated_at": record.updated_at,
        "currency_code": record.currency_code,
        "total": record.total,
        "subtotal": record.subtotal,
        "tax_total": record.tax_total,
        "amount_due": record.amount_due,
        "client_key": record.client_key,
        "client_type": record.client_type.value if record.client_type else None,
        "client_name": record.client_name,
    }
    if record.line_items is not None:
        row["lines_known"] = True
    if record.raw_detail is not None:
        data_lines = [line.raw for line in record.data_lines or []] or None
        detail = beyond_list(record.raw_detail, record.raw, "LineItems")
        row["raw_detail"] = kept_elsewhere(detail, INVOICE_DATA[0], data_lines)
        row["data_lines"] = data_lines
    return row


INVOICE_DATA = ("Data", "data_lines")
"""An invoice detail's Data tab, kept in `invoices.data_lines`."""


def kept_elsewhere(detail: Raw, field: str, kept: Any) -> Raw:
    """A detail without `field` when `kept` (a column's value) is the same: it is kept once."""
    if kept is None or field not in detail:
        return detail
    same = canonical_json(detail[field]) == canonical_json(kept)
    return without(detail, field) if same else detail


def beyond_list(detail: Raw, listed: Raw, field: str) -> Raw:
    """A detail without `field` when its list record has the same: an invoice's lines, listed
    with it, are kept once (a rebuild reads the detail over its list record, as a sync does)."""
    same = field in detail and field in listed
    if same and canonical_json(detail[field]) == canonical_json(listed[field]):
        return without(detail, field)
    return detail


def _as_sent(value: str | None) -> str | None:
    """An enumerated value as Karbon sent it: a known one in its canonical spelling, an
    unknown one verbatim (and named as a data issue by the record)."""
    return None if value is None else str(value)


def _whole(issue: FieldIssue) -> bool:
    return issue.set_aside is SetAside.RECORD and issue.key == issue.parent_key


def _group_by_columns(rows: Sequence[Row]) -> list[list[Row]]:
    """Rows with the same columns, so each group is one multi-row upsert."""
    groups: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return list(groups.values())


class RecordStore:
    """Writes one tenant's records within the caller's transaction."""

    def __init__(self, session: AsyncSession, tenant_id: UUID, run_id: UUID | None) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.run_id = run_id

    async def stored_tokens(self, model: Any, keys: Sequence[str]) -> dict[str, str | None]:
        query = _tokens_query(model.__table__)
        rows = await self.session.execute(query, {"tenant": self.tenant_id, "keys": list(keys)})
        return {row[0]: row[1] for row in rows}

    async def save(
        self,
        storage: Storage,
        records: Sequence[Record],
        tokens: dict[str, str],
        *,
        keep_deleted_at: bool = False,
    ) -> None:
        """Upsert records of one stream; `tokens` maps each key to its change token."""
        key_column = _key_column(storage.model.__table__)
        rows: list[Row] = []
        for record in records:
            row = storage.row(record)
            row |= _synced(record, self.tenant_id, self.run_id, tokens.get(str(row[key_column])))
            if storage.kept_children is not None:
                row["raw"] = without(record.raw, storage.kept_children.field)
            rows.append(row)
        for group in _group_by_columns(rows):
            await _upsert(self.session, storage.model, group, keep_deleted_at=keep_deleted_at)
        if storage.children is not None and records:
            await storage.children(self, records, keep_deleted_at)

    async def mark_seen(
        self, storage: Storage, records: Sequence[Record], tokens: Mapping[str, str]
    ) -> None:
        """Records read again exactly as stored: only noted seen by this run (their children
        too), in one statement per table, instead of being written again."""
        key_column = _key_column(storage.model.__table__)
        keys = [str(storage.row(record)[key_column]) for record in records]
        await self._seen(storage.model, [{"key": key, "token": tokens.get(key)} for key in keys])
        kept = storage.kept_children
        if kept is not None:
            children = [{"key": key, "token": None} for r in records for key in kept.keys(r)]
            await self._seen(kept.model, children)

    async def _seen(self, model: Any, rows: list[Row]) -> None:
        if rows:
            await self.session.execute(
                _seen_statement(model.__table__),
                {"tenant": self.tenant_id, "run": self.run_id, "rows": json_text(rows)},
            )

    async def save_time_entries(
        self, timesheets: Sequence[TimesheetRecord], keep_deleted_at: bool
    ) -> None:
        rows = [
            {
                "tenant_id": self.tenant_id,
                "time_entry_key": entry.time_entry_key,
                "timesheet_key": entry.timesheet_key,
                "user_key": entry.user_key,
                "entry_date": entry.period_start,
                "period_end": entry.period_end,
                "entity_key": entry.entity_key,
                "work_item_key": entry.work_item_key,
                "client_key": entry.client_key,
                "client_type": entry.client_type.value if entry.client_type else None,
                "role_name": entry.role_name,
                "task_type_name": entry.task_type_name,
                "minutes": entry.minutes,
                "hourly_rate": entry.hourly_rate,
                "billed_status": _as_sent(entry.billed_status),
                "raw": entry.raw,
                "change_token": None,
                "last_seen_run_id": self.run_id,
                "deleted_at": None,
            }
            for timesheet in timesheets
            for entry in timesheet.entries
        ]
        await _upsert(self.session, TimeEntry, rows, keep_deleted_at=keep_deleted_at)
        if not keep_deleted_at:
            await self._delete_entries_gone_from(timesheets)

    async def _delete_entries_gone_from(self, timesheets: Sequence[TimesheetRecord]) -> None:
        """A re-read timesheet is complete: its entries Karbon no longer lists are deleted."""
        await self.session.execute(
            _ENTRIES_GONE,
            {
                "tenant": self.tenant_id,
                "timesheets": [t.timesheet_key for t in timesheets],
                "kept": [entry.time_entry_key for t in timesheets for entry in t.entries],
            },
        )

    async def replace_invoice_lines(
        self, invoices: Sequence[InvoiceRecord], keep_deleted_at: bool
    ) -> None:
        """Invoices listed with their lines get exactly those lines (`keep_deleted_at` does not
        apply: lines are never marked deleted). A line's JSON stays in its invoice's."""
        with_lines = [invoice for invoice in invoices if invoice.line_items is not None]
        if not with_lines:
            return
        invoices = list({invoice.invoice_key: invoice for invoice in with_lines}.values())
        await self.session.execute(
            _LINES_OF, {"tenant": self.tenant_id, "invoices": [i.invoice_key for i in invoices]}
        )
        rows = [
            {
                "tenant_id": self.tenant_id,
                "invoice_key": invoice.invoice_key,
                "position": position,
                "line_item_key": line.line_item_key,
                "billable_item_type": _as_sent(line.billable_item_type),
                "billable_item_entity_key": line.billable_item_entity_key,
                "description": line.description,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "amount": line.amount,
                "tax_rate": line.tax_rate,
                "tax_rate_name": line.tax_rate_name,
            }
            for invoice in invoices
            for position, line in enumerate(invoice.line_items or [])
        ]
        await _insert(self.session, InvoiceLine, rows)

    async def record_issues(
        self, stream: str, read_keys: Sequence[str], issues: Sequence[FieldIssue], raw: Raw
    ) -> None:
        """Name what could not be read on a page. `read_keys`: the page's list records (their
        earlier issues are replaced); `raw`: each record's JSON by key, kept for a record set
        aside whole."""
        seen_at = datetime.now(UTC)
        rows = [
            {
                "tenant_id": self.tenant_id,
                "stream": stream,
                "record_key": issue.parent_key,
                "entity": issue.entity,
                "subject_key": issue.key,
                "field": issue.field,
                "value": issue.value,
                "reason": issue.reason,
                "set_aside": issue.set_aside.value,
                "client_keys": list(issue.client_keys),
                "record_date": issue.on,
                "raw": raw.get(issue.key) if _whole(issue) else None,
                "run_id": self.run_id,
                "last_seen_at": seen_at,
            }
            for issue in issues
        ]
        await _upsert(self.session, DataQualityIssue, rows)
        await self.session.execute(
            _ISSUES_RESOLVED,
            {
                "tenant": self.tenant_id,
                "stream": stream,
                "records": list(read_keys),
                "seen_at": seen_at,
            },
        )

    async def save_raw(
        self,
        stream: str,
        responses: Sequence[tuple[str, KarbonResponse]],
        key_field: str | None = None,
    ) -> None:
        """Keep each response as Karbon sent it, with its kind (`page` or `detail`), once per
        distinct body; a page's records (found by `key_field`) once per distinct content."""
        await save_versions(self.session, self.tenant_id, self.run_id, stream, responses, key_field)

    async def read_again_unchanged(
        self,
        stream: str,
        kind: str,
        responses: Sequence[KarbonResponse],
        key_field: str | None = None,
    ) -> list[bool]:
        """Which responses are exactly their last kept version: those are noted read again
        and need neither parsing nor keeping."""
        if not responses:
            return []
        return await read_again_unchanged(
            self.session, self.tenant_id, stream, kind, responses, key_field
        )

    async def count_live(self, model: Any, **scope: str) -> int:
        table: Table = model.__table__
        query = select(func.count()).where(
            table.c.tenant_id == self.tenant_id,
            table.c.deleted_at.is_(None),
            *(table.c[name] == value for name, value in scope.items()),
        )
        return int((await self.session.execute(query)).scalar_one())

    async def mark_unseen_timesheets_deleted(
        self,
        *,
        now: datetime,
        started_after: date,
        periods: Sequence[tuple[date, Sequence[str]]],
    ) -> None:
        """Timesheets (and their entries) in the re-read periods that this run did not see."""
        in_scope = or_(
            Timesheet.start_date > started_after,
            *(
                and_(Timesheet.start_date == start, Timesheet.user_key.in_(list(users)))
                for start, users in periods
            ),
        )
        gone = (
            update(Timesheet)
            .where(
                Timesheet.tenant_id == self.tenant_id,
                Timesheet.deleted_at.is_(None),
                Timesheet.last_seen_run_id.is_distinct_from(self.run_id),
                in_scope,
            )
            .values(deleted_at=now)
            .returning(Timesheet.timesheet_key)
        )
        keys = list((await self.session.execute(gone)).scalars().all())
        if keys:
            await self.session.execute(
                update(TimeEntry)
                .where(
                    TimeEntry.tenant_id == self.tenant_id,
                    TimeEntry.timesheet_key.in_(keys),
                    TimeEntry.deleted_at.is_(None),
                )
                .values(deleted_at=now)
            )

    async def mark_unseen_deleted(self, model: Any, *, now: datetime, **scope: str) -> int:
        """After a complete read: what this run did not see is gone from Karbon."""
        table: Table = model.__table__
        conditions = [
            table.c.tenant_id == self.tenant_id,
            table.c.deleted_at.is_(None),
            table.c.last_seen_run_id.is_distinct_from(self.run_id),
            *(table.c[name] == value for name, value in scope.items()),
        ]
        result = await self.session.execute(
            update(table).where(and_(*conditions)).values(deleted_at=now)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
