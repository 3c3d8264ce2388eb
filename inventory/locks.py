"""Row locks for stock writes, always taken in primary-key order to avoid deadlocks."""

from __future__ import annotations

from collections.abc import Iterable

from .models import Reservation, StockLevel


def stock_levels_lock(pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], StockLevel]:
    """Lock the StockLevels of (variant_id, location_id) pairs, creating missing rows.

    Must run inside a transaction. Rows are created first (a concurrent creator
    is harmless thanks to the unique constraint) and then locked in pk order.
    """
    wanted = sorted(set(pairs))
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


def reservation_lock(reservation_id: int) -> Reservation:
    return Reservation.objects.select_for_update().get(pk=reservation_id)
