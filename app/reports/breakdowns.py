"""One client by work item and staff, unbilled work with age, staff utilization, the summary."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.costs.service import domain_settings
from app.domain import (
    Measures,
    StaffMember,
    billable_share,
    capacity_minutes,
    capacity_of,
    cash_realization,
    debtor_days,
    last_365_days,
    lock_up_days,
    utilization,
    wip_days,
)
from app.domain.money import ZERO
from app.kit.presentation import days, hours, money, ratio
from app.kit.problems import ProblemError
from app.models import ReportFixedFee
from app.reports import repository
from app.reports.repository import FactFilter, Ordering, WipLine, WipTotals, WorkItemTitle
from app.reports.schemas import (
    AgeBucket,
    ClientReport,
    ProfitabilityRow,
    StaffCostRow,
    StaffRow,
    SummaryReport,
    UtilizationCostRow,
    UtilizationRow,
    WipRow,
    WorkItemRow,
)
from app.reports.service import (
    ReportContext,
    figures,
    figures_view,
    report_header,
    served_json,
)

AGE_BUCKETS = ((0, 30, "0-30"), (31, 60, "31-60"), (61, 90, "61-90"), (91, None, "90+"))


async def client_report(
    session: AsyncSession,
    context: ReportContext,
    key: str,
    window: tuple[date | None, date | None],
    *,
    with_pay: bool,
) -> ClientReport:
    """The client's figures; `with_pay` adds each staff member's cost to `by_staff`."""
    tenant_id = context.tenant_id
    stored = await repository.client(session, tenant_id, key)
    if stored is None and not await repository.client_has_facts(session, tenant_id, key):
        raise ProblemError(404, "client-not-found", "No client with this key in your firm.")
    start, end = context.window(*window)
    where = FactFilter(start=start, end=end, client_key=key)
    totals = await repository.sum_facts(session, tenant_id, where, None)
    wip = await repository.sum_wip(session, tenant_id, FactFilter(client_key=key), "work_item")
    names = await repository.client_names(session, tenant_id, [key])
    owner, manager = await repository.client_team(session, tenant_id, key)
    return ClientReport(
        key=key,
        name=names.get(key),
        owner_email=owner,
        manager_email=manager,
        start=start,
        end=end,
        **await report_header(session, context, where),
        may_move=context.completeness.may_move(key),
        totals=ProfitabilityRow(
            key=key,
            name=names.get(key),
            unbilled_work=money(sum(wip.values(), ZERO)),
            may_move=context.completeness.may_move(key),
            **figures(totals[0].measures if totals else Measures(), context.currency),
        ),
        by_work_item=await _by_work_item(session, context, where, wip),
        by_staff=await _by_staff(session, context, where, with_pay=with_pay),
    )


async def _by_work_item(
    session: AsyncSession, context: ReportContext, where: FactFilter, wip: dict[Any, Any]
) -> list[WorkItemRow]:
    tenant_id = context.tenant_id
    groups = {
        g.key: g.measures
        for g in await repository.sum_facts(session, tenant_id, where, "work_item")
    }
    for key in wip:
        groups.setdefault(key, Measures())
    keys = [key for key in groups if key is not None]
    titles = await repository.work_item_titles(session, tenant_id, keys)
    assert where.client_key is not None
    fixed = {
        f.work_item_key: f
        for f in await repository.fixed_fees(session, tenant_id, where.client_key)
    }
    rows = [
        _work_item_row(key, measures, titles.get(key), fixed.get(key), wip.get(key), context)
        for key, measures in groups.items()
    ]
    return sorted(rows, key=lambda row: (row.key is None, row.title or "", row.key or ""))


def _work_item_row(
    key: str | None,
    measures: Measures,
    title: WorkItemTitle | None,
    fixed: ReportFixedFee | None,
    wip: Decimal | None,
    context: ReportContext,
) -> WorkItemRow:
    return WorkItemRow(
        key=key,
        title=title.title if title else None,
        fee_type=(title.fee_type or "Unknown") if title else None,
        work_type=title.work_type if title else None,
        work_status=title.work_status if title else None,
        primary_status=title.primary_status if title else None,
        unbilled_work=money(wip or ZERO),
        fee_value=money(fixed.fee_value) if fixed else None,
        write_up_down=money(fixed.write_up_down) if fixed else None,
        **figures(measures, context.currency),
    )


def _person_cost(measures: Measures) -> dict[str, Any]:
    """The fields of `PersonCost`: one person's pay, for those who may see it."""
    return {"cost": money(measures.cost), "cost_complete": measures.cost_is_complete}


async def _by_staff(
    session: AsyncSession, context: ReportContext, where: FactFilter, *, with_pay: bool
) -> list[StaffRow]:
    groups = await repository.sum_facts(session, context.tenant_id, where, "staff")
    groups = [group for group in groups if group.key is not None]
    names = await repository.staff_names(session, context.tenant_id, [g.key for g in groups])
    rows: list[StaffRow] = []
    for group in groups:
        shown = {
            "key": group.key,
            "name": names.get(group.key),
            "currency": context.currency,
            "billable_hours": hours(group.measures.billable_minutes),
            "non_billable_hours": hours(group.measures.non_billable_minutes),
            "standard_value": money(group.measures.standard_value),
        }
        if with_pay:
            rows.append(StaffCostRow(**shown, **_person_cost(group.measures)))
        else:
            rows.append(StaffRow(**shown))
    return sorted(rows, key=lambda row: (row.name or "", row.key))


