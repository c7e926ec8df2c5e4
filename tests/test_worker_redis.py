"""The worker and Redis: deployments sharing one Redis keep apart, and a Redis restart does not
stop a worker."""

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from arq.connections import ArqRedis

from app.embedded import ServiceUrls
from app.reports.queue import enqueue_refresh
from app.settings import Settings
from app.sync.control import enqueue_run
from app.worker import create_worker
from tests.metric_samples import sample
from tests.processes import free_port


def _deployment(settings: Settings, prefix: str) -> Settings:
    return settings.model_copy(update={"redis_key_prefix": prefix})


async def test_deployments_sharing_a_redis_each_run_their_own_scheduler(
    settings: Settings, service_urls: ServiceUrls
) -> None:
    deployments = [_deployment(settings, f"{settings.redis_key_prefix}-{n}") for n in range(3)]
    workers = [create_worker(d, service_urls, handle_signals=False) for d in deployments]
    now = datetime.now(UTC)
    try:
        for worker in workers:
            await worker.run_cron(now, delay=1)
        for deployment, worker in zip(deployments, workers, strict=True):
            queued = await worker.pool.queued_jobs(queue_name=deployment.queue_name)
            prefix = deployment.redis_key_prefix
            expected = [f"{prefix}:resume_orphaned_runs", f"{prefix}:schedule_syncs"]
            assert sorted(job.function for job in queued) == expected
    finally:
        for worker in workers:
            await worker.close()


async def test_every_redis_key_of_a_deployment_carries_its_prefix(
    settings: Settings, service_urls: ServiceUrls
) -> None:
    settings = _deployment(settings, f"keys-{uuid4().hex[:8]}")
    redis = ArqRedis.from_url(service_urls.redis_url)
    worker = create_worker(settings, service_urls, handle_signals=False)
    try:
        await enqueue_run(redis, settings, uuid4())
        await enqueue_run(redis, settings, uuid4(), attempt="resumed")
        await enqueue_refresh(redis, settings, uuid4())
        await worker.run_cron(datetime.now(UTC), delay=1)
        prefix = settings.redis_key_prefix
        keys = [key.decode() async for key in redis.scan_iter(match=f"*{prefix}*")]
        job_keys = [key for key in keys if key.startswith("arq:job:")]
        assert len(job_keys) == 5  # two syncs, a refresh, two schedules
        assert all(key.startswith(f"arq:job:{prefix}:") for key in job_keys)
        await redis.delete(*keys)
    finally:
        await worker.close()
        await redis.aclose()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator["RedisServer"]:
    server = RedisServer(tmp_path, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RedisServer:
    """A redis-server of the test's own that keeps its data across a restart (append-only)."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is needed to restart Redis under a worker")
        persistent = ("--save", "", "--appendonly", "yes", "--dir", str(self.directory))
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", *persistent],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
            ).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


async def _until(condition_met: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition_met():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_worker_keeps_running_across_a_redis_restart(
    settings: Settings, service_urls: ServiceUrls, restartable_redis: RedisServer
) -> None:
    urls = ServiceUrls(database_url=service_urls.database_url, redis_url=restartable_redis.url)
    worker = create_worker(settings, urls, handle_signals=False)
    worker.poll_delay_s = 0.1
    running = asyncio.create_task(worker.async_run())
    client = ArqRedis.from_url(restartable_redis.url)

    async def queue_is_empty() -> bool:
        return await client.zcard(settings.queue_name) == 0

    errors_before = sample("reckonry_worker_redis_errors_total")
    try:
        await client.enqueue_job("ping", _queue_name=settings.queue_name)
        assert await _until(queue_is_empty, 10), "the worker did not consume a job"

        await client.shutdown(nosave=False)  # type: ignore[no-untyped-call]
        await asyncio.sleep(1.5)  # the worker's polls fail meanwhile
        assert not running.done(), "the worker stopped when Redis went away"
        restartable_redis.start()
        await client.aclose()
        client = ArqRedis.from_url(restartable_redis.url)

        await client.enqueue_job("ping", _queue_name=settings.queue_name)
        assert await _until(queue_is_empty, 20), "the worker consumed nothing after the restart"
        assert not running.done()
        assert sample("reckonry_worker_redis_errors_total") > errors_before
        assert sample("reckonry_worker_redis_up") == 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await client.aclose()
