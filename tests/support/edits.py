"""Channel-side edits in one process: channels on the sandbox whose webhooks are
registered at a loopback receiver; each delivery the sandbox makes is posted to
pimsync's webhook endpoint with the Django test client, then processed, polled
and pushed the way the workers do (``Relay.settle``).

The fixtures (``sandbox``, ``webhook_receiver``) are in tests/plugins/sandbox.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from channels_app.models import (
    Channel,
    ChannelEdit,
    ChannelListing,
    ChannelLocation,
    InboundEvent,
    SyncMarker,
)
from channels_app.orders.events import inbound_event_process
from channels_app.orders.polling import channel_poll
from channels_app.sync import engine
from channels_app.sync.edits import channel_edits_recheck
from channels_app.sync.markers import listings_mark_dirty
from channels_app.webhook_subscriptions import channel_webhooks_register
from inventory import services
from inventory.models import Location, Product, Variant
from sandbox.server import RunningSandbox
from tests.support.sandbox import (
    SHOPIFY_LOCATION,
    SHOPIFY_TOKEN,
    WOO_KEY,
    WOO_SECRET,
    WebhookReceiver,
    seed_listings,
)

# The sandbox app's client secret: Shopify signs the webhooks an app registers with it.
SHOPIFY_CLIENT_SECRET = "shpss_sandbox"
WOO_WEBHOOK_SECRET = "whsec-woo-edits"


def receiver_base(receiver: WebhookReceiver) -> str:
    """The receiver's scheme and host: a channel's public URL."""
    return receiver.url.split("/webhooks/", 1)[0]


def edit_channel(
    sandbox: RunningSandbox,
    platform: str,
    *,
    receiver: WebhookReceiver,
    policy: str = "trust_pimsync",
    skus: int = 3,
    stock: int = 10,
    price: str = "20.00",
) -> Channel:
    """A channel on the sandbox with ``skus`` listings of fresh variants (``stock``
    units each at its one location), its webhooks registered at the receiver, and
    pimsync's values pushed (the channel and pimsync agree)."""
    location = Location.objects.create(code=f"{platform}-wh", name=f"{platform} warehouse")
    config: dict[str, Any] = {
        "shopify": {
            "credentials": {"access_token": SHOPIFY_TOKEN},
            "webhook_secret": SHOPIFY_CLIENT_SECRET,
            "platform_config": {"location_id": SHOPIFY_LOCATION},
        },
        "woocommerce": {
            "credentials": {"consumer_key": WOO_KEY, "consumer_secret": WOO_SECRET},
            "webhook_secret": WOO_WEBHOOK_SECRET,
            "platform_config": {},
        },
    }[platform]
    channel = Channel.objects.create(
        name=f"{platform} edits",
        slug=f"{platform}-edits",
        platform=platform,
        base_url=sandbox.platform_url(platform),
        public_url=receiver_base(receiver),
        conflict_policy=policy,
        rate_limit_per_second=Decimal("1000"),
        **config,
    )
    ChannelLocation.objects.create(channel=channel, location=location, priority=1)
    product = Product.objects.create(title=f"{platform} tee", handle=f"{platform}-tee")
    rows = [
        {"sku": f"{platform[:2].upper()}-{n}", "price": "0", "quantity": 0} for n in range(skus)
    ]
    for ref, row in zip(seed_listings(sandbox.platform(platform), rows), rows, strict=True):
        variant = Variant.objects.create(product=product, sku=row["sku"], price=Decimal(price))
        services.stock_adjust(
            variant=variant,
            location=location,
            quantity=stock,
            reason="receive",
            source="t",
            idempotency_key=f"edits-seed-{variant.sku}",
        )
        ChannelListing.objects.create(
            channel=channel,
            variant=variant,
            external_product_id=ref.product_id,
            external_variant_id=ref.variant_id,
            inventory_item_id=ref.inventory_item_id,
        )
    registration = channel_webhooks_register(channel=channel)
    if not registration.ok:
        raise AssertionError(f"webhooks not registered: {registration}")
    listings_mark_dirty(ChannelListing.objects.filter(channel=channel))
    engine.channel_push(channel.pk)
    return channel


@dataclass
class Relay:
    """The sandbox's deliveries, posted to pimsync with the test client in arrival
    order, and the workers' part done in this process."""

    client: Any
    receiver: WebhookReceiver
    sandbox: RunningSandbox
    forwarded: int = 0
    answers: list[int] = field(default_factory=list)

    def forward(self) -> int:
        """Post every delivery received since the last call; returns how many."""
        for platform in self.sandbox.app.platforms.values():
            platform.outbox.drain(timeout=10)
        fresh = self.receiver.received[self.forwarded :]
        for delivery in fresh:
            headers = {
                k: v
                for k, v in delivery.headers.items()
                if k.lower().startswith(("x-shopify-", "x-wc-"))
            }
            response = self.client.post(
                delivery.path,
                data=delivery.body,
                content_type=delivery.headers.get("Content-Type", "application/json"),
                headers=headers,
            )
            self.answers.append(response.status_code)
        self.forwarded += len(fresh)
        return len(fresh)

    def settle(self, *, rounds: int = 30) -> int:
        """Deliver, process, poll and push until nothing moves; returns the rounds
        it took. Polls run for channels with edits waiting for orders or pushes held
        for a poll (what the workers do when asked)."""
        for n in range(1, rounds + 1):
            moved = self.forward()
            for event_id in (
                InboundEvent.objects.filter(status="pending")
                .order_by("pk")
                .values_list("pk", flat=True)
            ):
                moved += inbound_event_process(event_id) is not None
            waiting = set(
                ChannelEdit.objects.filter(waiting_for=ChannelEdit.Waiting.ORDERS).values_list(
                    "channel_id", flat=True
                )
            ) | set(
                SyncMarker.objects.filter(held_for_poll_at__isnull=False).values_list(
                    "channel_id", flat=True
                )
            )
            for channel_id in waiting:
                channel_poll(channel_id)
                moved += 1
            channel_edits_recheck()
            for channel_id in Channel.objects.values_list("pk", flat=True):
                moved += engine.channel_push(channel_id).pushed
            if not moved:
                return n
        raise AssertionError(f"not settled after {rounds} rounds")


def timed(action: Any, *, done: Any, relay: Relay, limit: float = 10.0) -> float:
    """Seconds from ``action()`` until ``done()`` holds, settling in between."""
    started = time.monotonic()
    action()
    relay.settle()
    while not done():
        if time.monotonic() - started > limit:
            raise AssertionError(f"not done within {limit} s")
        relay.settle()
    return time.monotonic() - started
