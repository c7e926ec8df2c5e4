"""The arq worker: background jobs (syncs, report refreshes) and cron schedules.

Every job function is listed in `JOBS`, every schedule in `cron_jobs`.
"""

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import httpx
from arq import Worker
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.cron import CronJob, cron
from prometheus_client import start_http_server
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import create_engine, create_sessionmaker
from app.embedded import ServiceUrls
from app.metrics import (
    QUEUE_JOBS_WAITING,
    QUEUE_OLDEST_JOB_AGE,
    WORKER_REDIS_ERRORS,
    WORKER_REDIS_UP,
)
from app.redis_pool import create_redis
from app.reports.jobs import refresh_reports
from app.secrets import Secrets, resolve_secrets
from app.settings import Settings
from app.sync.access import KarbonAccess
from app.sync.jobs import ORPHAN_CHECK_SECONDS, resume_orphaned_runs, run_sync, schedule_syncs
from app.sync.karbon.budget import BudgetRegistry
from app.sync.karbon.client import DEFAULT_TIMEOUT
from app.sync.karbon.retry import RetryPolicy
from app.sync.retention import measure_storage, prune_raw_responses

logger = logging.getLogger(__name__)

QUEUE_READ_INTERVAL_SECONDS = 15.0

_WAITING_JOBS = """
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'WITHSCORES')
local waiting, oldest = 0, ARGV[1]
for i = 1, #due, 2 do
  if redis.call('exists', ARGV[2] .. due[i]) == 0 then
    waiting = waiting + 1
    if waiting == 1 then oldest = due[i + 1] end
  end
end
return {waiting, oldest}
"""
"""Due jobs no worker has started, and the oldest one's score. arq keeps a started job in
the queue (a sorted set scored by when it is due, in ms) until it ends, with an in-progress
key beside it."""


@dataclass(frozen=True)
class WorkerContext:
    """What the jobs use, built once when the worker starts and kept as `ctx["deps"]`.

    Features read it through their own protocols (`SyncJobDeps`, `RefreshJobDeps`), so they
    never import the worker.
    """

    settings: Settings
    secrets: Secrets
    karbon: KarbonAccess
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis

    async def close(self) -> None:
        await self.engine.dispose()
        self.karbon.close()


def worker_engine(urls: ServiceUrls) -> AsyncEngine:
    # A busy worker queues its page commits rather than failing syncs: many tenants'
    # streams share the pool, and waiting only slows them down.
    return create_engine(urls.database_url, pool_size=20, pool_timeout=600)


def bootstrap(
    settings: Settings,
    urls: ServiceUrls,
    redis: ArqRedis,
    *,
    karbon: KarbonAccess | None = None,
    engine: AsyncEngine | None = None,
) -> WorkerContext:
    """The jobs' context on `redis`; `karbon` and `engine` stand in for the worker's own."""
    if engine is None:
        engine = worker_engine(urls)
    return WorkerContext(
        settings=settings,
        secrets=resolve_secrets(settings),
        karbon=KarbonAccess.from_settings(settings, urls.redis_url) if karbon is None else karbon,
        engine=engine,
        sessions=create_sessionmaker(engine),
        redis=redis,
    )


@asynccontextmanager
async def worker_context(
    settings: Settings,
    urls: ServiceUrls,
    *,
    budgets: BudgetRegistry | None = None,
    retry: RetryPolicy = RetryPolicy(),
    request_timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    request_loop: bool = True,
    engine: AsyncEngine | None = None,
) -> AsyncIterator[WorkerContext]:
    """The jobs' context for running them outside a worker, on a Redis connection of its own.

    The Karbon options are `KarbonAccess.from_settings`'s (`request_timeout` is its
    `timeout`). A given `engine` stays the caller's to close; without one the worker's pool
    is opened. On leaving, or when assembling fails, what was opened here is closed in a
    worker's order: the pool, the Karbon access, then Redis.
    """
    async with AsyncExitStack() as opened:  # closed last-opened first
        redis = create_redis(urls.redis_url)
        opened.push_async_callback(redis.aclose)
        karbon = KarbonAccess.from_settings(
            settings,
            urls.redis_url,
            budgets=budgets,
            retry=retry,
            timeout=request_timeout,
            request_loop=request_loop,
        )
        opened.callback(karbon.close)
        if engine is None:
            engine = worker_engine(urls)
            opened.push_async_callback(engine.dispose)
        yield bootstrap(settings, urls, redis, karbon=karbon, engine=engine)


