"""The arq worker: background jobs (syncs, report refreshes) and cron schedules.

Every job function is listed in `JOBS`, every schedule in `CRON_JOBS`.
"""

import gc
import sys
from typing import Any

from arq import Worker
from arq.cron import CronJob, cron

from app.db import create_engine, create_sessionmaker
from app.embedded import ServiceUrls
from app.redis_pool import create_redis
from app.reports.jobs import refresh_reports
from app.secrets import resolve_secrets
from app.settings import Settings
from app.sync.access import KarbonAccess
from app.sync.jobs import run_sync, schedule_syncs


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


JOBS: list[Any] = [ping, run_sync, refresh_reports]
CRON_JOBS: list[CronJob] = [cron(schedule_syncs, second=0, run_at_startup=True, unique=True)]


def create_worker(
    settings: Settings, urls: ServiceUrls, *, handle_signals: bool = True, burst: bool = False
) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        ctx["secrets"] = resolve_secrets(settings)
        ctx["karbon"] = KarbonAccess.from_settings(settings)
        # A busy worker queues its page commits rather than failing syncs: many tenants'
        # streams share the pool, and waiting only slows them down.
        ctx["engine"] = create_engine(urls.database_url, pool_size=20, pool_timeout=600)
        ctx["sessions"] = create_sessionmaker(ctx["engine"])

    async def shutdown(ctx: dict[str, Any]) -> None:
        engine = ctx.get("engine")
        if engine is not None:
            await engine.dispose()
        karbon = ctx.get("karbon")
        if karbon is not None:
            karbon.close()

    return Worker(
        functions=JOBS,
        cron_jobs=CRON_JOBS,
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
