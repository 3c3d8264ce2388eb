"""Order calls to the channel itself: cancel an oversell loser, report a shipment.

Each call's outcome goes to the sync log like any push (event type ``order``).
"""

from __future__ import annotations

from synclog import services as synclog

from ..connectors.errors import FailureKind
from ..models import ChannelOrder, ChannelOrderLine
from ..sync.connection import channel_connector

Line = ChannelOrderLine.State


def order_cancel_on_channel(order_id: int, *, reason: str = "oversold") -> bool:
    """Cancel an order on its channel (an oversell loser); the outcome is logged
    like any push. Returns True when the channel confirmed."""

    order = ChannelOrder.objects.select_related("channel").get(pk=order_id)
    try:
        result = channel_connector(order.channel).cancel_order(order.external_id, reason=reason)
        ok, code, message = result.kind is FailureKind.OK, result.code, result.message
    except Exception as exc:
        ok, code, message = False, "connector_error", str(exc)[:500]
    synclog.sync_log_record(
        [
            synclog.Attempt(
                channel_id=order.channel_id,
                sku=", ".join(
                    order.lines.filter(state=Line.OVERSOLD).values_list("sku", flat=True)
                )[:100],
                listing_id=None,
                event_type="order",
                value_sent=f"cancel {order.external_id}"[:64],
                status="success" if ok else "failed",
                error_code=code[:64],
                message=message,
            )
        ]
    )
    return ok


def order_fulfil_on_channel(order_id: int, *, tracking_number: str = "", carrier: str = "") -> bool:
    """Tell the channel an order shipped; the outcome goes to the sync log."""

    order = ChannelOrder.objects.select_related("channel").get(pk=order_id)
    try:
        result = channel_connector(order.channel).fulfil_order(
            order.external_id, tracking_number=tracking_number, carrier=carrier
        )
        ok, code, message = result.kind is FailureKind.OK, result.code, result.message
    except Exception as exc:
        ok, code, message = False, "connector_error", str(exc)[:500]
    skus = ", ".join(order.lines.values_list("sku", flat=True))[:100]
    synclog.sync_log_record(
        [
            synclog.Attempt(
                channel_id=order.channel_id,
                sku=skus,
                listing_id=None,
                event_type="order",
                value_sent=f"fulfil {order.external_id}"[:64],
                status="success" if ok else "failed",
                error_code=code[:64],
                message=message,
            )
        ]
    )
    if not ok:
        synclog.alert_raise(
            kind="repeated_failure",
            channel_id=order.channel_id,
            sku=skus,
            message=f"Telling {order.channel} that order {order.name or order.external_id} "
            f"shipped failed: {code} {message}"[:1000],
        )
    return ok
