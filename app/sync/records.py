"""Normalized, typed records parsed from raw Karbon JSON.

Karbon field names are the validation aliases, so a validation error names the Karbon field.
Every record keeps the raw JSON it came from (``raw`` from the list, ``raw_detail`` from the
per-record GET when one was made) so new fields can be derived later without re-syncing.

Quirks handled here: ``PrimaryStatus`` spaced in lists ("In Progress") and unspaced in details
("InProgress"); ``UnitPrice`` sent as a string; money as ``Decimal`` (a JSON number goes through
its shortest decimal text, so ``1607.13`` stays exactly ``Decimal("1607.13")``); dates sent as
midnight date-times; ``ClientType`` including ``ClientGroup``; keys of any length.

Tolerant reading: Karbon's enumerations grow, and the spec allows nulls naive code does not
expect. A record is kept with whatever can be read; only what cannot is set aside and named as
a ``FieldIssue`` (entity, key, field, value, reason, the clients it concerns):

* an enumerated field with a value this code does not know (or a null where one is expected)
  is kept as Karbon sent it and flagged (``Record.issues``); the domain treats it as unread
  (an entry whose ``BilledStatus`` is unread is never unbilled work);
* a time entry or invoice line that cannot be read at all is set aside alone: the rest of its
  timesheet or invoice is kept (``set_aside``);
* a record that cannot be read at all (no key, no date it is filed by) is set aside whole by
  ``parse_batch`` (``Reject``), and any version stored before is left untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from app.domain.values import BilledStatus, ClientType, FeeType, InvoiceStatus
from app.domain.values import LineType as BillableItemType

Raw = dict[str, Any]


class SetAside(StrEnum):
    FIELD = "field"
    """The record is kept; this field's value could not be read."""
    RECORD = "record"
    """The record could not be read and is not applied."""


@dataclass(frozen=True)
class FieldIssue:
    """Something Karbon sent that could not be read, named so a person can see it."""

    entity: str
    """Karbon's entity: ``TimeEntry``, ``InvoiceLine``, ``WorkItem``, ``Invoice``..."""
    key: str
    """The Karbon key of the record the field belongs to."""
    parent_key: str
    """The key of the list record it came in (its timesheet or invoice; else ``key``)."""
    field: str
    value: str | None
    reason: str
    set_aside: SetAside = SetAside.FIELD
    client_keys: tuple[str, ...] = ()
    """The clients it concerns, as far as the record itself says."""
    on: date | None = None
    """The date it concerns (an entry's timesheet start, an invoice's date)."""


def _value_text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:500]


def _clients(*keys: str | None) -> tuple[str, ...]:
    return tuple(key for key in keys if key)


def unread_enum(
    enum: type[StrEnum], value: Any, entity: str, key: str, parent_key: str, field_name: str
) -> FieldIssue | None:
    """The issue of an enumerated field whose value is not one of ``enum`` (None if it is)."""
    if isinstance(value, enum):
        return None
    reason = "no value" if value is None else f"not a known {field_name}"
    return FieldIssue(entity, key, parent_key, field_name, _value_text(value), reason)


class PrimaryStatus(StrEnum):
    PLANNED = "Planned"
    READY_TO_START = "ReadyToStart"
    IN_PROGRESS = "InProgress"
    WAITING = "Waiting"
    COMPLETED = "Completed"


class TimesheetStatus(StrEnum):
    DRAFT = "Draft"
    SUBMITTED = "Submitted"
    APPROVED = "Approved"
    DECLINED = "Declined"


def _squash(text: str) -> str:
    return "".join(ch for ch in text.replace("&", "and").lower() if ch.isalnum())


def _lenient(enum: type[StrEnum]) -> BeforeValidator:
    """Accept an enum value however Karbon spaces or cases it ("In Progress", "InProgress")."""
    by_squashed = {_squash(member.value): member for member in enum}
    exact = {member.value: member for member in enum}

    def normalise(value: Any) -> Any:
        if isinstance(value, str):
            # Most values arrive exactly as spelled: skip squashing them (a hot path).
            return exact.get(value) or by_squashed.get(_squash(value), value)
        return value

    return BeforeValidator(normalise)


class KarbonFeeType(StrEnum):
    """Karbon's three fee types; the domain's ``Unknown`` means "not synced", never a value."""

    FIXED_FEE = FeeType.FIXED_FEE.value
    TIME_AND_MATERIALS = FeeType.TIME_AND_MATERIALS.value
    NON_BILLABLE = FeeType.NON_BILLABLE.value


