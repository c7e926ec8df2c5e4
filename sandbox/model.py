"""Plain data objects of a simulated Karbon firm.

Everything the sandbox serves is derived from these dataclasses, and tests may read them
directly to compute expected figures independently of the HTTP layer. Conventions:

* Money is :class:`~decimal.Decimal`, quantized to cents (``0.01``) except hourly rates, which are
  whole currency units.
* Calendar dates are :class:`~datetime.date` (rendered ``YYYY-MM-DDT00:00:00Z``); timestamps are
  timezone-aware UTC :class:`~datetime.datetime`.
* ``None`` means "not set in Karbon" (for example a user whose weekly capacity was never entered).
* Dicts keyed by Karbon key keep creation order, so iterating them is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

# Karbon's fixed PrimaryStatus values, in the unspaced form the detail endpoint returns.
PRIMARY_STATUSES = ("Planned", "ReadyToStart", "InProgress", "Waiting", "Completed")
# The spaced form the WorkItems list (and $filter) uses.
SPACED_PRIMARY_STATUS = {
    "Planned": "Planned",
    "ReadyToStart": "Ready To Start",
    "InProgress": "In Progress",
    "Waiting": "Waiting",
    "Completed": "Completed",
}
FEE_TYPES = ("FixedFee", "TimeAndMaterials", "NonBillable")


def spaced_primary_status(status: str) -> str:
    """The list's spelling of a status; one Karbon added later (messy mode) as it is."""
    return SPACED_PRIMARY_STATUS.get(status, status)


TIMESHEET_STATUSES = ("Draft", "Submitted", "Approved", "Declined")
BILLED_STATUSES = ("Unbilled", "Draft", "InterimBilled", "Billed")
# "Draft" invoices exist in the firm but are never returned by the API.
INVOICE_STATUSES = ("Draft", "Approved", "AwaitingPayment", "Paid", "Exported", "Voided")
VISIBLE_INVOICE_STATUSES = ("Approved", "AwaitingPayment", "Paid", "Exported", "Voided")
BILLABLE_ITEM_TYPES = ("TimeEntry", "Expense", "Entity")
CLIENT_TYPES = ("Contact", "Organization", "ClientGroup")


@dataclass(slots=True)
class Role:
    key: str
    name: str


@dataclass(slots=True)
class Team:
    key: str
    name: str
    parent_key: str | None = None


@dataclass(slots=True)
class User:
    key: str  # Karbon's "Id"
    name: str
    email: str
    role: Role
    billable_rate: Decimal  # current default hourly rate
    capacity_minutes_per_week: int | None  # None: never set in Karbon (omitted from the JSON)
    permissions: list[str]
    teams: list[Team]
    created_on: date


@dataclass(slots=True)
class ClientTeam:
    owner_key: str | None  # user key of the ClientOwner
    manager_key: str | None  # user key of the ClientManager
    staff_keys: list[str] = field(default_factory=list)  # other team members
    # The spec lets ClientOwner/ClientManager be "the UserKey or the email address": True
    # serves the UserKey (messy mode), False the e-mail.
    given_as_user_keys: bool = False


@dataclass(slots=True)
class Address:
    lines: str
    city: str
    state: str
    zip_code: str
    country_code: str  # ISO 3166-1 alpha-2
    country: str  # display name used on invoices


@dataclass(slots=True)
class Contact:
    key: str
    first_name: str
    last_name: str
    preferred_name: str | None
    salutation: str | None
    email: str
    phone: str | None
    address: Address | None
    contact_type: str  # "Client", "Prospect", ...
    team: ClientTeam
    user_defined_identifier: str
    external_key: str | None
    restriction_level: str
    organization_key: str | None  # employer, via the Contact's business card
    role_or_title: str | None
    created_at: datetime
    last_modified: datetime
    business_card_key: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(slots=True)
class Organization:
    key: str
    full_name: str
    email: str
    phone: str | None
    website: str | None
    address: Address | None
    contact_type: str
    team: ClientTeam
    user_defined_identifier: str
    external_key: str | None
    restriction_level: str
    description: str | None
    legal_name: str
    entity_type: str  # AccountingDetail.EntityType (the spec's enum), e.g. "Corporation"
    created_at: datetime
    last_modified: datetime
    business_card_key: str = ""


@dataclass(slots=True)
class ClientGroup:
    """A Karbon Client Group. Not served by the sandbox (Reckonry does not pull ClientGroups),
    but work items, time and invoice lines can belong to one."""

    key: str
    name: str
    member_keys: list[str]  # contact / organization keys; the first one receives the invoices
    team: ClientTeam
    created_at: datetime


