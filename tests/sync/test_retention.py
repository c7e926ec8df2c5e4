"""Retention of raw responses, each firm's footprint, and deleting a firm with all its data."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from httpx import AsyncClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import (
    Base,
    RawResponse,
    StorageFootprint,
    SyncKind,
    SyncRun,
    SyncState,
    SyncTrigger,
    TimeEntry,
    Timesheet,
    WorkItem,
)
from app.settings import Settings
from app.sync.raw_versions import read_version
from app.sync.rebuild import rebuild_from_raw
from app.sync.retention import measure_all, prune
from app.tenancy.service import create_operator
from sandbox.state import Sandbox
from tests.cli_helpers import environment, invoke
from tests.sync.conftest import connect_tenant, queue_sync, sync_now
from tests.sync.test_rebuild import normalized_tables, scramble_derived_columns
from tests.tenancy.helpers import bearer, problem_type, sign_in, sign_up

OPERATOR_PASSWORD = "operator password 123"


async def raw_versions(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> list[tuple[bytes, int]]:
    async with sessions() as session:
        query = (
            select(RawResponse.request_sha256, RawResponse.id)
            .where(RawResponse.tenant_id == tenant_id)
            .order_by(RawResponse.id)
        )
        return [(row[0], row[1]) for row in await session.execute(query)]


async def synced_with_history(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> UUID:
    """A firm synced, changed in Karbon, synced incrementally and reconciled."""
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await sync_now(job_context, tenant_id)
    sandbox.advance("Demo firm", 45)
    await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)
    await sync_now(job_context, tenant_id, SyncKind.FULL)
    return tenant_id


def later(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


async def test_superseded_versions_are_pruned_after_retention_and_rebuild_stays_exact(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    tenant_id = await synced_with_history(sandbox, job_context, sessions)
    synced = await normalized_tables(sessions, tenant_id)
    before = await raw_versions(sessions, tenant_id)
    small_batches = settings.model_copy(update={"raw_prune_batch_size": 3})

    assert await prune(sessions, small_batches, later(89)) == 0, "kept for 90 days"
    deleted = await prune(sessions, small_batches, later(91))

    after = await raw_versions(sessions, tenant_id)
    assert deleted == len(before) - len(after) > 3, "pruned in several batches"
    latest_of_each_request = {request: id_ for request, id_ in before}
    full_run_reads = set(latest_of_each_request.values())
    assert {id_ for _, id_ in after} <= full_run_reads
    async with sessions() as session:
        footprint = await session.get(StorageFootprint, tenant_id)
        full = await session.scalar(select(SyncRun).where(SyncRun.kind == SyncKind.FULL))
        kept_reads = await session.scalar(
            select(func.count()).where(RawResponse.last_fetched_at >= full.started_at)  # type: ignore[union-attr]
        )
    assert footprint is not None and footprint.pruned_rows == deleted
    assert footprint.last_pruned_at is not None and footprint.pruned_bytes > 0
    assert kept_reads == len(after), "what the last complete run read is all kept"
    async with sessions() as session:
        for _, version in after:  # no kept version lost a piece it is made of
            assert await read_version(session, version) is not None

    await scramble_derived_columns(sessions, tenant_id)
    await rebuild_from_raw(sessions, tenant_id)
    assert await normalized_tables(sessions, tenant_id) == synced


async def test_a_firm_syncing_now_is_not_pruned(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    tenant_id = await synced_with_history(sandbox, job_context, sessions)
    await queue_sync(job_context, tenant_id, SyncKind.INCREMENTAL)
    assert await prune(sessions, settings, later(91)) == 0


async def operator_token(client: AsyncClient, sessions: async_sessionmaker[AsyncSession]) -> str:
    async with unit_of_work(sessions) as session:
        await create_operator(session, "ops@reckonry-ops.com", OPERATOR_PASSWORD)
    response = await sign_in(client, "ops@reckonry-ops.com", OPERATOR_PASSWORD)
    return str(response.json()["access_token"])


async def test_operators_see_each_firms_footprint_and_metrics_the_totals(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
) -> None:
    tenant_id = await synced_with_history(sandbox, job_context, sessions)
    token = await operator_token(client, sessions)
    unmeasured = (await client.get("/api/v1/ops/tenants", headers=bearer(token))).json()
    assert unmeasured["items"][0]["storage"] is None

    assert await measure_all(sessions, datetime.now(UTC)) == 1

    firm = (await client.get("/api/v1/ops/tenants", headers=bearer(token))).json()["items"][0]
    async with sessions() as session:
        raw_rows = await session.scalar(
            select(func.count()).where(RawResponse.tenant_id == tenant_id)
        )
        entries = await session.scalar(text("SELECT count(*) FROM time_entries"))
    storage = firm["storage"]
    assert storage["raw_rows"] == raw_rows == storage["raw_rows_per_day"]
    assert storage["raw_bytes"] > 0 and storage["raw_bytes"] == storage["raw_bytes_per_day"]
    assert storage["normalized_rows"] > entries > 0 and storage["normalized_bytes"] > 0
    assert storage["last_pruned_at"] is None and storage["pruned_rows"] == 0
    assert REGISTRY.get_sample_value("reckonry_storage_raw_rows") == raw_rows
    assert REGISTRY.get_sample_value("reckonry_storage_raw_bytes") == storage["raw_bytes"]
    assert REGISTRY.get_sample_value("reckonry_storage_largest_firm_bytes") == (
        storage["raw_bytes"] + storage["normalized_bytes"]
    )


async def rows_of(sessions: async_sessionmaker[AsyncSession], tenant_id: UUID) -> dict[str, int]:
    """Rows holding the tenant's id, in every table that has a tenant_id (or is tenants)."""
    counts: dict[str, int] = {}
    async with sessions() as session:
        for table in Base.metadata.sorted_tables:
            column = table.c.get("tenant_id", table.c.id if table.name == "tenants" else None)
            if column is None:
                continue
            query = select(func.count()).select_from(table).where(column == tenant_id)
            counts[table.name] = int(await session.scalar(query) or 0)
    return counts


