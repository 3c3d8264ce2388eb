"""Reads: what pimsync would publish to each channel, computed fresh from the database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from inventory.models import StockLevel, Variant
from inventory.selectors import stock_sellable_expression

from .connectors.oauth import uses_refresh_token
from .connectors.shopify_versions import VersionStatus, channel_api_version, version_status
from .models import (
    BufferRule,
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelToken,
    Platform,
    PriceRule,
)
from .pricing import buffer_units, channel_atp_compute, channel_price_compute


def buffer_rule_pick(
    rules: Iterable[BufferRule], *, channel_id: int, variant_id: int, product_id: int
) -> BufferRule | None:
    """The rule that governs one variant on one channel: most specific scope first
    (variant > product > all), then channel-specific over all-channels."""
    applicable = [
        r
        for r in rules
        if r.is_active
        and r.channel_id in (None, channel_id)
        and (r.variant_id in (None, variant_id))
        and (r.product_id in (None, product_id))
        and not (r.variant_id and r.product_id)
    ]
    if not applicable:
        return None
    return max(applicable, key=lambda r: (*r.specificity, r.pk or 0))


def _buffer_rules_for(
    channel_id: int, variant_ids: set[int], product_ids: set[int]
) -> list[BufferRule]:
    return list(
        BufferRule.objects.filter(is_active=True)
        .filter(Q(channel_id=channel_id) | Q(channel__isnull=True))
        .filter(
            Q(variant_id__in=variant_ids)
            | Q(product_id__in=product_ids)
            | Q(variant__isnull=True, product__isnull=True)
        )
    )


def _available_over_locations(variant_ids: set[int], location_ids: list[int]) -> dict[int, int]:
    """Per variant, what these locations can sell: each location's available
    clamped at 0 before summing, as order allocation takes it."""
    rows = (
        StockLevel.objects.filter(variant_id__in=variant_ids, location_id__in=location_ids)
        .values("variant_id")
        .annotate(avail=Sum(stock_sellable_expression()))
    )
    return {row["variant_id"]: int(row["avail"] or 0) for row in rows}


def channel_listings_for_skus(
    *, channel: Channel, skus: Iterable[str]
) -> tuple[QuerySet[ChannelListing], list[str]]:
    """The channel's listings of these SKUs, and the SKUs it does not list (sorted)."""
    wanted = set(skus)
    listings = ChannelListing.objects.filter(channel=channel, variant__sku__in=wanted)
    listed = set(listings.values_list("variant__sku", flat=True))
    return listings, sorted(wanted - listed)


def listing_is_for_sale(listing: ChannelListing) -> bool:
    """Whether the channel may offer this listing at all (enabled listing, active
    variant, product not archived); what is not for sale is told 0."""
    variant = listing.variant
    return (
        listing.is_enabled
        and variant.is_active
        and variant.product.status != variant.product.Status.ARCHIVED
    )


def channel_locations_active(channel_ids: Iterable[int]) -> dict[int, list[int]]:
    """Per channel, the active locations that feed it, by priority: what ATP counts
    and what orders are allocated from. A location deactivated while still linked
    drops out of both at once."""
    found: dict[int, list[int]] = {channel_id: [] for channel_id in channel_ids}
    rows = (
        ChannelLocation.objects.filter(channel_id__in=list(found), location__is_active=True)
        .order_by("channel_id", "priority", "location_id")
        .values_list("channel_id", "location_id")
    )
    for channel_id, location_id in rows:
        found[channel_id].append(location_id)
    return found


def channel_location_ids(channel: Channel) -> list[int]:
    return channel_locations_active([channel.pk])[channel.pk]


def channel_atp_bulk(*, channel: Channel, variant_ids: Iterable[int]) -> dict[int, int]:
    """ATP per variant: max(0, sum of available over the channel's locations − buffer).

    A constant number of queries whatever the number of variants.
    """
    ids = set(variant_ids)
    if not ids:
        return {}
    product_of = dict(Variant.objects.filter(pk__in=ids).values_list("pk", "product_id"))
    available = _available_over_locations(ids, channel_location_ids(channel))
    rules = _buffer_rules_for(channel.pk, ids, set(product_of.values()))
    result = {}
    for vid, pid in product_of.items():
        total = available.get(vid, 0)
        rule = buffer_rule_pick(rules, channel_id=channel.pk, variant_id=vid, product_id=pid)
        held = buffer_units(total, mode=rule.mode, value=rule.value) if rule else 0
        result[vid] = channel_atp_compute(total, held)
    return result


