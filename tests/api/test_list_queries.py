"""Every list endpoint makes the same number of queries for a page of 2 as for a page of 25."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.models import (
    BufferRule,
    ChannelOrder,
    ChannelOrderLine,
    Customer,
    PriceRule,
    SyncMarker,
)
from inventory import services
from synclog.models import Alert, SyncLogEntry
from tests import factories

pytestmark = pytest.mark.django_db

N = 26

LISTS = [
    "/api/v1/products/",
    "/api/v1/variants/",
    "/api/v1/variants/?include=channels",
    "/api/v1/locations/",
    "/api/v1/stock-levels/",
    "/api/v1/stock-levels/?available_lte=100",
    "/api/v1/stock-movements/",
    "/api/v1/reservations/",
    "/api/v1/channels/",
    "/api/v1/listings/",
    "/api/v1/buffer-rules/",
    "/api/v1/price-rules/",
    "/api/v1/orders/",
    "/api/v1/customers/",
    "/api/v1/sync-log/",
    "/api/v1/alerts/",
]


@pytest.fixture
def lots(db):
    """N of everything, with the relations each list shows (listings with markers,
    orders with lines, channels with locations and sync state)."""
    locations = [factories.LocationFactory() for _ in range(N)]
    channels = [factories.ChannelFactory() for _ in range(N)]
    for channel, location in zip(channels, locations, strict=True):
        factories.ChannelLocationFactory(channel=channel, location=location)
        PriceRule.objects.create(channel=channel, multiplier=Decimal("1.1"))
    variants = [factories.VariantFactory() for _ in range(N)]
    for n, variant in enumerate(variants):
        listing = factories.ChannelListingFactory(channel=channels[0], variant=variant)
        factories.ChannelListingFactory(channel=channels[1], variant=variant)
        services.stock_adjust(
            variant=variant,
            location=locations[0],
            quantity=n + 1,
            reason="receive",
            source="t",
            idempotency_key=f"r{n}",
        )
        services.reservation_create(
            variant=variant,
            location=locations[0],
            quantity=1,
            source="t",
            idempotency_key=f"h{n}",
        )
        BufferRule.objects.create(variant=variant, value=Decimal("1"))
        SyncMarker.objects.filter(listing=listing).update(attempts=n % 3)
        customer = Customer.objects.create(email=f"c{n}@example.com")
        order = ChannelOrder.objects.create(
            channel=channels[0],
            external_id=f"o{n}",
            status="paid",
            placed_at=timezone.now() - timedelta(minutes=n),
            channel_updated_at=timezone.now(),
            first_seen_via="webhook",
            customer=customer,
            total=Decimal("10"),
        )
        for line in range(2):
            ChannelOrderLine.objects.create(
                order=order,
                external_line_id=str(line),
                sku=variant.sku,
                variant=variant,
                quantity=1,
            )
        SyncLogEntry.objects.create(
            channel=channels[n % 3], sku=variant.sku, event_type="price", status="success"
        )
        Alert.objects.create(
            kind="drift",
            channel=channels[n % 3],
            sku=variant.sku,
            message="m",
            last_seen=timezone.now(),
        )


def _queries(client, url: str, page_size: int) -> int:
    joiner = "&" if "?" in url else "?"
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"{url}{joiner}page_size={page_size}")
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == page_size
    return len(ctx)


@pytest.mark.parametrize("url", LISTS)
def test_list_queries_do_not_depend_on_the_page_size(lots, staff_api, url):
    assert _queries(staff_api, url, 2) == _queries(staff_api, url, 25)