@dataclass(slots=True)
class WorkItem:
    key: str
    title: str
    client_key: str
    client_type: str  # Contact / Organization / ClientGroup
    client_name: str  # at creation (Karbon keeps it on the work item)
    related_client_group_key: str | None
    related_client_group_name: str | None
    assignee_key: str
    work_type: str
    start_date: date
    due_date: date
    deadline_date: date | None
    completed_date: date | None
    primary_status: str  # unspaced, one of PRIMARY_STATUSES
    secondary_status: str | None
    fee_type: str  # one of FEE_TYPES
    fee_value: Decimal | None  # only for FixedFee
    description: str
    work_template_key: str | None
    work_template_title: str | None
    work_schedule_key: str | None
    service_key: str | None  # recurring-billing service (billed via the invoice Data tab)
    role_assignments: list[tuple[str, str]]  # (role key, user key)
    helper_keys: list[str]  # other staff who log time on it
    reviewer_key: str | None
    created_at: datetime
    budget_minutes: int  # planned effort; drives the simulation, not served
    logged_minutes: int = 0
    waiting_until: date | None = None

    @property
    def work_status(self) -> str:
        """The legacy ``WorkStatus`` string: spaced primary status, then the secondary one."""
        spaced = spaced_primary_status(self.primary_status)
        return f"{spaced} - {self.secondary_status}" if self.secondary_status else spaced


@dataclass(slots=True)
class TimeEntry:
    """One aggregated time entry of a timesheet (per entity, role and task type per period)."""

    key: str  # long composite key
    timesheet_key: str
    user_key: str
    entity_key: str  # the work item key, or the client key for time straight on a client
    work_item_key: str | None
    client_key: str
    client_type: str
    role_name: str
    task_type_name: str
    minutes: int
    hourly_rate: Decimal
    descriptions: list[str]
    billed_status: str | None = "Unbilled"  # one of BILLED_STATUSES (messy mode: any, or None)
    billed_by: str | None = None  # key of the (non-voided) invoice that billed it, if any

    @property
    def standard_value(self) -> Decimal:
        return (Decimal(self.minutes) * self.hourly_rate / 60).quantize(Decimal("0.01"))


@dataclass(slots=True)
class Timesheet:
    key: str
    user_key: str
    start_date: date
    end_date: date
    status: str  # one of TIMESHEET_STATUSES
    entries: list[TimeEntry]
    status_changed_on: date

    @property
    def work_item_keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for entry in self.entries:
            if entry.work_item_key:
                seen[entry.work_item_key] = None
        return list(seen)


@dataclass(slots=True)
class Expense:
    key: str  # 32-hex
    entity_key: str  # work item key or client key
    entity_type: str  # "WorkItem", "Contact", "Organization" or "ClientGroup"
    client_key: str
    description: str
    date: date
    amount: Decimal
    billed_by: str | None = None


@dataclass(slots=True)
class LineItem:
    key: str  # 32-hex GUID
    billable_item_type: str  # TimeEntry / Expense / Entity
    billable_item_entity_key: str  # time entry, work item, contact or organization key
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal  # quantity * unit_price, before tax
    tax_rate: Decimal | None  # percent, e.g. 10
    tax_rate_name: str | None
    tax_amount: Decimal  # tax of this line (0 when TaxLocation is Data)


@dataclass(slots=True)
class DataTax:
    rate: Decimal | None
    name: str | None
    amount: Decimal | None


@dataclass(slots=True)
class DataTimeEntry:
    time_entry_key: str
    colleague_key: str
    role_name: str
    task_type_name: str
    billed: Decimal


@dataclass(slots=True)
class DataWork:
    fee_type: str  # "Fixed Fee" / "Time and Materials"
    work_type: str
    invoice_type: str  # "Final" / "Interim"
    billed: Decimal
    time_entries: list[DataTimeEntry] | None
    tax: DataTax


@dataclass(slots=True)
class DataExpenseItem:
    expense_key: str
    description: str
    billed: Decimal
    tax: DataTax


@dataclass(slots=True)
class DataService:
    work_type: str
    billed: Decimal
    tax: DataTax


@dataclass(slots=True)
class DataLine:
    """One line of the invoice Data tab (``$expand=Data``)."""

    entity_key: str
    entity_type: str  # "Work Item", "Client" or "Service"
    billed: Decimal
    work: DataWork | None
    expenses: list[DataExpenseItem] | None
    service: DataService | None


@dataclass(slots=True)
class Payment:
    key: str
    reference: str
    payment_type: str  # ManualPayment / Payment
    payment_date: date
    amount: Decimal


@dataclass(slots=True)
class InvoiceClient:
    client_key: str
    client_type: str
    name: str
    address: Address | None
    email: str | None


