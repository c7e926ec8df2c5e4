from arq.connections import ArqRedis

from app.embedded import ServiceUrls
from app.settings import Settings
from app.worker import create_worker


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
