"""Storage benchmark: raw rows and bytes a firm's syncs keep.

    uv run python benchmarks/storage.py compare [--size tiny] [--seed 3] [--page-size 100]
    uv run python benchmarks/storage.py days [--size small] [--days 3] [--quiet-every 3]
    uv run python benchmarks/storage.py days --size medium large --days 30 --quiet-every 7
        [--later 11]

A sandbox firm is synced for real (the worker's own job code and tuning, a real database and
Redis, the sandbox with no pacing, served by a forked process of its own so that it shares
neither CPU time nor the GIL with the sync).

`compare`: a first sync, then two incrementals with nothing changed in Karbon, as stored now
against an estimate of storing every response whole (rows = reads, bytes = each kept version
times the times it was read, each timesheet's JSON holding its time entries again).

`days`: for each firm, a first sync and one quiet incremental (it stores the pages of the
windowed requests the first sync never made), then each simulated day (virtual time: the
sandbox's `advance`, through its admin API; the syncs run back to back): Karbon's usual daily
changes, or none on every `--quiet-every`-th day, an incremental, `--later` more (11 by
default: one every 2 hours; Karbon does not change between them, as the day's changes are
made at once) and the nightly full run. Per day: Karbon's record changes; "changed KB", the
JSON text of every record whose list or detail JSON changed (each record's JSON once: a time
entry on its own, an invoice's lines inside its detail); "stored KB", the raw bytes the day's
runs kept, then that against the changed JSON and as a share of the first sync's raw bytes,
and split into the day's first incremental, the later ones (the runs between Karbon's
changes) and the nightly run. At the end: the issue's targets (a quiet day and the runs
between changes under 1% of the first sync, a changed day about the JSON that changed) and
what the days stored, by stream and kind.

Bytes stored are PostgreSQL's stored sizes (`pg_column_size`); changed bytes are JSON text.
Uses DATABASE_URL/REDIS_URL when set, embedded servers otherwise; runs in a scratch database
that is dropped afterwards.

How long it takes, on this shared 2-core machine (load 3-6, other work running): the medium
firm's first sync 60-135 s, a quiet incremental 4-10 s (216 requests: 50 work item pages, 162
timesheet reads, one per older period still unbilled), the first incremental after Karbon's
changes 7-15 s, a nightly 38-55 s (it re-reads all ~11,000 details: the rotation fits them in
one night at the firm's rate). 30 medium days with all 11 later incrementals took 59 minutes,
first sync included (about 2 minutes a day; some of it beside other profiling and tests of
the same machine). Before, a medium day with `--later 1` took about 10 minutes at load 7-9.
What made it faster: commits in the scratch database do not wait for the disk (what is stored
is the same), the sandbox renders each detail once per change of the firm (a nightly's
sandbox CPU 7.4 s -> 4.3 s), and the product notes a page or detail read again with the same
bytes as read instead of parsing and writing it again (a quiet nightly of the small firm
writes 5,370 rows instead of 7,254, its invoice lines not at all; the medium nightly's sync
CPU 25.4 s -> 22.8 s). Where a nightly's time goes now (profile of the medium firm): the
HTTP client and its event loop work for 11,000 requests about half of the sync's CPU, then
SQLAlchemy and asyncpg; PostgreSQL about a quarter of all CPU. The large firm with `--later
1`: first sync 524 s, then 2.5 to 4 minutes a day beside other work (30 days: about 2 hours).

Last measured, the large firm, `days --size large --days 30 --quiet-every 7 --later 1`,
stopped after day 14 for time (2-core machine, load 2-5 with tests running beside it): first
sync 182,420 raw rows, 158,659.2 KB stored (records' JSON 292,130.4 KB); first quiet
incremental +490.4 KB. Beside it, the same days of the code before a page kept its ids as a
splice (stopped after day 11), stored KB:

     day Karbon changes changed KB stored KB x changed % first 1st incr  1 later nightly  before
       1            918      880.3    1039.5      1.18    0.66    798.3     23.5   217.7  1127.9
       2            374      701.4     788.6      1.12    0.50    591.5     47.4   149.7   888.1
       3            325      716.4     821.5      1.15    0.52    619.8     49.4   152.3   917.9
       4            268      648.1     678.7      1.05    0.43    531.0      5.3   142.5   759.8
       5            262      695.4     776.8      1.12    0.49    601.2     25.1   150.5   881.2
       6            161      347.8     518.0      1.49    0.33    371.3     37.4   109.4   569.6
       7          quiet        0.0       0.0         -    0.00      0.0      0.0     0.0     0.0
       8             99      234.3     381.1      1.63    0.24    226.3     30.1   124.7   489.1
       9            796      719.1     939.6      1.31    0.59    615.8     39.0   284.8  1056.1
      10            367      643.5     732.4      1.14    0.46    523.2     35.0   174.2   895.2
      11            319      660.9     764.6      1.16    0.48    593.0     21.1   150.5   894.0
      12            304      706.5     871.7      1.23    0.55    642.5     70.6   158.6
      13            229      572.1     686.4      1.20    0.43    530.3     15.2   140.8
      14          quiet        0.0       0.0         -    0.00      0.0      0.0     0.0
    quiet days: 0.000% of the first sync (target under 1%: met)
    runs between changes: at most 0.044% of the first sync a day (target under 1%: met)
    changed days: 8,998.9 KB stored for 7,525.8 KB of changed JSON, 1.20x (aim: about 1x);
    days 1-11: 7,440.8 KB (1.19x) against 8,478.9 KB (1.36x) before

A day with few changes stores more than they weigh (days 6 and 8): list pages whose records
shift as records are added re-read as new page versions, each a small splice (about 200
bytes, the invoices' 355 pages every night), and the nightly's share is about 110 to 160 KB a
day whatever changed. Day 9's nightly (285 KB) is where page chains reach `MAX_CHAIN` (a page
changed twice a day for eight days) and are kept whole again.

The medium firm, `days --size medium --days 8 --quiet-every 7 --later 1`, in one session: the
code before page id splices stored 865.9 KB for 786.1 KB of changed JSON (1.10x), a page
kept as an id splice 808.0 KB (1.03x), and the shorter of splice and runs 768.1 KB (0.98x);
timesheet pages 135.5 -> 73.1 KB, work item pages 93.8 -> 71.8 KB, invoice pages 91.0 ->
105.7 (splice) -> 78.0 KB.

Measured before page id splices, the medium firm over 30 days (the drift it shows came from
pages kept whole as their ids fragmented; shared 2-core machine, load 3-6; pages of 100; seed
0; the code before unchanged re-reads were only noted read, which stores the same raw
versions):

    medium firm, `days --size medium --days 30 --quiet-every 7` (`--later 11`): first sync
    26,041 raw rows, 21,953.4 KB stored (records' JSON 37,825.9 KB); first quiet
    incremental (its windows' first reads) +56.5 KB
     day Karbon changes changed KB stored KB x changed % first 1st incr 11 later nightly
       1            152      151.6     174.0      1.15    0.79    146.6      1.1    26.4
       2             68      141.1     129.2      0.92    0.59    106.1      0.0    23.0
       3             79      180.5     180.3      1.00    0.82    148.3      3.8    28.1
       4             50      102.9     112.1      1.09    0.51     85.7      1.0    25.5
       5             45      131.0     122.9      0.94    0.56     99.9      0.0    23.0
       6             28       68.0      91.6      1.35    0.42     71.0      2.2    18.4
       7          quiet        0.0       0.0         -    0.00      0.0      0.0     0.0
       8             17       53.8      54.1      1.01    0.25     34.9      0.0    19.2
       9            161      150.4     167.2      1.11    0.76    129.8      0.0    37.4
      10             61      128.2     140.0      1.09    0.64    108.2      1.6    30.2
      11             52      138.2     149.4      1.08    0.68    116.4      0.9    32.1
      12             61      127.5     150.6      1.18    0.69    116.9      0.8    32.9
      13             64      155.5     155.4      1.00    0.71    124.3      0.5    30.5
      14          quiet        0.0       0.0         -    0.00      0.0      0.0     0.0
      15             33       92.0     118.1      1.28    0.54     90.3      1.4    26.3
      16             25       68.5      85.8      1.25    0.39     64.0      1.2    20.6
      17            155      144.1     190.9      1.32    0.87    143.6      2.4    45.0
      18             62      141.7     172.4      1.22    0.79    128.8      0.4    43.2
      19             70      140.7     185.7      1.32    0.85    140.5      3.5    41.6
      20             60      141.6     175.3      1.24    0.80    135.3      0.6    39.4
      21          quiet        0.0       0.0         -    0.00      0.0      0.0     0.0
      22             54      153.1     184.1      1.20    0.84    142.5      4.4    37.2
      23             32       74.0     110.2      1.49    0.50     82.3      1.9    26.1
      24             19       42.9      84.4      1.97    0.38     63.1      0.0    21.3
      25            144      162.6     219.8      1.35    1.00    170.9      1.1    47.8
      26             74      134.7     174.8      1.30    0.80    124.2      3.6    47.1
      27             62      130.1     162.5      1.25    0.74    120.1      2.6    39.7
      28          quiet        0.0       0.0         -    0.00      0.0      0.0     0.0
      29             60      156.1     181.9      1.17    0.83    137.6      2.4    41.9
      30             59      138.6     173.4      1.25    0.79    135.4      0.4    37.6
    30 days added 3,846.0 KB: 17.5% of the first sync
    quiet days: at most 0.000% of the first sync (target under 1%: met)
    runs between changes (11 incrementals a day): at most 0.020% of the first sync a day
    (target under 1%: met)
    changed days: 3,846.0 KB stored for 3,249.5 KB of changed JSON, 1.18x (aim: about 1x)
    stored over the days, by stream and kind: timesheets records 1,216 (983.9 KB),
    timesheets pages 1,025 (701.4 KB), work_items pages 1,238 (654.2 KB), invoices details
    361 (420.2 KB), invoices pages 1,438 (379.7 KB), work_items details 599 (334.6 KB),
    work_items records 599 (173.5 KB), invoices records 366 (141.1 KB), and 136.8 KB more.
    A changed day grows from about 1.0x to 1.2-1.3x over the month (day 24: 1.97x of a small
    change): pages re-read whole as records shift on them, and the nightly's share grows
    (25 KB -> 40-48 KB a day).

    The same day 1 as stored before: 192.5 KB (1.27x) with records kept as changes and pages
    whole; 230.6 KB (1.52x) with records whole (its timesheets records 113.6 KB of it); 309.9
    KB (2.04x) with details whole and one id per listed record; 331.6 KB before that.

    Before (busy machine, load 7-9, `--later 1`), large firm, `--size large --days 1` (run
    before page ids were kept as runs): first sync
    183,544 raw rows, 160,657.8 KB stored (records' JSON 295,559.5 KB); first quiet
    incremental +267.6 KB (0.17%); day 1 (stopped unfinished: an incremental took 3-6 minutes
    there): its first incremental stored 1,175.7 KB (0.73%), the next 12.7 KB, then nothing.
    30 days of the large firm were not run: its first sync alone took over 50 minutes here.

What the changes did and what remains, on the medium firm:
- First sync: 19,722 KB when pages were kept whole, 28,091 KB once a page's records were kept
  one by one (+42%: PostgreSQL compresses only values in rows over about 2 KB, a whole page but
  not a 1 KB record; lowering `toast_tuple_target` does not change that, tried), 22,168 KB
  once a detail kept only what it adds to its listed record, 21,952 KB now.
- A changed day was about 3x the changed list JSON because a re-read page stored 100 ids
  again when any record in it changed or shifted, details were kept whole, and the measure
  left the details' own changes out. Ids are now runs, details are changes, and the measure
  counts details.
- Then a timesheet was kept whole, every entry of its week, when one entry was added or
  billed (about half of a changed day), and a changed page kept its links again. A record
  and a page that changed are now kept as changes to their last version (a timesheet's
  entries as a splice of the last version's and the new ones): about 1x.
"""

