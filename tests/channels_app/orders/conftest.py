"""Channels, stock and a recording broker for the order tests (inbound and
the order state machine)."""

from __future__ import annotations

from typing import Any

import pytest

from channels_app import dispatch
from inventory import services
from tests.support.webhooks import SECRET, deliver


@pytest.fixture
def stocked_channel(
    db,
    channel_factory,
    channel_location_factory,
    location,
    location2,
    variant_factory,
    listing_factory,
):
    """A channel fed by `location` (priority 1) and `location2` (priority 2);
    SKU-A has 3 units at the first and 5 at the second."""
    channel = channel_factory(platform="shopify")
    channel_location_factory(channel=channel, location=location, priority=1)
    channel_location_factory(channel=channel, location=location2, priority=2)
    variant = variant_factory(sku="SKU-A")
    listing_factory(channel=channel, variant=variant, external_variant_id="gid://v/1")
    for loc, qty in ((location, 3), (location2, 5)):
        services.stock_adjust(
            variant=variant,
            location=loc,
            quantity=qty,
            reason="receive",
            source="t",
            idempotency_key=f"seed-{loc.code}",
        )
    return channel


@pytest.fixture
def stocked(db, location, variant_factory):
    """SKU-A with 10 units at `location`."""
    variant = variant_factory(sku="SKU-A")
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=10,
        reason="receive",
        source="t",
        idempotency_key="seed-SKU-A",
    )
    return variant


@pytest.fixture
def shop(db, channel_factory, channel_location_factory, location, stocked):
    channel = channel_factory(platform="shopify", slug="shop", webhook_secret=SECRET)
    channel_location_factory(channel=channel, location=location)
    return channel


@pytest.fixture
def woo(db, channel_factory, channel_location_factory, location, stocked):
    channel = channel_factory(
        platform="woocommerce",
        slug="woo",
        webhook_secret=SECRET,
        base_url="http://127.0.0.1:8700/woocommerce",
        credentials={"consumer_key": "ck", "consumer_secret": "cs"},
    )
    channel_location_factory(channel=channel, location=location)
    return channel


@pytest.fixture
def enqueued(monkeypatch):
    """The broker: records every processing task asked for, sends nothing."""
    sent: list[int] = []

    def send_task(name, args=None, **kwargs):
        if name == dispatch.INBOUND_EVENT:
            sent.append(args[0])

    monkeypatch.setattr("celery.current_app.send_task", send_task)
    return sent


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    """POST a delivery; on-commit callbacks (the enqueue) run as after a real commit."""

    def _post(slug: str, body: bytes, headers: dict[str, str], **extra: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return deliver(client, slug, body, headers, **extra)

    return _post
