import gc
import sys
import threading

import pytest
from arq.connections import ArqRedis

from app.embedded import ServiceUrls
from app.settings import Settings
from app.worker import (
    GIL_SWITCH_INTERVAL_SECONDS,
    YOUNG_COLLECTION_THRESHOLD,
    create_worker,
    tune_worker_process,
)


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
    request_loop = worker.ctx["karbon"].request_loop
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
