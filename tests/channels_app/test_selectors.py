from decimal import Decimal

import pytest

from channels_app.selectors import (
    channel_atp,
    channel_atp_bulk,
    channel_price,
    variant_channel_overview,
)
from inventory import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def stocked(variant, location, location2):
    for loc, qty in ((location, 10), (location2, 5)):
        services.stock_adjust(
            variant=variant,
            location=loc,
            quantity=qty,
            reason="receive",
            source="t",
            idempotency_key=f"s-{loc.code}",
        )
    return variant


def test_atp_sums_only_the_channels_locations(
    stocked, location, location2, channel_factory, channel_location_factory
):
    only_main = channel_factory()
    channel_location_factory(channel=only_main, location=location)
    both = channel_factory()
    channel_location_factory(channel=both, location=location)
    channel_location_factory(channel=both, location=location2, priority=2)
    assert channel_atp(channel=only_main, variant=stocked) == 10
    assert channel_atp(channel=both, variant=stocked) == 15


def test_atp_applies_the_most_specific_buffer(
    stocked, location, channel_factory, channel_location_factory, buffer_rule_factory
):
    ch = channel_factory()
    channel_location_factory(channel=ch, location=location)
    buffer_rule_factory(channel=None, value=Decimal("1"))
    buffer_rule_factory(channel=None, product=stocked.product, value=Decimal("3"))
    assert channel_atp(channel=ch, variant=stocked) == 7
    buffer_rule_factory(channel=ch, variant=stocked, mode="percent", value=Decimal("50"))
    assert channel_atp(channel=ch, variant=stocked) == 5


def test_atp_bulk_constant_queries(
    django_assert_num_queries, location, channel_factory, channel_location_factory, variant_factory
):
    ch = channel_factory()
    channel_location_factory(channel=ch, location=location)
    ids = [variant_factory().pk for _ in range(30)]
    with django_assert_num_queries(4):
        result = channel_atp_bulk(channel=ch, variant_ids=ids)
    assert set(result) == set(ids)


def test_channel_price_uses_override_rule_and_map(
    variant, channel_factory, price_rule_factory, listing_factory
):
    ch = channel_factory()
    price_rule_factory(channel=ch, multiplier=Decimal("1.5"), rounding="0.99")
    assert channel_price(channel=ch, variant=variant) == Decimal("30.99")
    variant.map_price = Decimal("35.00")
    services.variant_save(variant=variant)
    assert channel_price(channel=ch, variant=variant) == Decimal("35.00")
    listing_factory(channel=ch, variant=variant, price_override=Decimal("40.00"))
    assert channel_price(channel=ch, variant=variant) == Decimal("40.00")


def test_overview_lists_every_channel(stocked, location, channel_factory, channel_location_factory):
    a = channel_factory(name="A")
    channel_factory(name="B")
    channel_location_factory(channel=a, location=location)
    views = variant_channel_overview(variant=stocked)
    assert [(v.channel.name, v.atp, v.price) for v in views] == [
        ("A", 10, Decimal("20.00")),
        ("B", 0, Decimal("20.00")),
    ]
