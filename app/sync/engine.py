"""One sync run: every stream read page by page, each page checkpointed as it lands.

Streams run concurrently under the tenant's single request budget, so detail calls of one
stream fill the gaps while another waits for a page. For each page, one transaction writes
the normalized rows, the raw responses, the run's progress and the stream's checkpoint: a
worker killed at any moment resumes after the last committed page, and because every
write is an upsert keyed by tenant and Karbon key, a page applied twice changes nothing.
"""

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import SyncKind
from app.sync import repository
from app.sync.karbon.client import KarbonClient, KarbonResponse, Page
from app.sync.karbon.errors import KarbonAuthError, KarbonPermissionError, KarbonRequestError
from app.sync.records import Raw
from app.sync.store import RecordStore
from app.sync.streams import (
    STREAMS,
    DetailPolicy,
    NewestFirstWindow,
    OpenPeriod,
    Strategy,
    Stream,
    timesheet_filters,
)

_capture_buffer: ContextVar[list[KarbonResponse] | None] = ContextVar(
    "capture_buffer", default=None
)


class SyncCancelledError(Exception):
    """The run was cancelled (e.g. Karbon disconnected) while it was running."""


@dataclass(frozen=True)
class RunPlan:
    run_id: UUID
    tenant_id: UUID
    kind: SyncKind
    started_at: datetime
    today: date
    high_water_marks: dict[str, datetime | None] = field(default_factory=dict)
    open_periods: tuple[OpenPeriod, ...] = ()
    recheck_until: datetime | None = None
    """When the run stops re-reading details it already holds (pending details at or above
    `RECHECK_PRIORITY`), so it never holds back the tenant's next incremental; None: no limit.
    Owed details are always read."""

    @property
    def complete_read(self) -> bool:
        """Initial and full runs read everything, so they can tell what Karbon deleted."""
        return self.kind != SyncKind.INCREMENTAL


async def capture_response(response: KarbonResponse) -> None:
    """The client's response hook: files each response with the stream being read."""
    buffer = _capture_buffer.get()
    if buffer is not None:
        buffer.append(response)


