"""No push overwrites a sale pimsync has not imported: against the sandbox's four
platforms with the real connectors, the engine and the orders poll."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels_app.models import Channel, ChannelListing, SyncMarker
from channels_app.orders.polling import channel_poll
from channels_app.services import listing_save
from channels_app.sync import engine
from inventory import services
from inventory.models import Location, Product, Variant
from pimsync.demo import listing_ids
from sandbox.server import RunningSandbox
from synclog.models import SyncLogEntry
from tests.support.sandbox import control, demo_channel

pytestmark = pytest.mark.django_db(transaction=True)
SKU = "GUARD-1"


def listed_channel(sandbox: RunningSandbox, platform: str) -> tuple[Channel, Variant, Location]:
    """One SKU with 10 units, pushed to (and confirmed by) a sandbox channel."""
    channel, location = demo_channel(
        sandbox, platform, location_code="g", location_name="Guard warehouse"
    )
    product = Product.objects.create(title="Guarded", handle="guarded")
    variant = Variant.objects.create(product=product, sku=SKU, price=Decimal("10"))
    ids = listing_ids(platform, 0, 0, SKU)
    sandbox.platform(platform).seed(
        [
            {
                "sku": ids.get("listing_sku") or SKU,
                "product_id": ids.get("external_product_id", ""),
                "variant_id": ids.get("external_variant_id", ""),
                "inventory_item_id": ids.get("inventory_item_id", ""),
                "offer_id": ids.get("offer_id", ""),
                "price": "10.00",
                "quantity": 0,
            }
        ]
    )
    listing_save(listing=ChannelListing(channel=channel, variant=variant, **ids))
    receive(variant, location, 10, "seed")
    engine.channel_push(channel.pk, time_budget=30)
    assert shown(sandbox, channel) == 10
    return channel, variant, location


def receive(variant: Variant, location: Location, quantity: int, key: str) -> None:
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=quantity,
        reason="receive" if quantity > 0 else "adjust",
        source="t",
        idempotency_key=key,
    )


def shown(sandbox: RunningSandbox, channel: Channel) -> int:
    _, live = control(sandbox.url, "GET", f"/_control/values/{channel.platform}")
    listing = ChannelListing.objects.get(channel=channel)
    return int(live[listing.channel_sku]["quantity"])


def sell_on_the_channel(sandbox: RunningSandbox, channel: Channel, quantity: int) -> None:
    """A sale on the channel pimsync has not heard of yet (no webhook)."""
    listing = ChannelListing.objects.get(channel=channel)
    status, answer = control(
        sandbox.url,
        "POST",
        "/_control/orders",
        {
            "platform": channel.platform,
            "lines": [{"sku": listing.channel_sku, "quantity": quantity}],
            "financial_status": "paid",
            "webhook": False,
        },
    )
    assert status == 201, answer


@pytest.mark.parametrize("platform", ["shopify", "woocommerce", "ebay", "amazon"])
def test_an_increase_waits_for_the_unimported_sale_then_lands_on_the_truth(sandbox, platform):
    channel, variant, location = listed_channel(sandbox, platform)
    # given: the channel sold 3 units pimsync has not imported ...
    sell_on_the_channel(sandbox, channel, 3)
    assert shown(sandbox, channel) == 7
    # ... when a receipt of 5 raises pimsync's count to 15
    receive(variant, location, 5, "receipt")
    engine.channel_push(channel.pk, time_budget=30)
    # then: 15 is not written over the sale; the push waits for the orders
    assert shown(sandbox, channel) == 7
    marker = SyncMarker.objects.get(kind="quantity")
    assert marker.held_for_poll_at is not None
    assert SyncLogEntry.objects.filter(sku=SKU, status="held").exists()
    # when: the orders poll imports the sale (and releases the hold), the push runs
    report = channel_poll(channel.pk)
    assert report.error == ""
    engine.channel_push(channel.pk, time_budget=30)
    # then: the channel shows the truth: 10 + 5 - 3
    assert shown(sandbox, channel) == 12
    assert not SyncMarker.objects.exists()


@pytest.mark.parametrize("platform", ["shopify", "woocommerce", "ebay", "amazon"])
def test_a_zero_goes_at_once_even_over_an_unimported_sale(sandbox, platform):
    channel, variant, location = listed_channel(sandbox, platform)
    sell_on_the_channel(sandbox, channel, 2)
    receive(variant, location, -10, "sold-out-elsewhere")  # pimsync: 0
    engine.channel_push(channel.pk, time_budget=30)
    assert shown(sandbox, channel) == 0
    assert not SyncMarker.objects.exists()
