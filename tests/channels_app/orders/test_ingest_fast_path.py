"""The web process's fast path: channel reuse and batched enqueueing (production settings)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_app import dispatch
from channels_app.dispatch import EnqueueBatcher
from channels_app.models import ChannelOrder, InboundEvent
from channels_app.orders import webhooks
from channels_app.tasks import inbound_events_process_task
from tests.support.webhooks import deliver, shopify_headers, shopify_order, sign


@pytest.fixture
def sent_batches(monkeypatch):
    """The broker for batched tasks: records each message's ids, sends nothing."""
    batches: list[list[int]] = []
    arrived = threading.Event()

    def record(name, args, **kwargs):
        if name == dispatch.INBOUND_EVENTS:
            batches.append(list(args[0]))
            arrived.set()

    monkeypatch.setattr("celery.current_app.send_task", record)
    return batches, arrived


def wait_for(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_ids_added_within_one_window_go_out_as_one_message_in_order(sent_batches):
    batches, _ = sent_batches
    batcher = EnqueueBatcher(window=0.2)

    for event_id in (11, 12, 13, 14):
        batcher.add(event_id)
    wait_for(lambda: batches)
    time.sleep(0.3)  # nothing else is waiting, so nothing else is sent

    assert batches == [[11, 12, 13, 14]]


def test_a_later_id_goes_out_in_the_next_message(sent_batches):
    batches, _ = sent_batches
    batcher = EnqueueBatcher(window=0.02)

    batcher.add(1)
    wait_for(lambda: len(batches) == 1)
    batcher.add(2)
    wait_for(lambda: len(batches) == 2)

    assert batches == [[1], [2]]


def test_a_broker_failure_is_logged_and_never_raised(broker_down, caplog):
    batcher = EnqueueBatcher(window=10)  # flushed by hand below, not by its thread

    batcher.add(7)
    assert batcher.flush() == 1

    assert "1 inbound event(s) not enqueued" in caplog.text
    assert "sweeper will process them" in caplog.text


def test_a_delivery_with_batching_on_is_enqueued_with_the_next_batch(
    shop, sent_batches, client, settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.PIMSYNC_INBOUND_ENQUEUE_WINDOW_MS = 20
    monkeypatch.setattr("channels_app.dispatch._batcher", None)
    batches, _ = sent_batches
    body = shopify_order(8101)

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, "shop", body, shopify_headers(body))

    assert response.status_code == 200
    wait_for(lambda: batches)
    assert batches == [[InboundEvent.objects.get().pk]]


def test_a_batch_task_applies_each_event_once(shop, post, enqueued, location):
    bodies = [shopify_order(8201 + n) for n in range(3)]
    for n, body in enumerate(bodies):
        post("shop", body, shopify_headers(body, webhook_id=f"wh-b{n}"))
    ids = list(InboundEvent.objects.order_by("pk").values_list("pk", flat=True))

    assert inbound_events_process_task(ids) == 3
    assert inbound_events_process_task(ids) == 0  # already processed: nothing twice

    assert ChannelOrder.objects.filter(channel=shop).count() == 3


def test_the_channel_is_read_once_per_cache_period(shop, post, enqueued, settings):
    settings.PIMSYNC_WEBHOOK_CHANNEL_CACHE_SECONDS = 60
    webhooks._forget_receivers()
    first, second = shopify_order(8301), shopify_order(8302)
    post("shop", first, shopify_headers(first, webhook_id="wh-c1"))

    with CaptureQueriesContext(connection) as queries:
        response = post("shop", second, shopify_headers(second, webhook_id="wh-c2"))

    assert response.status_code == 200
    # The second delivery only stores its event, one statement: no read of the channel.
    statements = [q["sql"].split(" ", 1)[0] for q in queries.captured_queries]
    assert statements == ["INSERT"]


def test_a_changed_secret_applies_at_once_in_the_process_that_saved_it(
    shop, post, enqueued, settings
):
    settings.PIMSYNC_WEBHOOK_CHANNEL_CACHE_SECONDS = 60
    webhooks._forget_receivers()
    body = shopify_order(8401)
    assert post("shop", body, shopify_headers(body, webhook_id="wh-s1")).status_code == 200

    shop.webhook_secret = "rotated"
    shop.save()
    old = shopify_order(8402)
    new = shopify_order(8403)
    refused = post("shop", old, shopify_headers(old, webhook_id="wh-s2"))
    accepted = post(
        "shop",
        new,
        shopify_headers(new, webhook_id="wh-s3", signature=sign(new, "rotated")),
    )

    assert (refused.status_code, accepted.status_code) == (401, 200)


@pytest.mark.django_db(transaction=True)
def test_in_autocommit_a_new_delivery_is_one_insert_and_a_repeat_one_more_select(
    shop, enqueued, client, settings
):
    settings.PIMSYNC_WEBHOOK_CHANNEL_CACHE_SECONDS = 60
    webhooks._forget_receivers()
    warm = shopify_order(8501)
    deliver(client, "shop", warm, shopify_headers(warm, webhook_id="wh-a0"))
    body = shopify_order(8502)
    headers = shopify_headers(body, webhook_id="wh-a1")

    with CaptureQueriesContext(connection) as new:
        assert deliver(client, "shop", body, headers).json()["duplicate"] is False
    with CaptureQueriesContext(connection) as repeat:
        assert deliver(client, "shop", body, headers).json()["duplicate"] is True

    assert [q["sql"].split(" ", 1)[0] for q in new.captured_queries] == ["INSERT"]
    assert [q["sql"].split(" ", 1)[0] for q in repeat.captured_queries] == ["INSERT", "SELECT"]
    assert InboundEvent.objects.filter(delivery_id="wh-a1").count() == 1
