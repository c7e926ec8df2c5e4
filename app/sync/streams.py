"""What the sync engine reads from Karbon, stream by stream.

Each ``Stream`` declares its list endpoint, page size, key, incremental strategy, when a
per-record detail GET is needed, how its records are parsed, where they are stored (table, row
writer, deletion scope, child rows) and its special windows; the engine and the rebuild read
these declarations and never test a stream's name. Only ``$filter``, ``$orderby``
and ``$expand`` forms that Karbon's spec documents for that endpoint are used:

- Contacts, Organizations: no date filter exists, but ``$orderby=LastModifiedDateTime desc``
  does, so an incremental run reads newest first and stops below the high-water mark.
- Invoices: ``$filter`` supports only ``InvoiceStatus eq``, so the same newest-first approach
  on ``UpdatedAt``. Karbon never returns draft invoices. A new or changed invoice is read in
  detail with its Data tab when the list's lines do not say where its revenue belongs
  (``invoice_lines_fall_short``).
- WorkItems: no timestamp at all; every run lists them and fingerprints each list record.
- Timesheets: no timestamp; recent periods (``StartDate gt``) plus every period still holding
  unbilled time (``StartDate gt``, ``EndDate lt``, ``UserKey in (...)``) are re-read.
- Users: the list is tiny and lacks capacity; every run lists them all, and reads the detail
  of new users and users whose list record changed. A capacity change that leaves the list
  record as it was is picked up by the nightly rotation's re-checks of details already held.

Detail calls are never made while lists are read: each list page queues the details its records
are owed (``pending_details``), with the priority of what the reports need first (``*_PRIORITY``
below, each with its reason), and the engine reads them once every list is in.

High-water marks follow the usual rules: re-read with ``>=`` (ties are never lost), de-duplicate
on the key, and cap the new mark at the run's start so changes made during the run are re-read.
A newest-first read can only commit its new mark when the run completes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from pydantic import TypeAdapter

from app.models import Client, Invoice, Staff, TimeEntry, Timesheet, WorkItem
from app.sync.karbon.client import PAGE_SIZE_MAX
from app.sync.karbon.endpoints import (
    CONTACTS,
    INVOICES,
    ORGANIZATIONS,
    TIMESHEETS,
    USERS,
    WORK_ITEMS,
    Resource,
)
from app.sync.records import (
    ParsedBatch,
    Parser,
    Raw,
    TimesheetRecord,
    parse_batch,
    parse_contact,
    parse_invoice,
    parse_organization,
    parse_timesheet,
    parse_user,
    parse_work_item,
)
from app.sync.store import (
    INVOICE_DATA,
    KeptChildren,
    RecordStore,
    Storage,
    contact_row,
    invoice_row,
    organization_row,
    staff_row,
    timesheet_row,
    work_item_row,
)


class Strategy(StrEnum):
    FULL = "full"
    """No way to tell what changed: read everything every run."""
    NEWEST_FIRST = "newest_first"
    """Listed newest first by ``cursor_field``; stop once below the high-water mark."""
    FINGERPRINT = "fingerprint"
    """Read the whole list; a record changed when its list JSON's fingerprint changed."""
    PERIOD_WINDOW = "period_window"
    """Re-read recent periods and every period still holding unbilled time."""


CAPACITY_PRIORITY = 0
"""Users first: a user's capacity prices every hour they logged (hourly cost = compensation /
capacity hours), so no client's cost is right until every user's detail is in; a firm has few."""
ACTIVE_PRIORITY = 10
"""Work items with time or invoiced revenue in the last twelve months, and invoices dated in
them: a work item's fee type decides its unbilled work, realization and completion-basis revenue,
and an invoice's Data tab places its revenue on work items; the reports open on this year."""
ACTIVE_CLIENT_PRIORITY = 20
"""Organizations of clients with time or revenue in the last twelve months: their owner and
manager group and filter the reports' clients, but move no figure."""
REST_PRIORITY = 30
"""Everything else owed: older work items and invoices, organizations with no recent activity."""
ACTIVITY_DAYS = 365
"""What counts as recent activity for the priorities above: the last twelve months."""


