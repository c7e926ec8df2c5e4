"""The worker's report job: rebuild a tenant's report tables after a sync or a change."""

from typing import Any, Protocol
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.metrics import REPORT_REFRESH_DURATION, REPORT_REFRESH_FAILURES
from app.reports import refresh


class RefreshJobDeps(Protocol):
    """What the job needs of the worker's context (`ctx["deps"]`)."""

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...


async def refresh_reports(ctx: dict[str, Any], tenant_id: str) -> str:
    deps: RefreshJobDeps = ctx["deps"]
    with REPORT_REFRESH_FAILURES.count_exceptions(Exception):
        outcome = await refresh.refresh_reports(deps.sessions, UUID(tenant_id))
    REPORT_REFRESH_DURATION.observe(outcome.seconds)
    return f"version {outcome.version}: {outcome.facts} facts in {outcome.seconds:.2f} s"
