"""End to end: sync the sandbox firm, enter costs, refresh, and check every report figure
against values computed independently from the sandbox's own data."""

from datetime import date
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.reports.refresh import refresh_reports
from sandbox.state import Sandbox
from tests.reports.conftest import SyncedFirm
from tests.reports.expected import ClientFigures, Costing, expected_figures
from tests.sync.conftest import SANDBOX_TODAY

CENT = Decimal("0.01")
SETTINGS = {
    "overhead_rate": "0.2",
    "working_weeks_per_year": "46",
    "default_capacity_hours_per_week": "37.5",
    "recognition_policy": "billing",
}


def close(reported: str | None, expected: Decimal) -> bool:
    assert reported is not None
    return abs(Decimal(reported) - expected) <= CENT


async def enter_costs(client: AsyncClient, firm: SyncedFirm, staff_keys: list[str]) -> Costing:
    response = await client.put("/api/v1/cost-settings", headers=firm.headers, json=SETTINGS)
    assert response.status_code == 200, response.text
    annual = {}
    for index, key in enumerate(staff_keys[:-1]):  # the last one is left without pay
        amount = Decimal(50_000 + 7_500 * index)
        response = await client.put(
            f"/api/v1/staff/{key}/cost",
            headers=firm.headers,
            json={"effective_from": "2020-01-01", "annual_amount": str(amount)},
        )
        assert response.status_code == 200, response.text
        annual[key] = amount
    return Costing(annual, Decimal("0.2"), Decimal(46), Decimal("37.5"))


async def test_every_client_figure_matches_the_sandbox(
    client: AsyncClient,
    sandbox: Sandbox,
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    firm = sandbox.tenant("Demo firm").firm
    staff_keys = sorted(firm.users)
    costing = await enter_costs(client, synced_firm, staff_keys)
    await refresh_reports(sessions, synced_firm.tenant_id)
    start, end = firm.history_start, SANDBOX_TODAY
    expected = expected_figures(firm, start, end, costing)

    response = await client.get(
        "/api/v1/reports/client-profitability",
        headers=synced_firm.headers,
        params={"from": start.isoformat(), "to": end.isoformat(), "limit": 200},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    rows = {row["key"]: row for row in report["items"]}
    assert report["as_of"] is not None and report["from"] == start.isoformat()
    assert set(rows) == set(expected.clients)
    for key, figures in expected.clients.items():
        check_row(rows[key], figures)

    missing = [w for w in report["warnings"] if w["kind"] == "missing_compensation"]
    assert [w["subject_key"] for w in missing] == [staff_keys[-1]]
    uncosted = sum(f.uncosted_minutes for f in expected.clients.values())
    assert uncosted > 0 and Decimal(missing[0]["hours"]) == round(Decimal(uncosted) / 60, 2)


def check_row(row: dict[str, Any], figures: ClientFigures) -> None:
    where = (row["key"], row["name"])
    assert close(row["fee_revenue"], figures.fee_revenue), where
    assert close(row["expense_recoveries"], figures.expense_recoveries), where
    assert close(row["approved_not_sent"], figures.approved_not_sent), where
    assert close(row["cost"], figures.cost), where
    assert close(row["profit"], figures.fee_revenue - figures.cost), where
    assert close(row["standard_value"], figures.standard_value), where
    assert close(row["unbilled_work"], figures.unbilled_work), where
    assert Decimal(row["billable_hours"]) == round(Decimal(figures.billable_minutes) / 60, 2)
    assert Decimal(row["non_billable_hours"]) == round(
        Decimal(figures.non_billable_minutes) / 60, 2
    )
    assert row["cost_complete"] is (figures.uncosted_minutes == 0), where
    if figures.fee_revenue:
        margin = (figures.fee_revenue - figures.cost) / figures.fee_revenue
        assert abs(Decimal(row["margin"]) - margin) <= Decimal("0.0001"), where
    else:
        assert row["margin"] is None, where


async def test_summary_and_utilization_match_the_sandbox(
    client: AsyncClient,
    sandbox: Sandbox,
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    firm = sandbox.tenant("Demo firm").firm
    costing = await enter_costs(client, synced_firm, sorted(firm.users))
    await refresh_reports(sessions, synced_firm.tenant_id)
    start, end = firm.history_start, SANDBOX_TODAY
    expected = expected_figures(firm, start, end, costing)
    params = {"from": start.isoformat(), "to": end.isoformat()}

    summary = (
        await client.get("/api/v1/reports/summary", headers=synced_firm.headers, params=params)
    ).json()
    clients = expected.clients.values()
    assert close(
        summary["totals"]["fee_revenue"], sum((c.fee_revenue for c in clients), Decimal(0))
    )
    assert close(summary["totals"]["cost"], sum((c.cost for c in clients), Decimal(0)))
    assert close(summary["unbilled_work"], sum((c.unbilled_work for c in clients), Decimal(0)))
    collected = sum(
        (
            (i.total - i.total_amount_due) * i.subtotal / i.total
            for i in firm.visible_invoices()
            if i.status in {"AwaitingPayment", "Paid", "Exported"}
            and start <= i.invoice_date <= end
        ),
        Decimal(0),
    )
    assert close(summary["collected_before_tax"], collected)

    utilization = (
        await client.get(
            "/api/v1/reports/staff-utilization",
            headers=synced_firm.headers,
            params={**params, "limit": 200},
        )
    ).json()
    by_staff = {row["key"]: row for row in utilization["items"]}
    assert set(by_staff) == set(firm.users)
    for key, minutes in expected.staff_minutes.items():
        row = by_staff[key]
        reported = Decimal(row["billable_hours"]) + Decimal(row["non_billable_hours"])
        assert abs(reported - Decimal(minutes) / 60) <= CENT, key
    assert date.fromisoformat(utilization["to"]) == end