# -- unbilled work ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnbilledWork:
    rows: list[WipRow]
    """The page asked for (every row when no limit)."""
    totals: WipTotals


async def unbilled_work(
    session: AsyncSession,
    context: ReportContext,
    where: FactFilter,
    ordering: Ordering,
    *,
    limit: int | None,
    offset: int = 0,
) -> UnbilledWork:
    """One page of the WIP items `where` selects, and what all of them add up to: filtered,
    ordered, paged and summed in the database."""
    lines = await repository.wip_lines(
        session, context.tenant_id, where, ordering, limit=limit, offset=offset
    )
    buckets = [(low, high) for low, high, _ in AGE_BUCKETS]
    totals = await repository.wip_totals(session, context.tenant_id, where, buckets)
    return UnbilledWork([_wip_row(line, context) for line in lines], totals)


def _wip_row(line: WipLine, context: ReportContext) -> WipRow:
    work_item = line.work_item
    return WipRow(
        client_key=line.client_key,
        client_name=line.client_name,
        work_item_key=line.work_item_key,
        work_item_title=work_item.title if work_item else None,
        work_status=work_item.work_status if work_item else None,
        primary_status=work_item.primary_status if work_item else None,
        fee_type=line.fee_type,
        work_type=line.work_type,
        currency=context.currency,
        amount=money(line.amount),
        since=line.since,
        age_days=line.age_days,
        may_move=context.completeness.may_move(line.client_key),
    )


def age_buckets(totals: WipTotals) -> list[AgeBucket]:
    return [
        AgeBucket(label=label, amount=money(amount))
        for (_, _, label), amount in zip(AGE_BUCKETS, totals.by_age, strict=True)
    ]


# -- staff utilization ------------------------------------------------------------------


async def staff_utilization(
    session: AsyncSession, context: ReportContext, start: date, end: date, *, with_pay: bool
) -> list[UtilizationRow]:
    """Every staff member's hours against capacity; `with_pay` adds each one's cost."""
    settings = await domain_settings(session, context.tenant_id)
    groups = await repository.sum_facts(
        session, context.tenant_id, FactFilter(start=start, end=end), "staff"
    )
    measures = {group.key: group.measures for group in groups if group.key is not None}
    staff = {s.user_key: s for s in await repository.live_staff(session, context.tenant_id)}
    window_days = (end - start).days + 1
    rows: list[UtilizationRow] = []
    for key in sorted(staff.keys() | measures.keys()):
        member = staff.get(key)
        capacity = capacity_of(
            StaffMember(key, member.name, member.capacity_minutes_per_week) if member else None,
            settings.default_capacity_hours_per_week,
        )
        available = capacity_minutes(
            capacity.minutes_per_week, settings.working_weeks_per_year, window_days
        )
        m = measures.get(key, Measures())
        shown = {
            "key": key,
            "name": member.name if member else None,
            "currency": context.currency,
            "capacity_hours_per_week": hours(capacity.minutes_per_week),
            "capacity_defaulted": capacity.defaulted,
            "available_hours": hours(available),
            "billable_hours": hours(m.billable_minutes),
            "non_billable_hours": hours(m.non_billable_minutes),
            "utilization": ratio(utilization(m.minutes, available)),
            "billable_utilization": ratio(utilization(m.billable_minutes, available)),
            "billable_share": ratio(billable_share(m)),
            "standard_value": money(m.standard_value),
        }
        if with_pay:
            rows.append(UtilizationCostRow(**shown, **_person_cost(m)))
        else:
            rows.append(UtilizationRow(**shown))
    return rows


# -- summary ----------------------------------------------------------------------------


async def summary(
    session: AsyncSession, context: ReportContext, start: date, end: date
) -> SummaryReport:
    tenant_id = context.tenant_id
    window = await _firm_total(session, context, FactFilter(start=start, end=end))
    year_start, year_end = last_365_days(context.as_of_date)
    year = await _firm_total(session, context, FactFilter(start=year_start, end=year_end))
    ever = await _firm_total(session, context, FactFilter())
    wip = sum((await repository.sum_wip(session, tenant_id, FactFilter(), None)).values(), ZERO)
    invoice_total = year.counted_invoice_total
    return SummaryReport(
        **await report_header(session, context, FactFilter(start=start, end=end)),
        start=start,
        end=end,
        totals=figures_view(window, context.currency),
        unbilled_work=money(wip),
        cash_realization=ratio(cash_realization(window)),
        collected_before_tax=money(window.collected_before_tax),
        amount_due=money(ever.counted_amount_due),
        wip_days=days(wip_days(wip, year.fee_revenue)),
        debtor_days=days(debtor_days(ever.counted_amount_due, invoice_total)),
        lock_up_days=days(
            lock_up_days(wip, year.fee_revenue, ever.counted_amount_due, invoice_total)
        ),
        clients_that_may_move=sorted(context.completeness.moving_clients),
    )


async def summary_json(
    session: AsyncSession, context: ReportContext, start: date, end: date
) -> bytes:
    """The summary as JSON, kept per refresh version (`served_json`)."""
    return await served_json(
        context, ("summary", start, end), lambda: summary(session, context, start, end)
    )


async def _firm_total(session: AsyncSession, context: ReportContext, where: FactFilter) -> Measures:
    groups = await repository.sum_facts(session, context.tenant_id, where, None)
    return groups[0].measures if groups else Measures()