class SyncEngine:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: KarbonClient,
        plan: RunPlan,
        checkpoint: dict[str, Any],
        progress: dict[str, Any],
    ) -> None:
        self._sessions = sessions
        self._client = client
        self._plan = plan
        self._checkpoint = checkpoint
        self._progress = progress
        self._keys_accepted = asyncio.Event()
        self._leader: Stream | None = None

    async def run(self, streams: Sequence[Stream] = STREAMS) -> None:
        """Sync every stream; the first failure stops the others and is raised as itself."""
        self._leader = streams[0]
        try:
            async with asyncio.TaskGroup() as group:
                for stream in streams:
                    group.create_task(self._sync_stream(stream), name=f"sync-{stream.name}")
        except ExceptionGroup as group:
            raise _most_telling(group) from group

    # -- one stream ---------------------------------------------------------------------

    async def _sync_stream(self, stream: Stream) -> None:
        state: dict[str, Any] = self._checkpoint.get(stream.name, {})
        if state.get("done"):
            self._keys_accepted.set()
            return
        if stream is not self._leader:
            # One request first: if Karbon rejects the keys, nothing else was sent.
            await self._keys_accepted.wait()
        _capture_buffer.set([])
        progress = StreamProgress.restore(self._progress.get(stream.name))
        complete = self._reads_everything(stream) or bool(state.get("census"))
        window = await self._read(stream, state, progress, complete=complete)
        if not complete and await self._may_have_deletions(stream, progress):
            # Karbon lists a different number of records than we hold, or did not say how
            # many: something may have been deleted, and only a complete read can tell what.
            complete = True
            progress.karbon_count = None
            window = await self._read(stream, {"census": True}, progress, complete=True)
        await self._finish_stream(stream, window, progress, complete=complete)
        # A run resumed after the first stream's last page reads no page of it: the others
        # still go once it finishes.
        self._keys_accepted.set()

    def _reads_everything(self, stream: Stream) -> bool:
        """Whether this run reads the stream's whole list, so it can see what was deleted."""
        return self._plan.complete_read or stream.strategy in (Strategy.FULL, Strategy.FINGERPRINT)

    async def _read(
        self,
        stream: Stream,
        state: dict[str, Any],
        progress: "StreamProgress",
        *,
        complete: bool,
    ) -> NewestFirstWindow | None:
        window = self._window(stream, state, complete=complete)
        reads = self._reads(stream)
        sticky = {k: True for k in ("census", "no_list_expand") if state.get(k)}
        first = int(state.get("read", 0))
        for index in range(first, len(reads)):
            resume = state.get("next_link") if index == first else None
            try:
                await self._read_pages(
                    stream, index, reads[index], resume, window, sticky, progress
                )
            except KarbonRequestError as error:
                if not self._may_drop_expand(stream, error, sticky, resume):
                    raise
                # Refused: read the list without it; each record's children come from its
                # detail call.
                sticky["no_list_expand"] = True
                await self._read_pages(stream, index, reads[index], None, window, sticky, progress)
        return window

    @staticmethod
    def _may_drop_expand(
        stream: Stream, error: KarbonRequestError, sticky: dict[str, bool], resume: str | None
    ) -> bool:
        return (
            error.status == 400
            and stream.expand is not None
            and stream.list_expand_may_be_refused
            and not sticky.get("no_list_expand")
            and resume is None
        )

    async def _read_pages(
        self,
        stream: Stream,
        index: int,
        odata_filter: str | None,
        resume: str | None,
        window: NewestFirstWindow | None,
        sticky: dict[str, bool],
        progress: "StreamProgress",
    ) -> None:
        params = stream.list_params(odata_filter)
        if sticky.get("no_list_expand"):
            params.pop("$expand", None)
        windowed = window is not None and window.since is not None
        # A windowed read may stop early and each of several reads has its own count: the
        # pages left are known only for a stream's one complete read.
        estimable = not windowed and len(self._reads(stream)) == 1
        pages = self._client.iter_pages(stream.resource, params, resume_from=resume)
        # A windowed read may stop at any page, so only a complete read asks ahead.
        async for page in pages if windowed else _prefetching(pages):
            self._keys_accepted.set()
            records = window.admit(page.records) if window else page.records
            tokens = stream.tokens(records)  # once per page, for details and storage
            details = await self._details(stream, records, tokens)
            progress.page_read(page, estimable=estimable)
            finished_read = page.next_link is None or (window is not None and window.exhausted)
            checkpoint = {
                **sticky,
                "read": index + 1 if finished_read else index,
                "next_link": None if finished_read else page.next_link,
                "newest_seen": _iso(window.newest_seen if window else None),
            }
            await self._apply_page(stream, records, tokens, details, checkpoint, progress, page)
            if window is not None and window.exhausted:
                return

    async def _may_have_deletions(self, stream: Stream, progress: "StreamProgress") -> bool:
        if stream.strategy is not Strategy.NEWEST_FIRST:
            return False
        if progress.karbon_count is None:
            return True
        async with self._sessions() as session:
            store = RecordStore(session, self._plan.tenant_id, self._plan.run_id)
            held = await store.count_live(stream.storage.model, **stream.storage.scope)
        return held != progress.karbon_count

    def _reads(self, stream: Stream) -> list[str | None]:
        """The `$filter` of each list read this stream makes on this run."""
        if stream.strategy is Strategy.PERIOD_WINDOW and not self._plan.complete_read:
            return list(
                timesheet_filters(self._plan.today, stream.period_days, self._plan.open_periods)
            )
        return [None]

    def _window(
        self, stream: Stream, state: dict[str, Any], *, complete: bool
    ) -> NewestFirstWindow | None:
        if stream.strategy is not Strategy.NEWEST_FIRST:
            return None
        since = None if complete else self._plan.high_water_marks.get(stream.name)
        window = NewestFirstWindow(stream, since, self._plan.started_at)
        if state.get("newest_seen"):
            window.newest_seen = datetime.fromisoformat(state["newest_seen"])
        return window

    async def _details(
        self, stream: Stream, records: list[Raw], tokens: dict[str, str]
    ) -> dict[str, Raw]:
        if stream.detail is DetailPolicy.NEVER or not records:
            return {}
        async with self._sessions() as session:
            store = RecordStore(session, self._plan.tenant_id, self._plan.run_id)
            stored = await store.stored_tokens(stream.storage.model, list(tokens))
        full = self._plan.complete_read
        keyed = [(stream.key_of(raw), raw) for raw in records]
        wanted = [
            key
            for key, raw in keyed
            if stream.needs_detail(raw, stored.get(key), full_refresh=full, token=tokens[key])
        ]
        details: dict[str, Raw] = {}
        async for key, response in self._client.iter_details(
            stream.resource, wanted, stream.detail_params
        ):
            details[key] = response.body_json
        return details

    async def _apply_page(
        self,
        stream: Stream,
        records: list[Raw],
        tokens: dict[str, str],
        details: dict[str, Raw],
        checkpoint: dict[str, Any],
        progress: "StreamProgress",
        page: Page,
    ) -> None:
        responses = _take_captured(stream, page)
        progress.details_done += len(details)
        progress.requests += len(responses)
        rate = await self._request_rate()
        async with unit_of_work(self._sessions) as session:
            store = RecordStore(session, self._plan.tenant_id, self._plan.run_id)
            batch = await stream.write(store, records, details, tokens)
            await self._save_raw(store, stream, responses)
            progress.records += len(batch.records)
            await self._record_progress(session, stream, checkpoint, progress, len(responses), rate)

    async def _save_raw(
        self, store: RecordStore, stream: Stream, responses: list[KarbonResponse]
    ) -> None:
        pages = [("page", r) for r in responses if _is_list_response(stream, r)]
        details = [("detail", r) for r in responses if not _is_list_response(stream, r)]
        await store.save_raw(stream.name, pages + details, stream.key_field)

    async def _finish_stream(
        self,
        stream: Stream,
        window: NewestFirstWindow | None,
        progress: "StreamProgress",
        *,
        complete: bool,
    ) -> None:
        progress.finish()
        rate = await self._request_rate()
        async with unit_of_work(self._sessions) as session:
            store = RecordStore(session, self._plan.tenant_id, self._plan.run_id)
            if complete:
                await self._mark_deleted(store, stream)
            elif stream.strategy is Strategy.PERIOD_WINDOW:
                await self._mark_deleted_in_reread_periods(store, stream)
            if window is not None:
                await repository.save_high_water_mark(
                    session, self._plan.tenant_id, stream.name, window.next_high_water_mark
                )
            await self._save_raw(store, stream, _take_captured())
            await self._record_progress(session, stream, {"done": True}, progress, 0, rate)

    async def _mark_deleted(self, store: RecordStore, stream: Stream) -> None:
        now = self._plan.started_at
        storage = stream.storage
        await store.mark_unseen_deleted(storage.model, now=now, **storage.scope)
        for model in storage.deletes_with:
            await store.mark_unseen_deleted(model, now=now)

    async def _mark_deleted_in_reread_periods(self, store: RecordStore, stream: Stream) -> None:
        """Timesheets an incremental run re-read by period: those not returned are gone."""
        window_start = self._plan.today - timedelta(days=stream.period_days)
        await store.mark_unseen_timesheets_deleted(
            now=self._plan.started_at,
            started_after=window_start,
            periods=[(p.start, sorted(p.user_keys)) for p in self._plan.open_periods],
        )

    async def _request_rate(self) -> float:
        # Read before a page's transaction opens: with a request loop it is a hop to another
        # thread, which a held connection should not wait on.
        return (await self._client.budget_stats()).rate_per_second

    async def _record_progress(
        self,
        session: AsyncSession,
        stream: Stream,
        checkpoint: dict[str, Any],
        progress: "StreamProgress",
        new_requests: int,
        rate: float,
    ) -> None:
        self._checkpoint[stream.name] = checkpoint
        self._progress[stream.name] = progress.as_json()
        values = {
            "run": self._plan.run_id,
            "progress_change": {stream.name: progress.as_json()},
            "checkpoint_change": {stream.name: checkpoint},
            "new_requests": new_requests,
            "rate": rate,
            "heartbeat": _now(),
        }
        if not await repository.record_progress(session, values):
            raise SyncCancelledError(f"sync run {self._plan.run_id} is no longer running")


