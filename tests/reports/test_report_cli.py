"""`reckonry report NAME --tenant EMAIL`: every report as a table, and its errors."""

import asyncio
from datetime import UTC, datetime
from uuid import UUID

from httpx import AsyncClient
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import Result

from app.db import unit_of_work
from app.embedded import ServiceUrls
from app.models import RECHECK_PRIORITY, PendingDetail, Role, Tenant, User
from app.reports.refresh import refresh_reports
from app.tenancy.security import hash_password
from tests.cli_helpers import environment, invoke
from tests.reports.conftest import SyncedFirm


async def _report(service_urls: ServiceUrls, *args: str) -> Result:
    urls = {"DATABASE_URL": service_urls.database_url, "REDIS_URL": service_urls.redis_url}
    env = environment(**urls, COLUMNS="250")
    # The command runs its own event loop.
    return await asyncio.to_thread(invoke, ["report", *args], env)


async def _member_email(sessions: async_sessionmaker[AsyncSession], tenant_id: UUID) -> str:
    async with sessions() as session:
        email = await session.scalar(select(User.email).where(User.tenant_id == tenant_id))
    assert email is not None
    return email


async def test_every_report_prints_as_a_table(
    client: AsyncClient,
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
    service_urls: ServiceUrls,
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    email = await _member_email(sessions, synced_firm.tenant_id)
    api = (
        await client.get("/api/v1/reports/client-profitability", headers=synced_firm.headers)
    ).json()
    first = api["items"][0]
    titles = {
        "client-profitability": "Client profitability",
        "monthly": "Client profitability by month",
        "summary": "Summary",
        "unbilled-work": "Unbilled work",
        "staff-utilization": "Staff utilization",
    }
    for name, title in titles.items():
        result = await _report(service_urls, name, "--tenant", email)
        assert result.exit_code == 0, (name, result.output)
        assert title in result.stdout and "{" not in result.stdout, name
    profitability = (await _report(service_urls, "client-profitability", "--tenant", email)).stdout
    assert first["name"][:20] in profitability
    if first["margin"] is not None:
        assert f"{float(first['margin']) * 100:.1f}%" in profitability
    one = await _report(service_urls, "client", "--client", first["key"], "--tenant", email)
    assert one.exit_code == 0 and "By work item" in one.stdout and "By staff member" in one.stdout


async def test_an_unknown_client_is_one_line(
    synced_firm: SyncedFirm, sessions: async_sessionmaker[AsyncSession], service_urls: ServiceUrls
) -> None:
    await refresh_reports(sessions, synced_firm.tenant_id)
    email = await _member_email(sessions, synced_firm.tenant_id)
    result = await _report(service_urls, "client", "--client", "nope", "--tenant", email)
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: No client with this key in your firm."


async def test_a_firm_without_a_completed_sync_has_no_report_yet(
    sessions: async_sessionmaker[AsyncSession], service_urls: ServiceUrls
) -> None:
    async with unit_of_work(sessions) as session:
        tenant = Tenant(name="Not Synced LLP")
        session.add(tenant)
        await session.flush()
        session.add(
            User(
                tenant_id=tenant.id,
                email="new@not-synced.example",
                password_hash=hash_password("not used by the tests"),
                role=Role.ADMIN,
            )
        )
    result = await _report(service_urls, "summary", "--tenant", "new@not-synced.example")
    assert result.exit_code == 2
    assert "has no report yet" in result.stderr and "Traceback" not in result.output


async def test_an_incomplete_report_says_so_above_its_table(
    synced_firm: SyncedFirm,
    sessions: async_sessionmaker[AsyncSession],
    service_urls: ServiceUrls,
) -> None:
    async with unit_of_work(sessions) as session:
        session.add(
            PendingDetail(
                tenant_id=synced_firm.tenant_id,
                stream="work_items",
                record_key="owed-work-item",
                priority=RECHECK_PRIORITY - 1,
                client_key="a-client",
                enqueued_at=datetime.now(UTC),
            )
        )
    await refresh_reports(sessions, synced_firm.tenant_id)
    email = await _member_email(sessions, synced_firm.tenant_id)
    result = await _report(service_urls, "summary", "--tenant", email)
    assert result.exit_code == 0, result.output
    assert "INCOMPLETE: users done" in result.stdout
    assert "work_items done (1 details owed)" in result.stdout
    assert "The figures of 1 client may still move" in result.stdout

    async with unit_of_work(sessions) as session:
        await session.execute(delete(PendingDetail))
    await refresh_reports(sessions, synced_firm.tenant_id)
    result = await _report(service_urls, "summary", "--tenant", email)
    assert result.exit_code == 0 and "INCOMPLETE" not in result.stdout
