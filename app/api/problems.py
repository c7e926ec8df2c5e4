"""Errors as `application/problem+json` (RFC 9457), everywhere.

Services raise `app.kit.problems.ProblemError` (or a subclass); the handlers here map it to a
problem response. Unknown errors become a 500 problem without internals.
"""

import logging
from http import HTTPStatus
from typing import Any

import redis.exceptions
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.kit.problems import ProblemError
from app.kit.unreachable import unreachable_service

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://reckonry.app/problems/"

logger = logging.getLogger(__name__)


def problem_response(
    status: int,
    type_: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    if status == 422:
        body.setdefault("errors", [])  # every 422 is a `ValidationProblem`
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _slug(status: int) -> str:
    return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        errors.append({"field": ".".join(location), "message": str(error.get("msg", ""))})
    return errors


async def _on_problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status, exc.type_, exc.detail, title=exc.title, headers=exc.headers, **exc.extra
    )


# FastAPI's words for a body it could not decode at all (bytes that are not UTF-8); a body it
# decodes but that is not valid JSON is already a validation error.
_UNREADABLE_BODY = "There was an error parsing the body"


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNREADABLE_BODY:
        return _validation_problem([{"field": "body", "message": "The body is not UTF-8 JSON."}])
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(
        exc.status_code, _slug(exc.status_code), detail, headers=getattr(exc, "headers", None)
    )


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _validation_problem(_field_errors(exc))


def _validation_problem(errors: list[dict[str, str]]) -> JSONResponse:
    return problem_response(
        422,
        "validation-error",
        "The request is not valid; see `errors` for each field.",
        title="Validation error",
        errors=errors,
    )


RETRY_AFTER_SECONDS = 5
_UNAVAILABLE_DETAIL = {
    "database": "The database is unreachable right now; nothing was changed. Try again shortly.",
    "redis": "Redis (the job queue and sign-in limits) is unreachable right now; nothing was "
    "changed. Try again shortly.",
}


async def _on_possibly_unavailable(request: Request, exc: Exception) -> JSONResponse:
    unreachable = unreachable_service(exc)
    if unreachable is None:
        return await _on_unhandled(request, exc)
    service = unreachable.service
    logger.warning("%s unavailable: %s", service, exc, extra={"path": request.url.path})
    return problem_response(
        503,
        f"{service}-unavailable",
        _UNAVAILABLE_DETAIL[service],
        title="Service unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(
        500, "internal-error", "Something went wrong on our side. It has been logged."
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    for error in (OSError, sqlalchemy.exc.SQLAlchemyError, redis.exceptions.RedisError):
        app.add_exception_handler(error, _on_possibly_unavailable)
    app.add_exception_handler(Exception, _on_unhandled)
