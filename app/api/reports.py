"""The profitability reports. Each carries `as_of` (the last completed sync), `complete`
(false while the first sync runs or records wait for their detail) and `warnings`; as CSV,
the `Report-Complete` and `Report-As-Of` headers say the same, and client rows `may_move`.

Reports read the facts refreshed after each sync and after each change of cost assumptions;
integrator keys may read them; after the trial they answer 402.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from app.api.auth import ActiveTrialOrSubscription
from app.api.deps import KarbonKey, SessionDep
from app.api.pagination import PageParamsDep
from app.api.responses import READER, SUBSCRIPTION, TEXT, VALIDATION, problems
from app.domain import values
from app.domain.figures import EARLIEST_DAY, LATEST_DAY
from app.kit.presentation import csv_lines, money
from app.reports import breakdowns
from app.reports.repository import FactFilter, Ordering
from app.reports.schemas import (
    ClientProfitabilityReport,
    ClientReport,
    GroupBy,
    Interval,
    Order,
    ProfitabilityRow,
    ProfitabilitySort,
    ReportFormat,
    StaffUtilizationReport,
    SummaryReport,
    UnbilledSort,
    UnbilledWorkReport,
    UtilizationCostRow,
    UtilizationRow,
    WipRow,
    WorkItemRow,
    WorkStatus,
)
from app.reports.service import (
    ProfitabilityQuery,
    ReportContext,
    client_profitability,
    paged_fields,
    profitability_page_json,
    profitability_rows,
    report_context,
    report_header,
    totals_row,
    warnings_in_view,
)

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

REPORT_READER = {**READER, **SUBSCRIPTION}
WINDOW = {422: "`validation-error`: `errors` names each invalid field (e.g. `from` after `to`)."}

From = Annotated[
    date | None,
    Query(
        alias="from",
        ge=EARLIEST_DAY,
        le=LATEST_DAY,
        description="First day (default: 364 days before `to`)",
    ),
]
To = Annotated[
    date | None,
    Query(
        alias="to", ge=EARLIEST_DAY, le=LATEST_DAY, description="Last day (default: the last sync)"
    ),
]
Owner = Annotated[str | None, Query(description="Client owner's e-mail")]
Manager = Annotated[str | None, Query(description="Client manager's e-mail")]
FeeType = Annotated[values.FeeType | None, Query(description="Only work of this fee type")]
WorkStatusFilter = Annotated[
    WorkStatus | None,
    Query(
        description="Only work items that are `open` or `completed` (Karbon's `PrimaryStatus` "
        "Completed) as of the last sync; time and invoices on the client itself are left out"
    ),
]
PrimaryStatus = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z][A-Za-z ]*$",
        description="Only work items in this Karbon `PrimaryStatus` (Planned, ReadyToStart, "
        "InProgress, Waiting, Completed; spaced forms such as `In Progress` too)",
    ),
]


def _primary_status(value: str | None) -> str | None:
    """Karbon spaces `PrimaryStatus` in lists and not in details; it is stored unspaced."""
    return value.replace(" ", "") if value else None


Format = Annotated[
    ReportFormat,
    Query(description="`json`: one page. `csv`: every row, streamed, with the totals last"),
]


CSV_HEADERS = {
    "Report-Complete": {
        "description": "With `format=csv`: `true` or `false`, the JSON report's `complete`",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "Report-As-Of": {
        "description": "With `format=csv`: the JSON report's `as_of` (ISO 8601), empty until "
        "the first sync completes",
        "schema": {"type": "string"},
    },
}


def _json_or_csv(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The 200 of a report with `format`: its JSON model, or CSV text."""
    return {
        200: {
            "model": model,
            "content": {"text/csv": TEXT},
            "description": "JSON, or CSV with `format=csv` (a header row, then every row)",
            "headers": CSV_HEADERS,
        }
    }


def _csv(
    context: ReportContext,
    filename: str,
    columns: Sequence[str],
    records: Iterable[Mapping[str, Any]],
) -> StreamingResponse:
    """CSV has no place for the report's header: its completeness travels in HTTP headers."""
    return StreamingResponse(
        csv_lines(columns, records),
        media_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.csv"',
            "Report-Complete": "true" if context.completeness.complete else "false",
            "Report-As-Of": context.as_of.isoformat() if context.as_of else "",
        },
    )


def _dumped(rows: Iterable[BaseModel]) -> Iterable[dict[str, Any]]:
    return (row.model_dump(mode="json") for row in rows)


@router.get(
    "/client-profitability",
    summary="Profit, cost and unbilled work per client, owner, manager or work type",
    response_model=ClientProfitabilityReport,
    responses={**_json_or_csv(ClientProfitabilityReport), **problems({**REPORT_READER, **WINDOW})},
)
async def get_client_profitability(
    principal: ActiveTrialOrSubscription,
    session: SessionDep,
    page: PageParamsDep,
    start: From = None,
    end: To = None,
    owner: Owner = None,
    manager: Manager = None,
    fee_type: FeeType = None,
    work_status: WorkStatusFilter = None,
    primary_status: PrimaryStatus = None,
    group_by: GroupBy = GroupBy.CLIENT,
    interval: Annotated[Interval | None, Query(description="`month`: a monthly series")] = None,
    sort: ProfitabilitySort = ProfitabilitySort.FEE_REVENUE,
    order: Order = Order.DESC,
    format: Format = ReportFormat.JSON,
) -> Response:
    context = await report_context(session, principal.tenant_id)
    query = ProfitabilityQuery(
        start,
        end,
        owner,
        manager,
        fee_type.value if fee_type else None,
        group_by,
        interval,
        sort.value,
        order,
        work_status,
        _primary_status(primary_status),
    )
    if format is ReportFormat.CSV:
        query, ranking = await client_profitability(session, context, query, limit=None)
        rows = await profitability_rows(session, context, query, ranking)
        rows.append(totals_row(ranking, context))
        return _csv(
            context, "client-profitability", list(ProfitabilityRow.model_fields), _dumped(rows)
        )
    body = await profitability_page_json(session, context, query, page.limit, page.offset)
    return Response(body, media_type="application/json")