import argparse
import asyncio
import multiprocessing
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import httpx
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine
from app.embedded import ServiceUrls, resolve_service_urls
from app.models import SyncKind
from app.settings import Settings
from app.sync.karbon.budget import BudgetRegistry
from app.worker import tune_worker_process, worker_context
from sandbox.app import create_sandbox_app
from sandbox.generator import SIZES
from sandbox.state import Sandbox, SandboxConfig
from tests.services import scratch_database
from tests.sync.conftest import FAST_RETRIES, connect_tenant, sync_now

FIRM = "Bench firm"
LATER_INCREMENTALS = 11
"""A day's incrementals after its first, at one every 2 hours."""
_FIGURES = text(
    """
SELECT count(*), coalesce(sum(fetch_count), 0),
       coalesce(sum(pg_column_size(body)), 0),
       coalesce(sum(pg_column_size(body)::bigint * fetch_count), 0)
FROM raw_responses WHERE tenant_id = :tenant
"""
)
_RECORD_JSON = text(
    """
SELECT 's' || user_key, md5(raw::text), octet_length(raw::text) FROM staff WHERE tenant_id = :tenant
UNION ALL SELECT 'S' || user_key, md5(raw_detail::text), octet_length(raw_detail::text)
    FROM staff WHERE tenant_id = :tenant AND raw_detail IS NOT NULL
UNION ALL SELECT 'c' || client_key, md5(raw::text), octet_length(raw::text)
    FROM clients WHERE tenant_id = :tenant
UNION ALL SELECT 'C' || client_key, md5(raw_detail::text), octet_length(raw_detail::text)
    FROM clients WHERE tenant_id = :tenant AND raw_detail IS NOT NULL
UNION ALL SELECT 'w' || work_item_key, md5(raw::text), octet_length(raw::text)
    FROM work_items WHERE tenant_id = :tenant
UNION ALL SELECT 'W' || work_item_key, md5(raw_detail::text), octet_length(raw_detail::text)
    FROM work_items WHERE tenant_id = :tenant AND raw_detail IS NOT NULL
UNION ALL SELECT 't' || timesheet_key, md5(raw::text), octet_length(raw::text)
    FROM timesheets WHERE tenant_id = :tenant
UNION ALL SELECT 'e' || time_entry_key, md5(raw::text), octet_length(raw::text)
    FROM time_entries WHERE tenant_id = :tenant
UNION ALL SELECT 'i' || invoice_key, md5(raw::text), octet_length(raw::text)
    FROM invoices WHERE tenant_id = :tenant
UNION ALL SELECT 'I' || invoice_key, md5(raw_detail::text), octet_length(raw_detail::text)
    FROM invoices WHERE tenant_id = :tenant AND raw_detail IS NOT NULL
UNION ALL SELECT 'D' || invoice_key, md5(data_lines::text), octet_length(data_lines::text)
    FROM invoices WHERE tenant_id = :tenant AND data_lines IS NOT NULL
      AND NOT raw_detail ? 'Data'
"""
)
"""Every record's list and detail JSON as Karbon sent it, each once: a time entry in its own
row (its timesheet's row leaves the entries out), an invoice's lines inside its detail, its
Data tab in its own column (or inside its detail, as kept before)."""
_ADDED_SINCE = text(
    """
SELECT stream, kind, count(*) AS rows, sum(pg_column_size(body)) AS bytes
FROM raw_responses WHERE tenant_id = :tenant AND id > :after
GROUP BY stream, kind ORDER BY bytes DESC
"""
)
_LAST_ID = text("SELECT coalesce(max(id), 0) FROM raw_responses WHERE tenant_id = :tenant")
_TIMESHEETS = text(
    """
SELECT (SELECT coalesce(sum(pg_column_size(raw)), 0) FROM timesheets WHERE tenant_id = :tenant),
       (SELECT coalesce(sum(pg_column_size(raw)), 0) FROM time_entries WHERE tenant_id = :tenant)
"""
)


