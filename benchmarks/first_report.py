"""A large firm's first sync in Karbon time: when its first report is whole in hours and cost,
and when the whole report is in.

    uv run python benchmarks/first_report.py [--size large] [--lines-in-list | --no-lines-in-list]

Karbon time is a virtual clock: requests made ÷ 1.8 (the budget), as if every request were
paced at 1.8 req/s, so the first sync of the large sandbox firm (eleven hours of Karbon time)
runs in minutes. The sandbox Karbon runs in its own process with no latency and no rate limit;
the sync is the worker's own job code (`run_sync`) with a budget far above 1.8 req/s, against a
scratch database. A compensation is entered for every staff member first, as a firm does.

The clock assumes the budget is the bottleneck, so list paging wants every turn. Detail calls
are background requests, which take only the turns no other request wants: under that
assumption they get none until every list is in, and the benchmark holds them until then
(`ListsFirstBudgets`). Without the hold, with no budget to wait for, they would run beside the
lists and the clock would count them against the first report.

Printed:
- the plan minimum (`sync_engine.py plan`'s count) and its floor in Karbon time;
- the first partial report: the Karbon time at which every list is in and every user's
  detail (capacity) has landed. There the tenant's budget is held (the requests in flight
  land), the real report refresh runs on the database and the client profitability report
  (whole history, by client) is checked: every client with time has all its hours (as the
  sandbox holds them) and a cost, no hour lacks a compensation, and hours, cost and the hours
  priced at the default capacity (users Karbon gives none) are those of the complete report
  at the end. Target: 15 minutes of Karbon time;
- the complete report: the Karbon time at which the sync ended. Target: the plan minimum ÷ 1.8,
  within 1%.

Last measured on 2 cores shared with other work (load average 4 to 8), the large firm, invoice
list carrying lines, detail calls held until every list is in: plan minimum 39,669 requests
(6.12 h); first partial report at 1,278 requests = 11.8 min of Karbon time (1,128 list pages +
150 users' details; 5.6 min of wall time), where all 5,174 clients with time had all their
hours and a cost, none without compensation, each equal to the complete report's; complete
report at 39,669 requests = 6.12 h of Karbon time (+0.00% of the plan minimum), 14.5 min of
wall time.

Polling the run every 50 ms puts the partial point a few requests late at most (printed as the
resolution). Uses DATABASE_URL / REDIS_URL when set, the embedded servers otherwise.
"""

import argparse
import asyncio
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sync_engine import BUDGET, PAGE, plan_minimum

from app import event_loops
from app.db import create_engine, create_sessionmaker, unit_of_work
from app.embedded import ServiceUrls, resolve_service_urls
from app.models import CompensationPeriod, SyncKind, SyncRun, SyncTrigger
from app.reports.refresh import RefreshOutcome, refresh_reports
from app.reports.service import ProfitabilityQuery, client_profitability, report_context
from app.settings import Settings
from app.sync.control import request_sync
from app.sync.jobs import run_sync
from app.sync.karbon.budget import BudgetRegistry, TenantBudget
from app.worker import WorkerContext, tune_worker_process, worker_context
from sandbox.generator import generate_firm
from sandbox.model import Firm
from sandbox.process import free_port, sandbox_command, served_sandbox
from tests.factories import connect_karbon, create_tenant
from tests.services import scratch_database

FIRST_REPORT_TARGET_MINUTES = 15
POLL_SECONDS = 0.05
HOLD_SECONDS = 2.0
"""The budget is held in these steps, renewed each second, while the partial report refreshes."""


@contextmanager
def sandbox_process(size: str, lines_in_list: bool) -> Iterator[str]:
    """The sandbox Karbon in its own process: no latency, no rate limit."""
    port = free_port()
    command = sandbox_command(
        "--size", size, "--port", str(port), "--latency", "none", "--no-rate-limit",
        "--page-size", str(PAGE),
        "--invoice-list-line-items" if lines_in_list else "--no-invoice-list-line-items",
    )  # fmt: skip
    with served_sandbox(command, port) as sandbox:
        yield sandbox.base_url


