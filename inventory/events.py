"""The one domain event inventory publishes.

Fired *inside* the writing transaction, synchronously, so a subscriber's writes
(channels_app marks listings dirty) commit or roll back with the change itself:
a transactional outbox without a separate table to drain. Subscriber errors
propagate on purpose — a change whose markers cannot be written must not commit.
inventory imports nothing from its subscribers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import transaction
from django.dispatch import Signal

# kwargs: variant_ids: frozenset[int], location_ids: frozenset[int]
stock_changed = Signal()
# kwargs: variant_ids: frozenset[int]
price_changed = Signal()
# kwargs: variant_ids: frozenset[int] — whether these variants may be sold at all
# changed (a variant deactivated or reactivated, its product archived or restored).
sellable_changed = Signal()
# kwargs: variant_ids: frozenset[int] — what a channel shows of these variants changed
# (their product's title, description, vendor, type or images; their options, barcode
# or title).
content_changed = Signal()


class _Batch:
    def __init__(self) -> None:
        self.stock: dict[int, set[int]] = defaultdict(set)  # location -> variants
        self.prices: set[int] = set()
        self.sellable: set[int] = set()
        self.content: set[int] = set()


_batch: ContextVar[_Batch | None] = ContextVar("inventory_event_batch", default=None)


def publish_stock_changed(*, variant_ids: Iterable[int], location_ids: Iterable[int]) -> None:
    batch = _batch.get()
    if batch is not None:
        for location_id in location_ids:
            batch.stock[location_id].update(variant_ids)
        return
    stock_changed.send(
        sender="inventory",
        variant_ids=frozenset(variant_ids),
        location_ids=frozenset(location_ids),
    )


def publish_price_changed(*, variant_ids: Iterable[int]) -> None:
    batch = _batch.get()
    if batch is not None:
        batch.prices.update(variant_ids)
        return
    price_changed.send(sender="inventory", variant_ids=frozenset(variant_ids))


def publish_sellable_changed(*, variant_ids: Iterable[int]) -> None:
    batch = _batch.get()
    if batch is not None:
        batch.sellable.update(variant_ids)
        return
    sellable_changed.send(sender="inventory", variant_ids=frozenset(variant_ids))


def publish_content_changed(*, variant_ids: Iterable[int]) -> None:
    batch = _batch.get()
    if batch is not None:
        batch.content.update(variant_ids)
        return
    content_changed.send(sender="inventory", variant_ids=frozenset(variant_ids))


@contextmanager
def events_batched() -> Iterator[None]:
    """Collect the events of many writes and publish them when the block ends:
    one stock event per location (with every variant changed there) and one
    price event, instead of one per write — for imports of thousands of rows.

    Must be used inside the writing transaction, so the subscribers' writes
    still commit or roll back with the changes. If the block raises, nothing
    is published (the transaction is rolled back by the caller). Nested use
    joins the outer batch.
    """
    if _batch.get() is not None:
        yield
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("events_batched() must run inside the writing transaction")
    batch = _Batch()
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
    for location_id in sorted(batch.stock):
        publish_stock_changed(variant_ids=batch.stock[location_id], location_ids=[location_id])
    if batch.prices:
        publish_price_changed(variant_ids=batch.prices)
    if batch.sellable:
        publish_sellable_changed(variant_ids=batch.sellable)
    if batch.content:
        publish_content_changed(variant_ids=batch.content)
