"""How report numbers are shown: money to the cent, ratios to 4 places, hours to 2, days to 1.

Facts keep ten decimal places so sums are exact; rounding happens only here, once, on the
figure a person reads. JSON and CSV show the same strings; the `Annotated` types below give
each figure's pattern to the OpenAPI document and check every response against it.
"""

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from pydantic import StringConstraints

CENT = Decimal("0.01")
RATIO_PLACES = Decimal("0.0001")
DAY_PLACES = Decimal("0.1")

MONEY_PATTERN = r"^-?\d+\.\d{2}$"
RATIO_PATTERN = r"^-?\d+\.\d{4}$"
HOURS_PATTERN = r"^-?\d+\.\d{2}$"
DAYS_PATTERN = r"^-?\d+\.\d$"

Money = Annotated[str, StringConstraints(pattern=MONEY_PATTERN)]
"""An exact amount as a decimal string to the cent, e.g. `-1234.50`, in the report's currency."""
Ratio = Annotated[str, StringConstraints(pattern=RATIO_PATTERN)]
"""A decimal string to 4 places: `0.2500` is 25%."""
Hours = Annotated[str, StringConstraints(pattern=HOURS_PATTERN)]
TwoPlaces = Annotated[str, StringConstraints(pattern=HOURS_PATTERN)]
"""A count shown to 2 places, e.g. weeks a year: `48.00`."""
Days = Annotated[str, StringConstraints(pattern=DAYS_PATTERN)]


def _fixed(value: Decimal, places: Decimal) -> str:
    # Adding zero turns a rounded negative zero (`-0.00`) into `0.00`.
    return str(value.quantize(places, rounding=ROUND_HALF_EVEN) + 0)


def money(value: Decimal) -> str:
    return _fixed(value, CENT)


def optional_money(value: Decimal | None) -> str | None:
    return money(value) if value is not None else None


def ratio(value: Decimal | None) -> str | None:
    return exact_ratio(value) if value is not None else None


def hours(minutes: int | Decimal) -> str:
    return _fixed(Decimal(minutes) / 60, CENT)


def two_places(value: Decimal) -> str:
    return _fixed(value, CENT)


def exact_ratio(value: Decimal) -> str:
    return _fixed(value, RATIO_PLACES)


def days(value: Decimal | None) -> str | None:
    return _fixed(value, DAY_PLACES) if value is not None else None


def csv_cell(value: Any) -> str:
    """One cell: booleans `true`/`false` as in JSON, null as empty, the rest as JSON shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


CSV_BATCH = 500


def csv_lines(columns: Sequence[str], records: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """A header, then `records` (JSON-mode dumps) in batches, for a streamed response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for count, record in enumerate(records, start=1):
        writer.writerow([csv_cell(record.get(column)) for column in columns])
        if count % CSV_BATCH == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
