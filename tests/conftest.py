import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.api.app import create_app
from app.db import create_engine, create_sessionmaker
from app.embedded import ServiceUrls
from app.models import Base
from app.settings import Settings
from app.sync.karbon.budget import BudgetRegistry
from app.tenancy import password_work
from tests.mailbox import MAILBOX, Mailbox, smtp_server
from tests.services import scratch_database, test_service_urls


@pytest.fixture(scope="session", autouse=True)
def own_password_slots(tmp_path_factory: pytest.TempPathFactory) -> None:
    """This test run's password checks do not wait for (or shed because of) those of other
    runs on the same host."""
    password_work.use_slot_directory(tmp_path_factory.mktemp("password-slots"))


@pytest.fixture(scope="session")
def server_urls() -> ServiceUrls:
    return test_service_urls()


@pytest.fixture(scope="session")
async def database_url(server_urls: ServiceUrls) -> AsyncIterator[str]:
    """A fresh database for this test run, built by the Alembic migrations."""
    async with scratch_database(server_urls.database_url) as url:
        yield url


@pytest.fixture(scope="session")
def service_urls(server_urls: ServiceUrls, database_url: str) -> ServiceUrls:
    return ServiceUrls(database_url=database_url, redis_url=server_urls.redis_url)


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"reckonry-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def smtp_port() -> Iterator[int]:
    with smtp_server() as port:
        yield port


@pytest.fixture
def mailbox() -> Mailbox:
    """What the app e-mailed during this test (it sends through `smtp_port`)."""
    MAILBOX.messages.clear()
    return MAILBOX


@pytest.fixture
def settings(redis_prefix: str, encryption_key: str, smtp_port: int) -> Settings:
    return Settings(
        _env_file=None,
        RECKONRY_ENV="test",
        RECKONRY_REDIS_PREFIX=redis_prefix,
        RECKONRY_SECRET_KEY="test-signing-key-" + "x" * 32,
        RECKONRY_ENCRYPTION_KEYS=encryption_key,
        KARBON_BASE_URL="http://karbon.invalid",
        RECKONRY_WORKER_METRICS_PORT=0,  # a test that wants the server picks a free port
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp_port,
        SMTP_STARTTLS=False,
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


async def _truncate_all(engine: AsyncEngine) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    if tables:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def sessions(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database; every table is emptied after the test."""
    yield create_sessionmaker(engine)
    await _truncate_all(engine)


@pytest.fixture
async def redis(service_urls: ServiceUrls, redis_prefix: str) -> AsyncIterator[Redis]:
    """The test Redis; keys under this run's prefix are removed after each test."""
    client: Redis = Redis.from_url(service_urls.redis_url)
    yield client
    async for key in client.scan_iter(match=f"{redis_prefix}*"):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
async def app(
    settings: Settings,
    service_urls: ServiceUrls,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> AsyncIterator[FastAPI]:
    application = create_app(settings, service_urls)
    async with application.router.lifespan_context(application):
        # The key check reads six endpoints; at Karbon's pace each connect would wait seconds.
        # The pace itself has its own test.
        application.state.karbon_budgets = BudgetRegistry(rate_per_second=400.0)
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