def _date_part(value: Any) -> Any:
    """Karbon sends dates as midnight date-times ("2022-07-04T00:00:00Z"); keep the date."""
    if isinstance(value, str) and "T" in value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")[:19]).date()
    return value


def _utc_unless_stated(value: datetime) -> datetime:
    """Karbon's times are UTC; one sent without an offset is read as UTC, not as this
    machine's local time."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


KarbonDate = Annotated[date, BeforeValidator(_date_part)]
KarbonTime = Annotated[datetime, AfterValidator(_utc_unless_stated)]
Money = Decimal


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)

    def issues(self) -> list[FieldIssue]:
        """Fields kept as Karbon sent them that could not be read, and parts set aside."""
        return []


class UserRecord(_Record):
    user_key: str = Field(validation_alias="Id", min_length=1)
    name: str = Field(validation_alias="Name")
    email: str | None = Field(None, validation_alias="EmailAddress")
    capacity_minutes_per_week: int | None = Field(None, validation_alias="CapacityMinutesPerWeek")
    billable_rate: Money | None = Field(None, validation_alias="BillableRate")
    raw: Raw = Field(repr=False)
    raw_detail: Raw | None = Field(None, repr=False)


class ClientRecord(_Record):
    """A Contact or an Organization, unified into one client list."""

    client_key: str = Field(
        validation_alias=AliasChoices("ContactKey", "OrganizationKey"), min_length=1
    )
    client_type: Annotated[ClientType, _lenient(ClientType)] = Field(validation_alias="ClientType")
    full_name: str = Field(validation_alias="FullName")
    contact_type: str | None = Field(None, validation_alias="ContactType")
    owner_email: str | None = Field(None, validation_alias="ClientOwner")
    manager_email: str | None = Field(None, validation_alias="ClientManager")
    user_defined_identifier: str | None = Field(None, validation_alias="UserDefinedIdentifier")
    last_modified: KarbonTime = Field(validation_alias="LastModifiedDateTime")
    raw: Raw = Field(repr=False)
    raw_detail: Raw | None = Field(None, repr=False)


class WorkItemRecord(_Record):
    work_item_key: str = Field(validation_alias="WorkItemKey", min_length=1)
    client_key: str | None = Field(None, validation_alias="ClientKey")
    client_type: Annotated[ClientType, _lenient(ClientType)] | None = Field(
        None, validation_alias="ClientType"
    )
    client_name: str | None = Field(None, validation_alias="ClientName")
    related_client_group_key: str | None = Field(None, validation_alias="RelatedClientGroupKey")
    assignee_key: str | None = Field(None, validation_alias="AssigneeKey")
    title: str = Field(validation_alias="Title")
    start_date: KarbonDate | None = Field(None, validation_alias="StartDate")
    due_date: KarbonDate | None = Field(None, validation_alias="DueDate")
    completed_date: KarbonDate | None = Field(None, validation_alias="CompletedDate")
    work_type: str | None = Field(None, validation_alias="WorkType")
    work_status: str | None = Field(None, validation_alias="WorkStatus")
    primary_status: Annotated[PrimaryStatus | str, _lenient(PrimaryStatus)] | None = Field(
        None, validation_alias="PrimaryStatus"
    )
    secondary_status: str | None = Field(None, validation_alias="SecondaryStatus")
    fee_type: Annotated[KarbonFeeType | str, _lenient(KarbonFeeType)] | None = Field(
        None, validation_alias=AliasPath("FeeSettings", "FeeType")
    )
    fee_value: Money | None = Field(None, validation_alias=AliasPath("FeeSettings", "FeeValue"))
    raw: Raw = Field(repr=False)
    raw_detail: Raw | None = Field(None, repr=False)

    @property
    def known_fee_type(self) -> FeeType | None:
        """The fee type when the detail gave one this code can read."""
        return FeeType(self.fee_type) if isinstance(self.fee_type, KarbonFeeType) else None

    def issues(self) -> list[FieldIssue]:
        """A status or fee type Karbon sent that is not known (a missing one is no issue)."""
        key = self.work_item_key
        sent = (
            (PrimaryStatus, self.primary_status, "PrimaryStatus"),
            (KarbonFeeType, self.fee_type, "FeeSettings.FeeType"),
        )
        found = [
            unread_enum(enum, value, "WorkItem", key, key, name)
            for enum, value, name in sent
            if value is not None
        ]
        return [replace(i, client_keys=_clients(self.client_key)) for i in found if i]


class TimeEntryRecord(_Record):
    """One time entry, flattened with its timesheet's user and period."""

    time_entry_key: str = Field(validation_alias="TimeEntryKey", min_length=1)
    timesheet_key: str = Field(validation_alias="TimesheetKey")
    user_key: str = Field(validation_alias="UserKey")
    period_start: KarbonDate = Field(validation_alias="PeriodStart")
    period_end: KarbonDate = Field(validation_alias="PeriodEnd")
    entity_key: str | None = Field(None, validation_alias="EntityKey")
    work_item_key: str | None = Field(None, validation_alias="WorkItemKey")
    client_key: str | None = Field(None, validation_alias="ClientKey")
    client_type: Annotated[ClientType, _lenient(ClientType)] | None = Field(
        None, validation_alias="ClientType"
    )
    role_name: str | None = Field(None, validation_alias="RoleName")
    task_type_name: str | None = Field(None, validation_alias="TaskTypeName")
    minutes: int = Field(validation_alias="Minutes", ge=0)
    hourly_rate: Money | None = Field(None, validation_alias="HourlyRate")
    descriptions: list[str] = Field(default_factory=list, validation_alias="Descriptions")
    billed_status: Annotated[BilledStatus | str, _lenient(BilledStatus)] | None = Field(
        None, validation_alias="BilledStatus"
    )
    raw: Raw = Field(repr=False)

    @property
    def known_billed_status(self) -> BilledStatus | None:
        return self.billed_status if isinstance(self.billed_status, BilledStatus) else None

    def issues(self) -> list[FieldIssue]:
        issue = unread_enum(
            BilledStatus,
            self.billed_status,
            "TimeEntry",
            self.time_entry_key,
            self.timesheet_key,
            "BilledStatus",
        )
        if issue is None:
            return []
        return [replace(issue, client_keys=_clients(self.client_key), on=self.period_start)]

    @model_validator(mode="before")
    @classmethod
    def _drop_null_descriptions(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("Descriptions"), list):
            data = {**data, "Descriptions": [d for d in data["Descriptions"] if d is not None]}
        return data


