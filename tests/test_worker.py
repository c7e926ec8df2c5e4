import asyncio
import gc
import socket
import sys
import threading
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from redis.asyncio import Redis

from app.cli import _stop_worker
from app.embedded import ServiceUrls
from app.settings import Settings
from app.worker import (
    GIL_SWITCH_INTERVAL_SECONDS,
    YOUNG_COLLECTION_THRESHOLD,
    create_worker,
    read_queue,
    tune_worker_process,
    watch_queue,
)
from tests.metric_samples import sample
from tests.processes import free_port


async def test_a_worker_consumes_jobs_from_this_deployments_queue(
    settings: Settings, service_urls: ServiceUrls
) -> None:
    redis = ArqRedis.from_url(service_urls.redis_url)
    job = await redis.enqueue_job("ping", _queue_name=settings.queue_name)
    assert job is not None
    worker = create_worker(settings, service_urls, handle_signals=False, burst=True)
    worker.keep_result_s = 60
    await worker.async_run()
    await worker.close()
    assert await job.result(timeout=5) == "pong"
    assert worker.jobs_failed == 0
    await redis.aclose()


async def test_a_worker_stops_its_request_loop_when_it_shuts_down(
    settings: Settings, service_urls: ServiceUrls
) -> None:
    worker = create_worker(settings, service_urls, handle_signals=False, burst=True)
    await worker.async_run()  # runs startup, finds no job, stops
    request_loop = worker.ctx["deps"].karbon.request_loop
    assert request_loop.loop.is_running()  # started, as the first sync's client starts it
    assert any(t.name == "karbon-requests" for t in threading.enumerate())
    await worker.close()
    assert not any(t.name == "karbon-requests" for t in threading.enumerate())


def test_worker_tuning_sets_the_collector_and_gil_switching() -> None:
    before = (gc.get_threshold(), sys.getswitchinterval())
    try:
        tune_worker_process()
        assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD
        assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_SECONDS)
    finally:
        gc.set_threshold(*before[0])
        sys.setswitchinterval(before[1])


async def test_a_worker_serves_its_metrics_on_its_own_port_until_it_stops(
    settings: Settings, service_urls: ServiceUrls
) -> None:
    port = free_port()
    own_port = settings.model_copy(update={"worker_metrics_port": port})
    worker = create_worker(own_port, service_urls, handle_signals=False, burst=True)
    await worker.async_run()
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        for name in ("reckonry_sync_runs_total", "reckonry_karbon_requests_per_second"):
            assert name in response.text
        await worker.close()
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/metrics")


async def test_a_worker_beside_the_api_leaves_its_metrics_to_the_api(
    settings: Settings, service_urls: ServiceUrls
) -> None:
    port = free_port()
    own_port = settings.model_copy(update={"worker_metrics_port": port})
    worker = create_worker(
        own_port, service_urls, handle_signals=False, burst=True, serve_own_metrics=False
    )
    await worker.async_run()
    try:
        assert "metrics_server" not in worker.ctx
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
            pass
    finally:
        await worker.close()


async def test_a_taken_metrics_port_costs_the_metrics_not_the_worker(
    settings: Settings, service_urls: ServiceUrls
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        own_port = settings.model_copy(update={"worker_metrics_port": port})
        worker = create_worker(own_port, service_urls, handle_signals=False, burst=True)
        await worker.async_run()
        await worker.close()
    assert worker.ctx["metrics_server"] is None


async def test_queue_depth_counts_due_jobs_no_worker_has_started(
    settings: Settings, service_urls: ServiceUrls, redis: Redis
) -> None:
    arq = ArqRedis.from_url(service_urls.redis_url)
    queue = settings.queue_name
    assert await read_queue(arq, queue) == (0, 0.0)
    jobs = [await arq.enqueue_job("ping", _queue_name=queue) for _ in range(3)]
    jobs.append(await arq.enqueue_job("ping", _queue_name=queue, _defer_by=3600))  # not yet due
    ids = [job.job_id for job in jobs if job is not None]
    await arq.set(in_progress_key_prefix + ids[0], b"1", px=10_000)  # a worker started it
    await asyncio.sleep(0.05)

    waiting, oldest_age = await read_queue(arq, queue)

    assert waiting == 2
    assert 0.05 <= oldest_age < 5
    await arq.delete(in_progress_key_prefix + ids[0], *(job_key_prefix + id_ for id_ in ids))
    await arq.aclose()


async def test_the_queue_watch_updates_the_gauges_and_outlives_redis_errors(
    settings: Settings, service_urls: ServiceUrls, redis: Redis
) -> None:
    arq = ArqRedis.from_url(service_urls.redis_url)
    await arq.enqueue_job("ping", _queue_name=settings.queue_name)
    watch = asyncio.create_task(watch_queue(arq, settings.queue_name, every=0.01))
    try:
        async with asyncio.timeout(5):
            while sample("reckonry_queue_jobs_waiting") != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        watch.cancel()
    await arq.delete(settings.queue_name)
    await arq.aclose()

    unreachable = ArqRedis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    failing = asyncio.create_task(watch_queue(unreachable, settings.queue_name, every=0.01))
    await asyncio.sleep(0.2)
    assert not failing.done()  # kept trying
    failing.cancel()
    await unreachable.aclose()


async def test_stopping_an_in_process_worker_with_a_job_running_raises_nothing(
    settings: Settings, service_urls: ServiceUrls
) -> None:
    """`reckonry up` and `demo` stop their worker this way on Ctrl-C; a job still running
    (a sync, a scheduler tick) is cancelled, and the stop must not raise its CancelledError."""
    background = create_worker(
        settings, service_urls, handle_signals=False, serve_own_metrics=False
    )
    started = asyncio.Event()
    start = background.on_startup
    assert start is not None

    async def start_and_say_so(ctx: dict[str, Any]) -> None:
        await start(ctx)
        started.set()

    background.on_startup = start_and_say_so
    worker_task = asyncio.create_task(background.async_run())
    await started.wait()
    job = asyncio.create_task(asyncio.sleep(3600))
    background.tasks["a-running-job"] = job  # where arq keeps the jobs it runs

    await _stop_worker(background, worker_task)

    assert job.cancelled()
    assert worker_task.done()
