"""The database plumbing: how JSON columns are written and how connections are set up."""

from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import json_text


def test_json_columns_get_compact_json_with_integer_keys_as_text() -> None:
    assert json_text({"a": [1, 2.5, None, "é"], 3: True}) == '{"a":[1,2.5,null,"é"],"3":true}'


def test_integers_beyond_64_bits_are_written_exactly() -> None:
    assert json_text({"n": 2**70}) == '{"n": 1180591620717411303424}'


def test_values_without_a_json_form_are_refused() -> None:
    with pytest.raises(TypeError):
        json_text({"amount": Decimal("1.10")})


async def test_connections_run_without_jit(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        assert (await connection.execute(text("SHOW jit"))).scalar_one() == "off"
