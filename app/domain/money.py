"""Money arithmetic shared by the whole domain.

Rounding rule: every money amount stored in a fact is quantized to ``FACT_PLACES`` (ten decimal
places, half-even). That is far below a cent, so nothing a report shows moves, but it gives every
amount a fixed scale: sums are then exact and independent of order, in Python and in SQL
``NUMERIC`` alike, which is what makes "the sum over clients equals the firm total" hold exactly.
Rounding to cents is presentation and happens outside this layer.
"""

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

ZERO = Decimal(0)
FACT_PLACES = Decimal("1e-10")


def fact_amount(value: Decimal) -> Decimal:
    """Quantize a computed amount to the fixed scale of facts."""
    return value.quantize(FACT_PLACES, rounding=ROUND_HALF_EVEN)


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """``numerator / denominator``, or ``None`` when the denominator is zero (no meaning)."""
    if denominator == 0:
        return None
    return numerator / denominator


def allocate(total: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``total`` in proportion to ``weights``; the parts add up to ``total`` exactly.

    Each part is quantized to the fact scale and the last part takes the remainder, so no
    rounding residue is lost or created. Weights must not sum to zero.
    """
    weight_sum = sum(weights, ZERO)
    if weight_sum == 0:
        raise ValueError("cannot allocate over weights that sum to zero")
    parts = [fact_amount(total * weight / weight_sum) for weight in weights[:-1]]
    parts.append(fact_amount(total) - sum(parts, ZERO))
    return parts


def total(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, ZERO)