@dataclass(frozen=True)
class Figures:
    rows_before: int
    rows_now: int
    bytes_before: int
    bytes_now: int
    timesheets_before: int
    timesheets_now: int


async def figures(sessions: async_sessionmaker[AsyncSession], tenant_id: UUID) -> Figures:
    async with sessions() as session:
        rows, reads, size, size_per_read = (
            await session.execute(_FIGURES, {"tenant": tenant_id})
        ).one()
        timesheets, entries = (await session.execute(_TIMESHEETS, {"tenant": tenant_id})).one()
    # Before, each timesheet's raw JSON also held its entries' JSON.
    return Figures(
        int(reads),
        int(rows),
        int(size_per_read),
        int(size),
        int(timesheets) + int(entries),
        int(timesheets),
    )


def show(label: str, numbers: Figures) -> None:
    print(
        f"{label:26}{numbers.rows_before:8}{numbers.rows_now:6}"
        f"{numbers.bytes_before / 1000:12.1f}{numbers.bytes_now / 1000:8.1f}"
        f"{numbers.timesheets_before / 1000:12.1f}{numbers.timesheets_now / 1000:8.1f}"
    )


@dataclass(frozen=True)
class Plan:
    days: int
    """Simulated days; 0 for `compare`."""
    quiet_every: int = 0
    """Every this many days, Karbon changes nothing (0: never)."""
    later: int = LATER_INCREMENTALS
    """Incrementals run after a day's first (11 at one every 2 hours)."""


