"""The error a client can act on, raised by services and mapped to problem+json by the API."""

from http import HTTPStatus
from typing import Any


class ProblemError(Exception):
    """An error the client can act on. `type_` is a short slug such as `not-found`."""

    def __init__(
        self,
        status: int,
        type_: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type_ = type_
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = headers
        self.extra = extra
