"""When a dirty listing is pushed: pure decisions, no database.

Quantity: push when it moved by at least the channel's threshold, always when
either side is at or below the low-stock level, at once for 0; pending small
changes go out at the latest after the maximum interval. Price: push when it
differs by at least 0.01. Never push one SKU more often than the minimum
interval — except urgent work (a quantity at or below the low-stock level, 0
included, because selling out late oversells; an oversell's forced 0; a
person's "push now") — the marker waits, it is not dropped. A forced push
ignores no-op and threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

PRICE_STEP = Decimal("0.01")
# Read before write: SKUs read at once right before they are written, per platform.
# The writes of one read group go out back to back, so the race window is this many
# writes. Amazon writes one SKU per call at ~5 calls/s: 5 SKUs keep it near a second;
# eBay reads and writes 25 SKUs per call: one read, one write.
READ_GROUP = {"amazon": 5, "ebay": 25}
READ_GROUP_DEFAULT = 200


class Action(StrEnum):
    PUSH = "push"
    DROP = "drop"  # nothing to tell the channel: the marker is removed
    WAIT = "wait"  # not yet: the marker stays, due again at `until`


@dataclass(frozen=True)
class Decision:
    action: Action
    until: datetime | None = None
    why: str = ""


@dataclass(frozen=True)
class Limits:
    threshold: int
    low_stock: int
    min_interval: timedelta
    max_interval: timedelta


def _min_interval_wait(last_at: datetime | None, limits: Limits, now: datetime) -> Decision | None:
    if last_at is None or not limits.min_interval:
        return None
    ready = last_at + limits.min_interval
    if now < ready:
        return Decision(Action.WAIT, ready, "minimum interval")
    return None


def quantity_decide(
    *,
    new: int,
    last_pushed: int | None,
    last_pushed_at: datetime | None,
    first_dirty_at: datetime,
    forced: bool,
    limits: Limits,
    now: datetime,
    urgent: bool = False,
) -> Decision:
    if not (urgent or new <= limits.low_stock):
        waiting = _min_interval_wait(last_pushed_at, limits, now)
        if waiting:
            return waiting
    if forced:
        return Decision(Action.PUSH, why="forced")
    if last_pushed is None:
        return Decision(Action.PUSH, why="never pushed")
    if new == last_pushed:
        return Decision(Action.DROP, why="unchanged")
    if new <= limits.low_stock or last_pushed <= limits.low_stock:
        return Decision(Action.PUSH, why="low stock")
    if abs(new - last_pushed) >= limits.threshold:
        return Decision(Action.PUSH, why="threshold")
    deadline = first_dirty_at + limits.max_interval
    if now >= deadline:
        return Decision(Action.PUSH, why="maximum interval")
    return Decision(Action.WAIT, deadline, "below threshold")


def price_decide(
    *,
    new: Decimal,
    last_pushed: Decimal | None,
    last_pushed_at: datetime | None,
    forced: bool,
    limits: Limits,
    now: datetime,
    urgent: bool = False,
) -> Decision:
    waiting = None if urgent else _min_interval_wait(last_pushed_at, limits, now)
    if waiting:
        return waiting
    if forced:
        return Decision(Action.PUSH, why="forced")
    if last_pushed is None:
        return Decision(Action.PUSH, why="never pushed")
    if abs(new - last_pushed) < PRICE_STEP:
        return Decision(Action.DROP, why="unchanged")
    return Decision(Action.PUSH, why="changed")