@dataclass(frozen=True)
class Karbon:
    """The sandbox Karbon, served by a process of its own (see `served`)."""

    url: str
    sandbox: Sandbox
    """The firm as generated, for its keys; the served copy is the one that changes."""

    def advance(self, days: int) -> dict[str, int]:
        """Karbon's changes over `days` simulated days, made in the served sandbox."""
        response = httpx.post(
            f"{self.url}/_sandbox/tenants/{FIRM}/advance", json={"days": days}, timeout=600
        )
        response.raise_for_status()
        return dict(response.json()["changes"])


@contextmanager
def served(size: str, seed: int, page_size: int) -> Iterator[Karbon]:
    """The sandbox in a forked process: it generates the firm once, and the sync under test
    shares neither its CPU nor its GIL (in a thread, each request waited for hand-overs)."""
    config = SandboxConfig()
    config.update({"max_page_size": page_size, "rate_limit_enabled": False})
    sandbox = Sandbox.create((FIRM, size, seed), config=config, today=date(2026, 11, 2))
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(sandbox, listening), daemon=True
    )
    server.start()
    listening.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url)
        yield Karbon(url, sandbox)
    finally:
        server.terminate()
        server.join(timeout=30)


def _serve(sandbox: Sandbox, listening: socket.socket) -> None:
    config = uvicorn.Config(
        create_sandbox_app(sandbox), log_level="warning", access_log=False, lifespan="off"
    )
    uvicorn.Server(config).run(sockets=[listening])


