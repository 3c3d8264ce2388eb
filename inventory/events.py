"""The one domain event inventory publishes.

Fired *inside* the writing transaction, synchronously, so a subscriber's writes
(channels_app marks listings dirty) commit or roll back with the change itself:
a transactional outbox without a separate table to drain. Subscriber errors
propagate on purpose — a change whose markers cannot be written must not commit.
inventory imports nothing from its subscribers.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.dispatch import Signal

# kwargs: variant_ids: frozenset[int], location_ids: frozenset[int]
stock_changed = Signal()
# kwargs: variant_ids: frozenset[int]
price_changed = Signal()


def publish_stock_changed(*, variant_ids: Iterable[int], location_ids: Iterable[int]) -> None:
    stock_changed.send(
        sender="inventory",
        variant_ids=frozenset(variant_ids),
        location_ids=frozenset(location_ids),
    )


def publish_price_changed(*, variant_ids: Iterable[int]) -> None:
    price_changed.send(sender="inventory", variant_ids=frozenset(variant_ids))