class Activity(StrEnum):
    """Which records had time or revenue recently, once every list is in."""

    WORK_ITEM = "work_item"
    """The record's key is a work item with recent time, or named by a recent invoice line."""
    CLIENT = "client"
    """The record's key is a client with recent time or a recent invoice."""


@dataclass(frozen=True)
class Promotion:
    """Owed details of records with recent `activity` go up to `priority` once lists are in
    (the time and invoices that show the activity are read after the records themselves)."""

    activity: Activity
    priority: int

    @property
    def sources(self) -> tuple[str, ...]:
        """The streams whose records show the activity: once their lists are in, the
        promotion is final."""
        return _ACTIVITY_SOURCES[self.activity]


_ACTIVITY_SOURCES: dict[Activity, tuple[str, ...]] = {
    Activity.WORK_ITEM: ("timesheets", "invoices"),
    Activity.CLIENT: ("timesheets", "work_items", "invoices"),
}


class DetailPolicy(StrEnum):
    NEVER = "never"
    ALWAYS = "always"
    IF_CHANGED = "if_changed"
    """Only for records that are new or whose change token moved."""
    IF_LIST_FALLS_SHORT = "if_list_falls_short"
    """Only for new or changed records whose list JSON the stream's ``list_falls_short``
    flags: what the list gave does not say what the product needs."""


@dataclass(frozen=True)
class Stream:
    name: str
    resource: Resource
    key_field: str
    parse: Parser
    strategy: Strategy
    storage: Storage
    cursor_field: str | None = None
    order_by: str | None = None
    expand: str | None = None
    detail: DetailPolicy = DetailPolicy.NEVER
    detail_params: Mapping[str, str] = field(default_factory=dict)
    list_falls_short: Callable[[Raw], bool] | None = None
    """For ``IF_LIST_FALLS_SHORT``: whether a list record needs its detail."""
    page_size: int = PAGE_SIZE_MAX
    list_expand_may_be_refused: bool = False
    """Karbon may answer 400 to ``expand`` on the list: read the list without it, and each
    record's children come from its detail call."""
    recent_days: int | None = None
    """A PERIOD_WINDOW stream's incremental runs re-read the periods of these last days."""
    detail_priority: Callable[[Raw, date], int] = lambda raw, today: REST_PRIORITY
    """Where an owed detail queues, from its list record and the run's day."""
    promotion: Promotion | None = None
    detail_client: Callable[[Raw], str | None] = lambda raw: None
    """The client whose figures wait for the record's detail, when its list record says."""
    detail_unused: Callable[[Raw], bool] = lambda raw: False
    """Whether no figure uses this record's detail: it is never read, nor kept queued."""

    def __post_init__(self) -> None:
        if self.strategy is Strategy.PERIOD_WINDOW and self.recent_days is None:
            raise ValueError(f"stream {self.name}: a period window needs recent_days")
        if (self.detail is DetailPolicy.IF_LIST_FALLS_SHORT) != (self.list_falls_short is not None):
            raise ValueError(f"stream {self.name}: list_falls_short goes with IF_LIST_FALLS_SHORT")

    @property
    def period_days(self) -> int:
        """``recent_days`` of a PERIOD_WINDOW stream, which always has them."""
        assert self.recent_days is not None, self.name
        return self.recent_days

    def list_params(self, odata_filter: str | None = None) -> dict[str, str]:
        """Query of the first list page; later pages come from ``@odata.nextLink``."""
        params = {"$top": str(self.page_size)}
        if odata_filter:
            params["$filter"] = odata_filter
        if self.order_by:
            params["$orderby"] = self.order_by
        if self.expand:
            params["$expand"] = self.expand
        return params

    def key_of(self, raw: Raw) -> str:
        return str(raw[self.key_field])

    def tokens(self, records: Iterable[Raw]) -> dict[str, str]:
        """Each record's change token by key. Fingerprinting is not cheap: once per page."""
        return {self.key_of(raw): self.change_token(raw) for raw in records}

    async def seen(
        self, store: RecordStore, records: list[Raw], tokens: dict[str, str]
    ) -> ParsedBatch:
        """A page read again exactly as stored: parsed for what it counts, its records only
        noted seen (their rows, children and named issues stay as they are)."""
        batch = parse_batch(self.parse, records, {}, key=self.key_field)
        await store.mark_seen(self.storage, batch.records, tokens)
        return batch

    async def write(
        self,
        store: RecordStore,
        records: list[Raw],
        details: Mapping[str, Raw],
        tokens: dict[str, str],
        *,
        keep_deleted_at: bool = False,
    ) -> ParsedBatch:
        """Parse a page of list records (with their details), store what could be read, and
        name what could not (replacing what was named for these records before)."""
        batch = parse_batch(self.parse, records, details, key=self.key_field)
        await store.save(self.storage, batch.records, tokens, keep_deleted_at=keep_deleted_at)
        by_key = {str(raw.get(self.key_field)): raw for raw in records}
        await store.record_issues(self.name, list(by_key), batch.issues, by_key)
        return batch

    def change_token(self, raw: Raw) -> str:
        """What the engine stores per record to notice a change on the next run."""
        if self.cursor_field is not None and raw.get(self.cursor_field):
            return str(raw[self.cursor_field])
        return fingerprint(raw)

    def needs_detail(self, raw: Raw, stored_token: str | None, *, token: str) -> bool:
        """Whether this list record is owed its detail GET.

        ``stored_token`` is the change token saved for the record last time (None if new),
        ``token`` its ``change_token`` now. Full runs too read only owed details: re-reading
        details already held is the nightly rotation's, queued as re-checks.
        """
        if self.detail_unused(raw):
            return False
        changed = stored_token != token
        match self.detail:
            case DetailPolicy.NEVER:
                return False
            case DetailPolicy.ALWAYS:
                return True
            case DetailPolicy.IF_CHANGED:
                return changed
            case DetailPolicy.IF_LIST_FALLS_SHORT:
                assert self.list_falls_short is not None
                return changed and self.list_falls_short(raw)