def _wait_until_up(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{url}/_sandbox/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the sandbox did not start")


async def bench(karbon: Karbon, plan: Plan) -> None:
    settings = Settings(RECKONRY_ENV="test", RECKONRY_REDIS_PREFIX="reckonry-bench-storage")
    urls = resolve_service_urls(settings)
    async with scratch_database(urls.database_url) as database_url:
        await without_waiting_for_disk(database_url)
        settings = settings.model_copy(
            update={"karbon_base_url": karbon.url, "database_url": database_url}
        )
        engine = create_engine(database_url)
        try:
            async with worker_context(
                settings,
                ServiceUrls(database_url, urls.redis_url),
                budgets=BudgetRegistry(rate_per_second=400.0, max_in_flight=8),
                retry=FAST_RETRIES,
                request_timeout=httpx.Timeout(60.0),
                request_loop=False,
                engine=engine,
            ) as deps:
                await run({"deps": deps}, deps.sessions, settings, karbon, plan)
        finally:
            await engine.dispose()


async def without_waiting_for_disk(database_url: str) -> None:
    """Commits in the scratch database do not wait for the disk (`synchronous_commit`): what
    is stored is the same, and a sync commits every page and batch of details."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            name = (await connection.execute(text("SELECT current_database()"))).scalar_one()
            await connection.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    finally:
        await engine.dispose()


async def run(
    context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    karbon: Karbon,
    plan: Plan,
) -> None:
    """First sync and quiet incrementals, with simulated days when asked for."""
    tenant_id = await connect_tenant(sessions, settings, karbon.sandbox, FIRM)
    if plan.days:
        await over_days(context, sessions, tenant_id, karbon, plan)
    else:
        await compare(context, sessions, tenant_id)


async def compare(
    context: dict[str, Any], sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> None:
    print(f"{'':26}{'raw rows':>14}{'raw KB':>20}{'timesheets raw KB':>20}")
    print(f"{'after':26}{'before':>8}{'now':>6}{'before':>12}{'now':>8}{'before':>12}{'now':>8}")
    await sync_now(context, tenant_id)
    show("first sync", await figures(sessions, tenant_id))
    await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
    show("quiet incremental", await figures(sessions, tenant_id))
    await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
    show("second quiet incremental", await figures(sessions, tenant_id))


async def record_json(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID
) -> dict[str, tuple[str, int]]:
    """Each record's list and detail JSON: (digest, bytes of JSON text), by record."""
    async with sessions() as session:
        rows = await session.execute(_RECORD_JSON, {"tenant": tenant_id})
        return {row[0]: (row[1], int(row[2])) for row in rows}


def changed_bytes(before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]]) -> int:
    """Bytes of JSON text of the records new or changed since `before`."""
    return sum(size for key, (digest, size) in after.items() if before.get(key, ("",))[0] != digest)


