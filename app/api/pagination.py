"""The query parameters of a page (limit/offset, the one list style of the API), as a dependency."""

from typing import Annotated

from fastapi import Depends, Query

from app.kit.pagination import PageParams

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 1_000_000
"""Beyond any list a firm has, and far inside PostgreSQL's bigint (a larger OFFSET fails)."""


async def _page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageParamsDep = Annotated[PageParams, Depends(_page_params)]