class ListsFirstBudget(TenantBudget):
    """A budget whose background requests wait until `lists_in` is set."""

    def __init__(self, lists_in: threading.Event, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lists_in = lists_in

    @asynccontextmanager
    async def slot(self, *, background: bool = False) -> AsyncIterator[Any]:
        # Set from the watcher's thread, so polled rather than awaited as an asyncio.Event.
        while background and not self.lists_in.is_set():  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)
        async with super().slot(background=background) as leaving:
            yield leaving


class ListsFirstBudgets(BudgetRegistry):
    """Far above 1.8 req/s (Karbon time is counted, not waited), with background requests held
    until `lists_in` is set: the turns they would take at 1.8 req/s while lists page."""

    def __init__(self) -> None:
        super().__init__(rate_per_second=1000.0)
        self.lists_in = threading.Event()
        self.budget_type = functools.partial(ListsFirstBudget, self.lists_in)


@asynccontextmanager
async def scratch_worker(karbon_url: str) -> AsyncIterator[tuple[WorkerContext, str]]:
    settings = Settings(RECKONRY_ENV="test", KARBON_BASE_URL=karbon_url)
    urls = resolve_service_urls(settings)
    async with (
        scratch_database(urls.database_url) as database_url,
        worker_context(
            settings, ServiceUrls(database_url, urls.redis_url), budgets=ListsFirstBudgets()
        ) as deps,
    ):
        yield deps, database_url


async def connected_firm(deps: WorkerContext, sandbox_tenant: dict[str, Any], firm: Firm) -> UUID:
    """A Reckonry firm holding the sandbox's keys, with every staff member's compensation."""
    tenant_id = await create_tenant(deps.sessions, "First report LLP")
    await connect_karbon(
        deps.sessions,
        deps.secrets,
        tenant_id,
        sandbox_tenant["access_key"],
        sandbox_tenant["bearer_token"],
    )
    async with unit_of_work(deps.sessions) as session:
        for index, user in enumerate(firm.users.values()):
            session.add(
                CompensationPeriod(
                    tenant_id=tenant_id,
                    staff_key=user.key,
                    effective_from=firm.history_start,
                    annual_amount=Decimal(60_000 + 1_000 * (index % 40)),
                )
            )
    return tenant_id


def lists_in(progress: dict[str, Any]) -> bool:
    streams = progress.values()
    return len(progress) == 6 and all(s.get("state") in ("listed", "done") for s in streams)


def hours_whole(progress: dict[str, Any]) -> bool:
    """Every list in, every user's detail (capacity) landed."""
    return lists_in(progress) and progress.get("users", {}).get("state") == "done"


@dataclass
class Point:
    requests: int
    before: int
    """Requests at the poll before: the point lies between."""

    @property
    def karbon_minutes(self) -> float:
        return self.requests / BUDGET / 60


async def watch(
    sessions: async_sessionmaker[AsyncSession],
    run_id: UUID,
    worker: asyncio.Task[str],
    budgets: ListsFirstBudgets,
) -> Point | None:
    """The requests made when the report's hours and cost became whole; detail calls are let
    go once every list is in."""
    before = 0
    while not worker.done():
        async with sessions() as session:
            run = await session.get(SyncRun, run_id)
            assert run is not None
            requests, progress = run.requests_made, dict(run.progress)
        if lists_in(progress):
            budgets.lists_in.set()
        if hours_whole(progress):
            return Point(requests, before)
        before = requests
        await asyncio.sleep(POLL_SECONDS)
    return None


ClientFigures = dict[str, tuple[int, Decimal]]


def _refresh_in_own_loop(database_url: str, tenant_id: UUID) -> RefreshOutcome:
    """The report refresh on a thread and event loop of its own, as another process would run
    it: its CPU-bound evaluation must not stall the sync's loop (its lock renewal included)."""

    async def refresh() -> RefreshOutcome:
        engine = create_engine(database_url)
        try:
            return await refresh_reports(create_sessionmaker(engine), tenant_id)
        finally:
            await engine.dispose()

    return asyncio.run(refresh())


