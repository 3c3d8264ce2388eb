"""Batches under real parallel connections (PostgreSQL lane): a storm on one SKU,
overlapping batches over several SKUs, a buyer's concurrent first orders."""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from channels_app.connectors.base import OrderLineData
from channels_app.models import ChannelOrder, ChannelOrderLine, Customer, InboundEvent
from channels_app.orders.apply import order_apply
from channels_app.orders.events import inbound_events_apply, inbound_events_process
from inventory import services
from inventory.models import StockLevel, StockMovement, Variant
from tests.support.orders import order_data, stored_poll_event
from tests.support.webhooks import shopify_headers, shopify_order, woo_headers, woo_order

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BUCKETS = ("on_hand", "committed", "reserved", "damaged")


def receive(variant, location, quantity: int) -> None:
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=quantity,
        reason="receive",
        source="t",
        idempotency_key=f"seed-{variant.sku}",
    )


def ledger_equals_levels() -> bool:
    for level in StockLevel.objects.all():
        sums = StockMovement.objects.filter(
            variant_id=level.variant_id, location_id=level.location_id
        ).aggregate(*(Sum(f"delta_{b}") for b in BUCKETS))
        if [sums[f"delta_{b}__sum"] or 0 for b in BUCKETS] != [getattr(level, b) for b in BUCKETS]:
            return False
    return True


def webhook_event(channel, order_id: int, body: bytes, headers: dict[str, str]) -> InboundEvent:
    return InboundEvent.objects.create(
        channel=channel,
        source="webhook",
        delivery_id=f"wh-{order_id}",
        topic=headers.get("X-Shopify-Topic") or headers["X-WC-Webhook-Topic"],
        headers=headers,
        raw_body=body.decode(),
        external_order_id=str(order_id),
    )


def work_in_parallel(tasks: list[list[int]], workers: int) -> list[BaseException]:
    """``workers`` threads, each with its own connection, taking task after task
    (a list of event ids, as a web process sends them) until none is left."""
    todo: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
    for task in tasks:
        todo.put(task)
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def worker() -> None:
        try:
            start.wait()
            while True:
                try:
                    ids = todo.get_nowait()
                except queue.Empty:
                    return
                inbound_events_process(ids)
        except BaseException as exc:  # reported by the test, not lost in a thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_storm_on_one_sku_sells_exactly_the_stock_in_parallel_batches(
    channel_factory, channel_location_factory, listing_factory, location, variant_factory, settings
):
    settings.PIMSYNC_INBOUND_BATCH_SIZE = 25
    variant = variant_factory(sku="HOT")
    receive(variant, location, 40)
    channels = {}
    for platform in ("shopify", "woocommerce", "ebay", "amazon"):
        channels[platform] = channel_factory(
            platform=platform,
            base_url=f"http://127.0.0.1:8700/{platform}",
            credentials={"consumer_key": "ck", "consumer_secret": "cs"}
            if platform == "woocommerce"
            else {"access_token": "t"},
        )
        channel_location_factory(channel=channels[platform], location=location)
        listing_factory(channel=channels[platform], variant=variant)
    line = [OrderLineData("1", "HOT", 1, Decimal("9.99"))]
    events = []
    for n in range(400):
        order_id = 10_000 + n
        platform = ("shopify", "woocommerce", "ebay", "amazon")[n % 4]
        if platform == "shopify":
            body = shopify_order(order_id, sku="HOT", quantity=1, email=f"s{n}@example.com")
            headers = shopify_headers(body, webhook_id=f"wh-{order_id}", signature="")
            events.append(webhook_event(channels[platform], order_id, body, headers))
        elif platform == "woocommerce":
            body = woo_order(order_id, sku="HOT", quantity=1)
            headers = woo_headers(body, delivery_id=f"d-{order_id}", signature="")
            events.append(webhook_event(channels[platform], order_id, body, headers))
        else:
            data = order_data("paid", 1, external_id=str(order_id), lines=line)
            events.append(stored_poll_event(channels[platform], data))
    ids = [event.pk for event in events]

    errors = work_in_parallel([ids[i : i + 5] for i in range(0, len(ids), 5)], workers=4)

    assert errors == []
    assert Counter(InboundEvent.objects.values_list("status", flat=True)) == {"processed": 400}
    assert Counter(ChannelOrderLine.objects.values_list("state", flat=True)) == {
        "committed": 40,
        "oversold": 360,
    }
    level = StockLevel.objects.get(variant=variant, location=location)
    assert (level.on_hand, level.committed, level.reserved) == (40, 40, 0)
    assert ledger_equals_levels()


