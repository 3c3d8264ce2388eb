"""Dirty markers: which listings must be pushed, written in the writing transaction.

`inventory` announces stock and price changes through inventory.events; the
handlers here upsert one marker per (listing, kind) in that same transaction
and ask for a push of each affected channel once the transaction commits.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from inventory.models import Product

from ..dispatch import channel_push_request_on_commit, channel_urgent_push_request_on_commit
from ..models import BufferRule, Channel, ChannelListing, SyncKind, SyncMarker
from ..selectors import channel_atp_bulk

BOTH_KINDS = (SyncKind.PRICE, SyncKind.QUANTITY)
# Variants per ATP query when deciding urgency (SQLite takes at most 32,766 parameters).
URGENCY_CHUNK = 5000


def _enabled(listings: QuerySet[ChannelListing]) -> QuerySet[ChannelListing]:
    return listings.filter(is_enabled=True, channel__is_enabled=True)


def _to_mark(
    listings: QuerySet[ChannelListing], *, include_disabled: bool
) -> QuerySet[ChannelListing]:
    """Enabled listings on enabled channels, or also disabled listings when the
    channel must be told they are gone."""
    return listings.filter(channel__is_enabled=True) if include_disabled else _enabled(listings)


def _low_stock_listings(rows: list[tuple[int, int, int]]) -> set[int]:
    """The listings whose channel ATP is now at or below their channel's low-stock
    level (0 included): their quantity is urgent."""
    by_channel: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for listing_id, channel_id, variant_id in rows:
        by_channel[channel_id].append((listing_id, variant_id))
    urgent: set[int] = set()
    for channel in Channel.objects.filter(pk__in=list(by_channel)):
        pairs = by_channel[channel.pk]
        variant_ids = sorted({variant_id for _, variant_id in pairs})
        atp: dict[int, int] = {}
        for start in range(0, len(variant_ids), URGENCY_CHUNK):
            chunk = variant_ids[start : start + URGENCY_CHUNK]
            atp.update(channel_atp_bulk(channel=channel, variant_ids=chunk))
        urgent.update(
            listing_id
            for listing_id, variant_id in pairs
            if atp.get(variant_id, 0) <= channel.low_stock_level
        )
    return urgent


def _not_for_sale(listings: QuerySet[ChannelListing]) -> set[int]:
    """Listings whose channel is to be told 0: disabled, variant inactive, product archived."""
    return set(
        listings.filter(
            Q(is_enabled=False)
            | Q(variant__is_active=False)
            | Q(variant__product__status=Product.Status.ARCHIVED)
        ).values_list("pk", flat=True)
    )


def listings_mark_dirty(
    listings: QuerySet[ChannelListing],
    *,
    kinds: Iterable[str] = BOTH_KINDS,
    forced: bool = False,
    urgent: bool = False,
    include_disabled: bool = False,
    now: datetime | None = None,
) -> int:
    """Upsert markers for every enabled listing in ``listings``; returns how many
    (listing, kind) markers were written. A push of each channel is requested
    after commit. first_dirty_at of an existing marker is kept (latency counts
    from the first unpushed change); a forced mark makes the marker forced.

    A quantity marker is urgent when the listing's ATP is now at or below its
    channel's low-stock level (0 included), and every marker when ``urgent``
    (an oversell's forced 0, a person's "push now"): an urgent mark makes a
    waiting marker due at once (threshold, minimum interval, backoff, a hold for
    an orders poll — none of them holds it) and is claimed before other work.
    ``include_disabled`` also marks disabled listings (to push their 0).
    """
    chosen = _to_mark(listings, include_disabled=include_disabled)
    rows: list[tuple[int, int, int]] = list(chosen.values_list("pk", "channel_id", "variant_id"))
    if not rows:
        return 0
    now = now or timezone.now()
    token = uuid.uuid4().hex
    kinds = list(kinds)
    # A dead-lettered marker revived by a new change starts afresh.
    # (A subquery, not the ids: 10,000 SKUs on four channels are more ids than SQLite
    # takes as parameters of one statement.)
    SyncMarker.objects.filter(
        listing_id__in=chosen.values("pk"),
        kind__in=kinds,
        status=SyncMarker.Status.DEAD,
    ).update(
        status=SyncMarker.Status.PENDING,
        due_at=now,
        first_dirty_at=now,
        attempts=0,
        first_failed_at=None,
        held_for_poll_at=None,
    )
    urgent_quantities = (
        {listing_id for listing_id, _, _ in rows}
        if urgent
        else _low_stock_listings(rows) | _not_for_sale(chosen)
        if SyncKind.QUANTITY in kinds
        else set()
    )
    keys = [
        (
            listing_id,
            channel_id,
            kind,
            urgent or (kind == SyncKind.QUANTITY and listing_id in urgent_quantities),
        )
        for listing_id, channel_id, _ in rows
        for kind in kinds
    ]
    _markers_upsert(keys, now=now, token=token, forced=forced)
    for channel_id in {channel_id for _, channel_id, _ in rows}:
        channel_push_request_on_commit(channel_id)
    for channel_id in {channel_id for _, channel_id, _, is_urgent in keys if is_urgent}:
        channel_urgent_push_request_on_commit(channel_id)
    return len(keys)


_MARKER_COLUMNS = (
    "listing_id",
    "channel_id",
    "kind",
    "is_urgent",
    "status",
    "first_dirty_at",
    "last_dirty_at",
    "due_at",
    "change_token",
    "is_forced",
    "attempts",
    "claim_token",
    "last_error_code",
    "last_error",
)


def _markers_upsert(
    keys: list[tuple[int, int, str, bool]], *, now: datetime, token: str, forced: bool
) -> None:
    """INSERT … ON CONFLICT (listing, kind) DO UPDATE of every (listing, kind, urgent).

    The same upsert bulk_create(update_conflicts=True) writes, without preparing every
    field of every row in Python (which dominated a 10,000-SKU price change): an
    existing marker keeps first_dirty_at and gets the new change token (and the
    forced flag when forced). It keeps its due time too — unless the new change is
    urgent: then it is due now, urgent, and no longer held for an orders poll (a
    guarded write decides afresh whether the value may go). PostgreSQL and SQLite ≥ 3.24.
    """
    ops = connection.ops
    qn = ops.quote_name
    stamp = ops.adapt_datetimefield_value(now)
    table = qn(SyncMarker._meta.db_table)
    updated = [
        f"{qn(c)} = excluded.{qn(c)}"
        for c in ["last_dirty_at", "change_token", *(["is_forced"] if forced else [])]
    ]
    urgent, due, held = (qn(c) for c in ("is_urgent", "due_at", "held_for_poll_at"))
    updated += [
        f"{urgent} = ({table}.{urgent} OR excluded.{urgent})",
        f"{due} = CASE WHEN excluded.{urgent} AND {table}.{due} > excluded.{due}"
        f" THEN excluded.{due} ELSE {table}.{due} END",
        f"{held} = CASE WHEN excluded.{urgent} THEN NULL ELSE {table}.{held} END",
    ]
    on_conflict = " ON CONFLICT (listing_id, kind) DO UPDATE SET " + ", ".join(updated)
    head = f"INSERT INTO {table} (" + ", ".join(qn(c) for c in _MARKER_COLUMNS)
    constants = (SyncMarker.Status.PENDING.value, stamp, stamp, stamp, token, forced, 0, "", "", "")
    with connection.cursor() as cursor:
        for source, params in _marker_sources(keys, constants):
            cursor.execute(f"{head}) {source}{on_conflict}", params)


def _marker_sources(
    keys: list[tuple[int, int, str, bool]], constants: tuple[object, ...]
) -> Iterator[tuple[str, list[Any]]]:
    """The rows to upsert as SQL sources with their parameters.

    PostgreSQL: four arrays unnested into rows, one statement for any number of
    markers — thousands of parameters per statement cost PostgreSQL more to parse and
    bind than the upsert itself (80,000 markers: 5.8 s as VALUES, 1.0 s this way).
    Other databases: VALUES of 1,000 rows per statement (SQLite takes at most 32,766
    parameters).
    """
    marks = ", ".join(["%s"] * len(constants))
    if connection.vendor == "postgresql":
        columns = [list(column) for column in zip(*keys, strict=True)]
        arrays = (
            "unnest(%s::bigint[], %s::bigint[], %s::text[], %s::boolean[])"
            " AS u(listing_id, channel_id, kind, is_urgent)"
        )
        select = f"SELECT u.listing_id, u.channel_id, u.kind, u.is_urgent, {marks} FROM {arrays}"  # noqa: S608 - parameter markers only
        yield select, [*constants, *columns]
        return
    row_sql = f"(%s, %s, %s, %s, {marks})"
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        yield (
            "VALUES " + ", ".join([row_sql] * len(chunk)),
            [p for key in chunk for p in (*key, *constants)],
        )


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


def on_content_changed(sender: object, variant_ids: frozenset[int], **_: object) -> None:
    """What a channel shows of these variants changed: the listings whose content
    pimsync owns (it published them) get their content pushed."""
    listings = ChannelListing.objects.filter(variant_id__in=list(variant_ids), sync_content=True)
    listings_mark_dirty(listings, kinds=[SyncKind.ATTRIBUTE])


def on_sellable_changed(sender: object, variant_ids: frozenset[int], **_: object) -> None:
    """A variant stopped (or started again) being for sale: every channel that lists
    it is told the resulting quantity (0 while it is not for sale)."""
    variants_mark_dirty(variant_ids, kinds=[SyncKind.QUANTITY])


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


def markers_release_after_poll(*, channel_id: int, poll_started_at: datetime) -> int:
    """Quantity pushes held for an orders poll that started at or before
    ``poll_started_at``: that poll's orders are applied, so they may go (recomputed
    and guarded again). Returns how many; the channel's push is requested."""
    released = SyncMarker.objects.filter(
        channel_id=channel_id, held_for_poll_at__isnull=False, held_for_poll_at__lte=poll_started_at
    ).update(held_for_poll_at=None, due_at=timezone.now())
    if released:
        channel_push_request_on_commit(channel_id)
    return released
