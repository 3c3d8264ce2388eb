"""Amazon feeds as recorded batches: submitted once, followed by any worker, a
failed step retried on its own, only failed SKUs sent again."""

from __future__ import annotations

from decimal import Decimal

import pytest

from channels_app.models import (
    Channel,
    ChannelBatch,
    ChannelListing,
    ChannelLocation,
    SyncMarker,
)
from channels_app.sync import engine
from channels_app.sync.batches import batch_watch_step, batches_sweep
from inventory import services
from inventory.models import Location, Product, Variant
from pimsync.demo import SANDBOX_CHANNELS
from sandbox.server import RunningSandbox
from tests.support.sandbox import control

pytestmark = pytest.mark.django_db(transaction=True)
N = 240  # above the feed threshold (200): one feed


def amazon_catalog(sandbox: RunningSandbox) -> Channel:
    spec = next(s for s in SANDBOX_CHANNELS if s["platform"] == "amazon")
    location = Location.objects.create(code="fb", name="Feed warehouse")
    channel = Channel.objects.create(
        name=spec["name"],
        slug=spec["slug"],
        platform="amazon",
        base_url=sandbox.platform_url("amazon"),
        credentials=spec["credentials"],
        platform_config={**spec["platform_config"], "pacing": False},
        rate_limit_per_second=Decimal("1000"),
    )
    ChannelLocation.objects.create(channel=channel, location=location)
    product = Product.objects.create(title="Feed", handle="feed")
    rows = []
    for i in range(N):
        variant = Variant.objects.create(product=product, sku=f"FEED-{i:03d}", price=Decimal("10"))
        ChannelListing.objects.create(
            channel=channel,
            variant=variant,
            listing_sku=variant.sku,
            last_pushed_price=Decimal("10"),
            last_confirmed_price=Decimal("10"),
        )
        rows.append({"sku": variant.sku, "price": "10.00", "quantity": 0})
    sandbox.platform("amazon").seed(rows)
    SyncMarker.objects.all().delete()
    return channel


def reprice(price: str) -> None:
    services.variant_set_prices(
        prices={pk: Decimal(price) for pk in Variant.objects.values_list("pk", flat=True)}
    )


def live_prices(sandbox: RunningSandbox) -> dict[str, Decimal]:
    _, live = control(sandbox.url, "GET", "/_control/values/amazon")
    return {sku: Decimal(v["price"]) for sku, v in live.items()}


def calls(sandbox: RunningSandbox, endpoint: str) -> int:
    _, counters = control(sandbox.url, "GET", "/_control/counters")
    return counters["amazon"]["by_endpoint"].get(endpoint, 0)


def watch_until_finished(batch: ChannelBatch, *, steps: int = 50) -> str:
    """What the watcher task does, step after step (no sleeping: the steps are
    forced due; the sandbox processes a feed in a fraction of a second here)."""
    status = ""
    for _ in range(steps):
        ChannelBatch.objects.filter(pk=batch.pk).update(claimed_until=None)
        status = batch_watch_step(batch.pk) or status
        if status in (ChannelBatch.Status.FINISHED, ChannelBatch.Status.ABANDONED):
            return status
    return status


@pytest.fixture
def fast_feeds(sandbox):
    sandbox.platform("amazon").feed_processing_seconds = 0.0
    return sandbox


def test_a_feed_is_recorded_and_the_push_does_not_wait_for_it(fast_feeds):
    sandbox = fast_feeds
    channel = amazon_catalog(sandbox)
    reprice("12.50")
    report = engine.channel_push(channel.pk, time_budget=30)
    # the run submitted one feed and went on: nothing waited for Amazon to process it
    assert (report.submitted, report.pushed, report.calls) == (N, 0, 1)
    batch = ChannelBatch.objects.get()
    assert (batch.status, len(batch.items), batch.external_id != "") == ("submitted", N, True)
    assert SyncMarker.objects.filter(batch=batch).count() == N
    # a second push run does not take the SKUs of the batch again
    assert engine.channel_push(channel.pk, time_budget=30).calls == 0
    assert watch_until_finished(batch) == "finished"
    assert set(live_prices(sandbox).values()) == {Decimal("12.50")}
    assert not SyncMarker.objects.exists()
    assert calls(sandbox, "createFeed") == 1


def test_a_failed_report_download_retries_that_step_not_the_feed(fast_feeds):
    sandbox = fast_feeds
    channel = amazon_catalog(sandbox)
    reprice("13.00")
    engine.channel_push(channel.pk, time_budget=30)
    batch = ChannelBatch.objects.get()
    control(
        sandbox.url,
        "POST",
        "/_control/faults",
        {"amazon": {"error_5xx": 1.0, "endpoints": ["getFeedDocument"]}},
    )
    for _ in range(3):  # the status is read, then the report download fails twice
        ChannelBatch.objects.filter(pk=batch.pk).update(claimed_until=None)
        batch_watch_step(batch.pk)
    batch.refresh_from_db()
    assert batch.status == "processed"
    assert batch.step_failures >= 1
    control(sandbox.url, "POST", "/_control/faults", {"amazon": {"error_5xx": 0.0}})
    assert watch_until_finished(batch) == "finished"
    assert calls(sandbox, "createFeed") == 1  # never submitted twice
    assert set(live_prices(sandbox).values()) == {Decimal("13.00")}
    assert not SyncMarker.objects.exists()