async def client_report(
    sessions: async_sessionmaker[AsyncSession], database_url: str, tenant_id: UUID, firm: Firm
) -> "Report":
    """The real refresh, then the client report over all history: per client (minutes, cost),
    and the minutes without compensation and at the default capacity."""
    outcome = await asyncio.to_thread(_refresh_in_own_loop, database_url, tenant_id)
    print(f"    report refresh: {outcome.facts} facts in {outcome.seconds:.1f} s")
    async with sessions() as session:
        context = await report_context(session, tenant_id)
        query = ProfitabilityQuery(start=firm.history_start, end=firm.today)
        _, ranking = await client_profitability(session, context, query, limit=None)
    figures = {str(g.key): (g.measures.minutes, g.measures.cost) for g in ranking.groups}
    totals = ranking.totals.measures
    return figures, totals.uncosted_minutes, totals.defaulted_capacity_minutes


def minutes_by_client(firm: Firm) -> dict[str, int]:
    """What the sandbox holds: each client's minutes (its work item's client, else the
    entry's), whole history."""
    minutes: dict[str, int] = {}
    for entry in firm.time_entries():
        work_item = firm.work_items.get(entry.work_item_key or "")
        client = work_item.client_key if work_item else entry.client_key
        minutes[client] = minutes.get(client, 0) + entry.minutes
    return minutes


Report = tuple[ClientFigures, int, int]


def check_partial(partial: Report, complete: Report, firm: Firm) -> bool:
    """Every client with time has all its hours and a cost, all final."""
    figures, uncosted, defaulted = partial
    expected = minutes_by_client(firm)
    short = [c for c, m in expected.items() if figures.get(c, (0, Decimal(0)))[0] != m]
    no_cost = [c for c in expected if figures.get(c, (0, Decimal(0)))[1] <= 0]
    moved = [c for c in expected if figures.get(c) != complete[0].get(c)]
    print(f"    clients with time: {len(expected)}; hours short: {len(short)}; "
          f"no cost: {len(no_cost)}; hours or cost other than the complete report's: "
          f"{len(moved)}; minutes without compensation: {uncosted}; minutes at the default "
          f"capacity: {defaulted} (complete report: {complete[2]})")  # fmt: skip
    return not short and not no_cost and not moved and uncosted == 0 and defaulted == complete[2]


async def _hold(budget: TenantBudget, seconds: float) -> None:
    await budget.pause(seconds)


@asynccontextmanager
async def budget_held(deps: WorkerContext, tenant_id: UUID) -> AsyncIterator[None]:
    """No request of the tenant leaves meanwhile (as after a 429): the sync stands still."""
    loop = deps.karbon.request_loop
    assert loop is not None
    budget = deps.karbon.budgets.for_tenant(str(tenant_id), loop.loop)
    released = asyncio.Event()

    async def keep_holding() -> None:
        while not released.is_set():
            await loop.run(_hold, budget, HOLD_SECONDS)
            with suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), HOLD_SECONDS / 2)

    holder = asyncio.create_task(keep_holding())
    try:
        yield
    finally:
        released.set()
        await holder


async def requests_made(sessions: async_sessionmaker[AsyncSession], run_id: UUID) -> int:
    async with sessions() as session:
        query = select(SyncRun.requests_made).where(SyncRun.id == run_id)
        return int((await session.execute(query)).scalar_one())


