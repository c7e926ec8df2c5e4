"""Report endpoints: errors, grouping, series, sorting, CSV, and the OpenAPI documentation."""

import csv
import io

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.reports.refresh import refresh_reports
from tests.reports.conftest import SyncedFirm
from tests.tenancy.helpers import problem_type

PATH = "/api/v1/reports/client-profitability"


async def test_an_unknown_client_is_404(client: AsyncClient, synced_firm: SyncedFirm) -> None:
    response = await client.get("/api/v1/reports/clients/nope", headers=synced_firm.headers)
    assert response.status_code == 404 and problem_type(response) == "client-not-found"


async def test_a_window_ending_before_it_starts_is_rejected(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    params = {"from": "2026-02-01", "to": "2026-01-01"}
    response = await client.get(PATH, headers=synced_firm.headers, params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.from"


async def test_groupings_series_sorting_and_csv_agree(
    client: AsyncClient, synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    headers = synced_firm.headers
    window = {"from": "2026-01-01", "to": "2026-11-02", "limit": 200}
    by_client = (await client.get(PATH, headers=headers, params=window)).json()
    total = by_client["totals"]["fee_revenue"]
    for group_by in ("owner", "manager", "work_type"):
        report = await client.get(PATH, headers=headers, params={**window, "group_by": group_by})
        assert report.json()["totals"]["fee_revenue"] == total, group_by
    series = await client.get(PATH, headers=headers, params={**window, "interval": "month"})
    assert series.json()["totals"]["fee_revenue"] == total
    assert all(row["month"] for row in series.json()["items"])

    by_margin = await client.get(
        PATH, headers=headers, params={**window, "sort": "margin", "order": "asc"}
    )
    margins = [row["margin"] for row in by_margin.json()["items"] if row["margin"] is not None]
    assert margins == sorted(margins, key=float)

    exported = await client.get(PATH, headers=headers, params={**window, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    *groups, totals = rows
    assert [row["key"] for row in groups] == [row["key"] for row in by_client["items"]]
    assert totals["name"] == "Total" and totals["fee_revenue"] == total


async def test_an_unknown_sort_field_is_rejected(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    response = await client.get(PATH, headers=synced_firm.headers, params={"sort": "secret"})
    assert response.status_code == 422


async def test_every_report_documents_its_errors(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = [p for p in spec["paths"] if p.startswith(("/api/v1/reports", "/api/v1/staff"))]
    assert len(paths) >= 6
    for path in paths:
        for method, operation in spec["paths"][path].items():
            assert {"401", "403"} <= operation["responses"].keys(), (method, path)
