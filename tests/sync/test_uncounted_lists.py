"""Lists without `@odata.count`, or with pages shorter than `$top` asked for: progress says
"unknown" rather than guessing, and deletions are still found."""

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import SyncKind, SyncRun
from app.sync.engine import StreamProgress
from app.sync.karbon.client import KarbonResponse, Page
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, sync_now
from tests.sync.test_engine import assert_same, expected_from, stored


def _page(records: int, *, count: int | None, last: bool = False) -> Page:
    response = KarbonResponse("https://karbon.test/v3/Contacts", datetime.now(UTC), 200, {})
    return Page(
        response=response,
        records=[{"ContactKey": str(i)} for i in range(records)],
        next_link=None if last else "https://karbon.test/v3/Contacts?$skip=1",
        total_count=count,
    )


def test_pages_left_come_from_the_pages_karbon_sent_not_the_top_asked_for() -> None:
    progress = StreamProgress()
    progress.page_read(_page(7, count=30), estimable=True)  # asked for 100, got 7
    assert progress.pages_total == 5
    for _ in range(3):
        progress.page_read(_page(7, count=30), estimable=True)
    assert progress.pages_total == 5
    progress.page_read(_page(2, count=30, last=True), estimable=True)
    assert progress.pages_done == progress.pages_total == 5


@pytest.mark.parametrize("estimable", [True, False])
def test_without_a_count_the_pages_left_are_unknown_until_the_list_ends(estimable: bool) -> None:
    progress = StreamProgress()
    progress.page_read(_page(100, count=None), estimable=estimable)
    assert progress.pages_total is None and progress.karbon_count is None
    progress.page_read(_page(40, count=None, last=True), estimable=estimable)
    assert progress.pages_total == (2 if estimable else None)
    progress.lists_read(0)
    assert progress.pages_total == 2


def test_a_windowed_or_filtered_read_never_guesses_from_the_count() -> None:
    progress = StreamProgress()
    progress.page_read(_page(7, count=300), estimable=False)
    assert progress.pages_total is None
    assert progress.karbon_count == 300


async def test_without_counts_an_incremental_sync_still_finds_deletions(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    sandbox.update_config(odata_count=False)  # and pages of 7 whatever `$top` asks
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    run_id, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
    assert run is not None
    for name, stream in run.progress.items():
        assert stream["karbon_count"] is None and stream["pages_done"] == stream["pages_total"]
        assert stream["pages_done"] >= 1, name

    firm = sandbox.tenant("Demo firm").firm
    gone = next(iter(firm.contacts))
    with sandbox.tenant("Demo firm").lock:
        del firm.contacts[gone]
        sandbox.tenant("Demo firm").data.invalidate()
    _, outcome = await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)
    assert outcome == "succeeded"
    held = await stored(sessions, tenant_id)
    assert gone not in held["clients"], "a deleted contact is found without a count"
    assert_same(held, expected_from(firm))
