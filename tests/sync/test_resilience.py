"""The sync when things go wrong: faults, a killed worker, revoked keys, a disconnect."""

import asyncio
import io
import socket
from collections.abc import Awaitable, Iterator
from dataclasses import replace
from email.message import Message
from email.parser import BytesParser
from typing import Any, TypeVar
from uuid import UUID

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import KarbonConnection, RawResponse, SyncKind, SyncRun, SyncState
from app.sync.control import stop_syncing
from app.sync.jobs import run_sync
from sandbox.state import Sandbox
from tests.factories import create_user
from tests.sync.conftest import connect_tenant, queue_sync, rotate_sandbox_keys, sync_now
from tests.sync.test_engine import assert_same, expected_from, stored

T = TypeVar("T")


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(BytesParser().parsebytes(envelope.content))
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[_Inbox, int]]:
    handler = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


async def test_injected_faults_do_not_change_the_result(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    sandbox.update_config(
        {
            "faults": {
                "error_500_rate": 0.05,
                "error_503_rate": 0.05,
                "burst_429_rate": 0.02,
                "burst_429_length": 2,
                "burst_429_retry_after": 1,
                "timeout_rate": 0.03,
                "timeout_seconds": 3.0,
                "drop_rate": 0.03,
                "truncate_rate": 0.02,
                "malformed_rate": 0.02,
            }
        }
    )
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "succeeded"
    assert sum(sandbox.counters("Demo firm")["faults_injected"].values()) > 0
    assert_same(await stored(sessions, tenant_id), expected_from(sandbox.tenant("Demo firm").firm))


def _task_stacks() -> str:
    """Every pending task's stack: what a stalled sync was waiting for."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        out.write(f"\n{task!r:.300}\n")
        task.print_stack(limit=15, file=out)
    return out.getvalue()


async def _within(awaitable: Awaitable[T], seconds: float = 60) -> T:
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait([task], timeout=seconds)
    if not done:
        raise AssertionError(f"still waiting after {seconds} s:{_task_stacks()}")
    return task.result()


async def _wait_for_pages(
    sessions: async_sessionmaker[AsyncSession], run_id: UUID, pages: int, worker: asyncio.Task[str]
) -> None:
    async def committed() -> None:
        while await _pages_committed(sessions, run_id) < pages:
            if worker.done():
                raise AssertionError(f"the sync ended before page {pages}: {worker.result()}")
            await asyncio.sleep(0.005)

    await _within(committed())


async def _start_slow_sync(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> tuple[UUID, UUID, asyncio.Task[str]]:
    """A first sync slow enough (10 ms a request) to be stopped part way, running now."""
    sandbox.update_config({"latency": {"distribution": "constant", "median_seconds": 0.01}})
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    run_id = await queue_sync(job_context, tenant_id)
    return tenant_id, run_id, asyncio.create_task(run_sync(job_context, str(run_id)))


async def _pages_committed(sessions: async_sessionmaker[AsyncSession], run_id: UUID) -> int:
    async with sessions() as session:
        run = await session.get(SyncRun, run_id, populate_existing=True)
        assert run is not None
        return sum(stream.get("pages_done", 0) for stream in run.progress.values())


@pytest.mark.parametrize("stop_after_pages", [1, 6, 15])
async def test_a_killed_sync_resumes_with_nothing_lost_or_duplicated(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    stop_after_pages: int,
) -> None:
    tenant_id, run_id, worker = await _start_slow_sync(sandbox, job_context, sessions)
    await _wait_for_pages(sessions, run_id, stop_after_pages, worker)
    worker.cancel()  # the worker dies mid-run, wherever it was
    with pytest.raises(asyncio.CancelledError):
        await _within(worker)

    assert await _within(run_sync(job_context, str(run_id))) == "succeeded"
    firm = sandbox.tenant("Demo firm").firm
    assert_same(await stored(sessions, tenant_id), expected_from(firm))
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
        pages = (
            (await session.execute(select(RawResponse.url).where(RawResponse.kind == "page")))
            .scalars()
            .all()
        )
    assert run is not None and run.state == SyncState.SUCCEEDED
    assert len(pages) == len(set(pages)), "a committed page was stored twice"
    for name, stream in run.progress.items():
        assert stream["pages_done"] == stream["pages_total"], name


async def _users_read(sessions: async_sessionmaker[AsyncSession], run_id: UUID) -> None:
    """Until the users stream's page is committed; it may be marked done just after."""
    while True:
        async with sessions() as session:
            run = await session.get(SyncRun, run_id, populate_existing=True)
            assert run is not None
            users = run.checkpoint.get("users", {})
            if users.get("read") == 1 or users.get("done"):
                return
        await asyncio.sleep(0.005)


async def test_a_sync_resumed_after_its_first_stream_read_everything_runs_the_rest(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Killed after the first stream's last page committed but before that stream finished:
    # on resume it reads nothing, and the others, which wait for its first answer to know
    # the keys work, must still start.
    tenant_id, run_id, worker = await _start_slow_sync(sandbox, job_context, sessions)
    await _within(_users_read(sessions, run_id))
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await _within(worker)
    async with unit_of_work(sessions) as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None
        # Only that: a stream already done would let the others go on its own.
        run.checkpoint = {"users": {"read": 1, "next_link": None}}

    assert await _within(run_sync(job_context, str(run_id))) == "succeeded"
    assert_same(await stored(sessions, tenant_id), expected_from(sandbox.tenant("Demo firm").firm))


async def _synced_with_mail(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    inbox: tuple[_Inbox, int],
) -> tuple[_Inbox, UUID]:
    """A firm with an admin, whose worker mails through `inbox`, synced once."""
    mailbox, port = inbox
    deps = job_context["deps"]
    smtp = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_starttls": False}
    job_context["deps"] = replace(deps, settings=deps.settings.model_copy(update=smtp))
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await create_user(sessions, tenant_id, "admin@acme.example")
    await sync_now(job_context, tenant_id)
    return mailbox, tenant_id


async def _run_and_connection(
    sessions: async_sessionmaker[AsyncSession], run_id: UUID, tenant_id: UUID
) -> tuple[SyncRun | None, KarbonConnection]:
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
        query = select(KarbonConnection).where(KarbonConnection.tenant_id == tenant_id)
        return run, (await session.execute(query)).scalar_one()


async def test_revoked_keys_stop_the_sync_alert_admins_once_and_keep_the_data(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    inbox: tuple[_Inbox, int],
) -> None:
    mailbox, tenant_id = await _synced_with_mail(sandbox, job_context, sessions, inbox)
    before = await stored(sessions, tenant_id)

    rotate_sandbox_keys(sandbox, "Demo firm")
    sandbox.advance("Demo firm", 14)
    first_run, outcome = await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)
    assert outcome == "auth failed"
    _, again = await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)
    assert again == "auth failed"

    run, connection = await _run_and_connection(sessions, first_run, tenant_id)
    assert run is not None and run.state == SyncState.AUTH_FAILED
    assert run.error_code is not None and run.error_code.startswith("karbon_rejected_")
    assert connection.last_error_likely_cause and "rotated or revoked" in (
        connection.last_error_likely_cause
    )
    assert connection.last_error_steps and any("Settings" in s for s in connection.last_error_steps)
    assert await stored(sessions, tenant_id) == before, "a failed sync must not touch the data"
    assert len(mailbox.messages) == 1, "one e-mail per incident"
    assert mailbox.messages[0]["To"] == "admin@acme.example"
    # The old AccessKey names no sandbox tenant any more, so its calls count as unattributed.
    assert sandbox.unattributed.unauthorized == 2, "each run stops at its first 401"
    assert sandbox.unattributed.requests == 2


