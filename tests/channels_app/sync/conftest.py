from decimal import Decimal

import pytest

from channels_app.services import listing_save
from channels_app.sync import engine
from inventory import services
from tests.support.sync import FakeConnector


@pytest.fixture
def fake(monkeypatch):
    connector = FakeConnector()
    monkeypatch.setattr(engine, "channel_connector", lambda channel: connector)
    return connector


@pytest.fixture
def shop(db, channel_factory, channel_location_factory, location, listing_factory, variant_factory):
    """A channel fed by `location`, with 3 listed, stocked variants."""
    channel = channel_factory(platform="woocommerce", rate_limit_per_second=Decimal("1000"))
    channel_location_factory(channel=channel, location=location)
    variants = [variant_factory(sku=f"S-{i}") for i in range(3)]
    for v in variants:
        listing_save(listing=listing_factory.build(channel=channel, variant=v))
        services.stock_adjust(
            variant=v,
            location=location,
            quantity=20,
            reason="receive",
            source="t",
            idempotency_key=f"seed-{v.sku}",
        )
    return channel
