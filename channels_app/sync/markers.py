"""Dirty markers: which listings must be pushed, written in the writing transaction.

`inventory` announces stock and price changes through inventory.events; the
handlers here upsert one marker per (listing, kind) in that same transaction
and ask for a push of each affected channel once the transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from ..models import BufferRule, Channel, ChannelListing, SyncKind, SyncMarker
from .enqueue import channel_push_request_on_commit

BOTH_KINDS = (SyncKind.PRICE, SyncKind.QUANTITY)


def _listing_rows(listings: QuerySet[ChannelListing]) -> list[tuple[int, int]]:
    return list(
        listings.filter(is_enabled=True, channel__is_enabled=True).values_list("pk", "channel_id")
    )


def listings_mark_dirty(
    listings: QuerySet[ChannelListing],
    *,
    kinds: Iterable[str] = BOTH_KINDS,
    forced: bool = False,
    now: datetime | None = None,
) -> int:
    """Upsert markers for every enabled listing in ``listings``; returns how many
    (listing, kind) markers were written. A push of each channel is requested
    after commit. first_dirty_at of an existing marker is kept (latency counts
    from the first unpushed change); a forced mark makes the marker forced."""
    rows = _listing_rows(listings)
    if not rows:
        return 0
    now = now or timezone.now()
    token = uuid.uuid4().hex
    kinds = list(kinds)
    markers = [
        SyncMarker(
            listing_id=listing_id,
            channel_id=channel_id,
            kind=kind,
            first_dirty_at=now,
            last_dirty_at=now,
            due_at=now,
            change_token=token,
            is_forced=forced,
        )
        for listing_id, channel_id in rows
        for kind in kinds
    ]
    # A dead-lettered marker revived by a new change starts afresh.
    SyncMarker.objects.filter(
        listing_id__in=[r[0] for r in rows], kind__in=kinds, status=SyncMarker.Status.DEAD
    ).update(status=SyncMarker.Status.PENDING, due_at=now, first_dirty_at=now, attempts=0)
    update_fields = ["last_dirty_at", "change_token"]
    if forced:
        update_fields.append("is_forced")
    SyncMarker.objects.bulk_create(
        markers,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["listing", "kind"],
        update_fields=update_fields,
    )
    for channel_id in {channel_id for _, channel_id in rows}:
        channel_push_request_on_commit(channel_id)
    return len(markers)


def variants_mark_dirty(
    variant_ids: Iterable[int], *, kinds: Iterable[str], location_ids: Iterable[int] | None = None
) -> int:
    """Mark the listings of these variants; for stock, only on channels fed by
    one of the changed locations."""
    listings = ChannelListing.objects.filter(variant_id__in=list(variant_ids))
    if location_ids is not None:
        listings = listings.filter(
            channel__channel_locations__location_id__in=list(location_ids)
        ).distinct()
    return listings_mark_dirty(listings, kinds=kinds)


def on_stock_changed(
    sender: object, variant_ids: frozenset[int], location_ids: frozenset[int], **_: object
) -> None:
    variants_mark_dirty(variant_ids, kinds=[SyncKind.QUANTITY], location_ids=location_ids)


def on_price_changed(sender: object, variant_ids: frozenset[int], **_: object) -> None:
    variants_mark_dirty(variant_ids, kinds=[SyncKind.PRICE])


def buffer_rule_affected_listings(rule: BufferRule) -> QuerySet[ChannelListing]:
    listings = ChannelListing.objects.all()
    if rule.channel_id:
        listings = listings.filter(channel_id=rule.channel_id)
    if rule.variant_id:
        listings = listings.filter(variant_id=rule.variant_id)
    elif rule.product_id:
        listings = listings.filter(variant__product_id=rule.product_id)
    return listings


def channel_listings(channel: Channel) -> QuerySet[ChannelListing]:
    return ChannelListing.objects.filter(channel=channel)