def channel_atp(*, channel: Channel, variant: Variant) -> int:
    return channel_atp_bulk(channel=channel, variant_ids=[variant.pk])[variant.pk]


def _active_price_rule(channel: Channel) -> PriceRule | None:
    return PriceRule.objects.filter(channel=channel, is_active=True).first()


def channel_price_bulk(*, channel: Channel, variant_ids: Iterable[int]) -> dict[int, Decimal]:
    """Channel price per variant: listing override, else price through the rule; ≥ MAP."""
    ids = set(variant_ids)
    if not ids:
        return {}
    rule = _active_price_rule(channel)
    overrides = dict(
        ChannelListing.objects.filter(channel=channel, variant_id__in=ids).values_list(
            "variant_id", "price_override"
        )
    )
    rule_kwargs = _price_rule_kwargs(rule)
    return {
        vid: channel_price_compute(
            variant_price=price, map_price=map_price, override=overrides.get(vid), **rule_kwargs
        )
        for vid, price, map_price in Variant.objects.filter(pk__in=ids).values_list(
            "pk", "price", "map_price"
        )
    }


def channel_price(*, channel: Channel, variant: Variant) -> Decimal:
    return channel_price_bulk(channel=channel, variant_ids=[variant.pk])[variant.pk]


@dataclass(frozen=True)
class ChannelView:
    """One channel's row on a variant page."""

    channel: Channel
    listing: ChannelListing | None
    price: Decimal
    atp: int


def variant_channel_overview(*, variant: Variant) -> list[ChannelView]:
    """Per channel: what pimsync would publish for this variant now, and the listing."""
    return variants_channel_overview(variants=[variant])[variant.pk]


def _price_rule_kwargs(rule: PriceRule | None) -> dict:
    if rule is None:
        return {}
    return {"multiplier": rule.multiplier, "adjustment": rule.adjustment, "rounding": rule.rounding}


def variants_channel_overview(*, variants: Sequence[Variant]) -> dict[int, list[ChannelView]]:
    """variant_channel_overview for many variants: six queries whatever their number."""
    ids = [v.pk for v in variants]
    if not ids:
        return {}
    channels = list(
        Channel.objects.order_by("name").prefetch_related(
            Prefetch(
                "channel_locations",
                queryset=ChannelLocation.objects.filter(location__is_active=True),
            )
        )
    )
    listings = {
        (lst.variant_id, lst.channel_id): lst
        for lst in ChannelListing.objects.filter(variant_id__in=ids)
    }
    rules = {r.channel_id: r for r in PriceRule.objects.filter(is_active=True)}
    buffers = list(
        BufferRule.objects.filter(is_active=True).filter(
            Q(variant_id__in=ids)
            | Q(product_id__in={v.product_id for v in variants})
            | Q(variant__isnull=True, product__isnull=True)
        )
    )
    available = {
        (row["variant_id"], row["location_id"]): row["units_available"]
        for row in StockLevel.objects.filter(variant_id__in=ids)
        .values("variant_id", "location_id")
        .annotate(units_available=stock_sellable_expression())
    }
    result: dict[int, list[ChannelView]] = {}
    for variant in variants:
        views = result.setdefault(variant.pk, [])
        for ch in channels:
            total = sum(
                available.get((variant.pk, cl.location_id), 0) for cl in ch.channel_locations.all()
            )
            rule = buffer_rule_pick(
                buffers, channel_id=ch.pk, variant_id=variant.pk, product_id=variant.product_id
            )
            held = buffer_units(total, mode=rule.mode, value=rule.value) if rule else 0
            listing = listings.get((variant.pk, ch.pk))
            price = channel_price_compute(
                variant_price=variant.price,
                map_price=variant.map_price,
                override=listing.price_override if listing else None,
                **_price_rule_kwargs(rules.get(ch.pk)),
            )
            views.append(ChannelView(ch, listing, price, channel_atp_compute(total, held)))
    return result


