"""No quantity is written over a sale pimsync has not imported (design §6).

A channel that sold a unit pimsync has not imported yet shows fewer units than
pimsync last confirmed there. Writing pimsync's (higher) quantity then would
offer the sold unit again. So:

- **compare-and-set** where the platform has it (Shopify): the write names the
  quantity pimsync last confirmed; a mismatch means an unseen sale.
- **read before write** elsewhere: right before a chunk of quantities goes out,
  the channel's current quantities are read with its bulk read (through the same
  rate budget). A value may be written when the channel shows at least what
  pimsync last confirmed (no unseen sale), or when the value is below what the
  channel shows (it lowers the channel: a decrease never waits).
- otherwise the SKU's marker is **held for an orders poll**: the channel's orders
  are imported by a poll that starts after the hold, then the value is
  recomputed and guarded again. What the channel showed becomes the new
  baseline, so a poll that imported everything lets the next write go.

What remains is the time between the read (or the compare) and the write
reaching the channel: a sale in that window is overwritten. The read happens
immediately before each write chunk; docs/guarantees.md gives the window per platform.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from django.db import transaction

from ..connectors.base import Connector, ListingState
from ..dispatch import channel_poll_request_for_holds
from ..models import ChannelListing, InboundEvent, SyncMarker
from .connection import listing_ref
from .rules import READ_GROUP, READ_GROUP_DEFAULT

log = logging.getLogger(__name__)


def has_compare_and_set(connector: Connector) -> bool:
    """Whether the platform can refuse a quantity write when the quantity it holds
    is not the one we expected (Shopify's compareQuantity)."""
    return bool(getattr(connector, "compare_and_set", False))


def read_group_size(connector: Connector) -> int:
    return READ_GROUP.get(connector.platform, READ_GROUP_DEFAULT)


@dataclass
class Guarded:
    """What may be written now, and what must wait."""

    write: list[tuple[ChannelListing, int]] = field(default_factory=list)
    # (listing, value, what the channel shows): an unseen sale; wait for an orders poll.
    hold: list[tuple[ChannelListing, int, int]] = field(default_factory=list)
    # The channel could not be read for these: increases wait a moment and try again.
    unread: list[tuple[ChannelListing, int]] = field(default_factory=list)


def may_write(value: int, *, shows: int, confirmed: int) -> bool:
    """The rule: write when the channel shows no unseen sale, or when the value
    lowers what it shows."""
    return shows >= confirmed or value < shows


def guard_quantities(connector: Connector, items: Sequence[tuple[ChannelListing, int]]) -> Guarded:
    """Read the channel's current quantities of ``items`` (listing, value to write)
    and sort them by the rule. A listing never confirmed has nothing to protect.
    A read that fails for a SKU lets a decrease (below what pimsync last
    confirmed) through and holds anything else back briefly."""
    guarded = Guarded()
    to_read: list[tuple[ChannelListing, int, int]] = []
    for listing, value in items:
        confirmed = listing.last_confirmed_quantity
        # A 0 can never re-inflate a sale, and a listing never confirmed has nothing
        # to protect: neither waits for a read.
        if value == 0 or confirmed is None:
            guarded.write.append((listing, value))
        else:
            to_read.append((listing, value, confirmed))
    if not to_read:
        return guarded
    by_sku = _quantities_read(connector, [listing for listing, _, _ in to_read])
    for listing, value, confirmed in to_read:
        state = by_sku.get(listing.variant.sku) or by_sku.get(listing.channel_sku)
        shows = _quantity_shown(state)
        if shows is None:
            if value < confirmed:
                guarded.write.append((listing, value))
            else:
                guarded.unread.append((listing, value))
        elif may_write(value, shows=shows, confirmed=confirmed):
            guarded.write.append((listing, value))
        else:
            guarded.hold.append((listing, value, shows))
    return guarded


def _quantities_read(
    connector: Connector, listings: Sequence[ChannelListing]
) -> dict[str, ListingState]:
    """The channel's current state of ``listings`` by SKU ({} when the read failed)."""
    # A quantity-only read where the platform has a cheaper one (eBay: no offer reads).
    read = getattr(connector, "read_quantities", None) or connector.read_listings
    try:
        states = read([listing_ref(listing) for listing in listings])
    except Exception:
        log.exception("reading %s quantities before writing", connector.platform)
        return {}
    return {state.sku: state for state in states}


def _quantity_shown(state: ListingState | None) -> int | None:
    if state is None or state.error is not None or not state.found:
        return None
    return state.quantity


def baseline_record(listing: ChannelListing, shows: int, now: datetime) -> None:
    """What the channel shows becomes what pimsync last confirmed there: once the
    orders behind the difference are imported, writing is safe again."""
    ChannelListing.objects.filter(pk=listing.pk).update(
        last_confirmed_quantity=shows, last_confirmed_at=now
    )
    listing.last_confirmed_quantity = shows


def markers_hold_for_poll(
    markers: Sequence[SyncMarker], *, channel_id: int, now: datetime, message: str
) -> int:
    """Hold these (claimed) markers until an orders poll that starts after ``now``
    has been applied, and ask for that poll once this transaction commits."""
    held = 0
    for marker in markers:
        held += SyncMarker.objects.filter(pk=marker.pk, claim_token=marker.claim_token).update(
            claimed_until=None,
            claim_token="",
            held_for_poll_at=now,
            due_at=now,
            last_error_code="held_for_orders",
            last_error=message[:2000],
        )
    if held:
        transaction.on_commit(partial(channel_poll_request_for_holds, channel_id))
    return held


def skus_being_imported(channel_id: int) -> set[str]:
    """SKUs of the channel's orders received but not applied yet (pending events):
    until they are applied no increase of these SKUs is written (the sale would be
    offered again). An event that fails for good stops holding them."""
    pending = InboundEvent.objects.filter(
        channel_id=channel_id, status=InboundEvent.Status.PENDING
    ).values_list("skus", flat=True)
    return {str(sku) for skus in pending for sku in (skus or [])}