@dataclass(slots=True)
class Invoice:
    key: str
    number: str
    client: InvoiceClient
    invoice_date: date
    payment_due_date: date
    currency: str
    payment_instructions: str | None
    status: str  # one of INVOICE_STATUSES ("Draft" is never served)
    tax_location: str  # "Presentation" or "Data"
    recurring: bool
    line_items: list[LineItem]
    data: list[DataLine]
    payments: list[Payment]
    created_at: datetime
    updated_at: datetime
    sent_on: date | None = None
    voided_on: date | None = None
    client_withheld: bool = False  # served with "Client": null (the spec allows it)
    # Work items and their fee amounts billed by this invoice (fixed-fee Entity lines).
    fixed_fee_billed: dict[str, Decimal] = field(default_factory=dict)
    pdf_token: str | None = None

    @property
    def subtotal(self) -> Decimal:
        return sum((li.amount for li in self.line_items), Decimal("0.00"))

    @property
    def tax_total(self) -> Decimal:
        if self.tax_location == "Data":
            total = Decimal("0.00")
            for d in self.data:
                for tax in _data_taxes(d):
                    total += tax.amount or Decimal("0.00")
            return total
        return sum((li.tax_amount for li in self.line_items), Decimal("0.00"))

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.tax_total

    @property
    def amount_paid(self) -> Decimal:
        return sum((p.amount for p in self.payments), Decimal("0.00"))

    @property
    def total_amount_due(self) -> Decimal:
        if self.status == "Voided":
            return Decimal("0.00")
        return self.total - self.amount_paid

    def tax_lines(self) -> list[tuple[str, Decimal]]:
        """``TaxLineItems``: tax per tax name, in first-seen order."""
        sums: dict[str, Decimal] = {}
        if self.tax_location == "Data":
            for d in self.data:
                for tax in _data_taxes(d):
                    if tax.name and tax.amount is not None:
                        sums[tax.name] = sums.get(tax.name, Decimal("0.00")) + tax.amount
        else:
            for li in self.line_items:
                if li.tax_rate_name:
                    sums[li.tax_rate_name] = sums.get(li.tax_rate_name, Decimal("0.00")) + (
                        li.tax_amount
                    )
        return list(sums.items())


def _data_taxes(d: DataLine) -> Iterator[DataTax]:
    if d.work is not None:
        yield d.work.tax
    if d.service is not None:
        yield d.service.tax
    for e in d.expenses or ():
        yield e.tax


@dataclass(slots=True)
class TaxConfig:
    currency: str
    name: str | None  # None: the firm charges no tax
    rate: Decimal  # percent
    country_code: str
    country: str


@dataclass
class Firm:
    """A simulated Karbon tenant's data at ``today``."""

    name: str
    size: str
    seed: int
    today: date
    history_start: date
    domain: str
    tax: TaxConfig
    roles: dict[str, Role] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    organizations: dict[str, Organization] = field(default_factory=dict)
    client_groups: dict[str, ClientGroup] = field(default_factory=dict)
    work_items: dict[str, WorkItem] = field(default_factory=dict)
    timesheets: dict[str, Timesheet] = field(default_factory=dict)
    expenses: dict[str, Expense] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)  # drafts included
    # kind ("Contact", "Organization", "WorkItem", "TimeEntry", "Timesheet") -> key -> when
    deleted: dict[str, dict[str, datetime]] = field(default_factory=dict)
    # Simulation state (random generator, schedules); private to the generator.
    sim: object | None = field(default=None, repr=False, compare=False)
    # What messy mode changed (a ``sandbox.messy.Mess``); None for a tidy firm.
    mess: Any = field(default=None, repr=False, compare=False)

    # ----- convenience for tests -------------------------------------------------------------
    def time_entries(self) -> Iterator[TimeEntry]:
        for ts in self.timesheets.values():
            yield from ts.entries

    def time_entry_index(self) -> dict[str, TimeEntry]:
        return {e.key: e for e in self.time_entries()}

    def visible_invoices(self) -> list[Invoice]:
        """Invoices the API returns (drafts are never returned)."""
        return [i for i in self.invoices.values() if i.status != "Draft"]

    def client(self, key: str) -> Contact | Organization | ClientGroup | None:
        """The contact, organization or client group with this key (None if deleted/unknown)."""
        return self.contacts.get(key) or self.organizations.get(key) or self.client_groups.get(key)

    def client_name(self, key: str) -> str | None:
        c = self.client(key)
        if c is None:
            return None
        return c.name if isinstance(c, ClientGroup) else c.full_name

    def client_type(self, key: str) -> str | None:
        c = self.client(key)
        if c is None:
            return None
        return {Contact: "Contact", Organization: "Organization"}.get(type(c), "ClientGroup")

    def counts(self) -> dict[str, int]:
        visible = self.visible_invoices()
        return {
            "users": len(self.users),
            "contacts": len(self.contacts),
            "organizations": len(self.organizations),
            "client_groups": len(self.client_groups),
            "work_items": len(self.work_items),
            "timesheets": len(self.timesheets),
            "time_entries": sum(len(t.entries) for t in self.timesheets.values()),
            "invoices": len(visible),
            "draft_invoices": len(self.invoices) - len(visible),
            "line_items": sum(len(i.line_items) for i in visible),
            "expenses": len(self.expenses),
            "deleted": sum(len(v) for v in self.deleted.values()),
        }
