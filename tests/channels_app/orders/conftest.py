from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from channels_app.connectors.base import OrderData, OrderLineData
from inventory import services

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def order_data(
    status: str,
    minute: int,
    *,
    external_id: str = "1001",
    lines=None,
    email: str = "Ann@Example.com",
    phone: str = "",
) -> OrderData:
    return OrderData(
        external_id=external_id,
        name=f"#{external_id}",
        status=status,
        financial_status={"pending": "pending", "paid": "paid"}.get(status, status),
        fulfillment_status="fulfilled" if status == "fulfilled" else "",
        currency="USD",
        total=Decimal("40.00"),
        created_at=T0,
        updated_at=T0 + timedelta(minutes=minute),
        lines=lines if lines is not None else [OrderLineData("L1", "SKU-A", 2, Decimal("20.00"))],
        customer_email=email,
        customer_phone=phone,
    )


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
