"""Unbilled work is filtered, ordered, paged and summed in the database: its total and age
buckets add the amounts as each row shows them (to the cent, half to even)."""

import random
from decimal import Decimal

from sqlalchemy import Numeric, column, select, values
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.kit.presentation import money
from app.reports.repository import cents


async def test_sql_cents_round_as_a_report_shows_money(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    rng = random.Random(11)
    ties = [
        Decimal(f"{sign}{whole}.{cent:02d}5")
        for sign in ("", "-")
        for whole in (0, 7, 12)
        for cent in range(0, 100, 7)
    ]
    others = [Decimal(rng.randrange(-(10**12), 10**12)) / 10**10 for _ in range(300)]
    amounts = [*ties, *others, Decimal(0), Decimal("-0.004"), Decimal("0.0050000001")]
    rows = values(column("amount", Numeric(30, 10)), name="amounts").data(
        [(amount,) for amount in amounts]
    )
    async with sessions() as session:
        shown = (await session.execute(select(cents(rows.c.amount)))).scalars().all()
    assert [money(Decimal(value)) for value in shown] == [money(a) for a in amounts]
    assert [Decimal(value) for value in shown] == [Decimal(money(a)) for a in amounts]