@dataclass(frozen=True)
class SyncState:
    label: str  # in sync | pending | retrying | failed | not pushed yet | paused
    tone: str
    error: str = ""


def listing_sync_states(listings: Iterable[ChannelListing]) -> dict[int, SyncState]:
    """The state a person sees per listing, from its markers: one query."""
    from .models import SyncMarker

    listings = list(listings)
    markers: dict[int, list[SyncMarker]] = {}
    for m in SyncMarker.objects.filter(listing_id__in=[lst.pk for lst in listings]):
        markers.setdefault(m.listing_id, []).append(m)
    states = {}
    for lst in listings:
        own = markers.get(lst.pk, [])
        dead = [m for m in own if m.status == SyncMarker.Status.DEAD]
        retrying = [m for m in own if m.attempts and m.status == SyncMarker.Status.PENDING]
        if dead:
            states[lst.pk] = SyncState("failed", "bad", dead[0].last_error)
        elif retrying:
            states[lst.pk] = SyncState("retrying", "warn", retrying[0].last_error)
        elif own:
            states[lst.pk] = SyncState("pending", "info")
        elif lst.last_pushed_at is None:
            states[lst.pk] = SyncState("not pushed yet", "muted")
        else:
            states[lst.pk] = SyncState("in sync", "ok")
    return states


def channels_listing_variants(
    *, variant_ids: Iterable[int], location_ids: Iterable[int] | None = None
) -> list[str]:
    """Names of the enabled channels with an enabled listing of one of these
    variants (and, for a stock change, fed by one of these locations): the
    channels such a change is pushed to."""
    channels = Channel.objects.filter(
        is_enabled=True,
        listings__is_enabled=True,
        listings__variant_id__in=list(variant_ids),
    )
    if location_ids is not None:
        channels = channels.filter(channel_locations__location_id__in=list(location_ids))
    return list(channels.order_by("name").values_list("name", flat=True).distinct())


def channel_api_version_status(
    *, channel: Channel, today: date | None = None
) -> VersionStatus | None:
    """Where a Shopify channel's Admin API version stands against Shopify's support
    schedule (None for platforms without versioned APIs in pimsync)."""
    if channel.platform != Platform.SHOPIFY:
        return None
    return version_status(
        channel_api_version(channel.platform_config), today=today or timezone.now().date()
    )


@dataclass(frozen=True)
class TokenStatus:
    """How a channel's API access token is kept valid (the channel admin shows it)."""

    has_refresh_token: bool
    expires_at: datetime | None = None
    refreshed_at: datetime | None = None
    refresh_count: int = 0
    refused_at: datetime | None = None
    error: str = ""

    def describe(self, now: datetime) -> str:
        if not self.has_refresh_token:
            return (
                "Static access token (no refresh token configured): nothing refreshes it, and "
                "the channel pauses when the platform stops accepting it."
            )
        if self.refused_at is not None:
            return (
                "Refresh token configured; the refresh was refused at "
                f"{self.refused_at:%Y-%m-%d %H:%M}: {self.error}"
            )
        if self.expires_at is None:
            return "Refresh token configured; the access token is obtained with the first call."
        left = int((self.expires_at - now).total_seconds())
        when = f"in {left // 60} min {left % 60} s" if left > 0 else f"{-left} s ago"
        return (
            f"Refresh token configured; access token expires {self.expires_at:%Y-%m-%d %H:%M:%S} "
            f"({when}), refreshed {self.refresh_count} times, last at "
            f"{self.refreshed_at:%Y-%m-%d %H:%M:%S}."
        )


def channel_token_status(*, channel: Channel) -> TokenStatus | None:
    """The access token's state for platforms whose tokens expire (eBay, Amazon);
    None for the others (their keys do not expire)."""
    if channel.platform not in (Platform.EBAY, Platform.AMAZON):
        return None
    if not uses_refresh_token(channel.credentials or {}):
        return TokenStatus(has_refresh_token=False)
    row = ChannelToken.objects.filter(channel=channel).first()
    if row is None:
        return TokenStatus(has_refresh_token=True)
    return TokenStatus(
        has_refresh_token=True,
        expires_at=row.expires_at,
        refreshed_at=row.refreshed_at,
        refresh_count=row.refresh_count,
        refused_at=row.failed_at,
        error=row.last_error,
    )
