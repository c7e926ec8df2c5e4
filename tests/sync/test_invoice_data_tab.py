"""Invoices listed with their lines still get their Data tab when the lines do not say which
work items were billed: consolidated lines, or lines keyed to the invoice's client."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Invoice, SyncRun
from app.sync.rebuild import rebuild_from_raw
from app.sync.streams import invoice_lines_fall_short
from sandbox import render
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, sync_now


async def test_listed_invoices_with_unplaced_lines_are_read_with_their_data_tab(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    sandbox.update_config(invoice_list_includes_line_items=True)
    firm = sandbox.tenant("Demo firm").firm
    unplaced = {
        invoice.key
        for invoice in firm.visible_invoices()
        if invoice_lines_fall_short(render.invoice_summary(invoice, with_lines=True))
    }
    assert unplaced, "the sandbox firm has no consolidated or client-keyed invoice lines"
    assert len(unplaced) < len(firm.visible_invoices()), "and some invoices that are itemised"

    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    run_id, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"

    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
        rows = (
            await session.execute(
                select(Invoice.invoice_key, Invoice.data_lines).where(
                    Invoice.tenant_id == tenant_id
                )
            )
        ).all()
    with_data_tab = {key for key, data_lines in rows if data_lines is not None}
    assert with_data_tab == {key for key in unplaced if firm.invoices[key].data}
    counters = sandbox.counters("Demo firm")
    assert counters["by_route"]["GET /v3/Invoices/{key}"] == len(unplaced)
    assert run is not None
    invoices = run.progress["invoices"]
    assert invoices["details_done"] == len(unplaced), "the extra requests show in the progress"
    assert invoices["requests"] == invoices["pages_done"] + len(unplaced)


async def test_an_invoice_keeps_its_data_tab_once_and_a_rebuild_puts_it_back(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"
    query = select(Invoice.invoice_key, Invoice.raw_detail, Invoice.data_lines).where(
        Invoice.tenant_id == tenant_id, Invoice.data_lines.is_not(None)
    )
    async with sessions() as session:
        synced = (await session.execute(query)).all()
    assert synced, "no invoice was read with its Data tab"
    assert [key for key, detail, _ in synced if "Data" in detail] == [], "kept twice"

    await rebuild_from_raw(sessions, tenant_id)

    async with sessions() as session:
        assert (await session.execute(query)).all() == synced
