"""Rendering firm records as Karbon's JSON, field for field.

Choices (each noted where the spec is silent or self-contradictory):

* Money is written from :class:`~decimal.Decimal` exactly as JSON numbers (``1607.13``), never
  through binary floats. ``LineItems[].UnitPrice`` is a JSON *string* (``"150.0000"``), as the
  spec types it; ``TaxRate`` is a number with four decimals (``10.0000``) as its description says.
* A value that is not set is rendered ``null`` where the schema allows null and the property is
  *omitted* where it does not (e.g. ``CapacityMinutesPerWeek`` of a user whose capacity was never
  entered, ``CompletedDate`` of open work, ``WorkItemKey`` of time logged straight on a client).
  Exception: ``ClientTaskRecipient`` on the work-item detail is always ``null``, as its spec
  description says, although its schema types it as a string.
* Dates are ``YYYY-MM-DDT00:00:00Z``; timestamps are UTC with up to seven fractional digits
  (.NET ``DateTime`` precision), e.g. ``2022-07-05T07:30:13.7188110Z``.
* ``PrimaryStatus`` is spaced (``"In Progress"``) in the WorkItems list and unspaced
  (``"InProgress"``) in the detail, as Karbon's quick reference documents.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sandbox.model import (
    ClientTeam,
    Contact,
    DataLine,
    DataTax,
    Firm,
    Invoice,
    Organization,
    TimeEntry,
    Timesheet,
    User,
    WorkItem,
    spaced_primary_status,
)

_encode_str = json.encoder.encode_basestring


def dumps(obj: Any) -> str:
    """Serialize ``obj`` to compact JSON; Decimals are written exactly, never via float."""
    parts: list[str] = []
    _write(obj, parts.append)
    return "".join(parts)


def _write(obj: Any, out: Any) -> None:
    if isinstance(obj, str):
        out(_encode_str(obj))
    elif obj is None:
        out("null")
    elif obj is True:
        out("true")
    elif obj is False:
        out("false")
    elif isinstance(obj, Decimal):
        out(format(obj, "f"))
    elif isinstance(obj, int):
        out(str(obj))
    elif isinstance(obj, float):
        out(repr(obj))
    elif isinstance(obj, dict):
        out("{")
        first = True
        for k, v in obj.items():
            if not first:
                out(",")
            first = False
            out(_encode_str(k))
            out(":")
            _write(v, out)
        out("}")
    elif isinstance(obj, list | tuple):
        out("[")
        for i, v in enumerate(obj):
            if i:
                out(",")
            _write(v, out)
        out("]")
    else:  # pragma: no cover - programming error
        raise TypeError(f"cannot render {type(obj).__name__}")


def d(value: date) -> str:
    return f"{value.isoformat()}T00:00:00Z"


def ts(value: datetime) -> str:
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        return f"{base}.{value.microsecond:06d}0Z"
    return f"{base}Z"


def _set(obj: dict[str, Any], key: str, value: Any) -> None:
    """Add ``key`` only when the value is set (for properties whose schema forbids null)."""
    if value is not None:
        obj[key] = value


def _rate4(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.0001"))


def _qty(value: Decimal) -> Decimal:
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral() else normal


# ------------------------------------------------------------------------------------------------
# Users
# ------------------------------------------------------------------------------------------------


def user_summary(u: User) -> dict[str, Any]:
    return {"Id": u.key, "Name": u.name, "EmailAddress": u.email}


def user_detail(u: User, base: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "@odata.context": f"{base}/v3/$metadata#Users/KarbonService.UserProfileDTO/$entity",
        "@odata.type": "#KarbonService.UserProfileDTO",
        "Id": u.key,
        "Name": u.name,
        "EmailAddress": u.email,
        "BillableRate": u.billable_rate,
    }
    _set(obj, "CapacityMinutesPerWeek", u.capacity_minutes_per_week)
    obj["Permissions"] = list(u.permissions)
    obj["Roles"] = [{"Name": u.role.name, "Key": u.role.key}]
    obj["Teams"] = [{"Key": t.key, "Name": t.name, "ParentTeamKey": t.parent_key} for t in u.teams]
    return obj


# ------------------------------------------------------------------------------------------------
# Contacts and organizations
# ------------------------------------------------------------------------------------------------


def _email_of(firm: Firm, user_key: str | None) -> str | None:
    if user_key is None:
        return None
    u = firm.users.get(user_key)
    return u.email if u else None


def _team_member(firm: Firm, team: ClientTeam, user_key: str | None) -> str | None:
    """ClientOwner/ClientManager: the user's e-mail, or (messy mode) the UserKey itself."""
    return user_key if team.given_as_user_keys else _email_of(firm, user_key)


def _address_line(c: Contact) -> str | None:
    a = c.address
    return f"{a.lines}, {a.city} {a.state} {a.zip_code}" if a else None


