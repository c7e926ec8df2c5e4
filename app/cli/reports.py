"""`reckonry report`: a firm's report, read through the API's own route functions."""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from rich.console import Group, RenderableType
from rich.text import Text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from app.api import reports as api
from app.api.auth import TenantPrincipal
from app.cli import tables
from app.cli.errors import CliError
from app.db import create_engine, create_sessionmaker
from app.kit.pagination import PageParams
from app.reports.schemas import Interval
from app.reports.service import report_context
from app.tenancy import repository


class ReportName(StrEnum):
    CLIENT_PROFITABILITY = "client-profitability"
    MONTHLY = "monthly"
    SUMMARY = "summary"
    UNBILLED_WORK = "unbilled-work"
    STAFF_UTILIZATION = "staff-utilization"
    CLIENT = "client"


@dataclass(frozen=True)
class ReportRequest:
    name: ReportName
    email: str
    client_key: str | None = None
    start: date | None = None
    end: date | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if self.name is ReportName.CLIENT and not self.client_key:
            raise CliError("`reckonry report client` needs --client KEY (a client's Karbon key).")


Fetch = Callable[[TenantPrincipal, AsyncSession, ReportRequest], Awaitable[Any]]


def _page(request: ReportRequest) -> PageParams:
    return PageParams(limit=request.limit, offset=0)


def _client(principal: TenantPrincipal, session: AsyncSession, request: ReportRequest) -> Any:
    assert request.client_key is not None
    return api.get_client_report(principal, session, request.client_key, request.start, request.end)


FETCH: dict[ReportName, Fetch] = {
    ReportName.CLIENT_PROFITABILITY: lambda principal, session, r: api.get_client_profitability(
        principal, session, _page(r), start=r.start, end=r.end
    ),
    ReportName.MONTHLY: lambda principal, session, r: api.get_client_profitability(
        principal, session, _page(r), start=r.start, end=r.end, interval=Interval.MONTH
    ),
    ReportName.SUMMARY: lambda principal, session, r: api.get_report_summary(
        principal, session, start=r.start, end=r.end
    ),
    ReportName.UNBILLED_WORK: lambda principal, session, r: api.get_unbilled_work(
        principal, session, _page(r)
    ),
    ReportName.STAFF_UTILIZATION: lambda principal, session, r: api.get_staff_utilization(
        principal, session, _page(r), start=r.start, end=r.end
    ),
    ReportName.CLIENT: _client,
}
SHOW: dict[ReportName, Callable[[tables.Report], RenderableType]] = {
    ReportName.CLIENT_PROFITABILITY: tables.profitability,
    ReportName.MONTHLY: tables.profitability,
    ReportName.SUMMARY: tables.summary,
    ReportName.UNBILLED_WORK: tables.unbilled_work,
    ReportName.STAFF_UTILIZATION: tables.staff_utilization,
    ReportName.CLIENT: tables.client,
}


async def firm_report(database_url: str, request: ReportRequest) -> RenderableType:
    """The report of the firm whose member signs in with `request.email`, as a table."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            principal = await _member(session, request.email)
            answer = await FETCH[request.name](principal, session, request)
    finally:
        await engine.dispose()
    report = _as_json(answer)
    shown = SHOW[request.name](report)
    if report.get("complete", True):
        return shown
    return Group(Text(incomplete_note(report), style="bold yellow"), shown)


def incomplete_note(report: tables.Report) -> str:
    """What an incomplete report is missing: the sync's progress and who may still move."""
    first = ["the first Karbon sync is still running"] if report.get("as_of") is None else []
    entities = [
        f"{p['entity']} {p['state']}"
        + (f" ({p['details_owed']} details owed)" if p["details_owed"] else "")
        for p in report.get("progress", [])
    ]
    count = report.get("moving_clients", 0)
    moving = (
        "every client"
        if report.get("all_clients_may_move")
        else f"{count} client{'' if count == 1 else 's'}"
    )
    return (
        f"INCOMPLETE: {'; '.join([*first, *entities])}. The figures of {moving} may still "
        f"move (computed {report.get('refreshed_at')})."
    )


async def _member(session: AsyncSession, email: str) -> TenantPrincipal:
    user = await repository.user_by_email(session, email)
    if user is None:
        raise CliError(f"no user signs in with {email}; give the e-mail of a member of the firm.")
    if user.tenant_id is None:
        raise CliError(f"{email} is a platform operator, not a member of a firm.")
    if (await report_context(session, user.tenant_id)).version == 0:
        raise CliError(
            f"the firm of {email} has no report yet: its first Karbon sync has not brought "
            "any figures. Connect Karbon (PUT /api/v1/karbon/credentials) and wait a few "
            "minutes."
        )
    return TenantPrincipal(
        tenant_id=user.tenant_id, user_id=user.id, api_key_id=None, role=user.role, kind="user"
    )


def _as_json(answer: Any) -> tables.Report:
    if isinstance(answer, BaseModel):
        dumped: tables.Report = answer.model_dump(mode="json", by_alias=True)
        return dumped
    assert isinstance(answer, Response)
    loaded: tables.Report = json.loads(bytes(answer.body))
    return loaded
