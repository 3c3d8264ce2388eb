"""From a Channel row to a connector: the only place the two meet."""

from __future__ import annotations

from functools import partial

from ..connectors.base import ChannelConfig, Connector, ListingRef
from ..connectors.registry import get_connector
from ..models import Channel, ChannelListing
from .limiter import rate_limit_wait


def channel_config(channel: Channel) -> ChannelConfig:
    """The channel's connection, with its one rate budget: every API call any
    worker makes for this channel (push, read, poll, order call, connection test)
    first takes its tokens from the shared limiter."""
    return ChannelConfig(
        channel_id=channel.pk,
        platform=channel.platform,
        base_url=channel.base_url,
        credentials=dict(channel.credentials or {}),
        webhook_secret=channel.webhook_secret or "",
        platform_config=dict(channel.platform_config or {}),
        batch_size=channel.batch_size,
        rate_gate=partial(_spend, channel.pk, float(channel.rate_limit_per_second)),
    )


def _spend(channel_id: int, rate: float, tokens: float) -> None:
    rate_limit_wait(channel_id, rate=rate, tokens=tokens)


def channel_connector(channel: Channel) -> Connector:
    return get_connector(channel_config(channel))


def listing_ref(listing: ChannelListing) -> ListingRef:
    return ListingRef(
        sku=listing.variant.sku,
        listing_sku=listing.listing_sku,
        product_id=listing.external_product_id,
        variant_id=listing.external_variant_id,
        inventory_item_id=listing.inventory_item_id,
        offer_id=listing.offer_id,
    )