def contact_summary(firm: Firm, c: Contact) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "@odata.type": "#KarbonService.ContactSummaryDTO",
        "ContactKey": c.key,
        "FullName": c.full_name,
    }
    _set(obj, "PreferredName", c.preferred_name)
    _set(obj, "Salutation", c.salutation)
    _set(obj, "ClientOwner", _team_member(firm, c.team, c.team.owner_key))
    _set(obj, "ClientManager", _team_member(firm, c.team, c.team.manager_key))
    obj["Address"] = _address_line(c)
    obj["EmailAddress"] = c.email
    obj["PhoneNumber"] = c.phone
    _set(obj, "RoleOrTitle", c.role_or_title)
    obj["ContactType"] = c.contact_type
    obj["UserDefinedIdentifier"] = c.user_defined_identifier
    obj["LastModifiedDateTime"] = ts(c.last_modified)
    return obj


def organization_summary(o: Organization) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "@odata.type": "#KarbonService.OrganizationSummaryDTO",
        "OrganizationKey": o.key,
        "FullName": o.full_name,
        "PhoneNumber": o.phone,
        "EmailAddress": o.email,
    }
    _set(obj, "Website", o.website)
    obj["ContactType"] = o.contact_type
    obj["LastModifiedDateTime"] = ts(o.last_modified)
    obj["UserDefinedIdentifier"] = o.user_defined_identifier
    return obj


def organization_detail(
    firm: Firm, o: Organization, base: str, expand: list[str]
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "@odata.context": (
            f"{base}/v3/$metadata#Organizations/KarbonService.OrganizationDTO/$entity"
        ),
        "@odata.type": "#KarbonService.OrganizationDTO",
        "OrganizationKey": o.key,
        "FullName": o.full_name,
    }
    _set(obj, "ClientOwner", _team_member(firm, o.team, o.team.owner_key))
    _set(obj, "ClientManager", _team_member(firm, o.team, o.team.manager_key))
    obj["ContactType"] = o.contact_type
    obj["UserDefinedIdentifier"] = o.user_defined_identifier
    obj["RestrictionLevel"] = o.restriction_level
    obj["LastModifiedDateTime"] = ts(o.last_modified)
    obj["EntityDescription"] = {"Text": o.description} if o.description else {}
    obj["AccountingDetail"] = {
        "ContactPermaKey": None,
        "OrganizationPermaKey": o.key,
        "LegalName": o.legal_name,
        "EntityType": o.entity_type,
        "TaxCountryCode": o.address.country_code if o.address else None,
    }
    if "BusinessCards" in expand:
        card: dict[str, Any] = {
            "BusinessCardKey": o.business_card_key,
            "EntityType": "Organization",
            "EntityKey": o.key,
            "IsPrimaryCard": True,
            "WebSites": [o.website] if o.website else [],
            "EmailAddresses": [o.email],
            "OrganizationKey": None,
            "Addresses": [],
            "PhoneNumbers": [],
        }
        if o.address:
            card["Addresses"].append(
                {
                    "AddressLines": o.address.lines,
                    "City": o.address.city,
                    "StateProvinceCounty": o.address.state,
                    "ZipCode": o.address.zip_code,
                    "CountryCode": o.address.country_code,
                    "Label": "Physical",
                }
            )
        if o.phone:
            card["PhoneNumbers"].append(
                {
                    "Number": o.phone,
                    "CountryCode": o.address.country_code if o.address else firm.tax.country_code,
                    "Label": "Work",
                }
            )
        obj["BusinessCards"] = [card]
    if "Contacts" in expand:
        obj["Contacts"] = [
            {
                "ContactKey": c.key,
                "FullName": c.full_name,
                "PreferredName": c.preferred_name or c.first_name,
                "Salutation": c.salutation or "",
                "ClientOwner": _team_member(firm, c.team, c.team.owner_key),
                "ClientManager": _team_member(firm, c.team, c.team.manager_key),
                "Address": _address_line(c),
                "EmailAddress": c.email,
                "PhoneNumber": c.phone,
                "RoleOrTitle": c.role_or_title or "",
                "UserDefinedIdentifier": c.user_defined_identifier,
                "LastModifiedDateTime": ts(c.last_modified),
            }
            for c in firm.contacts.values()
            if c.organization_key == o.key
        ]
    if "ClientTeam" in expand:
        team: list[dict[str, str | None]] = []
        if o.team.owner_key:
            team.append(
                {"MemberKey": o.team.owner_key, "MemberType": "User", "RoleType": "ClientOwner"}
            )
        if o.team.manager_key:
            team.append(
                {"MemberKey": o.team.manager_key, "MemberType": "User", "RoleType": "ClientManager"}
            )
        for k in o.team.staff_keys:
            team.append({"MemberKey": k, "MemberType": "User", "RoleType": None})
        obj["ClientTeam"] = team
    return obj


