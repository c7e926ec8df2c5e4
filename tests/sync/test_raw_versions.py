import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import RawResponse, SyncKind, WorkItem
from app.settings import Settings
from app.sync.karbon.client import KarbonResponse
from app.sync.raw_versions import (
    BASE,
    SET,
    UNSET,
    changes,
    listed_ids,
    read_version,
    save_versions,
)
from app.sync.retention import prune
from sandbox.state import Sandbox
from tests.sync.conftest import connect_tenant, sync_now


async def raw_rows(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, kind: str | None = None
) -> int:
    async with sessions() as session:
        query = select(func.count()).where(RawResponse.tenant_id == tenant_id)
        if kind is not None:
            query = query.where(RawResponse.kind == kind)
        return int((await session.execute(query)).scalar_one())


async def fully_synced(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> UUID:
    """The demo firm connected, synced, then read again in full."""
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await sync_now(job_context, tenant_id)
    await sync_now(job_context, tenant_id, SyncKind.FULL)
    return tenant_id


async def test_a_quiet_incremental_stores_no_response_again(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    await sync_now(job_context, tenant_id)
    await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)  # reads new URLs once
    before = await raw_rows(sessions, tenant_id)
    requests_before = sandbox.counters("Demo firm")["requests"]

    await sync_now(job_context, tenant_id, SyncKind.INCREMENTAL)

    assert sandbox.counters("Demo firm")["requests"] > requests_before
    assert await raw_rows(sessions, tenant_id) == before
    async with sessions() as session:
        reread = (
            await session.execute(select(func.count()).where(RawResponse.fetch_count > 1))
        ).scalar_one()
    assert reread > 0


async def test_a_changed_body_is_kept_as_a_new_version_of_its_request(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await fully_synced(sandbox, job_context, sessions)
    before = await raw_rows(sessions, tenant_id)
    sandbox.advance("Demo firm", 30)

    await sync_now(job_context, tenant_id, SyncKind.FULL)

    async with sessions() as session:
        versions = (
            await session.execute(
                select(RawResponse.url, func.count())
                .where(RawResponse.tenant_id == tenant_id)
                .group_by(RawResponse.url)
                .having(func.count() > 1)
            )
        ).all()
        distinct_bodies = (
            await session.execute(
                select(func.count(func.distinct(RawResponse.body_sha256))).where(
                    RawResponse.url.in_([url for url, _ in versions])
                )
            )
        ).scalar_one()
    assert await raw_rows(sessions, tenant_id) > before
    assert versions, "the changed pages are new versions of the same requests"
    assert distinct_bodies == sum(count for _, count in versions)


async def test_a_list_page_keeps_its_records_once_each_and_refers_to_them(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await fully_synced(sandbox, job_context, sessions)
    records_before = await raw_rows(sessions, tenant_id, "record")
    changes = sandbox.advance("Demo firm", 1)

    await sync_now(job_context, tenant_id, SyncKind.FULL)

    added = await raw_rows(sessions, tenant_id, "record") - records_before
    assert changes
    # A day changes a few of the firm's ~100 records; storing whole pages again would add most.
    assert 0 < added < records_before / 4, "only records that changed are kept again"
    async with sessions() as session:
        kept = (
            await session.execute(
                select(RawResponse.id).where(
                    RawResponse.tenant_id == tenant_id, RawResponse.kind == "record"
                )
            )
        ).scalars()
        pages = (
            (
                await session.execute(
                    select(RawResponse.body).where(
                        RawResponse.tenant_id == tenant_id, RawResponse.kind == "page"
                    )
                )
            )
            .scalars()
            .all()
        )
        references = [listed for body in pages for listed in listed_ids(body) or []]
    assert references, "list pages hold references to their records"
    assert set(references) <= set(kept), "every reference is a kept record version"
    # Records are kept in the order listed: a page's ids are a few runs, not one per record.
    assert sum(len(body["value"]) for body in pages) < len(references) / 2


async def latest_versions(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, stream: str, kind: str
) -> list[int]:
    """The id of the latest version of each of the stream's requests of this kind."""
    async with sessions() as session:
        query = (
            select(func.max(RawResponse.id))
            .where(
                RawResponse.tenant_id == tenant_id,
                RawResponse.stream == stream,
                RawResponse.kind == kind,
            )
            .group_by(RawResponse.request_sha256)
        )
        return list((await session.execute(query)).scalars())


async def test_a_detail_is_kept_as_what_it_adds_to_its_listed_record_and_reads_back_whole(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await fully_synced(sandbox, job_context, sessions)
    sandbox.advance("Demo firm", 30)
    await sync_now(job_context, tenant_id, SyncKind.FULL)

    details = await latest_versions(sessions, tenant_id, "work_items", "detail")
    async with sessions() as session:
        kept = {
            row.work_item_key: row.raw_detail
            for row in await session.execute(
                select(WorkItem.work_item_key, WorkItem.raw_detail).where(
                    WorkItem.tenant_id == tenant_id
                )
            )
        }
        stored = [await session.get(RawResponse, version) for version in details]
        read_back = [await read_version(session, version) for version in details]
    assert details and all(v is not None and BASE in v.body for v in stored)
    # The list's fields are not kept again: what is kept is smaller than the detail.
    assert all(
        len(json.dumps(v.body)) < len(json.dumps(whole))
        for v, whole in zip(stored, read_back, strict=True)
        if v is not None
    )
    assert {body["WorkItemKey"]: body for body in read_back} == {
        key: detail for key, detail in kept.items() if detail is not None
    }


async def test_a_page_reads_back_with_each_record_in_its_place(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await fully_synced(sandbox, job_context, sessions)
    pages = await latest_versions(sessions, tenant_id, "work_items", "page")
    async with sessions() as session:
        listed = [
            record for page in pages for record in (await read_version(session, page))["value"]
        ]
        rows = await session.execute(select(WorkItem.work_item_key, WorkItem.raw))
        kept = {key: raw for key, raw in rows}
    assert listed and {record["WorkItemKey"]: record for record in listed} == kept


def test_changes_keep_true_apart_from_one_and_name_what_was_removed() -> None:
    kept = changes({"A": True, "B": 2, "C": {"x": 1}}, 7, {"A": 1, "B": 2, "C": {"x": 1}, "D": 0})
    assert kept == {BASE: 7, SET: {"A": True}, UNSET: ["D"]}


async def test_a_detail_read_again_keeps_the_version_it_is_made_of_from_pruning(
    sandbox: Sandbox,
    job_context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    tenant_id = await fully_synced(sandbox, job_context, sessions)
    detail_id = (await latest_versions(sessions, tenant_id, "work_items", "detail"))[0]
    async with unit_of_work(sessions) as session:
        detail = await session.get(RawResponse, detail_id)
        assert detail is not None
        whole = await read_version(session, detail_id)
        await session.execute(  # nothing read for 100 days...
            update(RawResponse)
            .where(RawResponse.tenant_id == tenant_id)
            .values(last_fetched_at=RawResponse.last_fetched_at - timedelta(days=100))
        )
        response = KarbonResponse(detail.url, datetime.now(UTC), 200, whole)
        # ...but the detail, read again alone
        await save_versions(
            session, tenant_id, None, "work_items", [("detail", response)], "WorkItemKey"
        )

    await prune(sessions, settings, datetime.now(UTC))

    async with sessions() as session:
        assert await read_version(session, detail_id) == whole