async def test_new_keys_resume_syncing(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    rotate_sandbox_keys(sandbox, "Demo firm")
    _, outcome = await sync_now(job_context, tenant_id)
    assert outcome == "auth failed"
    new_tenant_keys = await connect_tenant(
        sessions, job_context["deps"].settings, sandbox, name="Same firm, new keys"
    )
    _, outcome = await sync_now(job_context, new_tenant_keys)
    assert outcome == "succeeded"


async def test_a_disconnect_cancels_the_running_sync_and_keeps_its_data(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id, run_id, worker = await _start_slow_sync(sandbox, job_context, sessions)
    await _wait_for_pages(sessions, run_id, 3, worker)
    async with unit_of_work(sessions) as session:
        deps = job_context["deps"]
        await stop_syncing(session, deps.redis, deps.settings, tenant_id)
    assert await _within(worker) == "cancelled"
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
    assert run is not None and run.state == SyncState.CANCELLED
    kept = await stored(sessions, tenant_id)
    assert sum(len(rows) for rows in kept.values()) > 0


async def test_an_endpoint_taken_away_ends_the_sync_as_permission_denied_naming_it(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    inbox: tuple[_Inbox, int],
) -> None:
    mailbox, tenant_id = await _synced_with_mail(sandbox, job_context, sessions, inbox)
    before = await stored(sessions, tenant_id)

    sandbox.deny("Demo firm", ["Invoices"])
    sandbox.advance("Demo firm", 14)
    outcomes = [await sync_now(job_context, tenant_id, kind) for kind in (SyncKind.FULL,) * 2]
    assert [outcome for _, outcome in outcomes] == ["permission denied"] * 2
    run_id = outcomes[0][0]

    run, connection = await _run_and_connection(sessions, run_id, tenant_id)
    assert run is not None and run.state == SyncState.PERMISSION_DENIED
    assert run.error_code == "karbon_permission_denied"
    assert connection.last_error_code == "karbon_permission_denied"
    assert "/v3/Invoices" in (connection.last_error_message or "")
    assert connection.last_error_likely_cause and "/v3/Invoices" in (
        connection.last_error_likely_cause
    )
    steps = connection.last_error_steps or []
    assert any("API Applications" in s and "GET /v3/Invoices" in s for s in steps)
    assert not any("Generate a new AccessKey" in s for s in steps), "the keys were fine"
    kept = await stored(sessions, tenant_id)
    assert kept["invoices"] == before["invoices"], "invoices already synced stay"
    assert len(mailbox.messages) == 1, "one e-mail per incident"
    body = mailbox.messages[0].get_payload()
    assert "GET /v3/Invoices" in str(body) and "API keys" not in mailbox.messages[0]["Subject"]

    sandbox.deny("Demo firm", [])
    _, granted = await sync_now(job_context, tenant_id, SyncKind.FULL)
    assert granted == "succeeded", "the same keys sync once the endpoint is granted"
    assert_same(await stored(sessions, tenant_id), expected_from(sandbox.tenant("Demo firm").firm))
