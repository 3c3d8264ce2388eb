"""What every stock write shares, one movement at a time (stock) or many (bulk).

The value types of a ledger change and the rules checked before one is written:
a known reason, an idempotency key and a source; no bucket below zero; promising
reasons limited to what is available.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..errors import InsufficientStock, InvalidMovement
from ..locks import BUCKETS
from ..models import MovementReason, StockLevel, StockMovement
from ..selectors import stock_available_compute

# Reasons that promise units to someone: they may not take more than is available.
PROMISING_REASONS = frozenset(
    {MovementReason.RESERVE, MovementReason.SALE, MovementReason.TRANSFER}
)
# What an inactive location still records: settling what it already holds (a hold
# committed, units shipped or released) and an order's units coming back to where
# they were shipped from. Anything else (receipts, counts, new promises) is refused.
SETTLING_REASONS = frozenset(
    {
        MovementReason.COMMIT,
        MovementReason.SHIP,
        MovementReason.RELEASE,
        MovementReason.RETURN,
        MovementReason.DAMAGE,
    }
)


@dataclass(frozen=True)
class Deltas:
    on_hand: int = 0
    committed: int = 0
    reserved: int = 0
    damaged: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidMovement(f"{f.name} must be a whole number, got {value!r}")

    @property
    def is_zero(self) -> bool:
        return not any(getattr(self, b) for b in BUCKETS)

    @property
    def available(self) -> int:
        # The formula is linear, so the change of available is available of the changes.
        return stock_available_compute(
            on_hand=self.on_hand,
            committed=self.committed,
            reserved=self.reserved,
            damaged=self.damaged,
        )


@dataclass(frozen=True)
class MovementResult:
    movement: StockMovement
    created: bool  # False: the key had already been applied, nothing changed


def same_payload(
    m: StockMovement, variant_id: int, location_id: int, d: Deltas, reason: str
) -> bool:
    return (
        m.variant_id == variant_id
        and m.location_id == location_id
        and m.reason == reason
        and (m.delta_on_hand, m.delta_committed, m.delta_reserved, m.delta_damaged)
        == (d.on_hand, d.committed, d.reserved, d.damaged)
    )


def check_result(level: StockLevel, d: Deltas, reason: str, sku: str) -> None:
    if reason in PROMISING_REASONS and d.available < 0 and level.available + d.available < 0:
        raise InsufficientStock(
            [
                f"{sku} at {level.location}: needs {-d.available}, "
                f"{max(level.available, 0)} available"
            ]
        )
    after = {b: getattr(level, b) + getattr(d, b) for b in BUCKETS}
    negative = [f"{b} would be {v}" for b, v in after.items() if v < 0]
    if negative:
        raise InvalidMovement(
            f"{sku} at {level.location}: {', '.join(negative)}; stock buckets cannot be negative"
        )


def validate_common(reason: str, key: str, source: str) -> None:
    if reason not in MovementReason.values:
        raise InvalidMovement(f"Unknown reason {reason!r}")
    if not key or len(key) > 255:
        raise InvalidMovement("An idempotency key of 1 to 255 characters is required")
    if not source:
        raise InvalidMovement("A source is required")