@dataclass
class StreamProgress:
    state: str = "running"
    pages_done: int = 0
    pages_total: int | None = None
    records: int = 0
    details_done: int = 0
    requests: int = 0
    karbon_count: int | None = None
    """`@odata.count` of the stream's first list read: what Karbon holds; None when Karbon
    did not say."""
    listed: int = 0
    """List records received so far, all reads together."""

    @classmethod
    def restore(cls, saved: dict[str, Any] | None) -> "StreamProgress":
        return cls(**saved) if saved else cls()

    def page_read(self, page: Page, *, estimable: bool) -> None:
        """Count a page. The pages left are estimated from the records Karbon says are left and
        the records its pages have held so far, never from the `$top` asked for: a server
        may send fewer. Without a count they stay unknown."""
        self.pages_done += 1
        self.listed += len(page.records)
        if self.karbon_count is None:
            self.karbon_count = page.total_count
        if not estimable:
            self.pages_total = None
        elif page.next_link is None:
            self.pages_total = self.pages_done
        elif page.total_count is None or not self.listed:
            self.pages_total = None
        else:
            left = max(0, page.total_count - self.listed)
            per_page = self.listed / self.pages_done
            self.pages_total = self.pages_done + max(1, math.ceil(left / per_page))

    def finish(self) -> None:
        self.state = "done"
        self.pages_total = self.pages_done

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pages_done": self.pages_done,
            "pages_total": self.pages_total,
            "records": self.records,
            "details_done": self.details_done,
            "requests": self.requests,
            "karbon_count": self.karbon_count,
            "listed": self.listed,
        }


