"""A page of a list and the request for one: limit/offset, the one list style of the API."""

from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


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