@router.get(
    "/clients/{client_key}",
    summary="One client's figures by work item and by staff member",
    description="With `format=csv`: one row per work item, then the client's totals. "
    "`by_staff` shows each person's `cost` to admins and integrator keys with `pay:read` only.",
    response_model=ClientReport,
    responses={
        **_json_or_csv(ClientReport),
        **problems(
            {
                **REPORT_READER,
                404: "`client-not-found`: no client with this key in your firm.",
                **WINDOW,
            }
        ),
    },
)
async def get_client_report(
    principal: ActiveTrialOrSubscription,
    session: SessionDep,
    client_key: KarbonKey,
    start: From = None,
    end: To = None,
    format: Format = ReportFormat.JSON,
) -> ClientReport | Response:
    context = await report_context(session, principal.tenant_id)
    report = await breakdowns.client_report(
        session, context, client_key, (start, end), with_pay=principal.sees_pay
    )
    if format is ReportFormat.CSV:
        totals = {**report.totals.model_dump(mode="json"), "key": None, "title": "Total"}
        records = [*_dumped(report.by_work_item), totals]
        return _csv(context, f"client-{client_key}", list(WorkItemRow.model_fields), records)
    return report


@router.get(
    "/unbilled-work",
    summary="Unbilled work (WIP) by client and work item, with age, as of the last sync",
    description="With `work_status=completed`: work finished but not billed.",
    response_model=UnbilledWorkReport,
    responses={**_json_or_csv(UnbilledWorkReport), **problems({**REPORT_READER, **VALIDATION})},
)
async def get_unbilled_work(
    principal: ActiveTrialOrSubscription,
    session: SessionDep,
    page: PageParamsDep,
    owner: Owner = None,
    manager: Manager = None,
    fee_type: FeeType = None,
    work_status: WorkStatusFilter = None,
    primary_status: PrimaryStatus = None,
    sort: UnbilledSort = UnbilledSort.AMOUNT,
    order: Order = Order.DESC,
    format: Format = ReportFormat.JSON,
) -> UnbilledWorkReport | Response:
    context = await report_context(session, principal.tenant_id)
    where = FactFilter(
        owner=owner,
        manager=manager,
        fee_type=fee_type.value if fee_type else None,
        work_status=work_status,
        primary_status=_primary_status(primary_status),
    )
    ordering = Ordering(sort.value, descending=order is Order.DESC)
    if format is ReportFormat.CSV:
        every = await breakdowns.unbilled_work(session, context, where, ordering, limit=None)
        return _csv(context, "unbilled-work", list(WipRow.model_fields), _dumped(every.rows))
    found = await breakdowns.unbilled_work(
        session, context, where, ordering, limit=page.limit, offset=page.offset
    )
    return UnbilledWorkReport(
        items=found.rows,
        total=found.totals.items,
        limit=page.limit,
        offset=page.offset,
        **await report_header(session, context, where),
        total_amount=money(found.totals.amount),
        by_age=breakdowns.age_buckets(found.totals),
    )


@router.get(
    "/staff-utilization",
    summary="Hours against capacity and billable share by staff member; cost for those who see pay",
    description="Each person's `cost` and `cost_complete` (JSON fields and CSV columns) are "
    "shown to admins and integrator keys with `pay:read` only; for members and other keys "
    "they are absent.",
    response_model=StaffUtilizationReport,
    responses={**_json_or_csv(StaffUtilizationReport), **problems({**REPORT_READER, **WINDOW})},
)
async def get_staff_utilization(
    principal: ActiveTrialOrSubscription,
    session: SessionDep,
    page: PageParamsDep,
    start: From = None,
    end: To = None,
    format: Format = ReportFormat.JSON,
) -> StaffUtilizationReport | Response:
    context = await report_context(session, principal.tenant_id)
    start, end = context.window(start, end)
    rows = await breakdowns.staff_utilization(
        session, context, start, end, with_pay=principal.sees_pay
    )
    if format is ReportFormat.CSV:
        row_model = UtilizationCostRow if principal.sees_pay else UtilizationRow
        return _csv(context, "staff-utilization", list(row_model.model_fields), _dumped(rows))
    window = FactFilter(start=start, end=end)
    return StaffUtilizationReport(
        **paged_fields(rows, page, context, await warnings_in_view(session, context, window)),
        start=start,
        end=end,
    )


@router.get(
    "/summary",
    summary="Firm totals, lock-up days, cash realization and data-quality warnings",
    response_model=SummaryReport,
    responses=problems({**REPORT_READER, **WINDOW}),
)
async def get_report_summary(
    principal: ActiveTrialOrSubscription, session: SessionDep, start: From = None, end: To = None
) -> Response:
    context = await report_context(session, principal.tenant_id)
    start, end = context.window(start, end)
    body = await breakdowns.summary_json(session, context, start, end)
    return Response(body, media_type="application/json")