async def ping(ctx: dict[str, Any]) -> str:
    """Answers "pong": lets operators and tests prove a worker consumes the queue."""
    return "pong"


# The youngest generation is collected every 50,000 allocations instead of CPython's 700.
YOUNG_COLLECTION_THRESHOLD = 50_000
# How long a thread waiting for the GIL lets the running one keep it: CPython's is 5 ms.
GIL_SWITCH_INTERVAL_SECONDS = 0.0005


def tune_worker_process() -> None:
    """Set a worker process's garbage collector and thread switching for many concurrent syncs.

    A worker holds many tenants' pages and detail responses for seconds to a minute. At the
    default thresholds they reach the oldest generation within milliseconds, and the full
    collections that follow stopped the event loop for about 250 ms every few seconds, so
    every tenant's next request went late and its budget slipped. Collected less often, most
    pages die before they are promoted and full collections become rare.

    Requests are sent from their own thread (``RequestLoop``), idle most of the time while
    the main thread works. When a request's turn comes, that thread waits for the GIL until
    the main thread is made to let go; at 5 ms per hand-over, and several hand-overs per
    request, requests left tens of milliseconds late. The main thread is made to let go
    sooner only while the request thread asks; worker CPU per request stayed within the
    run-to-run spread of the benchmark.
    """
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 20, 10)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECONDS)


async def read_queue(redis: ArqRedis, queue_name: str) -> tuple[int, float]:
    """How many jobs wait in the queue, and for how many seconds the oldest has been due."""
    now_ms = int(time.time() * 1000)  # arq scores jobs by this clock
    waiting, oldest_ms = await redis.eval(  # type: ignore[misc]
        _WAITING_JOBS, 1, queue_name, str(now_ms), in_progress_key_prefix
    )
    return int(waiting), max(0.0, (now_ms - float(oldest_ms)) / 1000)


async def watch_queue(
    redis: ArqRedis, queue_name: str, every: float = QUEUE_READ_INTERVAL_SECONDS
) -> None:
    """Keep the queue gauges current until cancelled; a failed read waits for the next turn."""
    while True:
        try:
            waiting, oldest_age = await read_queue(redis, queue_name)
        except (RedisError, OSError) as error:
            logger.warning("could not read the job queue: %s", error)
        else:
            QUEUE_JOBS_WAITING.set(waiting)
            QUEUE_OLDEST_JOB_AGE.set(oldest_age)
        await asyncio.sleep(every)


def serve_metrics(host: str, port: int) -> WSGIServer | None:
    """Serve this process's metrics from a thread; a port in use costs the metrics, not the
    worker (say two workers on one host share the default port)."""
    try:
        server, _ = start_http_server(port, addr=host)
    except OSError as error:
        logger.warning(
            "worker metrics not served: %s:%s: %s (set RECKONRY_WORKER_METRICS_PORT to a free "
            "port, or 0 for none)",
            host,
            port,
            error,
        )
        return None
    logger.info("worker metrics at http://%s:%s/metrics", host, port)
    return server


async def stop_serving_metrics(server: WSGIServer) -> None:
    await asyncio.to_thread(server.shutdown)  # waits for its serving loop's next poll
    server.server_close()


JOBS: list[Any] = [ping, run_sync, refresh_reports]


