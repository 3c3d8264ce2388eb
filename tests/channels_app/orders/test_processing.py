"""Processing stored events: once only, retries with backoff, failing for good, re-processing."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from channels_app.connectors.base import OrderData, OrderLineData
from channels_app.models import ChannelOrder, InboundEvent
from channels_app.orders.apply import order_apply
from channels_app.orders.events import (
    inbound_event_process,
    inbound_events_due,
    inbound_events_reprocess,
    inbound_sweep,
    order_data_from_json,
    order_data_to_json,
)
from channels_app.orders.polling import orders_seen_by_source, poll_delivery_id
from inventory.models import StockLevel
from synclog.models import Alert
from synclog.services import alert_raise
from tests.support.webhooks import T0, shopify_headers, shopify_order

ORDER = OrderData(
    external_id="9001",
    name="#9001",
    status="paid",
    financial_status="paid",
    fulfillment_status="unfulfilled",
    currency="EUR",
    total=Decimal("12.50"),
    updated_at=T0 + timedelta(minutes=5),
    created_at=T0,
    lines=[OrderLineData("L1", "SKU-A", 1, Decimal("12.50"), "gid://v/1", "gid://p/1")],
    customer_email="c@example.com",
    raw={"id": 9001, "nested": {"amount": "12.50"}},
)


def webhook_event(channel, body=None, *, topic="orders/paid", webhook_id="wh-1", age=0):
    body = body if body is not None else shopify_order(5001)
    event = InboundEvent.objects.create(
        channel=channel,
        source="webhook",
        delivery_id=webhook_id,
        topic=topic,
        headers=shopify_headers(body, topic=topic, webhook_id=webhook_id, signature=""),
        raw_body=body.decode(),
        body_sha256=hashlib.sha256(body).hexdigest(),
    )
    if age:
        InboundEvent.objects.filter(pk=event.pk).update(
            received_at=timezone.now() - timedelta(seconds=age)
        )
    return event


def poll_event(channel, body: str, *, delivery_id="poll:1:x"):
    return InboundEvent.objects.create(
        channel=channel, source="poll", delivery_id=delivery_id, topic="poll", raw_body=body
    )


def committed(location) -> int:
    return StockLevel.objects.get(variant__sku="SKU-A", location=location).committed


# --- poll bodies ---------------------------------------------------------------------------------


def test_order_data_survives_the_poll_event_body_unchanged():
    assert order_data_from_json(order_data_to_json(ORDER)) == ORDER


def test_a_poll_delivery_id_names_the_order_its_change_time_and_status():
    cancelled_in_the_same_second = OrderData(**{**ORDER.__dict__, "status": "cancelled"})

    assert poll_delivery_id(ORDER) == "poll:9001:2026-11-01T12:05:00+00:00:paid"
    assert poll_delivery_id(cancelled_in_the_same_second) != poll_delivery_id(ORDER)


# --- once only ------------------------------------------------------------------------------------


def test_a_webhook_event_applies_its_order_once(shop, location):
    event = webhook_event(shop)

    assert inbound_event_process(event.pk) == "processed"
    assert inbound_event_process(event.pk) is None  # not pending any more

    event.refresh_from_db()
    assert (event.status, event.attempts, event.error) == ("processed", 1, "")
    assert event.processed_at is not None
    assert event.external_order_id == "5001"
    assert committed(location) == 2
    order = ChannelOrder.objects.get()
    assert (order.external_id, order.first_seen_via, order.seen_via_webhook) == (
        "5001",
        "webhook",
        True,
    )


def test_a_poll_event_applies_its_order_as_seen_by_polling(shop, location):
    event = poll_event(shop, order_data_to_json(ORDER))

    assert inbound_event_process(event.pk) == "processed"

    order = ChannelOrder.objects.get()
    assert (order.first_seen_via, order.seen_via_webhook, order.currency) == ("poll", False, "EUR")
    assert committed(location) == 1


def test_a_topic_without_an_order_is_ignored(shop, location):
    event = webhook_event(shop, b'{"id": 1}', topic="shop/update")

    assert inbound_event_process(event.pk) == "ignored"
    assert ChannelOrder.objects.count() == 0


def test_the_same_change_by_webhook_and_by_poll_moves_stock_once(shop, location):
    first = webhook_event(shop, shopify_order(5001, minute=0))
    inbound_event_process(first.pk)
    order = ChannelOrder.objects.get()
    seen = OrderData(
        **{
            **ORDER.__dict__,
            "external_id": "5001",
            "updated_at": order.channel_updated_at,
            "lines": [OrderLineData("50010", "SKU-A", 2, Decimal("20.00"))],
        }
    )
    again = poll_event(shop, order_data_to_json(seen), delivery_id=poll_delivery_id(seen))

    assert inbound_event_process(again.pk) == "processed"
    assert committed(location) == 2


# --- failures -------------------------------------------------------------------------------------


@pytest.fixture
def broken_apply(monkeypatch):
    calls = []

    def explode(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("database hiccup")

    monkeypatch.setattr("channels_app.orders.events.order_apply", explode)
    return calls


def test_a_failed_attempt_stays_pending_and_is_retried_after_its_backoff(
    shop, broken_apply, settings
):
    settings.PIMSYNC_WEBHOOK_RETRY_BASE_SECONDS = 10
    event = webhook_event(shop)

    assert inbound_event_process(event.pk) == "pending"

    event.refresh_from_db()
    assert (event.status, event.attempts) == ("pending", 1)
    assert event.error == "RuntimeError: database hiccup"
    now = timezone.now()
    assert list(inbound_events_due(now=now + timedelta(seconds=5))) == []
    assert list(inbound_events_due(now=now + timedelta(seconds=11))) == [event]
    event.attempts = 2
    event.save()
    # Retry n is due BASE * (2^n - 1) seconds after receipt: 30 s for the second.
    assert list(inbound_events_due(now=now + timedelta(seconds=25))) == []
    assert list(inbound_events_due(now=now + timedelta(seconds=31))) == [event]


def test_after_the_last_attempt_an_event_fails_for_good_with_an_alert(shop, broken_apply, settings):
    settings.PIMSYNC_WEBHOOK_MAX_ATTEMPTS = 3
    event = webhook_event(shop)

    outcomes = [inbound_event_process(event.pk) for _ in range(4)]

    assert outcomes == ["pending", "pending", "failed", None]
    assert len(broken_apply) == 3
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 3)
    alert = Alert.objects.get(kind="repeated_failure", channel=shop)
    assert "wh-1" in alert.message
    assert "database hiccup" in alert.message
    assert list(inbound_events_due(now=timezone.now() + timedelta(days=1))) == []


def test_an_unreadable_event_fails_at_once(shop):
    event = poll_event(shop, "{not json")

    assert inbound_event_process(event.pk) == "failed"

    event.refresh_from_db()
    assert event.attempts == 1
    assert "unreadable poll event" in event.error
    assert Alert.objects.filter(kind="repeated_failure").count() == 1


def test_a_failure_rolls_back_every_stock_effect_of_the_attempt(shop, location, monkeypatch):
    def apply_then_fail(**kwargs):
        order_apply(**kwargs)
        raise RuntimeError("after the stock moved")

    monkeypatch.setattr("channels_app.orders.events.order_apply", apply_then_fail)
    event = webhook_event(shop)

    assert inbound_event_process(event.pk) == "pending"

    assert committed(location) == 0
    assert ChannelOrder.objects.count() == 0


def test_re_processing_runs_failed_events_again_and_resolves_the_alert(
    shop, location, monkeypatch, settings
):
    settings.PIMSYNC_WEBHOOK_MAX_ATTEMPTS = 1

    def broken(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("channels_app.orders.events.order_apply", broken)
    other = alert_raise(
        kind="repeated_failure", channel_id=shop.pk, sku="SKU-A", message="fulfilment failed"
    )
    failed = webhook_event(shop)
    done = webhook_event(shop, shopify_order(5002), webhook_id="wh-2")
    inbound_event_process(failed.pk)
    monkeypatch.setattr("channels_app.orders.events.order_apply", order_apply)
    inbound_event_process(done.pk)

    outcomes = inbound_events_reprocess(events=InboundEvent.objects.all())

    assert outcomes == {"processed": 1}
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.error) == ("processed", 1, "")
    assert Alert.objects.get(kind="repeated_failure", sku="").resolved_at is not None
    other.refresh_from_db()
    assert other.resolved_at is None  # another problem's alert stays open
    assert committed(location) == 4


# --- the sweeper ----------------------------------------------------------------------------------


def test_the_sweeper_leaves_fresh_events_to_their_task_and_takes_the_old(shop, settings):
    settings.PIMSYNC_WEBHOOK_SWEEP_GRACE_SECONDS = 5
    fresh = webhook_event(shop, webhook_id="fresh")
    old = webhook_event(shop, shopify_order(5002), webhook_id="old", age=10)

    assert inbound_sweep() == 1

    fresh.refresh_from_db()
    old.refresh_from_db()
    assert (fresh.status, old.status) == ("pending", "processed")


# --- missed webhooks ------------------------------------------------------------------------------


def test_orders_seen_by_source_counts_poll_only_orders_per_channel_and_day(shop, woo):
    def seen(channel, external_id, *sources):
        data = OrderData(**{**ORDER.__dict__, "external_id": external_id, "lines": []})
        for source in sources:
            order_apply(channel=channel, data=data, source=source)

    seen(shop, "1", "webhook")
    seen(shop, "2", "webhook", "poll")
    seen(shop, "3", "poll", "webhook")  # the webhook came late, but it came
    seen(shop, "4", "poll")  # missed
    seen(woo, "5", "poll")

    rows = orders_seen_by_source(days=1)

    today = timezone.now().date()
    assert [(r.channel_id, r.day, r.orders, r.first_via_webhook, r.first_via_poll, r.poll_only)
            for r in rows] == [
        (shop.pk, today, 4, 2, 2, 1),
        (woo.pk, today, 1, 0, 1, 1),
    ]  # fmt: skip
    assert rows[0].missed_webhook_rate == 0.25
    assert [r.channel_id for r in orders_seen_by_source(channel=woo, days=1)] == [woo.pk]
