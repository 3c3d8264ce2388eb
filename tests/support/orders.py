"""Normalised orders (OrderData) as a connector would return them."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from channels_app.connectors.base import OrderData, OrderLineData

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


def stored_poll_event(channel, data: OrderData):
    """An InboundEvent as the poller stores it: the normalised order as JSON."""
    from channels_app.models import InboundEvent
    from channels_app.orders.events import order_data_to_json
    from channels_app.orders.polling import poll_delivery_id

    return InboundEvent.objects.create(
        channel=channel,
        source="poll",
        delivery_id=poll_delivery_id(data),
        topic="poll",
        raw_body=order_data_to_json(data),
        external_order_id=data.external_id,
    )