async def test_deleting_a_firm_needs_its_name_and_leaves_nothing_of_it(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
) -> None:
    tenant_id = await synced_with_history(sandbox, job_context, sessions)
    other = await connect_tenant(sessions, job_context["deps"].settings, sandbox, name="Other")
    await sync_now(job_context, other)
    await measure_all(sessions, datetime.now(UTC))
    running = await queue_sync(job_context, tenant_id, SyncKind.INCREMENTAL)
    token = await operator_token(client, sessions)
    other_rows = await rows_of(sessions, other)
    assert sum(1 for count in (await rows_of(sessions, tenant_id)).values() if count) >= 10

    refused = await client.delete(
        f"/api/v1/ops/tenants/{tenant_id}", params={"confirm": "acme cpa"}, headers=bearer(token)
    )
    assert refused.status_code == 400 and problem_type(refused) == "confirmation-mismatch"
    assert (await rows_of(sessions, tenant_id))["raw_responses"] > 0

    deleted = await client.delete(
        f"/api/v1/ops/tenants/{tenant_id}", params={"confirm": "Acme CPA"}, headers=bearer(token)
    )

    assert deleted.status_code == 204
    remaining = await rows_of(sessions, tenant_id)
    assert not any(remaining.values()), remaining
    assert await rows_of(sessions, other) == other_rows
    async with sessions() as session:
        assert await session.get(SyncRun, running) is None
    gone = await client.delete(
        f"/api/v1/ops/tenants/{tenant_id}", params={"confirm": "Acme CPA"}, headers=bearer(token)
    )
    assert gone.status_code == 404


async def test_firm_users_cannot_delete_firms(client: AsyncClient) -> None:
    firm = await sign_up(client, "Acme", "owner@acme.com")
    me = (await client.get("/api/v1/me", headers=firm.headers)).json()
    response = await client.delete(
        f"/api/v1/ops/tenants/{me['tenant']['id']}",
        params={"confirm": "Acme"},
        headers=firm.headers,
    )
    assert response.status_code == 403 and problem_type(response) == "operator-required"


async def test_the_command_deletes_a_firm_once_confirmed(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    service_urls: Any,
) -> None:
    tenant_id = await synced_with_history(sandbox, job_context, sessions)
    env = environment(DATABASE_URL=service_urls.database_url, REDIS_URL=service_urls.redis_url)

    def delete(*args: str) -> Any:
        return asyncio.to_thread(invoke, ["delete-firm", str(tenant_id), *args], env)

    wrong = await delete("--confirm", "Acme")
    assert wrong.exit_code != 0 and "exact name: 'Acme CPA'" in wrong.stderr
    assert (await rows_of(sessions, tenant_id))["tenants"] == 1
    unanswered = await delete()  # asks for the name; none is typed
    assert unanswered.exit_code != 0 and "Type the firm's exact name" in unanswered.stdout
    assert (await rows_of(sessions, tenant_id))["tenants"] == 1

    confirmed = await delete("--confirm", "Acme CPA")

    assert confirmed.exit_code == 0, confirmed.stderr
    assert "Deleted the firm 'Acme CPA'" in confirmed.stdout
    assert not any((await rows_of(sessions, tenant_id)).values())


