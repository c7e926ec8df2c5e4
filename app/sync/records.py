"""Normalized, typed records parsed from raw Karbon JSON.

Karbon field names are the validation aliases, so a validation error names the Karbon field.
Every record keeps the raw JSON it came from (``raw`` from the list, ``raw_detail`` from the
per-record GET when one was made) so new fields can be derived later without re-syncing.

Quirks handled here: ``PrimaryStatus`` spaced in lists ("In Progress") and unspaced in details
("InProgress"); ``UnitPrice`` sent as a string; money as ``Decimal`` (a JSON number goes through
its shortest decimal text, so ``1607.13`` stays exactly ``Decimal("1607.13")``); dates sent as
midnight date-times; ``ClientType`` including ``ClientGroup``; keys of any length.

Bad records: ``parse_batch`` quarantines a record that fails validation (``Reject`` with a
specific message and its raw JSON) and keeps the rest of the page. The engine stores rejects
for review and leaves any previously stored version of that record untouched. A timesheet is
parsed as a whole: one bad entry rejects its timesheet, so no period is stored half-complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
from pydantic_core import PydanticCustomError

from app.domain.values import BilledStatus, ClientType, FeeType, InvoiceStatus
from app.domain.values import LineType as BillableItemType

Raw = dict[str, Any]


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


_KARBON_FEE_TYPES = tuple(member for member in FeeType if member is not FeeType.UNKNOWN)
_EXPECTED_FEE_TYPES = " or ".join(
    ", ".join(f"'{m.value}'" for m in _KARBON_FEE_TYPES).rsplit(", ", 1)
)


def _karbon_fee_type(value: Any) -> Any:
    """Karbon sends three fee types; the domain's ``Unknown`` means "not synced", never a value.

    Runs after ``_lenient`` has turned a spelling into a member.
    """
    if value not in _KARBON_FEE_TYPES:
        raise PydanticCustomError(
            "enum", "Input should be {expected}", {"expected": _EXPECTED_FEE_TYPES}
        )
    return value


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
    primary_status: Annotated[PrimaryStatus, _lenient(PrimaryStatus)] | None = Field(
        None, validation_alias="PrimaryStatus"
    )
    secondary_status: str | None = Field(None, validation_alias="SecondaryStatus")
    fee_type: Annotated[FeeType, BeforeValidator(_karbon_fee_type), _lenient(FeeType)] | None = (
        Field(None, validation_alias=AliasPath("FeeSettings", "FeeType"))
    )
    fee_value: Money | None = Field(None, validation_alias=AliasPath("FeeSettings", "FeeValue"))
    raw: Raw = Field(repr=False)
    raw_detail: Raw | None = Field(None, repr=False)


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
    billed_status: Annotated[BilledStatus, _lenient(BilledStatus)] = Field(
        validation_alias="BilledStatus"
    )
    raw: Raw = Field(repr=False)

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
    status: Annotated[TimesheetStatus, _lenient(TimesheetStatus)] = Field(validation_alias="Status")
    entries: list[TimeEntryRecord] = Field(default_factory=list, validation_alias="TimeEntries")
    raw: Raw = Field(repr=False)

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
        entries = [
            {**entry, **header, "raw": entry} if isinstance(entry, dict) else entry
            for entry in data["TimeEntries"]
        ]
        return {**data, "TimeEntries": entries}


class LineItemRecord(_Record):
    line_item_key: str | None = Field(None, validation_alias="LineItemKey")
    invoice_key: str = Field(validation_alias="InvoiceKey")
    billable_item_type: Annotated[BillableItemType, _lenient(BillableItemType)] | None = Field(
        None, validation_alias="BillableItemType"
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
    status: Annotated[InvoiceStatus, _lenient(InvoiceStatus)] = Field(
        validation_alias="InvoiceStatus"
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
    raw: Raw = Field(repr=False)
    raw_detail: Raw | None = Field(None, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _attach_lines(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("LineItems"), list):
            data["LineItems"] = [
                {**line, "InvoiceKey": data.get("InvoiceKey"), "raw": line}
                if isinstance(line, dict)
                else line
                for line in data["LineItems"]
            ]
        if isinstance(data.get("Data"), list):
            data["Data"] = [
                {**line, "raw": line} if isinstance(line, dict) else line for line in data["Data"]
            ]
        return data


Record = UserRecord | ClientRecord | WorkItemRecord | TimesheetRecord | InvoiceRecord
R = TypeVar("R", bound=_Record)


class RecordValidationError(ValueError):
    """A Karbon record that cannot be normalized, naming entity, key and field."""

    def __init__(self, entity: str, key: str, field: str, problem: str, raw: Raw) -> None:
        self.entity = entity
        self.key = key
        self.field = field
        self.problem = problem
        self.raw = raw
        super().__init__(f"{entity} {key!r}: field {field}: {problem}")


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
        raise RecordValidationError(entity, key, field, first["msg"], raw) from None


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


def parse_batch(
    parser: Parser, items: Iterable[Raw], details: Mapping[str, Raw] | None = None, *, key: str
) -> ParsedBatch:
    """Parse a page, quarantining bad records instead of failing the page.

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
