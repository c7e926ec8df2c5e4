"""Limit/offset pagination, the one list style of the API."""

from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 1_000_000
"""Beyond any list a firm has, and far inside PostgreSQL's bigint (a larger OFFSET fails)."""


class Page(BaseModel, Generic[T]):
    """One page of a list: `items` from `offset`, at most `limit` of them, `total` in all."""

    items: list[T]
    total: int = Field(ge=0, description="Items in the whole list, across every page")
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


async def _page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageParamsDep = Annotated[PageParams, Depends(_page_params)]