def test_only_the_skus_the_report_says_failed_are_sent_again(fast_feeds):
    sandbox = fast_feeds
    channel = amazon_catalog(sandbox)
    refused = ["FEED-007", "FEED-123"]
    control(sandbox.url, "POST", "/_control/faults", {"amazon": {"fail_skus": refused}})
    reprice("14.00")
    engine.channel_push(channel.pk, time_budget=30)
    batch = ChannelBatch.objects.get()
    assert watch_until_finished(batch) == "finished"
    left = SyncMarker.objects.all()
    assert sorted(m.listing.variant.sku for m in left) == refused
    assert all(m.batch_id is None for m in left)


def test_a_killed_watcher_is_taken_over_by_the_sweeper(fast_feeds, task_sends):
    sandbox = fast_feeds
    channel = amazon_catalog(sandbox)
    reprice("15.00")
    engine.channel_push(channel.pk, time_budget=30)
    batch = ChannelBatch.objects.get()
    # a worker claimed it and died: its claim has run out, the check is due
    from datetime import timedelta

    from django.utils import timezone

    past = timezone.now() - timedelta(seconds=1)
    ChannelBatch.objects.filter(pk=batch.pk).update(
        claimed_until=past, claim_token="dead-worker", next_check_at=past
    )
    task_sends.clear()
    assert batches_sweep() == [batch.pk]
    assert task_sends.args_of("channels_app.tasks.channel_batch_watch_task") == [[batch.pk]]


def test_an_urgent_zero_overtakes_a_sku_in_a_feed_and_the_feed_cannot_undo_it(fast_feeds):
    sandbox = fast_feeds
    channel = amazon_catalog(sandbox)
    location = Location.objects.get()
    variants = list(Variant.objects.order_by("pk"))
    for v in variants:
        services.stock_adjust(
            variant=v,
            location=location,
            quantity=30,
            reason="receive",
            source="t",
            idempotency_key=f"r-{v.sku}",
        )
    engine.channel_push(channel.pk, time_budget=30)  # one quantity feed of 240
    batch = ChannelBatch.objects.get()
    # while Amazon processes the feed (30 each), the first SKU sells out in pimsync
    services.stock_adjust(
        variant=variants[0],
        location=location,
        quantity=-30,
        reason="adjust",
        source="t",
        idempotency_key="sold-out",
    )
    engine.channel_push(channel.pk, time_budget=30)  # the 0 goes by patch at once
    shown = lambda: control(sandbox.url, "GET", "/_control/values/amazon")[1]  # noqa: E731
    assert int(shown()[variants[0].sku]["quantity"]) == 0
    # the feed lands (its 30 for that SKU may land after our 0) ...
    assert watch_until_finished(batch) == "finished"
    engine.channel_push(channel.pk, time_budget=30)
    # ... and the current value goes again afterwards: the channel ends at 0
    assert int(shown()[variants[0].sku]["quantity"]) == 0
    assert {int(v["quantity"]) for sku, v in shown().items() if sku != variants[0].sku} == {30}


def test_urgent_values_in_a_feed_are_not_fed_again_while_amazon_processes_it(fast_feeds):
    """Low stock everywhere (every quantity urgent) above the feed threshold: one feed
    carries them; later runs do not take them again into a second feed."""
    sandbox = fast_feeds
    channel = amazon_catalog(sandbox)
    location = Location.objects.get()
    for v in Variant.objects.order_by("pk"):
        services.stock_adjust(
            variant=v,
            location=location,
            quantity=1,
            reason="receive",
            source="t",
            idempotency_key=f"low-{v.sku}",
        )
    assert SyncMarker.objects.filter(kind="quantity", is_urgent=True).count() == N
    engine.channel_push(channel.pk, time_budget=30)
    batch = ChannelBatch.objects.get()
    assert SyncMarker.objects.filter(batch=batch, is_urgent=False).count() == N
    for _ in range(3):
        assert engine.channel_push(channel.pk, time_budget=30).calls == 0
    assert ChannelBatch.objects.count() == 1
    assert watch_until_finished(batch) == "finished"
    assert calls(sandbox, "createFeed") == 1
    assert {int(v["quantity"]) for v in live_prices_and_quantities(sandbox)} == {1}


def live_prices_and_quantities(sandbox: RunningSandbox) -> list[dict[str, str]]:
    _, live = control(sandbox.url, "GET", "/_control/values/amazon")
    return list(live.values())
