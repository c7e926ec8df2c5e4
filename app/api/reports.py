"""The profitability reports. Each carries `as_of` (the last completed sync) and `warnings`.

Reports read the facts refreshed after each sync and after each change of cost assumptions;
integrator keys may read them; after the trial they answer 402.
"""

import csv
import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from app.api.auth import ActiveTrialOrSubscription
from app.api.deps import KarbonKey, SessionDep
from app.api.pagination import PageParamsDep
from app.api.responses import NOT_AUTHENTICATED, VALIDATION, problems
from app.reports import breakdowns
from app.reports.ordering import SORT_FIELDS
from app.reports.repository import FactFilter
from app.reports.schemas import (
    ClientProfitabilityReport,
    ClientReport,
    FeeTypeFilter,
    GroupBy,
    Interval,
    Order,
    ProfitabilityRow,
    StaffUtilizationReport,
    SummaryReport,
    UnbilledWorkReport,
)
from app.reports.service import (
    ProfitabilityQuery,
    client_profitability,
    paged_fields,
    profitability_page_json,
    profitability_rows,
    report_context,
)

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

READER = {
    **NOT_AUTHENTICATED,
    402: "`subscription-required`: the trial has ended; the data is kept.",
    403: "`tenant-access-only`: platform operators see only `/api/v1/ops`.",
}
WINDOW = {422: "`validation-error`: `errors` names each invalid field (e.g. `from` after `to`)."}

From = Annotated[
    date | None, Query(alias="from", description="First day (default: 364 days before `to`)")
]
To = Annotated[date | None, Query(alias="to", description="Last day (default: the last sync)")]
Owner = Annotated[str | None, Query(description="Client owner's e-mail")]
Manager = Annotated[str | None, Query(description="Client manager's e-mail")]
FeeType = Annotated[FeeTypeFilter | None, Query(description="Only work of this fee type")]
Sort = Annotated[
    str,
    Query(pattern=f"^({'|'.join(SORT_FIELDS)})$", description=f"One of {', '.join(SORT_FIELDS)}"),
]


@router.get(
    "/client-profitability",
    summary="Profit, cost and unbilled work per client, owner, manager or work type",
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with `format=csv`"},
        **problems({**READER, **WINDOW}),
    },
    response_model=ClientProfitabilityReport,
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
    group_by: GroupBy = GroupBy.CLIENT,
    interval: Annotated[Interval | None, Query(description="`month`: a monthly series")] = None,
    sort: Sort = "fee_revenue",
    order: Order = Order.DESC,
    format: Annotated[str, Query(pattern="^(json|csv)$", description="`csv`: every row")] = "json",
) -> Response:
    assert principal.tenant_id is not None
    context = await report_context(session, principal.tenant_id)
    query = ProfitabilityQuery(
        start,
        end,
        owner,
        manager,
        fee_type.value if fee_type else None,
        group_by,
        interval,
        sort,
        order,
    )
    if format == "csv":
        query, ranking = await client_profitability(session, context, query, limit=None)
        rows = await profitability_rows(session, context, query, ranking)
        return StreamingResponse(
            _csv(rows),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="client-profitability.csv"'},
        )
    body = await profitability_page_json(session, context, query, page.limit, page.offset)
    return Response(body, media_type="application/json")


def _csv(rows: list[ProfitabilityRow]) -> Iterator[str]:
    columns = list(ProfitabilityRow.model_fields)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for start in range(0, len(rows), 500):
        for row in rows[start : start + 500]:
            writer.writerow(row.model_dump(mode="json"))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


@router.get(
    "/clients/{client_key}",
    summary="One client's figures by work item and by staff member",
    responses=problems(
        {
            **READER,
            404: "`client-not-found`: no client with this key in your firm.",
            **WINDOW,
        }
    ),
)
async def get_client_report(
    principal: ActiveTrialOrSubscription,
    session: SessionDep,
    client_key: KarbonKey,
    start: From = None,
    end: To = None,
) -> ClientReport:
    assert principal.tenant_id is not None
    context = await report_context(session, principal.tenant_id)
    return await breakdowns.client_report(session, context, client_key, start, end)


@router.get(
    "/unbilled-work",
    summary="Unbilled work (WIP) by client and work item, with age, as of the last sync",
    responses=problems({**READER, **VALIDATION}),
)
async def get_unbilled_work(
    principal: ActiveTrialOrSubscription,
    session: SessionDep,
    page: PageParamsDep,
    owner: Owner = None,
    manager: Manager = None,
    fee_type: FeeType = None,
    sort: Annotated[str, Query(pattern="^(amount|age_days)$")] = "amount",
    order: Order = Order.DESC,
) -> UnbilledWorkReport:
    assert principal.tenant_id is not None
    context = await report_context(session, principal.tenant_id)
    where = FactFilter(owner=owner, manager=manager, fee_type=fee_type.value if fee_type else None)
    rows = await breakdowns.unbilled_work(session, context, where)
    rows.sort(
        key=lambda row: (
            Decimal(row.amount) if sort == "amount" else row.age_days,
            row.client_key or "",
        ),
        reverse=order is Order.DESC,
    )
    return UnbilledWorkReport(
        **paged_fields(rows, page, context),
        total_amount=breakdowns.wip_total(rows),
        by_age=breakdowns.age_buckets(rows),
    )


@router.get(
    "/staff-utilization",
    summary="Hours against capacity, billable share and cost, by staff member",
    responses=problems({**READER, **WINDOW}),
)
async def get_staff_utilization(
    principal: ActiveTrialOrSubscription,
    session: SessionDep,
    page: PageParamsDep,
    start: From = None,
    end: To = None,
) -> StaffUtilizationReport:
    assert principal.tenant_id is not None
    context = await report_context(session, principal.tenant_id)
    start, end = context.window(start, end)
    rows = await breakdowns.staff_utilization(session, context, start, end)
    return StaffUtilizationReport(
        **paged_fields(rows, page, context),
        start=start,
        end=end,
    )


@router.get(
    "/summary",
    summary="Firm totals, lock-up days, cash realization and data-quality warnings",
    responses=problems({**READER, **WINDOW}),
)
async def get_summary(
    principal: ActiveTrialOrSubscription, session: SessionDep, start: From = None, end: To = None
) -> SummaryReport:
    assert principal.tenant_id is not None
    context = await report_context(session, principal.tenant_id)
    start, end = context.window(start, end)
    return await breakdowns.summary(session, context, start, end)
