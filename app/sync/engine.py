"""One sync run: every list, page by page; meanwhile and then the detail calls owed, by value.

List phase: streams run concurrently under the tenant's single request budget, each reading
ahead one page. For each page, one transaction writes the normalized rows from the list JSON,
queues the detail calls its records are owed (``pending_details``, with the priority of what
the reports need first), and saves the raw responses, the run's progress and the stream's
checkpoint. Lists come first: the reports have every record (and every hour) as soon as the
lists are in; a stream whose lists are in is ``listed``.

Details: the queue is read in (priority, stream, key) order, several streams interleaved, at
most ``DETAIL_WINDOW`` calls made and not yet committed at any moment; landed details are
committed in batches, each with its rows, raw responses and the removal of its queue rows in
one transaction. Detail calls go in the budget's background: while lists are read they take
only the turns the paging leaves idle (one stream paging alone keeps one request in flight),
and only for streams whose order is final, their lists in and, for a stream whose details are
brought forward by activity, the lists that show the activity in too. Once every list is in,
the rest go by value. The queue is the checkpoint: a worker killed at any moment repeats at
most ``DETAIL_WINDOW`` detail calls (and the list pages in flight), and a run of any kind
drains what an earlier run left.

Every write is an upsert keyed by tenant and Karbon key, so a page or batch applied twice
changes nothing.
"""

import asyncio
import logging
import math
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import unit_of_work
from app.models import RECHECK_PRIORITY, SyncKind
from app.sync import repository
from app.sync.karbon.client import KarbonClient, KarbonResponse, Page
from app.sync.karbon.errors import (
    KarbonAuthError,
    KarbonPermissionError,
    KarbonProtocolError,
    KarbonRequestError,
)
from app.sync.records import ParsedBatch, Raw
from app.sync.repository import OwedDetail
from app.sync.store import RecordStore
from app.sync.streams import (
    ACTIVITY_DAYS,
    STREAMS,
    DetailPolicy,
    NewestFirstWindow,
    OpenPeriod,
    Strategy,
    Stream,
    timesheet_filters,
)

logger = logging.getLogger(__name__)