def cron_jobs(settings: Settings) -> list[CronJob]:
    """The schedules, named in this deployment's namespace: arq makes a schedule's job id
    from its name and minute, and a job id taken by another deployment on the same Redis
    would be refused, so that deployment's scheduler would not run that minute."""
    return [
        cron(
            schedule_syncs,
            name=settings.job_id("schedule_syncs"),
            second=0,
            run_at_startup=True,
            unique=True,
        ),
        cron(
            resume_orphaned_runs,
            name=settings.job_id("resume_orphaned_runs"),
            second=ORPHAN_CHECK_SECONDS,
            run_at_startup=True,
            unique=True,
        ),
        cron(
            prune_raw_responses,
            name=settings.job_id("prune_raw_responses"),
            minute=17,
            second=30,
            unique=True,
        ),
        # After the nightly reconciliations (01:00 to 05:00 UTC), whose reads it counts.
        cron(
            measure_storage,
            name=settings.job_id("measure_storage"),
            hour=5,
            minute=41,
            second=0,
            unique=True,
        ),
    ]


REDIS_RETRY_MAX_SECONDS = 30.0


class ReconnectingWorker(Worker):
    """An arq worker whose polling outlives Redis going away.

    arq's poll loop ends at the first connection error, so a Redis restart stopped the
    worker for good: nothing queued ran until someone restarted it. Here a failed poll is
    logged and counted, and the next one waits, doubling up to 30 s; jobs already running
    carry on, the schedule is kept (a schedule whose job could not be queued is queued at
    the next poll that reaches Redis) and the queue is read again once Redis answers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redis_retry_delay = 0.0

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            await self._wait_for_redis(error)
        else:
            self._redis_reached()

    async def _wait_for_redis(self, error: Exception) -> None:
        self._redis_retry_delay = min(
            REDIS_RETRY_MAX_SECONDS, max(self.poll_delay_s, self._redis_retry_delay * 2)
        )
        WORKER_REDIS_UP.set(0)
        WORKER_REDIS_ERRORS.inc()
        logger.warning(
            "Redis unreachable, retrying in %.1f s: %s",
            self._redis_retry_delay,
            error,
            extra={"retry_in_seconds": self._redis_retry_delay},
        )
        await asyncio.sleep(self._redis_retry_delay)

    def _redis_reached(self) -> None:
        if self._redis_retry_delay:
            logger.info("Redis reachable again: the worker reads the queue")
            self._redis_retry_delay = 0.0
        WORKER_REDIS_UP.set(1)


def create_worker(
    settings: Settings,
    urls: ServiceUrls,
    *,
    handle_signals: bool = True,
    burst: bool = False,
    serve_own_metrics: bool = True,
) -> Worker:
    """An arq worker. It serves its metrics on `RECKONRY_WORKER_METRICS_PORT` unless
    `serve_own_metrics` is False: where an API in the same process serves them at /metrics."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["queue_watch"] = asyncio.create_task(watch_queue(ctx["redis"], settings.queue_name))
        if serve_own_metrics and settings.worker_metrics_port:
            ctx["metrics_server"] = serve_metrics(settings.api_host, settings.worker_metrics_port)
        ctx["deps"] = bootstrap(settings, urls, ctx["redis"])

    async def shutdown(ctx: dict[str, Any]) -> None:
        queue_watch = ctx.get("queue_watch")
        if queue_watch is not None:
            queue_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await queue_watch
        if (metrics_server := ctx.get("metrics_server")) is not None:
            await stop_serving_metrics(metrics_server)
        deps: WorkerContext | None = ctx.get("deps")
        if deps is not None:
            await deps.close()

    return ReconnectingWorker(
        functions=JOBS,
        cron_jobs=cron_jobs(settings),
        redis_pool=create_redis(urls.redis_url),
        queue_name=settings.queue_name,
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=handle_signals,
        burst=burst,
        max_jobs=200,
        job_timeout=24 * 3600,  # a large firm's first sync takes hours
        keep_result=0,
        allow_abort_jobs=True,
    )