class TimesheetRecord(_Record):
    timesheet_key: str = Field(validation_alias="TimesheetKey", min_length=1)
    user_key: str = Field(validation_alias="UserKey")
    start_date: KarbonDate = Field(validation_alias="StartDate")
    end_date: KarbonDate = Field(validation_alias="EndDate")
    status: Annotated[TimesheetStatus | str, _lenient(TimesheetStatus)] | None = Field(
        None, validation_alias="Status"
    )
    entries: list[TimeEntryRecord] = Field(default_factory=list, validation_alias="TimeEntries")
    set_aside: tuple[FieldIssue, ...] = Field((), validation_alias="SetAside", repr=False)
    """Entries that could not be read at all; the rest of the timesheet is kept."""
    raw: Raw = Field(repr=False)

    def issues(self) -> list[FieldIssue]:
        key = self.timesheet_key
        status = unread_enum(TimesheetStatus, self.status, "Timesheet", key, key, "Status")
        own = [replace(status, on=self.start_date)] if status else []
        return [*own, *self.set_aside, *(i for e in self.entries for i in e.issues())]

    @model_validator(mode="before")
    @classmethod
    def _flatten_entries(cls, data: Any) -> Any:
        """Give each entry its timesheet's key, user and period, and its own raw JSON."""
        if not isinstance(data, dict) or not isinstance(data.get("TimeEntries"), list):
            return data
        header = {
            "TimesheetKey": data.get("TimesheetKey"),
            "UserKey": data.get("UserKey"),
            "PeriodStart": data.get("StartDate"),
            "PeriodEnd": data.get("EndDate"),
        }
        entries, set_aside = _read_each(
            TimeEntryRecord,
            [
                {**entry, **header, "raw": entry} if isinstance(entry, dict) else entry
                for entry in data["TimeEntries"]
            ],
            entity="TimeEntry",
            key_field="TimeEntryKey",
            parent_key=str(data.get("TimesheetKey")),
            on=data.get("StartDate"),
        )
        return {**data, "TimeEntries": entries, "SetAside": set_aside}


class LineItemRecord(_Record):
    line_item_key: str | None = Field(None, validation_alias="LineItemKey")
    invoice_key: str = Field(validation_alias="InvoiceKey")
    billable_item_type: Annotated[BillableItemType | str, _lenient(BillableItemType)] | None = (
        Field(None, validation_alias="BillableItemType")
    )
    billable_item_entity_key: str | None = Field(None, validation_alias="BillableItemEntityKey")
    description: str | None = Field(None, validation_alias="Description")
    quantity: Decimal | None = Field(None, validation_alias="Quantity")
    unit_price: Money | None = Field(None, validation_alias="UnitPrice")
    amount: Money = Field(validation_alias="Amount")
    tax_rate: Decimal | None = Field(None, validation_alias="TaxRate")
    tax_rate_name: str | None = Field(None, validation_alias="TaxRateName")
    raw: Raw = Field(repr=False)


