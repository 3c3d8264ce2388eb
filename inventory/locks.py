"""Row locks for stock writes, always taken in primary-key order to avoid deadlocks.

A transaction that applies many changes to the same rows (a batch of channel
orders on one hot SKU) locks them once: inside ``stock_levels_held()``,
``stock_levels_lock`` hands out the rows this transaction already holds without
asking the database again. Their buckets stay current in memory because every
stock write updates the object it wrote through; a savepoint that may roll
stock back inside the block must be ``stock_savepoint()``, so memory rolls back
with the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction

from .models import Reservation, StockLevel

Pair = tuple[int, int]  # (variant_id, location_id)
BUCKETS = ("on_hand", "committed", "reserved", "damaged")

_held: ContextVar[dict[Pair, StockLevel] | None] = ContextVar("stock_levels_held", default=None)


def _lock(wanted: list[Pair]) -> dict[Pair, StockLevel]:
    StockLevel.objects.bulk_create(
        [StockLevel(variant_id=v, location_id=loc) for v, loc in wanted],
        ignore_conflicts=True,
    )
    variant_ids = {v for v, _ in wanted}
    location_ids = {loc for _, loc in wanted}
    rows = (
        StockLevel.objects.select_for_update()
        .filter(variant_id__in=variant_ids, location_id__in=location_ids)
        .order_by("pk")
    )
    locked = {(row.variant_id, row.location_id): row for row in rows}
    return {pair: locked[pair] for pair in wanted}


def stock_levels_lock(pairs: Iterable[Pair]) -> dict[Pair, StockLevel]:
    """Lock the StockLevels of (variant_id, location_id) pairs, creating missing rows.

    Must run inside a transaction. Rows are created first (a concurrent creator
    is harmless thanks to the unique constraint) and then locked in pk order.
    Inside ``stock_levels_held()`` rows this transaction holds already are
    returned as they are (no query) and only the others are locked.
    """
    wanted = sorted(set(pairs))
    held = _held.get()
    if held is None:
        return _lock(wanted)
    missing = [pair for pair in wanted if pair not in held]
    if missing:
        held.update(_lock(missing))
    return {pair: held[pair] for pair in wanted}


@contextmanager
def stock_levels_held() -> Iterator[None]:
    """Keep the rows locked in this block for the rest of it (see the module doc).

    Must be used inside the transaction that locks them and left before it
    ends; nested use joins the outer block.
    """
    if _held.get() is not None:
        yield
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("stock_levels_held() must run inside the locking transaction")
    token = _held.set({})
    try:
        yield
    finally:
        _held.reset(token)


@contextmanager
def stock_savepoint() -> Iterator[None]:
    """``transaction.atomic()`` (a savepoint) whose rollback also restores the
    buckets of the rows held in memory (``stock_levels_held``). The row locks
    themselves stay: PostgreSQL keeps a lock taken before a savepoint when the
    savepoint rolls back."""
    held = _held.get()
    before = {
        pair: tuple(getattr(level, b) for b in BUCKETS) for pair, level in (held or {}).items()
    }
    try:
        with transaction.atomic():
            yield
    except BaseException:
        if held is not None:
            for pair in list(held):
                if pair not in before:
                    # First locked inside the rolled-back block: its row may not even
                    # exist any more; the next use locks (and reads) it afresh.
                    del held[pair]
                    continue
                for bucket, value in zip(BUCKETS, before[pair], strict=True):
                    setattr(held[pair], bucket, value)
        raise


def reservation_lock(reservation_id: int) -> Reservation:
    return Reservation.objects.select_for_update().get(pk=reservation_id)
