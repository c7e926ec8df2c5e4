"""Reports filtered by work status: open or completed, and Karbon's `PrimaryStatus`; unbilled
work on completed work items is "finished but not billed"."""

from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.reports.refresh import refresh_reports
from sandbox.state import Sandbox
from tests.reports.conftest import SyncedFirm
from tests.reports.test_figures import enter_costs


async def _get(client: AsyncClient, firm: SyncedFirm, path: str, **params: Any) -> Any:
    response = await client.get(
        f"/api/v1/reports/{path}", headers=firm.headers, params={"limit": 200, **params}
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def costed_firm(
    client: AsyncClient,
    sandbox: Sandbox,
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
) -> SyncedFirm:
    await enter_costs(client, synced_firm, sorted(sandbox.tenant("Demo firm").firm.users))
    await refresh_reports(sessions, synced_firm.tenant_id)
    return synced_firm


async def test_unbilled_work_by_work_status_matches_the_sandbox(
    client: AsyncClient, sandbox: Sandbox, costed_firm: SyncedFirm
) -> None:
    synced_firm = costed_firm
    firm = sandbox.tenant("Demo firm").firm

    every = (await _get(client, synced_firm, "unbilled-work"))["items"]
    for row in every:
        if row["work_item_key"] is None:
            assert row["work_status"] is None and row["primary_status"] is None
            continue
        status = firm.work_items[row["work_item_key"]].primary_status
        assert row["primary_status"] == status
        assert row["work_status"] == ("completed" if status == "Completed" else "open")

    finished = await _get(client, synced_firm, "unbilled-work", work_status="completed")
    still_open = await _get(client, synced_firm, "unbilled-work", work_status="open")
    assert finished["items"], "the sandbox firm has no finished but unbilled work"
    assert still_open["items"], "and no open work with WIP"

    def keys(rows: list[dict[str, Any]]) -> list[Any]:
        return sorted((r["client_key"], r["work_item_key"], r["since"]) for r in rows)

    assert keys(finished["items"]) == keys([r for r in every if r["work_status"] == "completed"])
    assert keys(still_open["items"]) == keys([r for r in every if r["work_status"] == "open"])
    total = sum(Decimal(r["amount"]) for r in finished["items"])
    assert Decimal(finished["total_amount"]) == total

    spaced = await _get(client, synced_firm, "unbilled-work", primary_status="Completed")
    assert keys(spaced["items"]) == keys(finished["items"])


async def test_profitability_by_work_status_splits_the_work_items_figures(
    client: AsyncClient, sandbox: Sandbox, costed_firm: SyncedFirm
) -> None:
    synced_firm = costed_firm
    firm = sandbox.tenant("Demo firm").firm
    window = {"from": firm.history_start.isoformat(), "to": "2026-11-01"}

    def cost(report: dict[str, Any]) -> Decimal:
        return Decimal(report["totals"]["cost"])

    completed = await _get(
        client, synced_firm, "client-profitability", work_status="completed", **window
    )
    still_open = await _get(
        client, synced_firm, "client-profitability", work_status="open", **window
    )
    assert cost(completed) > 0 and cost(still_open) > 0

    # Independently: the cost of each client's work items, by status, from the client report.
    by_status = {"completed": Decimal(0), "open": Decimal(0)}
    rows = {"completed": 0, "open": 0}
    for row in (await _get(client, synced_firm, "client-profitability", **window))["items"]:
        report = await _get(client, synced_firm, f"clients/{row['key']}", **window)
        for item in report["by_work_item"]:
            if item["work_status"] is not None:
                by_status[item["work_status"]] += Decimal(item["cost"])
                rows[item["work_status"]] += 1
    # Each row is rounded to the cent on its own.
    assert abs(cost(completed) - by_status["completed"]) <= Decimal("0.01") * rows["completed"]
    assert abs(cost(still_open) - by_status["open"]) <= Decimal("0.01") * rows["open"]

    planned = await _get(
        client, synced_firm, "client-profitability", primary_status="In Progress", **window
    )
    assert cost(planned) <= cost(still_open)


async def test_an_unknown_work_status_is_a_422_naming_the_field(
    client: AsyncClient, synced_firm: SyncedFirm
) -> None:
    response = await client.get(
        "/api/v1/reports/unbilled-work", headers=synced_firm.headers, params={"work_status": "x"}
    )
    assert response.status_code == 422
    assert "work_status" in response.text
