"""What Karbon sent that could not be read, listed for the firm (`GET /api/v1/data-quality`).

The sync names each field it kept but could not read, and each record, entry or line it set
aside, in `data_quality_issues` (see `app.sync.records`); an issue goes once Karbon sends the
record readable again.
"""

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from app.kit.pagination import Page, PageParams
from app.models import DataQualityIssue
from app.reports import repository as reports_repository
from app.sync import repository
from app.sync.schemas import ClientRef, DataQualityIssueView


async def data_quality_page(
    session: AsyncSession, tenant_id: UUID, params: PageParams
) -> Page[DataQualityIssueView]:
    issues, total = await repository.data_quality_issues(session, tenant_id, params)
    keys = sorted({key for issue in issues for key in issue.client_keys})
    names = await reports_repository.client_names(session, tenant_id, keys)
    items = [_view(issue, names) for issue in issues]
    return Page[DataQualityIssueView](
        items=items, total=total, limit=params.limit, offset=params.offset
    )


def _view(issue: DataQualityIssue, names: dict[str, str]) -> DataQualityIssueView:
    return DataQualityIssueView(
        entity=issue.entity,
        key=issue.subject_key,
        record_key=issue.record_key,
        field=issue.field,
        value=issue.value,
        reason=issue.reason,
        set_aside="field" if issue.set_aside == "field" else "record",
        clients=[ClientRef(key=key, name=names.get(key)) for key in issue.client_keys],
        date=issue.record_date,
        first_seen_at=issue.first_seen_at,
        last_seen_at=issue.last_seen_at,
    )
