"""The last unit under real concurrency: 1,000 one-unit orders for 100 units."""

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from channels_app.connectors.base import OrderLineData
from channels_app.models import ChannelOrder, ChannelOrderLine, SyncMarker
from channels_app.orders.apply import order_apply
from channels_app.selectors import channel_atp
from inventory import services
from inventory.models import StockLevel, StockMovement
from tests.support.orders import order_data

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_thousand_orders_for_hundred_units_across_five_channels(
    channel_factory,
    channel_location_factory,
    location,
    variant_factory,
    listing_factory,
    monkeypatch,
):
    variant = variant_factory(sku="LAST")
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=100,
        reason="receive",
        source="t",
        idempotency_key="seed",
    )
    channels = []
    for platform in ("shopify", "woocommerce", "ebay", "amazon", "magento"):
        ch = channel_factory(platform=platform)
        channel_location_factory(channel=ch, location=location)
        listing_factory(channel=ch, variant=variant)
        channels.append(ch)
    line = [OrderLineData("1", "LAST", 1, Decimal("9.99"))]

    def place(n: int) -> bool:
        try:
            result = order_apply(
                channel=channels[n % len(channels)],
                data=order_data("paid", 1, external_id=f"O{n}", lines=line),
                source="webhook",
            )
            return not result.oversold_skus
        finally:
            connection.close()

    with ThreadPoolExecutor(12) as pool:
        applied = list(pool.map(place, range(1000)))
    assert applied.count(True) == 100
    assert ChannelOrderLine.objects.filter(state="committed").count() == 100
    assert ChannelOrderLine.objects.filter(state="oversold").count() == 900
    assert ChannelOrder.objects.filter(is_oversold=True).count() == 900
    level = StockLevel.objects.get(variant=variant, location=location)
    assert (level.on_hand, level.committed, level.reserved, level.available) == (100, 100, 0, 0)
    sums = StockMovement.objects.filter(variant=variant).aggregate(
        on_hand=Sum("delta_on_hand"), committed=Sum("delta_committed")
    )
    assert (sums["on_hand"], sums["committed"]) == (100, 100)
    assert [channel_atp(channel=ch, variant=variant) for ch in channels] == [0] * 5
    forced = SyncMarker.objects.filter(listing__variant=variant, kind="quantity", is_forced=True)
    assert sorted(forced.values_list("channel_id", flat=True)) == sorted(ch.pk for ch in channels)

    # and the push engine tells every channel 0
    from channels_app.connectors.base import ItemResult
    from channels_app.connectors.errors import FailureKind
    from channels_app.sync import engine

    told: dict[str, int] = {}

    class Recorder:
        max_price_batch = max_quantity_batch = 100

        def __init__(self, platform: str) -> None:
            self.platform = platform

        def push_quantities(self, items):
            for i in items:
                told[self.platform] = i.quantity
            return [ItemResult(i.listing.sku, FailureKind.OK) for i in items]

        def push_prices(self, items):
            return [ItemResult(i.listing.sku, FailureKind.OK) for i in items]

    monkeypatch.setattr(engine, "channel_connector", lambda channel: Recorder(channel.platform))
    for ch in channels:
        engine.channel_push(ch.pk, time_budget=30)
    assert told == {"shopify": 0, "woocommerce": 0, "ebay": 0, "amazon": 0, "magento": 0}