DETAIL_WINDOW = 20
"""At most this many detail calls are made and not yet committed at any moment (in flight or
landed): what a killed worker may repeat. At 1.8 req/s and up to 2 s of latency a handful are in
flight; twenty keep the pipeline full while a batch commits."""
DETAIL_BATCH = DETAIL_WINDOW // 2
"""Landed details are committed this many at a time, while the rest of the window flies."""
QUEUE_CHUNK = 200
"""Queue rows read from the database at a time."""
DETAIL_FAILURES_IN_A_ROW = DETAIL_WINDOW
"""Details Karbon refuses (a 4xx, an unreadable body) are left owed, so one bad record never
stops every later run at the head of the queue; this many refused in a row is Karbon failing,
and ends the run."""

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
        self._streams: dict[str, StreamProgress] = {}
        self._listed: set[str] = set()
        """Streams whose lists this run has in."""
        self._lists_in = False
        """Every list of the run is in."""
        self._lists_moved = asyncio.Event()
        """Set when a stream's lists come in, or every list is."""

    async def run(self, streams: Sequence[Stream] = STREAMS) -> None:
        """Read every stream's lists and, in the turns they leave idle, the details owed of
        streams whose order is final; then the rest of the details. The first failure stops
        the rest and is raised as itself."""
        await _together([self.read_lists(streams), self._read_details(streams, keys=True)])

    async def read_lists(self, streams: Sequence[Stream] = STREAMS) -> None:
        """Every stream's lists, concurrently, queueing the details their records are owed."""
        self._leader = streams[0]
        await _together([self._sync_stream(stream) for stream in streams])
        self._lists_in = True
        self._lists_moved.set()

    async def read_details(self, streams: Sequence[Stream] = STREAMS) -> None:
        """With every list in: the tenant's queued detail calls in priority order, each batch
        committed with its rows: owed ones all, re-checks (priority at or above
        `RECHECK_PRIORITY`) until the plan's `recheck_until`."""
        self._lists_in = True
        self._lists_moved.set()
        await self._read_details(streams, keys=False)

    async def _read_details(self, streams: Sequence[Stream], *, keys: bool) -> None:
        """The queue drained as streams become ready, then to its end. ``keys``: no call
        before Karbon has accepted the keys."""
        read = {s.name: s for s in streams if s.detail is not DetailPolicy.NEVER}
        progress = {s.name: self._progress_of(s.name) for s in streams}
        queue = _DetailQueue(self._sessions, self._plan.tenant_id, self._plan.recheck_until)
        if keys:
            await self._keys_accepted.wait()
        await self._drain(queue, read, progress)
        await self._end_details(progress)

    def _progress_of(self, name: str) -> "StreamProgress":
        """The stream's progress, one object for its lists and its details."""
        if name not in self._streams:
            self._streams[name] = StreamProgress.restore(self._progress.get(name))
        return self._streams[name]

    def _ready(self, streams: Mapping[str, Stream]) -> set[str]:
        """Streams whose queued details are in their final order: every list is in, or the
        stream's own and those its promotion draws on."""
        if self._lists_in:
            return set(streams)
        return {
            name
            for name, stream in streams.items()
            if name in self._listed
            and (stream.promotion is None or self._listed.issuperset(stream.promotion.sources))
        }

    def _lists_came_in(self, stream: Stream) -> None:
        self._listed.add(stream.name)
        self._lists_moved.set()

    # -- one stream ---------------------------------------------------------------------

    async def _sync_stream(self, stream: Stream) -> None:
        state: dict[str, Any] = self._checkpoint.get(stream.name, {})
        if state.get("done"):
            self._keys_accepted.set()
            self._lists_came_in(stream)
            return
        if stream is not self._leader:
            # One request first: if Karbon rejects the keys, nothing else was sent.
            await self._keys_accepted.wait()
        _capture_buffer.set([])
        progress = self._progress_of(stream.name)
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
        self._lists_came_in(stream)

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
            progress.page_read(page, estimable=estimable)
            finished_read = page.next_link is None or (window is not None and window.exhausted)
            checkpoint = {
                **sticky,
                "read": index + 1 if finished_read else index,
                "next_link": None if finished_read else page.next_link,
                "newest_seen": _iso(window.newest_seen if window else None),
            }
            await self._apply_page(stream, records, tokens, checkpoint, progress, page)
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

    async def _apply_page(
        self,
        stream: Stream,
        records: list[Raw],
        tokens: dict[str, str],
        checkpoint: dict[str, Any],
        progress: "StreamProgress",
        page: Page,
    ) -> None:
        responses = _take_captured(stream, page)
        progress.requests += len(responses)
        rate = await self._request_rate()
        async with unit_of_work(self._sessions) as session:
            store = RecordStore(session, self._plan.tenant_id, self._plan.run_id)
            stored = await self._stored_tokens(store, stream, list(tokens))
            if await self._read_again_unchanged(store, stream, page, responses):
                batch = await stream.seen(store, records, tokens)
            else:
                batch = await stream.write(store, records, {}, tokens)
                await self._save_raw(store, stream, responses)
            await self._queue_details(session, stream, records, stored, tokens, batch, progress)
            progress.records += len(batch.records)
            await self._record_progress(session, stream, checkpoint, progress, len(responses), rate)

    @staticmethod
    async def _read_again_unchanged(
        store: RecordStore, stream: Stream, page: Page, responses: list[KarbonResponse]
    ) -> bool:
        """Whether the page came in one answer with the bytes of its last kept version (made of
        its records' last versions): then it is only noted read again."""
        if responses != [page.response]:
            return False
        unchanged = await store.read_again_unchanged(
            stream.name, "page", responses, stream.key_field
        )
        return unchanged[0]

    @staticmethod
    async def _stored_tokens(
        store: RecordStore, stream: Stream, keys: list[str]
    ) -> dict[str, str | None]:
        """Each record's change token as the last run left it (read before this page's write)."""
        if stream.detail is DetailPolicy.NEVER or not keys:
            return {}
        return await store.stored_tokens(stream.storage.model, keys)

    async def _queue_details(
        self,
        session: AsyncSession,
        stream: Stream,
        records: list[Raw],
        stored: dict[str, str | None],
        tokens: dict[str, str],
        batch: ParsedBatch,
        progress: "StreamProgress",
    ) -> None:
        """Queue the details the page's stored records are owed; take off the queue those no
        figure uses (a record set aside as unreadable was not stored: it is owed nothing)."""
        if stream.detail is DetailPolicy.NEVER:
            return
        set_aside = {str(reject.raw.get(stream.key_field)) for reject in batch.rejects}
        owed = [
            OwedDetail(
                stream.name,
                key,
                stream.detail_priority(raw, self._plan.today),
                stream.detail_client(raw),
            )
            for raw in records
            if (key := stream.key_of(raw)) not in set_aside
            and stream.needs_detail(raw, stored.get(key), token=tokens[key])
        ]
        unused = [stream.key_of(raw) for raw in records if stream.detail_unused(raw)]
        tenant_id, run_id = self._plan.tenant_id, self._plan.run_id
        progress.details_pending += await repository.enqueue_details(
            session, tenant_id, run_id, owed
        )
        progress.details_pending -= await repository.forget_details(
            session, tenant_id, stream.name, unused
        )

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
        rate = await self._request_rate()
        async with unit_of_work(self._sessions) as session:
            store = RecordStore(session, self._plan.tenant_id, self._plan.run_id)
            pending = await repository.details_pending(session, self._plan.tenant_id)
            progress.lists_read(pending.get(stream.name, 0))
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
        await self._record_streams_progress(
            session, {stream.name: progress}, new_requests, rate, {stream.name: checkpoint}
        )

    async def _record_streams_progress(
        self,
        session: AsyncSession,
        progress: Mapping[str, "StreamProgress"],
        new_requests: int,
        rate: float,
        checkpoints: Mapping[str, dict[str, Any]] | None = None,
    ) -> None:
        changes = {name: stream.as_json() for name, stream in progress.items()}
        self._progress.update(changes)
        values = {
            "run": self._plan.run_id,
            "progress_change": changes,
            "checkpoint_change": dict(checkpoints or {}),
            "new_requests": new_requests,
            "rate": rate,
            "heartbeat": _now(),
        }
        if not await repository.record_progress(session, values):
            raise SyncCancelledError(f"sync run {self._plan.run_id} is no longer running")

    # -- the detail phase ---------------------------------------------------------------

    async def _rank_queue(
        self, streams: Iterable[Stream], progress: Mapping[str, "StreamProgress"]
    ) -> None:
        """With the streams' lists in (and those their promotion draws on): drop queued
        details of records no longer held, bring forward those of records with recent time or
        revenue, and say what each stream still owes."""
        since = self._plan.today - timedelta(days=ACTIVITY_DAYS)
        tenant_id = self._plan.tenant_id
        rate = await self._request_rate()
        async with unit_of_work(self._sessions) as session:
            for stream in streams:
                await repository.forget_details_of_gone(
                    session, tenant_id, stream.name, stream.storage
                )
                if stream.promotion is not None:
                    await repository.promote_details(
                        session,
                        tenant_id,
                        stream.name,
                        stream.promotion.activity,
                        stream.promotion.priority,
                        since,
                        below=RECHECK_PRIORITY,
                    )
            ranked = {stream.name: progress[stream.name] for stream in streams}
            await self._recount(session, ranked, rate)

    async def _drain(
        self,
        queue: "_DetailQueue",
        streams: Mapping[str, Stream],
        progress: Mapping[str, "StreamProgress"],
    ) -> None:
        """At most `DETAIL_WINDOW` detail calls uncommitted at any moment; landed ones are
        committed `DETAIL_BATCH` at a time while the others fly. Streams join as they become
        ready; it ends once every list is in and the queue is drained."""
        flying: dict[asyncio.Task[_Fetched], OwedDetail] = {}
        landed: list[_Fetched] = []
        refused_in_a_row = 0
        try:
            while True:
                await self._take_ready(queue, streams, progress)
                while len(flying) + len(landed) < DETAIL_WINDOW:
                    owed = await queue.next()
                    if owed is None:
                        break
                    call = self._fetch_detail(streams[owed.stream], owed.record_key)
                    flying[asyncio.ensure_future(call)] = owed
                if not flying and not landed:
                    if self._lists_in and not self._lists_moved.is_set():
                        return
                    await self._lists_moved.wait()
                    continue
                if flying:
                    done, _ = await asyncio.wait(flying, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        del flying[task]
                        fetched = task.result()  # any other failure ends the run, as itself
                        refused_in_a_row = refused_in_a_row + 1 if fetched.refused else 0
                        if refused_in_a_row >= DETAIL_FAILURES_IN_A_ROW:
                            assert fetched.refused is not None
                            raise fetched.refused
                        landed.append(fetched)
                if landed and (len(landed) >= DETAIL_BATCH or not flying):
                    await self._apply_details(landed, progress)
                    queue.committed((one.stream.name, one.key) for one in landed)
                    landed = []
        finally:
            for task in flying:
                task.cancel()
            await asyncio.gather(*flying, return_exceptions=True)

    async def _take_ready(
        self,
        queue: "_DetailQueue",
        streams: Mapping[str, Stream],
        progress: Mapping[str, "StreamProgress"],
    ) -> None:
        """When lists came in: rank the queue of the streams now ready and read it again
        from its head, for them too."""
        if not self._lists_moved.is_set():
            return
        self._lists_moved.clear()
        ready = self._ready(streams)
        new = ready - queue.streams
        if new:
            await self._rank_queue([streams[name] for name in sorted(new)], progress)
        if self._lists_in:
            await self._recount_all(progress)
        queue.read_from_head(ready)

    async def _end_details(self, progress: Mapping[str, "StreamProgress"]) -> None:
        """Every stream done; what is still queued (re-checks past `recheck_until`) is counted
        and left to the next run."""
        for stream in progress.values():
            stream.state = "done"
        await self._recount_all(progress)

    async def _recount_all(self, progress: Mapping[str, "StreamProgress"]) -> None:
        rate = await self._request_rate()
        async with unit_of_work(self._sessions) as session:
            await self._recount(session, progress, rate)

    async def _recount(
        self, session: AsyncSession, progress: Mapping[str, "StreamProgress"], rate: float
    ) -> None:
        pending = await repository.details_pending(session, self._plan.tenant_id)
        for name, stream in progress.items():
            stream.details_pending = pending.get(name, 0)
            if stream.state == "listed" and not stream.details_pending:
                stream.state = "done"
        await self._record_streams_progress(session, progress, 0, rate)

    async def _fetch_detail(self, stream: Stream, key: str) -> "_Fetched":
        """One detail call, with every response it took (retries included) for raw storage.
        A 404 means Karbon deleted the record since it was listed: no detail, no failure."""
        captured: list[KarbonResponse] = []
        _capture_buffer.set(captured)  # this task's own: the call's responses, not others'
        try:
            response = await self._client.get_detail(
                stream.resource, key, stream.detail_params, background=True
            )
        except KarbonRequestError as error:
            if error.status != 404:
                return _Fetched(stream, key, None, captured, refused=error)
            return _Fetched(stream, key, None, captured)
        except KarbonProtocolError as error:
            return _Fetched(stream, key, None, captured, refused=error)
        return _Fetched(stream, key, response.body_json, captured)

    async def _apply_details(
        self, fetched: Sequence["_Fetched"], progress: Mapping[str, "StreamProgress"]
    ) -> None:
        """One batch of landed details: rows, raw responses and the batch's queue rows removed,
        with the run's progress, in one transaction."""
        by_stream: dict[str, list[_Fetched]] = {}
        for one in fetched:
            by_stream.setdefault(one.stream.name, []).append(one)
        new_requests = sum(len(one.captured) for one in fetched)
        rate = await self._request_rate()
        async with unit_of_work(self._sessions) as session:
            store = RecordStore(session, self._plan.tenant_id, self._plan.run_id)
            for name, landed in by_stream.items():
                taken = await self._write_details(store, landed[0].stream, landed)
                stream_progress = progress[name]
                stream_progress.details_done += len(landed)
                stream_progress.requests += sum(len(one.captured) for one in landed)
                stream_progress.details_pending = max(0, stream_progress.details_pending - taken)
                if not stream_progress.details_pending:
                    stream_progress.state = "done"
            touched = {name: progress[name] for name in by_stream}
            await self._record_streams_progress(session, touched, new_requests, rate)

    async def _write_details(
        self, store: RecordStore, stream: Stream, landed: Sequence["_Fetched"]
    ) -> int:
        """Merge each detail with its record's stored list JSON and write the record; returns
        how many queue rows the batch took off."""
        tenant_id, session = self._plan.tenant_id, store.session
        unchanged = await self._details_unchanged(store, stream, landed)
        details = {
            one.key: one.body
            for one in landed
            if isinstance(one.body, dict) and one.key not in unchanged
        }
        listed = await repository.listed_records(session, tenant_id, stream.storage, list(details))
        tokens = {key: token for key, (_, token) in listed.items() if token is not None}
        records = [raw for raw, _ in listed.values()]
        await stream.write(store, records, {key: details[key] for key in listed}, tokens)
        refused = [one for one in landed if one.refused is not None]
        for one in refused:
            logger.warning(
                "Karbon refused the %s detail of %s (%s); it stays owed and is asked again by "
                "the next run",
                stream.name,
                one.key,
                one.refused,
            )
        gone = [one.key for one in landed if one.body is None and one.refused is None]
        if gone:
            logger.warning(
                "Karbon has no %s detail for %s: deleted since listed; kept as listed, its "
                "detail owed again if it is listed again",
                stream.name,
                ", ".join(gone),
            )
            await repository.forget_change_tokens(session, tenant_id, stream.storage, gone)
        responses = [
            ("detail", r) for one in landed if one.key not in unchanged for r in one.captured
        ]
        await store.save_raw(stream.name, responses, stream.key_field)
        read = [one.key for one in landed if one.refused is None]
        return await repository.forget_details(session, tenant_id, stream.name, read)

    @staticmethod
    async def _details_unchanged(
        store: RecordStore, stream: Stream, landed: Sequence["_Fetched"]
    ) -> set[str]:
        """The details that came in one answer with the bytes of their last kept version, kept
        as changes to their record's last version: those are only noted read again, as their
        record's row already holds them."""
        single = [one for one in landed if one.body is not None and len(one.captured) == 1]
        unchanged = await store.read_again_unchanged(
            stream.name, "detail", [one.captured[0] for one in single], stream.key_field
        )
        return {one.key for one, same in zip(single, unchanged, strict=True) if same}


@dataclass(frozen=True)
class _Fetched:
    stream: Stream
    key: str
    body: Raw | None
    """The detail; None when Karbon answered 404 or refused it."""
    captured: list[KarbonResponse]
    refused: KarbonRequestError | KarbonProtocolError | None = None
    """Why Karbon gave no usable detail, other than a 404: the detail stays owed."""


class _DetailQueue:
    """The tenant's queued detail calls of the streams ready, in read order, a chunk at a
    time; re-checks end once `recheck_until` has passed. A call taken is not given again
    until its batch is committed (and so off the queue)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tenant_id: UUID,
        recheck_until: datetime | None,
    ) -> None:
        self._sessions = sessions
        self._tenant_id = tenant_id
        self._recheck_until = recheck_until
        self.streams: frozenset[str] = frozenset()
        self._queued: deque[OwedDetail] = deque()
        self._after: tuple[int, str, str] | None = None
        self._exhausted = True
        self._taken: set[tuple[str, str]] = set()

    def read_from_head(self, streams: Iterable[str]) -> None:
        """Read again from the head of the queue, for these streams (their order changed, or
        they joined)."""
        self.streams = frozenset(streams)
        self._queued.clear()
        self._after = None
        self._exhausted = not self.streams

    def committed(self, calls: Iterable[tuple[str, str]]) -> None:
        self._taken.difference_update(calls)

    async def next(self) -> OwedDetail | None:
        while True:
            if not self._queued and not await self._read_more():
                return None
            owed = self._queued.popleft()
            if (owed.stream, owed.record_key) in self._taken:
                continue  # in flight, or landed and not yet committed
            if owed.priority >= RECHECK_PRIORITY and self._rechecks_over():
                # Re-checks come last in the order: none is read after this.
                self._queued.clear()
                self._exhausted = True
                return None
            self._taken.add((owed.stream, owed.record_key))
            return owed

    def _rechecks_over(self) -> bool:
        return self._recheck_until is not None and _now() >= self._recheck_until

    async def _read_more(self) -> bool:
        if self._exhausted:
            return False
        async with self._sessions() as session:
            rows = await repository.next_details(
                session,
                self._tenant_id,
                after=self._after,
                limit=QUEUE_CHUNK,
                streams=sorted(self.streams),
            )
        self._exhausted = len(rows) < QUEUE_CHUNK
        if rows:
            self._after = rows[-1].order
            self._queued.extend(rows)
        return bool(rows)


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
    details_pending: int = 0
    """Detail calls queued for the stream and not yet read."""

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

    def lists_read(self, details_pending: int) -> None:
        """Its lists are in: `listed` while details are owed, else `done`."""
        self.details_pending = details_pending
        self.state = "listed" if details_pending else "done"
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
            "details_pending": self.details_pending,
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


async def _together(work: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run concurrently; the first failure stops the rest and is raised as the most telling
    of what failed."""
    try:
        async with asyncio.TaskGroup() as group:
            for one in work:
                group.create_task(one)
    except ExceptionGroup as group:
        raise _most_telling(group) from group


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
