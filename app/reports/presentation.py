"""How report numbers are shown: money to the cent, ratios and hours to fixed places.

Facts keep ten decimal places so sums are exact; rounding happens only here, once, on the
figure a person reads.
"""

from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")
RATIO_PLACES = Decimal("0.0001")
DAY_PLACES = Decimal("0.1")


def _fixed(value: Decimal, places: Decimal) -> str:
    return str(value.quantize(places, rounding=ROUND_HALF_EVEN))


def money(value: Decimal) -> str:
    return _fixed(value, CENT)


def optional_money(value: Decimal | None) -> str | None:
    return money(value) if value is not None else None


def ratio(value: Decimal | None) -> str | None:
    return _fixed(value, RATIO_PLACES) if value is not None else None


def hours(minutes: int | Decimal) -> str:
    return _fixed(Decimal(minutes) / 60, CENT)


def days(value: Decimal | None) -> str | None:
    return _fixed(value, DAY_PLACES) if value is not None else None