# ------------------------------------------------------------------------------------------------
# Work items
# ------------------------------------------------------------------------------------------------


def _work_item_fields(firm: Firm, w: WorkItem, *, spaced: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {"WorkItemKey": w.key}
    assignee = firm.users.get(w.assignee_key)
    if assignee is not None:
        obj["AssigneeEmailAddress"] = assignee.email
        obj["AssigneeKey"] = assignee.key
        obj["AssigneeName"] = assignee.name
    obj["Title"] = w.title
    obj["ClientKey"] = w.client_key
    obj["ClientName"] = w.client_name
    obj["ClientType"] = w.client_type
    if w.client_type == "Contact":
        udi = (
            firm.contacts[w.client_key].user_defined_identifier
            if w.client_key in firm.contacts
            else None
        )
    elif w.client_type == "Organization":
        udi = (
            firm.organizations[w.client_key].user_defined_identifier
            if w.client_key in firm.organizations
            else None
        )
    else:
        udi = None
    _set(obj, "ClientUserDefinedIdentifier", udi)
    _set(obj, "RelatedClientGroupKey", w.related_client_group_key)
    _set(obj, "ClientGroupKey", w.related_client_group_key)
    _set(obj, "RelatedClientGroupName", w.related_client_group_name)
    obj["StartDate"] = d(w.start_date)
    obj["DueDate"] = d(w.due_date)
    obj["DeadlineDate"] = d(w.deadline_date) if w.deadline_date else None
    if w.completed_date:
        obj["CompletedDate"] = d(w.completed_date)
    obj["ToDoPeriod"] = d(w.start_date)
    obj["WorkType"] = w.work_type
    obj["WorkStatus"] = w.work_status
    obj["PrimaryStatus"] = spaced_primary_status(w.primary_status) if spaced else w.primary_status
    _set(obj, "SecondaryStatus", w.secondary_status)
    _set(obj, "WorkTemplateKey", w.work_template_key)
    _set(obj, "WorkTemplateTile", w.work_template_title)  # sic: the spec's property name
    _set(obj, "WorkScheduleKey", w.work_schedule_key)
    return obj


def work_item_summary(firm: Firm, w: WorkItem) -> dict[str, Any]:
    return {
        "@odata.type": "#KarbonService.WorkItemSummaryDTO",
        **_work_item_fields(firm, w, spaced=True),
    }


def work_item_detail(firm: Firm, w: WorkItem, base: str) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "@odata.context": f"{base}/v3/$metadata#WorkItems/KarbonService.WorkItemDTO/$entity",
        "@odata.type": "#KarbonService.WorkItemDTO",
        **_work_item_fields(firm, w, spaced=False),
    }
    obj["FeeSettings"] = {
        "FeeType": w.fee_type,
        "FeeValue": w.fee_value if w.fee_type == "FixedFee" else None,
    }
    obj["UserRoleAssignments"] = [
        {"RoleKey": r, "UserProfileKey": u} for r, u in w.role_assignments
    ]
    obj["Description"] = w.description
    obj["ClientTaskRecipient"] = None  # "This property will always return null" (spec)
    return obj


# ------------------------------------------------------------------------------------------------
# Timesheets
# ------------------------------------------------------------------------------------------------


def time_entry(e: TimeEntry) -> dict[str, Any]:
    obj: dict[str, Any] = {"TimeEntryKey": e.key, "EntityKey": e.entity_key}
    _set(obj, "WorkItemKey", e.work_item_key)
    obj["ClientKey"] = e.client_key
    obj["ClientType"] = e.client_type
    obj["RoleName"] = e.role_name
    obj["TaskTypeName"] = e.task_type_name
    obj["Minutes"] = e.minutes
    obj["HourlyRate"] = e.hourly_rate
    obj["Descriptions"] = list(e.descriptions)
    obj["BilledStatus"] = e.billed_status
    return obj


def timesheet(t: Timesheet, *, with_entries: bool) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "TimesheetKey": t.key,
        "StartDate": d(t.start_date),
        "EndDate": d(t.end_date),
        "UserKey": t.user_key,
        "Status": t.status,
        "WorkItemKeys": t.work_item_keys,
    }
    if with_entries:
        obj["TimeEntries"] = [time_entry(e) for e in t.entries]
    return obj


# ------------------------------------------------------------------------------------------------
# Invoices
# ------------------------------------------------------------------------------------------------


def _client(inv: Invoice) -> dict[str, Any]:
    c = inv.client
    obj: dict[str, Any] = {"ClientKey": c.client_key, "ClientType": c.client_type, "Name": c.name}
    if c.address:
        obj["AddressLine"] = c.address.lines
        obj["City"] = c.address.city
        obj["StateProvinceCounty"] = c.address.state
        obj["ZipCode"] = c.address.zip_code
        obj["Country"] = c.address.country
    _set(obj, "EmailAddress", c.email)
    return obj