async def first_sync(size: str, lines_in_list: bool) -> None:
    with sandbox_process(size, lines_in_list) as base:
        async with httpx.AsyncClient() as http:
            [sandbox_tenant] = (await http.get(f"{base}/_sandbox/tenants", timeout=30)).json()
        today = date.fromisoformat(sandbox_tenant["today"])
        firm = generate_firm(size, sandbox_tenant["seed"], today=today)
        print(f"{size} firm: {firm.counts()}")
        minimum = plan_minimum(firm, lines_in_list=lines_in_list)
        where = "carries" if lines_in_list else "lacks"
        print(f"invoice list {where} lines; plan minimum {minimum} requests = "
              f"{minimum / BUDGET / 60:.1f} min of Karbon time at {BUDGET} req/s")  # fmt: skip
        async with scratch_worker(base) as (deps, database_url):
            point, partial, outcome = await sync_watched(deps, database_url, sandbox_tenant, firm)
            made = await requests_made(deps.sessions, outcome.run_id)
            print(f"complete report: sync {outcome.end} after {made} requests = "
                  f"{made / BUDGET / 3600:.2f} h of Karbon time; plan minimum / {BUDGET} = "
                  f"{minimum / BUDGET / 3600:.2f} h ({made / minimum - 1:+.2%}; target within "
                  f"1%); {outcome.wall_seconds:.0f} s of wall time")  # fmt: skip
            complete = await client_report(deps.sessions, database_url, outcome.tenant_id, firm)
            # Judged before the servers stop, so nothing at their end can lose the figures.
            verdict(point, partial, complete, outcome, made / minimum, firm)


def verdict(
    point: "Point | None",
    partial: "Report | None",
    complete: "Report",
    outcome: "Outcome",
    made_to_minimum: float,
    firm: Firm,
) -> None:
    if point is None or partial is None:
        print("the sync ended before its hours were whole: no partial report")
        return
    whole = check_partial(partial, complete, firm)
    met_first = whole and point.karbon_minutes <= FIRST_REPORT_TARGET_MINUTES
    met_complete = outcome.end == "succeeded" and abs(made_to_minimum - 1) <= 0.01
    print(f"partial report has every client's hours and cost, final: {whole}")
    print(f"targets: first report {'met' if met_first else 'NOT met'}; "
          f"complete report {'met' if met_complete else 'NOT met'}")  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    tenant_id: UUID
    run_id: UUID
    end: str
    wall_seconds: float


async def sync_watched(
    deps: WorkerContext, database_url: str, sandbox_tenant: dict[str, Any], firm: Firm
) -> tuple[Point | None, Report | None, Outcome]:
    """The first sync, as a worker runs it, with the partial report taken at its point."""
    tenant_id = await connected_firm(deps, sandbox_tenant, firm)
    async with unit_of_work(deps.sessions) as session:
        request = await request_sync(
            session, deps.redis, deps.settings, tenant_id,
            kind=SyncKind.INITIAL, trigger=SyncTrigger.MANUAL,
        )  # fmt: skip
    run_id = request.run.id
    wall = time.perf_counter()
    worker = asyncio.create_task(run_sync({"deps": deps}, str(run_id)))
    assert isinstance(deps.karbon.budgets, ListsFirstBudgets)
    point = await watch(deps.sessions, run_id, worker, deps.karbon.budgets)
    partial = None
    if point is not None:
        resolution = (point.requests - point.before) / BUDGET / 60
        print(f"first partial report (every list, every capacity): {point.requests} requests "
              f"= {point.karbon_minutes:.1f} min of Karbon time (resolution {resolution:.1f} "
              f"min; target <= {FIRST_REPORT_TARGET_MINUTES} min); "
              f"{time.perf_counter() - wall:.0f} s of wall time")  # fmt: skip
        async with budget_held(deps, tenant_id):
            await asyncio.sleep(1.0)  # the requests in flight land and commit
            print(f"    budget held at {await requests_made(deps.sessions, run_id)} requests")
            partial = await client_report(deps.sessions, database_url, tenant_id, firm)
    end = await worker
    while "lock lost" in end:  # a machine too busy to renew it: resumed, as a worker would
        print(f"    {end}")
        end = await run_sync({"deps": deps}, str(run_id))
    return point, partial, Outcome(tenant_id, run_id, end, time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large")
    parser.add_argument(
        "--lines-in-list", action=argparse.BooleanOptionalAction, default=True,
        help="whether the sandbox's invoice list honours $expand=LineItems",
    )  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("RECKONRY_LOG_LEVEL", "WARNING")
    tune_worker_process()
    event_loops.run(first_sync(args.size, args.lines_in_list))


if __name__ == "__main__":
    main()
