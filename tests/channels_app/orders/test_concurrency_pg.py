"""At most once under real parallel connections (PostgreSQL lane)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from channels_app.models import ChannelOrder, InboundEvent
from channels_app.orders.apply import order_apply
from channels_app.orders.events import inbound_event_process
from channels_app.orders.webhooks import webhook_ingest
from tests.support.webhooks import shopify_headers, shopify_order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_parallel_workers_apply_one_event_once(shop, monkeypatch):
    body = shopify_order(5001)
    event = InboundEvent.objects.create(
        channel=shop,
        source="webhook",
        delivery_id="wh-1",
        topic="orders/paid",
        headers=shopify_headers(body, signature=""),
        raw_body=body.decode(),
    )
    applied: list[str] = []

    def slow_apply(**kwargs):
        applied.append(kwargs["data"].external_id)
        time.sleep(0.3)  # hold the row lock while the others arrive
        return order_apply(**kwargs)

    monkeypatch.setattr("channels_app.orders.events.order_apply", slow_apply)
    barrier = threading.Barrier(6)

    def worker(_: int) -> str | None:
        try:
            barrier.wait()
            return inbound_event_process(event.pk)
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(worker, range(6)))

    assert Counter(outcomes) == {"processed": 1, None: 5}
    assert applied == ["5001"]
    assert ChannelOrder.objects.count() == 1


def test_parallel_twin_deliveries_store_one_event(shop, monkeypatch):
    monkeypatch.setattr("channels_app.dispatch.inbound_event_enqueue", lambda event_id: True)
    body = shopify_order(5001)
    headers = shopify_headers(body, webhook_id="twin")
    barrier = threading.Barrier(6)

    def deliver(_: int) -> int | None:
        try:
            barrier.wait()
            return webhook_ingest(channel=shop, headers=headers, raw_body=body).event_id
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as pool:
        event_ids = set(pool.map(deliver, range(6)))

    assert event_ids == {InboundEvent.objects.get().pk}