@dataclass
class Day:
    number: int
    changes: int | None
    """Karbon's record changes that day; None on a quiet day."""
    changed: int
    """Bytes of JSON text of the records that changed."""
    first_run: int
    """Raw bytes the day's first incremental stored."""
    between: int
    """Raw bytes the day's later incrementals stored: runs between Karbon's changes."""
    nightly: int
    seconds: float
    """Wall-clock time of the day's runs."""

    @property
    def stored(self) -> int:
        return self.first_run + self.between + self.nightly


async def over_days(
    context: dict[str, Any],
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: UUID,
    karbon: Karbon,
    plan: Plan,
) -> None:
    """After a first sync and one quiet incremental, each simulated day: Karbon's usual
    changes (none on a quiet day), 12 incrementals (every 2 hours) and the nightly full run."""
    began = time.monotonic()
    await sync_now(context, tenant_id)
    took = time.monotonic() - began
    first = await figures(sessions, tenant_id)
    versions = await record_json(sessions, tenant_id)
    json_bytes = sum(size for _, size in versions.values())
    print(
        f"first sync ({took:.0f} s): {first.rows_now:,} raw rows, "
        f"{first.bytes_now / 1000:,.1f} KB stored "
        f"({first.bytes_before / 1000:,.1f} KB storing every read); "
        f"records' JSON {json_bytes / 1000:,.1f} KB"
    )
    await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
    previous = await figures(sessions, tenant_id)
    async with sessions() as session:
        warm = int((await session.execute(_LAST_ID, {"tenant": tenant_id})).scalar_one())
    print(
        f"first quiet incremental (its windows' first reads): "
        f"+{(previous.bytes_now - first.bytes_now) / 1000:.1f} KB"
    )
    print(
        f"{'day':>4}{'Karbon changes':>15}{'changed KB':>11}{'stored KB':>10}{'x changed':>10}"
        f"{'% first':>8}{'1st incr':>9}{f'{plan.later} later':>9}{'nightly':>8}{'s':>6}"
    )
    measured: list[Day] = []
    for number in range(1, plan.days + 1):
        quiet = plan.quiet_every > 0 and number % plan.quiet_every == 0
        changes = None if quiet else record_changes(karbon.advance(1))
        start, began = previous.bytes_now, time.monotonic()
        await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
        after_first = (await figures(sessions, tenant_id)).bytes_now
        for _ in range(plan.later):
            await sync_now(context, tenant_id, SyncKind.INCREMENTAL)
        after_between = (await figures(sessions, tenant_id)).bytes_now
        await sync_now(context, tenant_id, SyncKind.FULL)
        now = await figures(sessions, tenant_id)
        later_versions = await record_json(sessions, tenant_id)
        day = Day(
            number,
            changes,
            changed_bytes(versions, later_versions),
            after_first - start,
            after_between - after_first,
            now.bytes_now - after_between,
            time.monotonic() - began,
        )
        show_day(day, first.bytes_now)
        measured.append(day)
        previous, versions = now, later_versions
    summarize(measured, first.bytes_now, plan.later)
    await show_added(sessions, tenant_id, warm)


