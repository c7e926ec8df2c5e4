"""Every Prometheus metric of Reckonry, defined here and nowhere else.

All live in prometheus_client's default registry: the API serves it at `GET /metrics`, a
worker on its own port (`RECKONRY_WORKER_METRICS_PORT`), and the all-in-one start (`up`,
`demo`), where API and worker share a process, at `GET /metrics` alone. The README lists
every metric; a test keeps that list and this module in step.

No label may grow with the data: no tenant, run or record id. Karbon endpoints are named
by their path template (`/v3/WorkItems/{key}`), never by a URL holding ids.
"""

import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

# -- the API ----------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "reckonry_http_requests_total", "HTTP requests served", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "reckonry_http_request_duration_seconds", "HTTP request latency", ["method", "route"]
)

# -- sync runs (worker) -----------------------------------------------------------------

_RUN_SECONDS_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400)

SYNC_RUNS = Counter(
    "reckonry_sync_runs_total",
    "Sync runs this worker ended, by kind (initial, incremental, full), trigger (connect, "
    "manual, schedule) and outcome (succeeded, failed, auth_failed, permission_denied, "
    "cancelled, not_connected, lock_lost, interrupted)",
    ["kind", "trigger", "outcome"],
)
SYNC_RUN_DURATION = Histogram(
    "reckonry_sync_run_duration_seconds",
    "Time this worker spent on a sync run, whatever its outcome (a resumed run counts each "
    "worker's part)",
    ["kind"],
    buckets=_RUN_SECONDS_BUCKETS,
)
SYNC_RUNS_IN_PROGRESS = Gauge(
    "reckonry_sync_runs_in_progress", "Sync runs this worker is running now", ["kind"]
)
SYNC_LOCKS_HELD = Gauge(
    "reckonry_sync_locks_held", "Tenant sync locks this process holds now (one per running sync)"
)
SYNC_LOCK_CONTENDED = Counter(
    "reckonry_sync_lock_contended_total",
    "Sync jobs that did not run because another worker held the tenant's lock",
)
SYNC_LOCKS_LOST = Counter(
    "reckonry_sync_locks_lost_total",
    "Tenant sync locks that expired or were taken while this process still held them",
)

# -- Karbon requests --------------------------------------------------------------------

KARBON_REQUESTS = Counter(
    "reckonry_karbon_requests_total",
    "Requests sent to Karbon, by endpoint (path template) and HTTP status ('error' when no "
    "answer came: timeout, connection failure)",
    ["endpoint", "status"],
)
KARBON_RETRIES = Counter(
    "reckonry_karbon_retries_total",
    "Karbon requests repeated, by reason (throttled, server_error, transport_error, "
    "malformed_json)",
    ["reason"],
)
KARBON_RETRY_AFTER = Histogram(
    "reckonry_karbon_retry_after_seconds",
    "Pauses a 429 imposed on a tenant's requests (Karbon's Retry-After, capped): the count is "
    "the 429s retried, the sum the seconds waited",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
)
KARBON_REQUEST_RATE = Gauge(
    "reckonry_karbon_requests_per_second",
    "Karbon requests answered per second, all tenants of this process, over the last 10 s",
)

# -- the job queue (worker) -------------------------------------------------------------

QUEUE_JOBS_WAITING = Gauge(
    "reckonry_queue_jobs_waiting",
    "Jobs due in the queue that no worker has started yet (read every 15 s by each worker)",
)
QUEUE_OLDEST_JOB_AGE = Gauge(
    "reckonry_queue_oldest_job_age_seconds",
    "How long the oldest waiting job has been due (0 when none waits)",
)
WORKER_REDIS_UP = Gauge(
    "reckonry_worker_redis_up",
    "1 while the worker's last poll of the job queue reached Redis, 0 while Redis is unreachable",
)
WORKER_REDIS_ERRORS = Counter(
    "reckonry_worker_redis_errors_total",
    "Polls of the job queue that failed because Redis was unreachable (the worker retries)",
)

# -- report refreshes (worker) ----------------------------------------------------------

REPORT_REFRESH_DURATION = Histogram(
    "reckonry_report_refresh_duration_seconds",
    "Time to rebuild one tenant's report tables",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
REPORT_REFRESH_FAILURES = Counter(
    "reckonry_report_refresh_failures_total", "Report refresh jobs that raised an error"
)

# -- stored data (worker: the storage job) ---------------------------------------------
# Totals over every firm as last measured; per-firm figures are in GET /api/v1/ops/tenants.

STORAGE_RAW_ROWS = Gauge(
    "reckonry_storage_raw_rows", "Raw Karbon responses kept, all firms (one per distinct body)"
)
STORAGE_RAW_BYTES = Gauge(
    "reckonry_storage_raw_bytes", "Bytes of the raw Karbon bodies kept, all firms, as stored"
)
STORAGE_NORMALIZED_ROWS = Gauge(
    "reckonry_storage_normalized_rows", "Rows of the synced Karbon tables, all firms"
)
STORAGE_NORMALIZED_BYTES = Gauge(
    "reckonry_storage_normalized_bytes", "Bytes of the synced Karbon tables' rows, all firms"
)
STORAGE_RAW_BYTES_PER_DAY = Gauge(
    "reckonry_storage_raw_bytes_per_day",
    "Bytes of raw bodies stored in the 24 h before the last measure, all firms",
)
STORAGE_LARGEST_FIRM_BYTES = Gauge(
    "reckonry_storage_largest_firm_bytes",
    "Raw and normalized bytes of the firm that keeps the most (which firm: the ops endpoint)",
)
STORAGE_MEASURED_AT = Gauge(
    "reckonry_storage_measured_timestamp_seconds", "When the storage figures were last measured"
)
RAW_PRUNED_ROWS = Counter(
    "reckonry_raw_pruned_rows_total", "Superseded raw Karbon responses this worker pruned"
)
RAW_PRUNED_BYTES = Counter(
    "reckonry_raw_pruned_bytes_total", "Bytes of the superseded raw responses this worker pruned"
)
RAW_PRUNED_AT = Gauge(
    "reckonry_raw_last_prune_timestamp_seconds", "When this worker last ran the raw prune"
)


class RecentRate:
    """Events per second over the last `seconds` whole seconds, one bucket per second.

    Counting is a few integer operations and takes no lock: it runs on the thread of one event
    loop per process. A count racing another thread may be lost, which a rate gauge can bear.
    """

    def __init__(self, seconds: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        # One bucket more than the window: the current, still filling second.
        self._second_of = [-1] * (seconds + 1)
        self._count = [0] * (seconds + 1)

    def note(self) -> None:
        second = int(self._clock())
        slot = second % len(self._count)
        if self._second_of[slot] != second:
            self._second_of[slot] = second
            self._count[slot] = 0
        self._count[slot] += 1

    def per_second(self) -> float:
        now = int(self._clock())
        oldest = now - self._seconds
        counted = sum(
            count
            for second, count in zip(self._second_of, self._count, strict=True)
            if oldest <= second < now
        )
        return counted / self._seconds


_karbon_answers = RecentRate()
KARBON_REQUEST_RATE.set_function(_karbon_answers.per_second)


def count_karbon_request(endpoint: str, status: str) -> None:
    """One request to Karbon ended, with an HTTP status or 'error'."""
    KARBON_REQUESTS.labels(endpoint, status).inc()
    _karbon_answers.note()