class InvoiceDataLine(_Record):
    """A line of the invoice Data tab: what was billed per work item, client or service."""

    entity_key: str | None = Field(None, validation_alias="EntityKey")
    entity_type: str | None = Field(None, validation_alias="EntityType")
    billed: Money | None = Field(None, validation_alias="Billed")
    raw: Raw = Field(repr=False)


class InvoiceRecord(_Record):
    invoice_key: str = Field(validation_alias="InvoiceKey", min_length=1)
    invoice_number: str | None = Field(None, validation_alias="InvoiceNumber")
    status: Annotated[InvoiceStatus | str, _lenient(InvoiceStatus)] | None = Field(
        None, validation_alias="InvoiceStatus"
    )
    invoice_date: KarbonDate | None = Field(None, validation_alias="InvoiceDate")
    payment_due_date: KarbonDate | None = Field(None, validation_alias="PaymentDueDate")
    updated_at: KarbonTime = Field(validation_alias="UpdatedAt")
    currency_code: str | None = Field(None, validation_alias="CurrencyCode")
    total: Money | None = Field(None, validation_alias="InvoiceTotal")
    subtotal: Money | None = Field(None, validation_alias="InvoiceSubTotal")
    tax_total: Money | None = Field(None, validation_alias="InvoiceTaxTotal")
    amount_due: Money | None = Field(None, validation_alias="TotalAmountDue")
    client_key: str | None = Field(None, validation_alias=AliasPath("Client", "ClientKey"))
    client_type: Annotated[ClientType, _lenient(ClientType)] | None = Field(
        None, validation_alias=AliasPath("Client", "ClientType")
    )
    client_name: str | None = Field(None, validation_alias=AliasPath("Client", "Name"))
    line_items: list[LineItemRecord] | None = Field(None, validation_alias="LineItems")
    """None when neither the list nor a detail call carried line items."""
    data_lines: list[InvoiceDataLine] | None = Field(None, validation_alias="Data")
    set_aside: tuple[FieldIssue, ...] = Field((), validation_alias="SetAside", repr=False)
    """Line items that could not be read at all; the rest of the invoice is kept."""
    raw: Raw = Field(repr=False)
    raw_detail: Raw | None = Field(None, repr=False)

    def issues(self) -> list[FieldIssue]:
        key = self.invoice_key
        found = [unread_enum(InvoiceStatus, self.status, "Invoice", key, key, "InvoiceStatus")]
        for position, line in enumerate(self.line_items or []):
            if line.billable_item_type is not None:
                line_key = line.line_item_key or f"{key}#{position}"
                found.append(
                    unread_enum(
                        BillableItemType,
                        line.billable_item_type,
                        "InvoiceLine",
                        line_key,
                        key,
                        "BillableItemType",
                    )
                )
        return [
            *(self._about(issue) for issue in found if issue),
            *(self._about(issue) for issue in self.set_aside),
        ]

    def _about(self, issue: FieldIssue) -> FieldIssue:
        return replace(issue, client_keys=_clients(self.client_key), on=self.invoice_date)

    @model_validator(mode="before")
    @classmethod
    def _attach_lines(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("LineItems"), list):
            data["LineItems"], data["SetAside"] = _read_each(
                LineItemRecord,
                [
                    {**line, "InvoiceKey": data.get("InvoiceKey"), "raw": line}
                    if isinstance(line, dict)
                    else line
                    for line in data["LineItems"]
                ],
                entity="InvoiceLine",
                key_field="LineItemKey",
                parent_key=str(data.get("InvoiceKey")),
                on=data.get("InvoiceDate"),
            )
        if isinstance(data.get("Data"), list):
            data["Data"] = [
                {**line, "raw": line} if isinstance(line, dict) else line for line in data["Data"]
            ]
        return data