def _time_entry_keys(timesheet: TimesheetRecord) -> list[str]:
    return [entry.time_entry_key for entry in timesheet.entries]


def fingerprint(raw: Raw) -> str:
    """A stable hash of a record's content (OData annotations excluded)."""
    content = {k: v for k, v in raw.items() if not k.startswith("@odata")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def invoice_lines_fall_short(raw: Raw) -> bool:
    """Whether an invoice's list record leaves its revenue unplaced: it came without
    ``LineItems`` (the list ignored or refused the expand), or a fee line is consolidated (no
    ``BillableItemEntityKey``) or keyed to the invoice's client rather than to a work item or
    time entry. The detail's Data tab then says which work items were billed."""
    lines = raw.get("LineItems")
    if not isinstance(lines, list):
        return True
    client = raw.get("Client")
    client_key = client.get("ClientKey") if isinstance(client, dict) else None
    for line in lines:
        if not isinstance(line, dict) or line.get("BillableItemType") == "Expense":
            continue
        entity_key = line.get("BillableItemEntityKey")
        if not entity_key or (client_key is not None and entity_key == client_key):
            return True
    return False


def invoice_voided(raw: Raw) -> bool:
    """A voided invoice is in no figure (DOMAIN rule 1, and rule 9 counts only non-voided
    invoices' lines): its detail would say nothing a report uses. One voided after it was
    counted stops counting by its listed status alone."""
    status = raw.get("InvoiceStatus")
    return isinstance(status, str) and status.replace(" ", "").lower() == "voided"


def invoice_priority(raw: Raw, today: date) -> int:
    """An invoice dated in the last twelve months is revenue the reports open on."""
    try:
        invoice_date = date.fromisoformat(str(raw.get("InvoiceDate"))[:10])
    except ValueError:  # no readable date: nothing says it is recent
        return REST_PRIORITY
    recent = invoice_date > today - timedelta(days=ACTIVITY_DAYS)
    return ACTIVE_PRIORITY if recent else REST_PRIORITY


def _invoice_client(raw: Raw) -> str | None:
    client = raw.get("Client")
    key = client.get("ClientKey") if isinstance(client, dict) else None
    return str(key) if key else None


def _work_item_client(raw: Raw) -> str | None:
    key = raw.get("ClientKey")
    return str(key) if key else None


def _organization_itself(raw: Raw) -> str | None:
    key = raw.get("OrganizationKey")
    return str(key) if key else None


USERS_STREAM = Stream(
    name="users",
    resource=USERS,
    key_field="Id",
    parse=parse_user,
    strategy=Strategy.FULL,
    storage=Storage(Staff, staff_row),
    detail=DetailPolicy.IF_CHANGED,
    detail_priority=lambda raw, today: CAPACITY_PRIORITY,
)
CONTACTS_STREAM = Stream(
    name="contacts",
    resource=CONTACTS,
    key_field="ContactKey",
    parse=parse_contact,
    strategy=Strategy.NEWEST_FIRST,
    # Contacts and Organizations share the clients table: each read covers its own type.
    storage=Storage(Client, contact_row, scope={"client_type": "Contact"}),
    cursor_field="LastModifiedDateTime",
    order_by="LastModifiedDateTime desc",
)
ORGANIZATIONS_STREAM = Stream(
    name="organizations",
    resource=ORGANIZATIONS,
    key_field="OrganizationKey",
    parse=parse_organization,
    strategy=Strategy.NEWEST_FIRST,
    storage=Storage(Client, organization_row, scope={"client_type": "Organization"}),
    cursor_field="LastModifiedDateTime",
    order_by="LastModifiedDateTime desc",
    detail=DetailPolicy.IF_CHANGED,
    promotion=Promotion(Activity.CLIENT, ACTIVE_CLIENT_PRIORITY),
    detail_client=_organization_itself,
)
WORK_ITEMS_STREAM = Stream(
    name="work_items",
    resource=WORK_ITEMS,
    key_field="WorkItemKey",
    parse=parse_work_item,
    strategy=Strategy.FINGERPRINT,
    storage=Storage(WorkItem, work_item_row),
    detail=DetailPolicy.IF_CHANGED,
    promotion=Promotion(Activity.WORK_ITEM, ACTIVE_PRIORITY),
    detail_client=_work_item_client,
)
TIMESHEETS_STREAM = Stream(
    name="timesheets",
    resource=TIMESHEETS,
    key_field="TimesheetKey",
    parse=parse_timesheet,
    strategy=Strategy.PERIOD_WINDOW,
    storage=Storage(
        Timesheet,
        timesheet_row,
        children=RecordStore.save_time_entries,
        deletes_with=(TimeEntry,),
        kept_children=KeptChildren("TimeEntries", TimeEntry, "timesheet_key", _time_entry_keys),
    ),
    expand="TimeEntries",
    # Incremental runs re-read the last six weeks (plus older periods still unbilled).
    recent_days=42,
)
INVOICES_STREAM = Stream(
    name="invoices",
    resource=INVOICES,
    key_field="InvoiceKey",
    parse=parse_invoice,
    strategy=Strategy.NEWEST_FIRST,
    storage=Storage(
        Invoice,
        invoice_row,
        children=RecordStore.replace_invoice_lines,
        detail_kept_in=INVOICE_DATA,
    ),
    cursor_field="UpdatedAt",
    order_by="UpdatedAt desc",
    expand="LineItems",
    # The product page lists Invoices with `$expand=LineItems`; Karbon's spec documents
    # `$expand` only on one invoice.
    list_expand_may_be_refused=True,
    # The Data tab says which work items an invoice billed even when lines are consolidated.
    detail=DetailPolicy.IF_LIST_FALLS_SHORT,
    list_falls_short=invoice_lines_fall_short,
    detail_params={"$expand": "LineItems,Data"},
    detail_priority=invoice_priority,
    detail_client=_invoice_client,
    detail_unused=invoice_voided,
)

STREAMS: tuple[Stream, ...] = (
    USERS_STREAM,
    CONTACTS_STREAM,
    ORGANIZATIONS_STREAM,
    WORK_ITEMS_STREAM,
    TIMESHEETS_STREAM,
    INVOICES_STREAM,
)
"""In dependency order: staff and clients before the work, time and invoices that name them."""

_DATETIME = TypeAdapter(datetime)


@dataclass
class NewestFirstWindow:
    """The incremental read of one NEWEST_FIRST stream during one run.

    Feed it each page; it keeps records at or above the previous mark (``>=``: a tie is re-read
    rather than lost), says when paging can stop, and gives the next mark, capped at the run's
    start so anything modified while the run was reading is read again next time.
    """

    stream: Stream
    since: datetime | None
    run_started_at: datetime
    exhausted: bool = False
    newest_seen: datetime | None = None

    def admit(self, records: Iterable[Raw]) -> list[Raw]:
        admitted: list[Raw] = []
        for raw in records:
            cursor = self._cursor(raw)
            if self.since is not None and cursor < self.since:
                self.exhausted = True  # newest first: everything after this is older still
                break
            if self.newest_seen is None or cursor > self.newest_seen:
                self.newest_seen = cursor
            admitted.append(raw)
        return admitted

    @property
    def next_high_water_mark(self) -> datetime | None:
        if self.newest_seen is None:
            return self.since
        return min(self.newest_seen, self.run_started_at)

    def _cursor(self, raw: Raw) -> datetime:
        assert self.stream.cursor_field is not None
        return _DATETIME.validate_python(raw[self.stream.cursor_field])


@dataclass(frozen=True)
class OpenPeriod:
    """A timesheet period that still holds unbilled time for some users."""

    start: date
    end: date
    user_keys: frozenset[str]


USER_KEYS_PER_FILTER = 20  # keeps each URL well under common length limits


def timesheet_filters(
    today: date, recent_days: int, open_periods: Iterable[OpenPeriod] = ()
) -> list[str]:
    """``$filter`` values for an incremental timesheet run, one list read per value.

    The first re-reads every period starting in the last ``recent_days``; the rest re-read the
    older periods that still hold unbilled time, for just the users holding it.
    """
    window_start = today - timedelta(days=recent_days)
    filters = [f"StartDate gt {_odata_datetime(window_start, seconds=-1)}"]
    users_by_period: dict[tuple[date, date], set[str]] = {}
    for period in open_periods:
        if period.start < window_start:
            users_by_period.setdefault((period.start, period.end), set()).update(period.user_keys)
    for (start, end), user_keys in sorted(users_by_period.items()):
        ordered = sorted(user_keys)
        for i in range(0, len(ordered), USER_KEYS_PER_FILTER):
            chunk = ", ".join(_odata_string(k) for k in ordered[i : i + USER_KEYS_PER_FILTER])
            filters.append(
                f"StartDate gt {_odata_datetime(start, seconds=-1)}"
                f" and EndDate lt {_odata_datetime(end, seconds=86400)}"
                f" and UserKey in ({chunk})"
            )
    return filters


def _odata_datetime(day: date, *, seconds: int) -> str:
    """Midnight UTC of ``day`` shifted by ``seconds``: Timesheets only support strict gt/lt."""
    moment = datetime.combine(day, time()) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def stream_named(name: str) -> Stream:
    for stream in STREAMS:
        if stream.name == name:
            return stream
    raise KeyError(name)


__all__: list[str] = [
    "ACTIVE_CLIENT_PRIORITY",
    "ACTIVE_PRIORITY",
    "ACTIVITY_DAYS",
    "CAPACITY_PRIORITY",
    "REST_PRIORITY",
    "STREAMS",
    "Activity",
    "DetailPolicy",
    "NewestFirstWindow",
    "OpenPeriod",
    "Promotion",
    "Strategy",
    "Stream",
    "fingerprint",
    "invoice_lines_fall_short",
    "invoice_priority",
    "invoice_voided",
    "stream_named",
    "timesheet_filters",
]