async def test_a_details_latest_version_outlives_nightlies_that_did_not_reread_it(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    """A nightly reads every list but only its share of details: a detail it did not read
    again is still the latest Karbon gave, not superseded."""
    tenant_id = await synced_with_history(sandbox, job_context, sessions)
    async with unit_of_work(sessions) as session:
        session.add(
            SyncRun(
                tenant_id=tenant_id,
                kind=SyncKind.FULL,
                trigger=SyncTrigger.SCHEDULE,
                state=SyncState.SUCCEEDED,
                requested_at=later(30),
                started_at=later(30),
                finished_at=later(30),
            )
        )
    latest_details = await _latest_of_kind(sessions, tenant_id, "detail")
    assert latest_details

    await prune(sessions, settings, later(91))

    kept = {id_ for _, id_ in await raw_versions(sessions, tenant_id)}
    assert latest_details <= kept


async def _latest_of_kind(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, kind: str
) -> set[int]:
    async with sessions() as session:
        query = (
            select(func.max(RawResponse.id))
            .where(RawResponse.tenant_id == tenant_id, RawResponse.kind == kind)
            .group_by(RawResponse.request_sha256)
        )
        return set((await session.scalars(query)).all())


async def latest_records(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> dict[str, Any]:
    """Each record's latest kept version, read back whole, by URL (`<stream>/<key>`)."""
    async with sessions() as session:
        query = (
            select(RawResponse.url, func.max(RawResponse.id))
            .where(RawResponse.tenant_id == tenant_id, RawResponse.kind == "record")
            .group_by(RawResponse.url)
        )
        latest = (await session.execute(query)).all()
        return {url: await read_version(session, version) for url, version in latest}


async def synced_records(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> dict[str, Any]:
    """What the normalized rows keep of each live work item and timesheet, as Karbon lists it
    (a timesheet's entries put back, in key order)."""
    async with sessions() as session:
        items = await session.execute(
            select(WorkItem.work_item_key, WorkItem.raw).where(
                WorkItem.tenant_id == tenant_id, WorkItem.deleted_at.is_(None)
            )
        )
        sheets = await session.execute(
            select(Timesheet.timesheet_key, Timesheet.raw).where(
                Timesheet.tenant_id == tenant_id, Timesheet.deleted_at.is_(None)
            )
        )
        entries = await session.execute(
            select(TimeEntry.timesheet_key, TimeEntry.raw)
            .where(TimeEntry.tenant_id == tenant_id, TimeEntry.deleted_at.is_(None))
            .order_by(TimeEntry.time_entry_key)
        )
        by_sheet: dict[str, list[Any]] = {}
        for key, raw in entries:
            by_sheet.setdefault(key, []).append(raw)
    return {f"work_items/{key}": raw for key, raw in items} | {
        f"timesheets/{key}": {**raw, "TimeEntries": by_sheet.get(key, [])} for key, raw in sheets
    }


def as_listed(records: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    """`kept`'s versions of `records`, a timesheet's entries in key order."""
    return {
        url: {**body, "TimeEntries": sorted(body["TimeEntries"], key=lambda e: e["TimeEntryKey"])}
        if "TimeEntries" in body
        else body
        for url, body in kept.items()
        if url in records
    }


async def test_chains_of_changes_stay_readable_as_the_versions_they_are_made_of_are_pruned(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    first_run, _ = await sync_now(job_context, tenant_id)
    for _ in range(3):  # each record changed since its last version kept as that change
        sandbox.advance("Demo firm", 3)
        await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)
    await sync_now(job_context, tenant_id, SyncKind.FULL)
    synced = await normalized_tables(sessions, tenant_id)
    records = await synced_records(sessions, tenant_id)
    latest = await latest_records(sessions, tenant_id)
    assert as_listed(records, latest) == records
    async with sessions() as session:
        based = dict(
            (
                await session.execute(
                    select(RawResponse.id, RawResponse.base_id).where(
                        RawResponse.tenant_id == tenant_id,
                        RawResponse.kind == "record",
                        RawResponse.base_id.is_not(None),
                    )
                )
            ).all()
        )
    assert any(base in based for base in based.values()), "a chain of two changes or more"

    # The first sync's superseded versions are past retention: the later versions kept as
    # changes to them are rewritten before they go.
    newer = RawResponse.__table__.alias("newer")
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(RawResponse)
            .where(
                RawResponse.run_id == first_run,
                select(newer.c.id)
                .where(newer.c.url == RawResponse.url, newer.c.id > RawResponse.id)
                .exists(),
            )
            .values(last_fetched_at=RawResponse.last_fetched_at - timedelta(days=100))
        )
    small_batches = settings.model_copy(update={"raw_prune_batch_size": 5})
    assert await prune(sessions, small_batches, datetime.now(UTC)) > 0
    assert await latest_records(sessions, tenant_id) == latest

    assert await prune(sessions, small_batches, later(91)) > 0  # every superseded version
    kept = await latest_records(sessions, tenant_id)
    assert as_listed(records, kept) == records, "every live record's latest version"
    assert kept.items() <= latest.items()
    async with sessions() as session:
        for _, version in await raw_versions(sessions, tenant_id):
            assert await read_version(session, version) is not None
    await scramble_derived_columns(sessions, tenant_id)
    await rebuild_from_raw(sessions, tenant_id)
    assert await normalized_tables(sessions, tenant_id) == synced
