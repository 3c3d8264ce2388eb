"""What a real channel would suffer from pimsync: sales overwritten before pimsync saw them.

A platform decrements a SKU's quantity when a buyer orders it. Until pimsync has
*seen* that order (its webhook was answered 2xx, or an orders poll returned it),
pimsync cannot know the sale, and a quantity it writes from its own numbers may
put the sold units back on sale. :class:`Scorekeeper` remembers, per SKU, the
orders pimsync has not seen and judges every quantity write:

    a **stale overwrite** is a write that *raises* a SKU's quantity while an
    order of that SKU placed after the previous quantity write to that SKU is
    still unseen.

Orders placed before the previous write were already judged with that write,
so one unseen sale is counted against one write, not against every later one.
A decrease or an unchanged value never counts (it cannot re-inflate a sale).
Only orders that took units from the catalog are tracked (``stock_adjusted``),
and a cancelled order stops counting: its units came back with the
cancellation, so there is no sale left to overwrite.

Every call runs under the platform's lock (the writes and order placements
already hold it), and a sequence number, not the wall clock, orders placements
against writes, so "placed after the previous write" is exact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .http import JsonDict, utcnow
from .store import SandboxOrder


@dataclass(frozen=True)
class StaleOverwrite:
    """One quantity write that put unseen sold units back on sale."""

    sku: str
    at: datetime
    before: int
    after: int
    unseen_orders: tuple[str, ...]
    via: str  # the operation that wrote it (inventorySetQuantities, products_batch, ...)

    def to_json(self) -> JsonDict:
        return {
            "sku": self.sku,
            "at": self.at.isoformat(),
            "from": self.before,
            "to": self.after,
            "unseen_orders": list(self.unseen_orders),
            "via": self.via,
        }


class Scorekeeper:
    """Unseen orders per SKU and the judgement of each quantity write (see module)."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._sequence = 0
            # sku -> {order id: sequence number when it was placed}
            self._unseen: dict[str, dict[str, int]] = {}
            self._skus_of: dict[str, tuple[str, ...]] = {}
            self._last_write: dict[str, int] = {}  # sku -> sequence number of its last write

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    def order_placed(self, order: SandboxOrder) -> None:
        """Remember a new order as unseen (only one that took units from the catalog)."""
        if not order.stock_adjusted:
            return
        with self._lock:
            placed = self._next()
            skus = tuple(dict.fromkeys(line.sku for line in order.lines))
            self._skus_of[order.id] = skus
            for sku in skus:
                self._unseen.setdefault(sku, {})[order.id] = placed

    def mark_seen(self, order_ids: Iterable[str]) -> None:
        """pimsync has these orders (a 2xx webhook answer, or an orders poll returned them)."""
        with self._lock:
            for order_id in order_ids:
                for sku in self._skus_of.pop(str(order_id), ()):
                    self._unseen.get(sku, {}).pop(str(order_id), None)

    def forget(self, order_id: str) -> None:
        """The order no longer holds units (cancelled): nothing left to overwrite."""
        self.mark_seen([order_id])

    def quantity_written(
        self, sku: str, before: int, after: int, *, via: str
    ) -> StaleOverwrite | None:
        """Judge one quantity write of ``sku`` from ``before`` to ``after``; the
        overwrite when it raised the quantity over an unseen order placed after
        the previous write, else None. Either way it becomes the previous write."""
        with self._lock:
            previous = self._last_write.get(sku, 0)
            self._last_write[sku] = self._next()
            if after <= before:
                return None
            unseen = self._unseen.get(sku, {})
            overwritten = tuple(oid for oid, placed in unseen.items() if placed > previous)
            if not overwritten:
                return None
            return StaleOverwrite(sku, utcnow(), before, after, overwritten, via)

    def unseen_count(self) -> int:
        with self._lock:
            return len(self._skus_of)
