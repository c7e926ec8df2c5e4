"""The FastAPI application factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import __version__
from app.api import costs, data_quality, health, karbon, ops, reports, sync, tenancy
from app.api.middleware import RequestContextMiddleware
from app.api.openapi import install_openapi, operation_id
from app.api.problems import install_problem_handlers
from app.api.storable_text import refuse_unstorable_text
from app.db import create_engine, create_sessionmaker
from app.embedded import ServiceUrls, resolve_service_urls
from app.migrations import head_revisions
from app.redis_pool import create_redis
from app.settings import Settings, get_settings
from app.sync.access import key_check_budgets

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, urls: ServiceUrls | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service_urls = urls or resolve_service_urls(settings)
        app.state.settings = settings
        app.state.engine = create_engine(service_urls.database_url)
        app.state.sessions = create_sessionmaker(app.state.engine)
        # Connects lazily: the API starts, and /readyz reports, while Redis is down.
        app.state.redis = create_redis(service_urls.redis_url)
        app.state.migration_heads = head_revisions(service_urls.database_url)
        app.state.karbon_budgets = key_check_budgets(settings, service_urls.redis_url)
        try:
            yield
        finally:
            await app.state.karbon_budgets.aclose()
            await app.state.redis.aclose()
            await app.state.engine.dispose()

    app = FastAPI(
        title="Reckonry",
        version=__version__,
        summary="Per-client profit, cost and unbilled work for accounting firms on Karbon.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        dependencies=[Depends(refuse_unstorable_text)],
    )
    install_openapi(app)
    install_problem_handlers(app)
    # Added first so the request context wraps it: preflights get an id, a log line, metrics.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_cors_origins,
        # Sign-in tokens and API keys travel in Authorization, never in cookies.
        allow_credentials=False,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
        expose_headers=["X-Request-Id", "Retry-After", "Report-Complete", "Report-As-Of"],
    )
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(tenancy.router)
    app.include_router(karbon.router)
    app.include_router(sync.router)
    app.include_router(costs.router)
    app.include_router(reports.router)
    app.include_router(data_quality.router)
    app.include_router(ops.router)
    return app
