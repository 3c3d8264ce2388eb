"""From a Channel row to a connector: the only place the two meet."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from ..connectors.base import ChannelConfig, Connector, CostReport, ListingRef, OperationBudget
from ..connectors.oauth import uses_refresh_token
from ..connectors.registry import get_connector
from ..models import Channel, ChannelListing, Platform
from .limiter import rate_limit_wait, rate_limiter, take_in_turn
from .tokens import TokenProvider

# Shopify's budget is its cost bucket, in query points. Until the shop's first answer
# tells its size and restore rate (extensions.cost.throttleStatus), pimsync assumes
# the smallest documented: 1000 points restored at 50 points/s.
SHOPIFY_BUCKET_POINTS = 1000.0
SHOPIFY_RESTORE_POINTS = 50.0
# pimsync fills its copy of the bucket to this share of the shop's size. Its takes
# precede the shop's deductions by the request's latency; while the shop's bucket
# is full it restores nothing in that time, so a copy as large as the shop's would
# run ahead by latency x restore rate (a tenth of a 1000-point bucket is a second
# at 100 points/s).
SHOPIFY_BUCKET_SHARE = 0.9
REFRESHING_PLATFORMS = frozenset({Platform.EBAY, Platform.AMAZON})


def channel_config(channel: Channel) -> ChannelConfig:
    """The channel's connection, with its one rate budget: every API call any
    worker makes for this channel (push, read, poll, order call, connection test,
    token refresh) first takes its share from the shared limiter - calls, or
    query-cost points on Shopify - and, on eBay and Amazon with a refresh token,
    the access token refreshed once for all workers (tokens.py)."""
    rate, burst = budget_of(channel)
    config = ChannelConfig(
        channel_id=channel.pk,
        platform=channel.platform,
        base_url=channel.base_url,
        credentials=dict(channel.credentials or {}),
        webhook_secret=channel.webhook_secret or "",
        platform_config=dict(channel.platform_config or {}),
        batch_size=channel.batch_size,
        rate_gate=partial(_spend, channel.pk, rate, burst),
        rate_report=(
            partial(_settle, channel.pk, rate, burst)
            if channel.platform == Platform.SHOPIFY
            else None
        ),
        operation_budget=(
            SharedOperationBudget(channel.pk) if channel.platform == Platform.AMAZON else None
        ),
    )
    if channel.platform in REFRESHING_PLATFORMS and uses_refresh_token(config.credentials):
        tokens = TokenProvider(channel_id=channel.pk, config=config)
        config = replace(config, access_token=tokens.current, on_unauthorized=tokens.rejected)
    return config


def budget_of(channel: Channel) -> tuple[float, float]:
    """(rate per second, burst) the channel's budget starts from: calls per second
    from the channel's settings; for Shopify points, from platform_config
    ``cost_restore_rate`` / ``cost_bucket_size`` until the shop reports its own."""
    if channel.platform == Platform.SHOPIFY:
        options: dict[str, Any] = dict(channel.platform_config or {})
        restore = float(options.get("cost_restore_rate") or SHOPIFY_RESTORE_POINTS)
        size = float(options.get("cost_bucket_size") or SHOPIFY_BUCKET_POINTS)
        return restore, size * SHOPIFY_BUCKET_SHARE
    rate = float(channel.rate_limit_per_second)
    return rate, max(1.0, rate)


def _spend(channel_id: int, rate: float, burst: float, tokens: float) -> None:
    rate_limit_wait(channel_id, rate=rate, burst=burst, tokens=tokens)


def _settle(channel_id: int, rate: float, burst: float, report: CostReport) -> None:
    """Shopify answered: the bucket follows what it charged and says is left, at the
    shop's own restore rate (pimsync takes a call's points before sending and gets
    the unused part back only after the answer) and a little under its size."""
    charged = report.actual or 0.0  # None: the query did not run (THROTTLED), nothing charged
    rate_limiter().settle(
        channel_id,
        rate=report.restore_rate or rate,
        burst=report.maximum * SHOPIFY_BUCKET_SHARE if report.maximum else burst,
        refund=report.requested - charged,
        available=report.available,
    )


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


# A routine call yields to urgent ones in an operation's bucket this long at most,
# then queues (and is answered QuotaWait when its turn is too far off).
OPERATION_MAX_YIELD_SECONDS = 5.0


class SharedOperationBudget(OperationBudget):
    """A channel's per-operation buckets in the shared limiter (Redis or the database)."""

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id

    def take(self, operation: str, *, rate: float, burst: float) -> float:
        return take_in_turn(
            self.channel_id,
            rate=rate,
            burst=burst,
            scope=operation,
            max_yield=OPERATION_MAX_YIELD_SECONDS,
        )

    def give_back(self, operation: str, *, rate: float, burst: float) -> None:
        rate_limiter().settle(self.channel_id, rate=rate, burst=burst, refund=1.0, scope=operation)

    def exhausted(self, operation: str, *, rate: float, burst: float) -> None:
        rate_limiter().settle(
            self.channel_id, rate=rate, burst=burst, available=0.0, scope=operation
        )
