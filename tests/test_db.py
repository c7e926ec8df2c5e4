"""The database plumbing: how JSON columns are written and how connections are set up."""

from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db import analyze_stale, json_text


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


async def test_a_table_written_past_autovacuums_threshold_is_analyzed_at_once(
    engine: AsyncEngine,
) -> None:
    """Rows written in this transaction count too; a table barely written is left alone."""
    async with engine.connect() as connection:
        await connection.execute(text("CREATE TEMP TABLE filled (n int)"))
        await connection.execute(text("CREATE TEMP TABLE touched (n int)"))
        await connection.commit()
        await connection.execute(text("INSERT INTO filled SELECT generate_series(1, 5000)"))
        await connection.execute(text("INSERT INTO touched VALUES (1)"))
        session = AsyncSession(bind=connection)

        analyzed = await analyze_stale(session, ["filled", "touched"])

        assert analyzed == ["filled"]
        rows = "SELECT reltuples FROM pg_class WHERE oid = :name ::regclass"
        for name, expected in (("filled", 5000), ("touched", -1)):
            estimate = (await connection.execute(text(rows), {"name": name})).scalar_one()
            assert estimate == expected, name
