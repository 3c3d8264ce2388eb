"""Helpers the platforms' publishing code shares (no platform knowledge here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from .base import ItemResult, ProductContent, PublishedVariant, QuantityUpdate


def with_quantities(
    push_quantities: Callable[[Sequence[QuantityUpdate]], list[ItemResult]],
    product: ProductContent,
    published: list[PublishedVariant],
) -> list[PublishedVariant]:
    """Set the quantities of the variants just created, in the platform's own quantity
    write (absolute, no compare); a variant whose quantity was not set is still
    listed with ``values_set`` False: the quantity push that follows sets it."""
    quantities = {v.sku: v.quantity for v in product.variants}
    created = [p for p in published if p.result.ok]
    done = {
        r.sku: r.ok
        for r in push_quantities(
            [QuantityUpdate(p.listing, max(0, quantities[p.sku])) for p in created]
        )
    }
    return [replace(p, values_set=done.get(p.sku, False)) if p.result.ok else p for p in published]