def invoice_summary(inv: Invoice, *, with_lines: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "InvoiceKey": inv.key,
        "InvoiceNumber": inv.number,
        "TotalAmountDue": inv.total_amount_due,
        "InvoiceTotal": inv.total,
        "InvoiceSubTotal": inv.subtotal,
        "InvoiceTaxTotal": inv.tax_total,
        "InvoiceDate": d(inv.invoice_date),
        "PaymentDueDate": d(inv.payment_due_date),
        "UpdatedAt": ts(inv.updated_at),
        "CurrencyCode": inv.currency,
        "PaymentInstructions": inv.payment_instructions,
        "InvoiceStatus": inv.status,
        "TaxLocation": inv.tax_location,  # added by the 2025-09-29 release (not in the schema)
        "Client": None if inv.client_withheld else _client(inv),
        "TaxLineItems": [{"TaxName": n, "TaxValue": v} for n, v in inv.tax_lines()],
    }
    if with_lines:
        obj["LineItems"] = line_items(inv)
    return obj


def line_items(inv: Invoice) -> list[dict[str, Any]]:
    return [
        {
            "LineItemKey": li.key,
            "BillableItemEntityKey": li.billable_item_entity_key,
            "BillableItemType": li.billable_item_type,
            "Description": li.description,
            "Quantity": _qty(li.quantity),
            "UnitPrice": format(li.unit_price.quantize(Decimal("0.0001")), "f"),
            "Amount": li.amount,
            "TaxRate": _rate4(li.tax_rate),
            "TaxRateName": li.tax_rate_name,
        }
        for li in inv.line_items
    ]


def _tax(t: DataTax) -> dict[str, Any]:
    return {"TaxRate": _rate4(t.rate), "TaxRateName": t.name, "TaxAmount": t.amount}


def _data_line(dl: DataLine) -> dict[str, Any]:
    work = None
    if dl.work is not None:
        w = dl.work
        work = {
            "FeeType": w.fee_type,
            "WorkType": w.work_type,
            "InvoiceType": w.invoice_type,
            "Billed": w.billed,
            "TimeEntries": None
            if w.time_entries is None
            else [
                {
                    "TimeEntryKey": t.time_entry_key,
                    "ColleagueKey": t.colleague_key,
                    "RoleName": t.role_name,
                    "TaskTypeName": t.task_type_name,
                    "Billed": t.billed,
                }
                for t in w.time_entries
            ],
            **_tax(w.tax),
        }
    expenses = None
    if dl.expenses is not None:
        expenses = {
            "Billed": sum((e.billed for e in dl.expenses), Decimal("0.00")),
            "Expenses": [
                {
                    "ExpenseKey": e.expense_key,
                    "Description": e.description,
                    "Billed": e.billed,
                    **_tax(e.tax),
                }
                for e in dl.expenses
            ],
        }
    service = None
    if dl.service is not None:
        service = {
            "WorkType": dl.service.work_type,
            "Billed": dl.service.billed,
            **_tax(dl.service.tax),
        }
    return {
        "EntityKey": dl.entity_key,
        "EntityType": dl.entity_type,
        "Billed": dl.billed,
        "Service": service,
        "Work": work,
        "Expenses": expenses,
    }


def invoice_detail(inv: Invoice, base: str, expand: list[str]) -> dict[str, Any]:
    suffix = "".join(f"{e}()" if i == 0 else f",{e}()" for i, e in enumerate(expand))
    context = (
        f"{base}/v3/$metadata#Invoices({suffix})/$entity"
        if expand
        else f"{base}/v3/$metadata#Invoices/$entity"
    )
    obj: dict[str, Any] = {"@odata.context": context}
    obj.update(invoice_summary(inv))
    sent = inv.sent_on is not None and inv.pdf_token is not None
    obj["InvoiceMagicLink"] = (
        f"{base}/_sandbox/invoice-link?token={inv.pdf_token}" if sent else None
    )
    obj["InvoicePdfUrl"] = f"/v3/Files?token={inv.pdf_token}" if sent else None
    if "LineItems" in expand:
        obj["LineItems"] = line_items(inv)
    if "Payments" in expand:
        obj["Payments"] = [
            {
                "PaymentKey": p.key,
                "PaymentReference": p.reference,
                "PaymentType": p.payment_type,
                "PaymentDate": p.payment_date.isoformat(),
                "Amount": p.amount,
            }
            for p in inv.payments
        ]
    if "Data" in expand:
        obj["Data"] = [_data_line(dl) for dl in inv.data]
    return obj