async def show_added(
    sessions: async_sessionmaker[AsyncSession], tenant_id: UUID, after: int
) -> None:
    """What the days stored, by stream and kind of version."""
    async with sessions() as session:
        rows = (await session.execute(_ADDED_SINCE, {"tenant": tenant_id, "after": after})).all()
    print(
        "stored over the days, by stream and kind: "
        + ", ".join(
            f"{row.stream} {row.kind}s {row.rows:,} ({int(row.bytes) / 1000:,.1f} KB)"
            for row in rows
        )
    )


def show_day(day: Day, first: int) -> None:
    ratio = f"{day.stored / day.changed:10.2f}" if day.changed else f"{'-':>10}"
    print(
        f"{day.number:4}{'quiet' if day.changes is None else day.changes:>15}"
        f"{day.changed / 1000:11.1f}{day.stored / 1000:10.1f}{ratio}"
        f"{100 * day.stored / first:8.2f}{day.first_run / 1000:9.1f}{day.between / 1000:9.1f}"
        f"{day.nightly / 1000:8.1f}{day.seconds:6.0f}"
    )


def summarize(days: list[Day], first: int, later: int) -> None:
    """The issue's targets, met or not."""
    quiet = [day for day in days if day.changes is None]
    changed = [day for day in days if day.changes is not None and day.changed]
    total = sum(day.stored for day in days)
    share = 100 * total / first
    minutes = sum(day.seconds for day in days) / 60
    print(
        f"{len(days)} days added {total / 1000:,.1f} KB: {share:.1f}% of the first sync "
        f"(their runs took {minutes:.1f} minutes)"
    )
    worst_quiet = max((day.stored for day in quiet), default=None)
    if worst_quiet is not None:
        print(
            f"quiet days: at most {100 * worst_quiet / first:.3f}% of the first sync "
            + _met(worst_quiet < first / 100)
        )
    worst_between = max(day.between for day in days)
    print(
        f"runs between changes ({later} incrementals a day): at most "
        f"{100 * worst_between / first:.3f}% of the first sync a day "
        f"{_met(worst_between < first / 100)}"
    )
    if changed:
        stored, changed_json = sum(d.stored for d in changed), sum(d.changed for d in changed)
        print(
            f"changed days: {stored / 1000:,.1f} KB stored for {changed_json / 1000:,.1f} KB of "
            f"changed JSON, {stored / changed_json:.2f}x (aim: about 1x)"
        )


def _met(met: bool) -> str:
    return "(target under 1%: met)" if met else "(target under 1%: NOT met)"


def record_changes(changes: dict[str, int]) -> int:
    """The records the sandbox created, edited or deleted in a day (its minutes logged are a
    sum, not a record)."""
    return sum(n for stat, n in changes.items() if stat != "minutes_logged")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare_command = commands.add_parser("compare", help="first sync and quiet incrementals")
    days_command = commands.add_parser("days", help="simulated days of syncs, per day")
    for command, size, seed in ((compare_command, "tiny", 3), (days_command, "small", 0)):
        command.add_argument("--size", nargs="+", choices=sorted(SIZES), default=[size])
        command.add_argument("--seed", type=int, default=seed)
        command.add_argument("--page-size", type=int, default=100)
    days_command.add_argument("--days", type=_positive, default=3)
    days_command.add_argument(
        "--later",
        type=int,
        default=LATER_INCREMENTALS,
        help="incrementals after each day's first (default 11: every 2 hours)",
    )
    days_command.add_argument(
        "--quiet-every",
        type=int,
        default=3,
        help="every N-th day Karbon changes nothing (0: never)",
    )
    args = parser.parse_args()
    plan = Plan(args.days, args.quiet_every, args.later) if args.command == "days" else Plan(0)
    tune_worker_process()  # as `reckonry worker` does
    for size in args.size:
        print(f"== {size} firm, seed {args.seed}, pages of {args.page_size} ==", flush=True)
        with served(size, args.seed, args.page_size) as karbon:
            asyncio.run(bench(karbon, plan))


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


if __name__ == "__main__":
    main()
