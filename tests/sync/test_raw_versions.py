import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import RawResponse, SyncKind, SyncRun, WorkItem
from app.settings import Settings
from app.sync.karbon.client import KarbonResponse
from app.sync.raw_versions import (
    BASE,
    IDS,
    SET,
    SPLICE,
    UNSET,
    apply_changes,
    changes,
    id_runs,
    listed_ids,
    read_version,
    save_versions,
    whole_versions,
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
        page_ids = (
            await session.execute(
                select(RawResponse.id).where(
                    RawResponse.tenant_id == tenant_id, RawResponse.kind == "page"
                )
            )
        ).scalars()
        pages = [body for body, _ in (await whole_versions(session, page_ids)).values()]
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


def _entry(key: str, minutes: int) -> dict[str, Any]:
    return {"TimeEntryKey": key, "Minutes": minutes, "Descriptions": ["x" * 300]}


def test_a_list_of_objects_is_kept_as_its_base_items_and_the_new_ones() -> None:
    base = {"Key": "t", "Status": "Draft", "TimeEntries": [_entry(f"e{n}", 60) for n in range(6)]}
    entries = [*base["TimeEntries"]]  # type: ignore[misc]
    entries[3] = _entry("e3", 90)  # one entry changed, one removed, one added
    del entries[1]
    entries.append(_entry("e9", 15))
    body = {"Key": "t", "Status": "Submitted", "TimeEntries": entries}

    kept = changes(body, 7, base)

    assert kept[SET] == {"Status": "Submitted"}
    assert kept[SPLICE] == {
        "TimeEntries": [[0, 1], [2, 1], [_entry("e3", 90)], [4, 2], [_entry("e9", 15)]]
    }
    assert apply_changes(base, kept) == body
    assert apply_changes(base, changes(base, 7, base)) == base
    unrelated = {"Key": "t", "TimeEntries": [_entry("new", 1)]}
    assert changes(unrelated, 7, base)[SET]["TimeEntries"] == unrelated["TimeEntries"]
    assert apply_changes(base, changes(unrelated, 7, base)) == unrelated


def test_a_page_that_lists_one_changed_record_keeps_where_its_id_changed() -> None:
    """A page's ids fragment into many runs as its records change over the days; one more
    change is kept as the ids around it, not as every run again."""
    ids = list(range(1000, 1100))
    for position in range(3, 100, 3):  # a third of the page changed on earlier days
        ids[position] = 5000 + position
    base = {"@odata.nextLink": "https://k/v3/Timesheets?$skip=100", "value": id_runs(ids)}
    ids[50] = 9001
    body = {**base, "value": id_runs(ids)}

    kept = changes(body, 7, base, ids_of="value")

    assert kept[SET] == {}
    assert kept[IDS] == {"value": [[0, 50], [9001], [51, 49]]}
    assert apply_changes(base, kept) == body
    assert len(json.dumps(kept)) < len(json.dumps(body)) / 4


def test_a_block_of_new_ids_is_kept_as_the_runs_it_makes() -> None:
    """Records changed side by side get consecutive ids: their runs are shorter than a splice
    naming each new id."""
    base = {"value": id_runs(list(range(1000, 1100)))}
    body = {"value": id_runs([*range(1000, 1010), *range(5000, 5050), *range(1060, 1100)])}

    kept = changes(body, 7, base, ids_of="value")

    assert IDS not in kept
    assert kept[SET] == {"value": [[1000, 10], [5000, 50], [1060, 40]]}
    assert apply_changes(base, kept) == body


@given(
    st.lists(st.integers(1, 60), max_size=40),
    st.lists(st.integers(1, 60), max_size=40),
)
def test_any_change_of_a_pages_ids_reads_back_exactly(old: list[int], new: list[int]) -> None:
    base = {"value": id_runs(old)}
    body = {"value": id_runs(new)}

    assert apply_changes(base, changes(body, 1, base, ids_of="value")) == body


def _record_response(url: str, body: Any, fetched_at: datetime) -> KarbonResponse:
    return KarbonResponse(url, fetched_at, 200, body)


async def test_a_changed_record_is_kept_as_what_changed_since_its_last_version(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant_id = await connect_tenant(sessions, job_context["deps"].settings, sandbox)
    timesheet = {
        "TimesheetKey": "ts-1",
        "Status": "Draft",
        "TimeEntries": [_entry(f"e{n}", 60) for n in range(8)],
    }
    bodies = [timesheet]
    for n in range(3):  # an entry added, then one changed, then the status
        last = bodies[-1]
        entries = [*last["TimeEntries"]]
        if n == 0:
            entries.append(_entry("e8", 30))
        elif n == 1:
            entries[2] = _entry("e2", 45)
        bodies.append({**last, "TimeEntries": entries, "Status": "Draft" if n < 2 else "Done"})
    async with unit_of_work(sessions) as session:
        for body in bodies:
            page = _record_response("p?1", {"value": [body]}, datetime.now(UTC))
            await save_versions(
                session, tenant_id, None, "timesheets", [("page", page)], "TimesheetKey"
            )

    async with sessions() as session:
        kept = (
            (
                await session.execute(
                    select(RawResponse)
                    .where(RawResponse.tenant_id == tenant_id, RawResponse.kind == "record")
                    .order_by(RawResponse.id)
                )
            )
            .scalars()
            .all()
        )
        read_back = [await read_version(session, version.id) for version in kept]
    assert read_back == bodies
    assert [version.base_id for version in kept] == [None, *(v.id for v in kept[:-1])]
    first, *later = (len(json.dumps(version.body)) for version in kept)
    assert all(size < first / 4 for size in later), "only what changed is kept again"


_ROW_VERSIONS = """
SELECT 'invoice_lines', invoice_key || '/' || position, xmin::text
    FROM invoice_lines WHERE tenant_id = :tenant
UNION ALL SELECT 'data_quality_issues', stream || '/' || record_key || '/' || field, xmin::text
    FROM data_quality_issues WHERE tenant_id = :tenant
UNION ALL SELECT 'raw_responses', id::text, body_sha256::text
    FROM raw_responses WHERE tenant_id = :tenant
"""
"""Rows a read of unchanged data has no reason to write: each row's version (`xmin`), and
each raw version's content."""


async def row_versions(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> dict[tuple[str, str], str]:
    async with sessions() as session:
        rows = await session.execute(text(_ROW_VERSIONS), {"tenant": tenant_id})
        return {(table, key): version for table, key, version in rows}


async def test_a_response_read_again_unchanged_is_only_noted_read(
    sandbox: Sandbox, job_context: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Every list re-read, nothing changed in Karbon: no invoice line or named issue is written
    again and no raw version is kept or changed, yet each version read notes the read (what
    retention counts from) and every record is seen by the run (what tells deletions)."""
    tenant_id = await fully_synced(sandbox, job_context, sessions)
    before = await row_versions(sessions, tenant_id)
    assert any(table == "invoice_lines" for table, _ in before)
    async with sessions() as session:
        query = select(RawResponse.id, RawResponse.fetch_count)
        reads_before = {row.id: row.fetch_count for row in await session.execute(query)}

    run_id, outcome = await sync_now(job_context, tenant_id, SyncKind.FULL)

    assert outcome == "succeeded"
    assert await row_versions(sessions, tenant_id) == before
    async with sessions() as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None and run.started_at is not None
        pages = (
            await session.execute(
                select(RawResponse.fetch_count, RawResponse.last_fetched_at, RawResponse.id).where(
                    RawResponse.tenant_id == tenant_id, RawResponse.kind == "page"
                )
            )
        ).all()
        read = [page for page in pages if page.last_fetched_at >= run.started_at]
        assert read and all(page.fetch_count == reads_before[page.id] + 1 for page in read)
        unseen = (
            await session.execute(
                select(func.count()).where(
                    WorkItem.tenant_id == tenant_id,
                    WorkItem.last_seen_run_id != run_id,
                )
            )
        ).scalar_one()
        deleted = (
            await session.execute(
                select(func.count()).where(
                    WorkItem.tenant_id == tenant_id, WorkItem.deleted_at.is_not(None)
                )
            )
        ).scalar_one()
    assert (unseen, deleted) == (0, 0)
