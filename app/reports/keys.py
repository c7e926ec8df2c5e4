"""Lists of keys in SQL as one array parameter, however many there are.

A statement holds at most 32,767 bind parameters (asyncpg's limit), so `IN (:k1, :k2, ...)`
fails on a large firm's change set; a key list is sent as one array and joined by hash.
"""

from collections.abc import Collection
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Select, Text, any_, func, literal, select


def keys_select(keys: Collection[str]) -> Select[Any]:
    """`keys` as the rows of a one-column select."""
    return select(func.unnest(literal(list(keys), ARRAY(Text))))


def one_of(column: Any, keys: Collection[str]) -> ColumnElement[bool]:
    """`column` is one of `keys`."""
    condition: ColumnElement[bool] = column.in_(keys_select(keys))
    return condition


def any_of(column: Any, keys: Collection[str]) -> ColumnElement[bool]:
    """`column = ANY(keys)`: a plain condition the planner pushes into a grouped subquery
    (`one_of` is a semi-join, which it does not)."""
    condition: ColumnElement[bool] = column == any_(literal(list(keys), ARRAY(Text)))
    return condition