def test_overlapping_batches_over_several_skus_never_deadlock(
    stocked_channel, location, location2, variant_factory, settings
):
    settings.PIMSYNC_INBOUND_BATCH_SIZE = 7
    skus = ["SKU-A", "SKU-B", "SKU-C"]
    for sku in skus[1:]:
        receive(variant_factory(sku=sku), location, 1000)
    receive(Variant.objects.get(sku="SKU-A"), location, 1000)
    pairs = [("SKU-A", "SKU-B"), ("SKU-C", "SKU-B"), ("SKU-C", "SKU-A"), ("SKU-B", "SKU-A")]
    events = []
    for n in range(240):
        first, second = pairs[n % len(pairs)]
        lines = [
            OrderLineData("1", first, 1, Decimal("1")),
            OrderLineData("2", second, 2, Decimal("1")),
        ]
        events.append(
            stored_poll_event(
                stocked_channel, order_data("paid", 1, external_id=f"M{n}", lines=lines)
            )
        )
    ids = [event.pk for event in events]

    errors = work_in_parallel([ids[i : i + 3] for i in range(0, len(ids), 3)], workers=4)

    assert errors == []
    assert set(InboundEvent.objects.values_list("status", "attempts")) == {("processed", 1)}
    committed = dict(
        StockLevel.objects.values("variant__sku")
        .annotate(units=Sum("committed"))
        .values_list("variant__sku", "units")
    )
    # Each pair 60 times: one unit of the first SKU, two of the second.
    assert committed == {"SKU-A": 60 + 120 + 120, "SKU-B": 120 + 120 + 60, "SKU-C": 60 + 60}
    assert ledger_equals_levels()


def test_concurrent_first_orders_of_one_buyer_make_one_customer(stocked_channel):
    emails = ["Ann@Example.com", "ann@example.com ", " ANN@example.com", "ann@EXAMPLE.com"] * 2
    start = threading.Barrier(len(emails))

    def place(n: int) -> int | None:
        try:
            start.wait()
            data = order_data("cancelled", 1, external_id=f"C{n}", email=emails[n])
            return order_apply(channel=stocked_channel, data=data, source="webhook").order.pk
        finally:
            connection.close()

    with ThreadPoolExecutor(len(emails)) as pool:
        orders = list(pool.map(place, range(len(emails))))

    customer = Customer.objects.get()
    assert customer.email == "ann@example.com"
    assert set(ChannelOrder.objects.filter(pk__in=orders).values_list("customer", flat=True)) == {
        customer.pk
    }


def test_a_poll_waits_for_its_events_a_worker_holds(stocked_channel, location):
    event = stored_poll_event(stocked_channel, order_data("paid", 1))
    held = threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                list(InboundEvent.objects.select_for_update().filter(pk=event.pk))
                held.set()
                time.sleep(0.5)
                inbound_events_apply(event_ids=[event.pk])  # same connection: it holds the row
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    held.wait(5)
    skipped = inbound_events_apply(event_ids=[event.pk])
    started = time.monotonic()
    waited = inbound_events_apply(event_ids=[event.pk], wait=True)
    finished = time.monotonic()
    thread.join()

    assert (skipped, waited) == ({}, {})  # taken by the other worker either way ...
    assert finished - started > 0.3  # ... but the poll returned only once it was applied
    assert StockLevel.objects.get(variant__sku="SKU-A", location=location).committed == 2
