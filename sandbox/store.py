"""Per-tenant read model: which records each endpoint lists, in what order, rendered once.

Paging never re-sorts or re-serializes the whole data set: the live records of an entity set are
sorted once per ``$orderby`` (default: by key, as Karbon's spec gives each list's default order),
filtered once per ``($filter, $orderby)`` (a small LRU), and each record's JSON fragment and
each detail are rendered on first use and cached. Everything is dropped when the firm changes
(:meth:`TenantData.invalidate`, called after ``advance``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sandbox import render
from sandbox.model import Firm
from sandbox.odata import FilterField, QuerySpec

_STR = frozenset({"eq", "contains"})
_EQ = frozenset({"eq"})
_DATE_OPS = frozenset({"eq", "gt", "ge", "lt", "le"})
_LIST_OPTIONS = frozenset({"$top", "$skip", "$count", "$filter", "$orderby"})


def _f(
    kind: str,
    get: Callable[[Any], Any],
    ops: frozenset[str],
    functions: frozenset[str] = frozenset(),
) -> FilterField:
    return FilterField(kind, get, ops, functions)


@dataclass(frozen=True)
class EntitySet:
    name: str  # "Users", "Contacts", ...
    key: Callable[[Any], str]
    records: Callable[[Firm], list[Any]]
    spec: QuerySpec
    context_suffix: str  # after "$metadata#"


USERS = EntitySet(
    "Users",
    key=lambda u: u.key,
    records=lambda f: list(f.users.values()),
    spec=QuerySpec(
        "Users",
        "UserSummaryDTO",
        frozenset({"$top", "$skip", "$count", "$filter"}),
        properties=frozenset({"Id", "Name", "EmailAddress"}),
        filters={
            "Name": _f("string", lambda u: u.name, _STR),
            "EmailAddress": _f("string", lambda u: u.email, _STR),
        },
    ),
    context_suffix="Users",
)

CONTACTS = EntitySet(
    "Contacts",
    key=lambda c: c.key,
    records=lambda f: list(f.contacts.values()),
    spec=QuerySpec(
        "Contacts",
        "ContactSummaryDTO",
        _LIST_OPTIONS,
        properties=frozenset(
            {
                "ContactKey",
                "FullName",
                "PreferredName",
                "Salutation",
                "ClientOwner",
                "ClientManager",
                "Address",
                "EmailAddress",
                "PhoneNumber",
                "RoleOrTitle",
                "ContactType",
                "UserDefinedIdentifier",
                "LastModifiedDateTime",
            }
        ),
        filters={
            "FullName": _f("string", lambda c: c.full_name, _STR),
            "EmailAddress": _f("string", lambda c: c.email, _STR),
            "PhoneNumber": _f("string", lambda c: c.phone, _STR),
            "ContactType": _f("string", lambda c: c.contact_type, _STR),
            "ExternalKey": _f("key", lambda c: c.external_key, _EQ),
        },
        orderby={
            "FullName": lambda c: c.full_name.casefold(),
            "LastModifiedDateTime": lambda c: c.last_modified,
        },
    ),
    context_suffix="Contacts/KarbonService.ContactSummaryDTO",
)

ORGANIZATIONS = EntitySet(
    "Organizations",
    key=lambda o: o.key,
    records=lambda f: list(f.organizations.values()),
    spec=QuerySpec(
        "Organizations",
        "OrganizationSummaryDTO",
        _LIST_OPTIONS,
        properties=frozenset(
            {
                "OrganizationKey",
                "FullName",
                "PhoneNumber",
                "EmailAddress",
                "Website",
                "ContactType",
                "LastModifiedDateTime",
                "UserDefinedIdentifier",
            }
        ),
        filters={
            "FullName": _f("string", lambda o: o.full_name, _STR),
            "EmailAddress": _f("string", lambda o: o.email, _STR),
            "ContactType": _f("string", lambda o: o.contact_type, _STR),
            "ExternalKey": _f("key", lambda o: o.external_key, _EQ),
        },
        orderby={
            "FullName": lambda o: o.full_name.casefold(),
            "LastModifiedDateTime": lambda o: o.last_modified,
        },
    ),
    context_suffix="Organizations/KarbonService.OrganizationSummaryDTO",
)

# Not in the spec's filter list; only with SandboxConfig.allow_last_modified_filter.
LAST_MODIFIED_FILTER = {
    "LastModifiedDateTime": _f("datetime", lambda r: r.last_modified, _DATE_OPS),
}


def _wi_assignee_email(firm: Firm) -> Callable[[Any], str | None]:
    def get(w: Any) -> str | None:
        u = firm.users.get(w.assignee_key)
        return u.email if u else None

    return get


def _work_items(firm: Firm) -> EntitySet:
    from sandbox.model import spaced_primary_status

    return EntitySet(
        "WorkItems",
        key=lambda w: w.key,
        records=lambda f: list(f.work_items.values()),
        spec=QuerySpec(
            "WorkItems",
            "WorkItemSummaryDTO",
            _LIST_OPTIONS,
            properties=frozenset(
                {
                    "WorkItemKey",
                    "AssigneeEmailAddress",
                    "AssigneeKey",
                    "AssigneeName",
                    "Title",
                    "ClientKey",
                    "ClientName",
                    "ClientType",
                    "ClientUserDefinedIdentifier",
                    "RelatedClientGroupKey",
                    "ClientGroupKey",
                    "RelatedClientGroupName",
                    "StartDate",
                    "DueDate",
                    "DeadlineDate",
                    "CompletedDate",
                    "ToDoPeriod",
                    "WorkType",
                    "WorkStatus",
                    "PrimaryStatus",
                    "SecondaryStatus",
                    "WorkTemplateKey",
                    "WorkTemplateTile",
                    "WorkScheduleKey",
                }
            ),
            filters={
                "AssigneeEmailAddress": _f("string", _wi_assignee_email(firm), _STR),
                "ClientKey": _f("key", lambda w: w.client_key, _EQ),
                # Only the spaced form matches; "InProgress" silently matches nothing.
                "PrimaryStatus": _f(
                    "string", lambda w: spaced_primary_status(w.primary_status), _EQ
                ),
                "Title": _f("string", lambda w: w.title, _STR),
                "WorkScheduleKey": _f("key", lambda w: w.work_schedule_key, _EQ),
                "WorkStatus": _f("string", lambda w: w.work_status, _STR),
                "WorkTemplateKey": _f("key", lambda w: w.work_template_key, _EQ),
                "WorkType": _f("string", lambda w: w.work_type, _STR),
                "StartDate": _f("datetime", lambda w: w.start_date, frozenset({"ge", "le"})),
            },
            orderby={
                "StartDate": lambda w: w.start_date,
                "DeadlineDate": lambda w: w.deadline_date or date.min,
            },
        ),
        context_suffix="WorkItems/KarbonService.WorkItemSummaryDTO",
    )


TIMESHEETS = EntitySet(
    "Timesheets",
    key=lambda t: t.key,
    records=lambda f: list(f.timesheets.values()),
    spec=QuerySpec(
        "Timesheets",
        "TimesheetSummaryDTO",
        _LIST_OPTIONS | {"$expand"},
        properties=frozenset(
            {
                "TimesheetKey",
                "StartDate",
                "EndDate",
                "UserKey",
                "Status",
                "WorkItemKeys",
                "TimeEntries",
            }
        ),
        filters={
            "TimesheetKey": _f("key", lambda t: t.key, _EQ),
            "StartDate": _f(
                "datetime", lambda t: t.start_date, _DATE_OPS, frozenset({"day", "month", "year"})
            ),
            "EndDate": _f(
                "datetime", lambda t: t.end_date, _DATE_OPS, frozenset({"day", "month", "year"})
            ),
            "UserKey": _f("key", lambda t: t.user_key, frozenset({"eq", "in"})),
            "Status": _f("string", lambda t: t.status, frozenset({"eq", "in"})),
            "WorkItemKeys": _f("collection", lambda t: t.work_item_keys, frozenset({"any"})),
        },
        orderby={"StartDate": lambda t: t.start_date, "EndDate": lambda t: t.end_date},
        expand=("TimeEntries",),
    ),
    context_suffix="Timesheets",
)

INVOICES = EntitySet(
    "Invoices",
    key=lambda i: i.key,
    records=lambda f: f.visible_invoices(),
    spec=QuerySpec(
        "Invoices",
        "InvoiceSummaryDTO",
        _LIST_OPTIONS | {"$expand"},
        properties=frozenset(
            {
                "InvoiceKey",
                "InvoiceNumber",
                "TotalAmountDue",
                "InvoiceTotal",
                "InvoiceSubTotal",
                "InvoiceTaxTotal",
                "InvoiceDate",
                "PaymentDueDate",
                "UpdatedAt",
                "CurrencyCode",
                "PaymentInstructions",
                "InvoiceStatus",
                "Client",
                "TaxLineItems",
            }
        ),
        filters={"InvoiceStatus": _f("string", lambda i: i.status, _EQ)},
        orderby={
            "InvoiceDate": lambda i: i.invoice_date,
            "CreatedAt": lambda i: i.created_at,
            "UpdatedAt": lambda i: i.updated_at,
            "InvoiceNumber": lambda i: i.number,
        },
        expand=("LineItems",),
    ),
    context_suffix="Invoices",
)

# Detail endpoints: which $ options they take.
USER_DETAIL = QuerySpec("Users", "UserProfileDTO", frozenset())
ORGANIZATION_DETAIL = QuerySpec(
    "Organizations",
    "OrganizationDTO",
    frozenset({"$expand"}),
    expand=("BusinessCards", "ClientTeam", "Contacts"),
)
WORK_ITEM_DETAIL = QuerySpec("WorkItems", "WorkItemDTO", frozenset())
INVOICE_DETAIL = QuerySpec(
    "Invoices", "InvoiceDTO", frozenset({"$expand"}), expand=("LineItems", "Payments", "Data")
)


class TenantData:
    """Sorted/filtered indexes and rendered fragments for one firm; see module docstring."""

    FILTER_CACHE_SIZE = 1024

    def __init__(self, firm: Firm) -> None:
        self.firm = firm
        self.version = 0
        self.sets: dict[str, EntitySet] = {
            "Users": USERS,
            "Contacts": CONTACTS,
            "Organizations": ORGANIZATIONS,
            "WorkItems": _work_items(firm),
            "Timesheets": TIMESHEETS,
            "Invoices": INVOICES,
        }
        self._ordered: dict[tuple[str, tuple[tuple[str, bool], ...]], list[Any]] = {}
        self._filtered: OrderedDict[
            tuple[str, str, tuple[tuple[str, bool], ...], bool], list[Any]
        ] = OrderedDict()
        self._fragments: dict[tuple[str, str, str], str] = {}
        self.details: dict[tuple[str, str, str, str], tuple[str, bool]] = {}
        """A detail's rendered JSON (and whether it was expanded), by (handler, key, query,
        base URL): a nightly re-reads every detail, most of them unchanged."""

    def invalidate(self) -> None:
        self.version += 1
        self._ordered.clear()
        self._filtered.clear()
        self._fragments.clear()
        self.details.clear()

    def ordered(self, set_name: str, orderby: tuple[tuple[str, bool], ...]) -> list[Any]:
        ck = (set_name, orderby)
        rows = self._ordered.get(ck)
        if rows is None:
            es = self.sets[set_name]
            rows = sorted(es.records(self.firm), key=es.key)  # default order: by key
            # Stable sorts, last clause first; ties keep ascending key order (ASP.NET appends the
            # key to $orderby), also for "desc", since reverse=True keeps sorts stable.
            for prop, desc in reversed(orderby):
                rows.sort(key=es.spec.orderby[prop], reverse=desc)
            self._ordered[ck] = rows
        return rows

    def matching(
        self,
        set_name: str,
        orderby: tuple[tuple[str, bool], ...],
        filter_text: str | None,
        predicate: Callable[[Any], bool] | None,
        extra_filters: bool = False,
    ) -> list[Any]:
        rows = self.ordered(set_name, orderby)
        if predicate is None or filter_text is None:
            return rows
        ck = (set_name, filter_text, orderby, extra_filters)
        hit = self._filtered.get(ck)
        if hit is not None:
            self._filtered.move_to_end(ck)
            return hit
        hit = [r for r in rows if predicate(r)]
        self._filtered[ck] = hit
        if len(self._filtered) > self.FILTER_CACHE_SIZE:
            self._filtered.popitem(last=False)
        return hit

    def fragment(self, set_name: str, variant: str, rec: Any) -> str:
        es = self.sets[set_name]
        ck = (set_name, variant, es.key(rec))
        frag = self._fragments.get(ck)
        if frag is None:
            frag = render.dumps(self._render(set_name, variant, rec))
            self._fragments[ck] = frag
        return frag

    def _render(self, set_name: str, variant: str, rec: Any) -> dict[str, Any]:
        firm = self.firm
        if set_name == "Users":
            return render.user_summary(rec)
        if set_name == "Contacts":
            return render.contact_summary(firm, rec)
        if set_name == "Organizations":
            return render.organization_summary(rec)
        if set_name == "WorkItems":
            return render.work_item_summary(firm, rec)
        if set_name == "Timesheets":
            return render.timesheet(rec, with_entries=variant == "TimeEntries")
        if set_name == "Invoices":
            return render.invoice_summary(rec, with_lines=variant == "LineItems")
        raise KeyError(set_name)
