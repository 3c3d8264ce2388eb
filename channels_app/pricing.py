"""Pure maths for what a channel is told: price through a rule, ATP after a buffer.

No database here: selectors gather the inputs, these functions decide.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def price_round_to_ending(price: Decimal, ending: str) -> Decimal:
    """Round *up* to the next price with the given cents ending ("0.99", "0.95").

    Up, because a charm ending must never cut into the margin the rule set:
    12.00 -> 12.99, 12.99 -> 12.99, 13.00 -> 13.99; 12.96 with .95 -> 13.95.
    """
    if ending == "none":
        return price.quantize(CENT, rounding=ROUND_HALF_UP)
    cents = Decimal(ending)
    whole = price.to_integral_value(rounding=ROUND_CEILING) - 1 if price % 1 else price
    candidate = whole + cents
    if candidate < price:
        candidate += 1
    return candidate.quantize(CENT)


def price_through_rule(
    price: Decimal, *, multiplier: Decimal, adjustment: Decimal, rounding: str
) -> Decimal:
    raw = (price * multiplier + adjustment).quantize(CENT, rounding=ROUND_HALF_UP)
    return price_round_to_ending(max(raw, Decimal("0")), rounding)


def channel_price_compute(
    *,
    variant_price: Decimal,
    map_price: Decimal | None,
    override: Decimal | None = None,
    multiplier: Decimal = Decimal("1"),
    adjustment: Decimal = Decimal("0"),
    rounding: str = "none",
) -> Decimal:
    """Override if set, else the variant price through the rule; never below MAP."""
    if override is not None:
        price = override.quantize(CENT, rounding=ROUND_HALF_UP)
    else:
        price = price_through_rule(
            variant_price, multiplier=multiplier, adjustment=adjustment, rounding=rounding
        )
    if map_price is not None and price < map_price:
        return map_price.quantize(CENT)
    return price


def buffer_units(total_available: int, *, mode: str, value: Decimal) -> int:
    """Units held back. A percentage rounds up: when in doubt, hold one more."""
    if mode == "percent":
        if total_available <= 0:
            return 0
        return math.ceil(Decimal(total_available) * value / 100)
    return math.ceil(value)


def channel_atp_compute(total_available: int, buffer: int) -> int:
    return max(0, total_available - buffer)
