"""Liveness, readiness and metrics: outside `/api/v1`, no authentication."""

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from app.api.problems import problem_response
from app.api.responses import TEXT, problems
from app.migrations import applied_revisions

router = APIRouter(tags=["health"])


class Alive(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


@router.get("/healthz", summary="The process is alive")
async def get_liveness() -> Alive:
    return Alive(status="ok")


async def _readiness_failure(request: Request) -> str | None:
    state = request.app.state
    try:
        async with state.engine.connect() as connection:
            applied = await applied_revisions(connection)
    except Exception as error:
        return f"database unreachable or not migrated: {type(error).__name__}"
    if applied != state.migration_heads:
        return "database migrations are not current: run `reckonry migrate`"
    try:
        await state.redis.ping()
    except Exception as error:
        return f"redis unreachable: {type(error).__name__}"
    return None


@router.get(
    "/readyz",
    summary="Database and Redis reachable, migrations current",
    response_model=Ready,
    responses=problems(
        {
            503: "`not-ready`: the database or Redis is unreachable, or the "
            "migrations are not current; `detail` says which."
        }
    ),
)
async def get_readiness(request: Request) -> JSONResponse:
    failure = await _readiness_failure(request)
    if failure:
        return problem_response(503, "not-ready", failure, title="Not ready")
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": TEXT}, "description": "Prometheus text format"}},
)
async def get_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