def _read_each(
    model: type[R],
    items: list[Any],
    *,
    entity: str,
    key_field: str,
    parent_key: str,
    on: Any,
) -> tuple[list[R], list[FieldIssue]]:
    """Read each child (entry, line) on its own: one that cannot be read is set aside and
    named, and the others are kept."""
    kept: list[R] = []
    set_aside: list[FieldIssue] = []
    for position, item in enumerate(items):
        try:
            kept.append(model.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            own = item.get("raw", item) if isinstance(item, dict) else {}
            set_aside.append(
                FieldIssue(
                    entity=entity,
                    key=str(own.get(key_field) or f"{parent_key}#{position}"),
                    parent_key=parent_key,
                    field=_field_path(tuple(first["loc"])),
                    value=_value_text(first.get("input")),
                    reason=first["msg"],
                    set_aside=SetAside.RECORD,
                    client_keys=_clients(own.get("ClientKey")),
                    on=_readable_date(on),
                )
            )
    return kept, set_aside


def _readable_date(value: Any) -> date | None:
    try:
        parsed = _date_part(value)
        return parsed if isinstance(parsed, date) else date.fromisoformat(str(parsed))
    except ValueError:
        return None


Record = UserRecord | ClientRecord | WorkItemRecord | TimesheetRecord | InvoiceRecord
R = TypeVar("R", bound=_Record)


class RecordValidationError(ValueError):
    """A Karbon record that cannot be normalized, naming entity, key and field."""

    def __init__(
        self, entity: str, key: str, field: str, problem: str, raw: Raw, value: Any = None
    ) -> None:
        self.entity = entity
        self.key = key
        self.field = field
        self.problem = problem
        self.raw = raw
        self.value = value
        super().__init__(f"{entity} {key!r}: field {field}: {problem}")

    def issue(self) -> FieldIssue:
        """The record, set aside whole."""
        client = self.raw.get("Client")
        return FieldIssue(
            entity=self.entity,
            key=self.key,
            parent_key=self.key,
            field=self.field,
            value=_value_text(self.value),
            reason=self.problem,
            set_aside=SetAside.RECORD,
            client_keys=_clients(
                self.raw.get("ClientKey"),
                client.get("ClientKey") if isinstance(client, dict) else None,
            ),
        )


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(record)"


def _validate(
    model: type[R], entity: str, key_field: str, raw: Raw, detail: Raw | None, extra: Raw
) -> R:
    merged = {**raw, **(detail or {}), **extra, "raw": raw}
    if "raw_detail" in model.model_fields:
        merged["raw_detail"] = detail
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(merged.get(key_field) or "<no key>")
        field = _field_path(tuple(first["loc"]))
        raise RecordValidationError(
            entity, key, field, first["msg"], raw, first.get("input")
        ) from None


def parse_user(raw: Raw, detail: Raw | None = None) -> UserRecord:
    return _validate(UserRecord, "User", "Id", raw, detail, {})


def parse_contact(raw: Raw, detail: Raw | None = None) -> ClientRecord:
    return _validate(ClientRecord, "Contact", "ContactKey", raw, detail, {"ClientType": "Contact"})


def parse_organization(raw: Raw, detail: Raw | None = None) -> ClientRecord:
    return _validate(
        ClientRecord, "Organization", "OrganizationKey", raw, detail, {"ClientType": "Organization"}
    )


def parse_work_item(raw: Raw, detail: Raw | None = None) -> WorkItemRecord:
    return _validate(WorkItemRecord, "WorkItem", "WorkItemKey", raw, detail, {})


def parse_timesheet(raw: Raw, detail: Raw | None = None) -> TimesheetRecord:
    return _validate(TimesheetRecord, "Timesheet", "TimesheetKey", raw, detail, {})


def parse_invoice(raw: Raw, detail: Raw | None = None) -> InvoiceRecord:
    return _validate(InvoiceRecord, "Invoice", "InvoiceKey", raw, detail, {})


Parser = Callable[[Raw, Raw | None], Record]


@dataclass(frozen=True)
class Reject:
    """A quarantined record: why it failed and exactly what Karbon sent."""

    error: RecordValidationError

    @property
    def raw(self) -> Raw:
        return self.error.raw


@dataclass(frozen=True)
class ParsedBatch:
    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def issues(self) -> list[FieldIssue]:
        """Everything on the page that could not be read: fields, children and records."""
        return [
            *(issue for record in self.records for issue in record.issues()),
            *(reject.error.issue() for reject in self.rejects),
        ]


def parse_batch(
    parser: Parser, items: Iterable[Raw], details: Mapping[str, Raw] | None = None, *, key: str
) -> ParsedBatch:
    """Parse a page, setting aside records that cannot be read instead of failing the page.

    ``details`` maps a record's key to its detail JSON when a detail call was made.
    """
    batch = ParsedBatch()
    for raw in items:
        detail = (details or {}).get(str(raw.get(key)))
        try:
            batch.records.append(parser(raw, detail))
        except RecordValidationError as exc:
            batch.rejects.append(Reject(exc))
    return batch