async def _prefetching(pages: AsyncGenerator[Page, None]) -> AsyncIterator[Page]:
    """Ask for the next page while the caller works on this one, so the request budget does
    not sit idle while a page's detail calls finish and its transaction commits."""
    # The end is None, not StopAsyncIteration: a future holding that exception would tie
    # this frame, and the last page it holds, into a cycle only the garbage collector frees.
    ahead: asyncio.Future[Page | None] = asyncio.ensure_future(anext(pages, None))
    try:
        while (page := await ahead) is not None:
            ahead = asyncio.ensure_future(anext(pages, None))
            yield page
    finally:
        ahead.cancel()
        await asyncio.gather(ahead, return_exceptions=True)
        await pages.aclose()


def _most_telling(group: ExceptionGroup) -> Exception:
    """A cancellation, rejected keys or a missing permission explain a run's end better than
    what they caused."""
    leaves: list[Exception] = []
    pending: list[Exception] = [group]
    while pending:
        error = pending.pop()
        if isinstance(error, ExceptionGroup):
            pending.extend(error.exceptions)
        else:
            leaves.append(error)
    for kind in (SyncCancelledError, KarbonAuthError, KarbonPermissionError):
        for error in leaves:
            if isinstance(error, kind):
                return error
    return leaves[0]


def _take_captured(stream: Stream | None = None, page: Page | None = None) -> list[KarbonResponse]:
    """The responses that arrived since the last take, except a page read ahead of `page`:
    that one is stored with its own page, in its own transaction."""
    buffer = _capture_buffer.get()
    if buffer is None:
        return []
    ahead = [
        response
        for response in buffer
        if stream is not None
        and page is not None
        and response is not page.response
        and response.status == 200
        and _is_list_response(stream, response)
    ]
    taken = [response for response in buffer if all(response is not a for a in ahead)]
    buffer[:] = ahead
    return taken


def _is_list_response(stream: Stream, response: KarbonResponse) -> bool:
    return urlsplit(response.url).path.rstrip("/").endswith(stream.resource.list_path)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _now() -> datetime:
    return datetime.now(UTC)
