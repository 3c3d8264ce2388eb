"""The push loop against a fake connector: every rule and failure path."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from channels_app.connectors.errors import FailureKind
from channels_app.models import ChannelListing, ChannelSyncState, SyncMarker
from channels_app.services import markers_redrive
from channels_app.sync import engine
from channels_app.sync.markers import listings_mark_dirty
from inventory import services
from inventory.models import Variant
from synclog.models import Alert, SyncLogEntry
from tests.support.sync import failing

pytestmark = pytest.mark.django_db


def push(channel, **kw):
    return engine.channel_push(channel.pk, time_budget=30, **kw)


def set_price(sku, price):
    v = Variant.objects.get(sku=sku)
    v.price = Decimal(price)
    services.variant_save(variant=v)


def test_first_push_sends_fresh_values_and_clears_markers(shop, fake):
    report = push(shop)
    assert report.pushed == 6
    assert sorted(fake.calls) == [
        (
            "price",
            [("S-0", Decimal("20.00")), ("S-1", Decimal("20.00")), ("S-2", Decimal("20.00"))],
        ),
        ("quantity", [("S-0", 20), ("S-1", 20), ("S-2", 20)]),
    ]
    assert SyncMarker.objects.count() == 0
    listing = ChannelListing.objects.get(variant__sku="S-0")
    assert (listing.last_pushed_price, listing.last_pushed_quantity) == (Decimal("20.00"), 20)
    entries = SyncLogEntry.objects.filter(status="success")
    assert entries.count() == 6
    assert all(e.latency_ms is not None and e.resolved_at for e in entries)


def test_fifty_quick_changes_coalesce_into_one_push_of_the_latest(shop, fake):
    push(shop)
    fake.calls.clear()
    for cents in range(50):
        set_price("S-1", f"21.{cents:02d}")
    assert SyncMarker.objects.filter(kind="price").count() == 1
    push(shop)
    assert fake.calls == [("price", [("S-1", Decimal("21.49"))])]


def test_rolled_back_change_leaves_no_marker(shop, fake):
    push(shop)

    def change_then_fail():
        with transaction.atomic():
            set_price("S-0", "99.00")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert SyncMarker.objects.count() == 0


def test_stock_at_a_location_that_does_not_feed_the_channel_marks_nothing(shop, fake, location2):
    push(shop)
    services.stock_adjust(
        variant=Variant.objects.get(sku="S-0"),
        location=location2,
        quantity=5,
        reason="receive",
        source="t",
        idempotency_key="other-loc",
    )
    assert SyncMarker.objects.count() == 0


def test_map_floor_and_price_rule_reach_the_channel(shop, fake, price_rule_factory):
    from channels_app.services import price_rule_save

    push(shop)
    fake.calls.clear()
    v = Variant.objects.get(sku="S-2")
    v.map_price = Decimal("25.00")
    services.variant_save(variant=v)
    price_rule_save(rule=price_rule_factory.build(channel=shop, multiplier=Decimal("0.5")))
    push(shop)
    sent = dict(fake.calls[0][1])
    assert sent == {"S-0": Decimal("10.00"), "S-1": Decimal("10.00"), "S-2": Decimal("25.00")}


def test_unchanged_value_is_dropped_without_a_call(shop, fake):
    push(shop)
    fake.calls.clear()
    listings_mark_dirty(ChannelListing.objects.filter(channel=shop))
    report = push(shop)
    assert (fake.calls, report.dropped, SyncMarker.objects.count()) == ([], 6, 0)


def test_force_resync_pushes_unchanged_values(shop, fake):
    push(shop)
    fake.calls.clear()
    listings_mark_dirty(ChannelListing.objects.filter(channel=shop), forced=True)
    assert push(shop).pushed == 6


@pytest.mark.parametrize(
    ("platform", "max_batch", "kind", "expected_sizes"),
    [
        ("shopify", 250, "quantity", [250, 250, 100]),
        ("woocommerce", 100, "quantity", [100] * 6),
        ("ebay", 25, "quantity", [25] * 24),
        ("amazon", 25000, "quantity", [600]),  # above the feed threshold: one feed
        ("magento", 5000, "quantity", [600]),  # the connector picks sync calls or async bulk
    ],
)
def test_batches_at_each_platform_maximum(
    shop, fake, listing_factory, variant_factory, platform, max_batch, kind, expected_sizes
):
    shop.platform = platform
    shop.save()
    fake.platform, fake.max_price_batch, fake.max_quantity_batch = platform, max_batch, max_batch
    for _ in range(597):
        listing_factory(channel=shop, variant=variant_factory())
    listings_mark_dirty(ChannelListing.objects.filter(channel=shop), kinds=["quantity"])
    push(shop)
    assert [len(items) for k, items in fake.calls if k == kind] == expected_sizes


def test_amazon_below_feed_threshold_patches_one_sku_per_call(shop, fake):
    shop.platform = "amazon"
    shop.save()
    fake.platform, fake.max_quantity_batch = "amazon", 25000
    push(shop)
    assert [len(items) for k, items in fake.calls if k == "quantity"] == [1, 1, 1]


def test_shopify_prices_go_one_product_per_call(shop, fake):
    shop.platform = "shopify"
    shop.save()
    fake.platform, fake.max_price_batch = "shopify", 250
    ChannelListing.objects.filter(channel=shop, variant__sku="S-0").update(external_product_id="p1")
    ChannelListing.objects.filter(channel=shop).exclude(variant__sku="S-0").update(
        external_product_id="p2"
    )
    push(shop)
    assert sorted(len(items) for k, items in fake.calls if k == "price") == [1, 2]


def test_retryable_failure_backs_off_honours_retry_after_then_resolves(shop, fake):
    fake.fail["quantity"] = failing(FailureKind.RETRYABLE, "429", retry_after=30)
    start = timezone.now()
    report = push(shop)
    assert report.failed == 3
    marker = SyncMarker.objects.get(listing__variant__sku="S-0", kind="quantity")
    assert marker.attempts == 1
    assert marker.due_at >= start + timedelta(seconds=30)
    assert marker.last_error_code == "429"
    assert ChannelListing.objects.get(variant__sku="S-0").last_pushed_quantity is None
    # not due yet: nothing is sent
    fake.calls.clear()
    push(shop)
    assert fake.calls == []
    # after the wait it goes out and the failure entries are resolved
    del fake.fail["quantity"]
    later = push(shop, clock=lambda: timezone.now() + timedelta(seconds=31))
    assert later.pushed == 3
    retry = SyncLogEntry.objects.filter(status="retrying", sku="S-0").get()
    assert retry.resolved_at is not None
    success = SyncLogEntry.objects.filter(status="success", sku="S-0", event_type="inventory").get()
    assert success.retry_count == 1


def test_permanent_failure_is_dead_lettered_alerted_and_re_drivable(shop, fake):
    fake.fail[("price", "S-1")] = failing(FailureKind.PERMANENT, "400", "bad price")
    push(shop)
    marker = SyncMarker.objects.get(listing__variant__sku="S-1", kind="price")
    assert marker.status == "dead"
    assert SyncLogEntry.objects.get(sku="S-1", status="dead").error_code == "400"
    alert = Alert.objects.get(kind="dead_letter", sku="S-1")
    assert alert.channel_id == shop.pk
    # the batch's other SKUs were pushed
    assert SyncLogEntry.objects.filter(status="success", event_type="price").count() == 2
    # dead markers are not retried on their own
    fake.calls.clear()
    push(shop)
    assert fake.calls == []
    del fake.fail[("price", "S-1")]
    assert markers_redrive(markers=SyncMarker.objects.all()) == 1
    push(shop)
    assert fake.calls == [("price", [("S-1", Decimal("20.00"))])]
    assert SyncLogEntry.objects.get(sku="S-1", status="dead").resolved_at is not None


def test_auth_failure_pauses_the_channel_and_alerts(shop, fake):
    fake.fail["quantity"] = failing(FailureKind.AUTH, "401")
    report = push(shop)
    assert report.stopped == "auth"
    state = ChannelSyncState.objects.get(channel=shop)
    assert state.auth_failed_at is not None
    assert (
        Alert.objects.filter(kind="auth_failed", channel=shop, resolved_at__isnull=True).count()
        == 1
    )
    fake.calls.clear()
    assert push(shop).stopped == "auth"
    assert fake.calls == []
    assert SyncMarker.objects.filter(kind="quantity").count() == 3  # nothing lost
    del fake.fail["quantity"]
    engine.channel_resume(shop.pk)
    assert push(shop).pushed == 6
    assert Alert.objects.get(kind="auth_failed").resolved_at is not None


def test_circuit_opens_after_k_failed_calls_then_probe_closes_it(
    shop, fake, settings, listing_factory, variant_factory
):
    settings.PIMSYNC_BREAKER_FAILURES = 3
    settings.PIMSYNC_BREAKER_OPEN_SECONDS = 30
    shop.batch_size = 1
    shop.save()
    fake.fail["quantity"] = failing(FailureKind.RETRYABLE, "503")
    fake.fail["price"] = failing(FailureKind.RETRYABLE, "503")
    report = push(shop)
    assert report.stopped == "circuit"
    assert report.calls == 3
    state = ChannelSyncState.objects.get(channel=shop)
    assert (state.breaker, state.consecutive_failures) == ("open", 3)
    assert Alert.objects.filter(kind="circuit_open", resolved_at__isnull=True).count() == 1
    fake.calls.clear()
    assert push(shop, clock=lambda: timezone.now() + timedelta(seconds=10)).stopped == "circuit"
    assert fake.calls == []
    fake.fail.clear()
    later = push(shop, clock=lambda: timezone.now() + timedelta(seconds=600))
    assert later.calls >= 2  # one probe, then the rest
    assert len(fake.calls[0][1]) == 1  # the probe is a single SKU
    assert ChannelSyncState.objects.get(channel=shop).breaker == "closed"
    assert Alert.objects.get(kind="circuit_open").resolved_at is not None


def test_failed_probe_reopens_the_circuit(shop, fake, settings):
    settings.PIMSYNC_BREAKER_FAILURES = 1
    fake.fail["quantity"] = fake.fail["price"] = failing(FailureKind.RETRYABLE, "503")
    push(shop)
    probe = push(shop, clock=lambda: timezone.now() + timedelta(seconds=600))
    assert probe.calls == 1
    assert ChannelSyncState.objects.get(channel=shop).breaker == "open"


def test_change_during_the_call_keeps_the_marker_for_another_push(shop, fake):
    push(shop)
    fake.calls.clear()
    set_price("S-0", "30.00")

    def change_while_in_flight(kind, items):
        if kind == "price" and len(fake.calls) == 0:
            set_price("S-0", "31.00")

    fake.on_call = change_while_in_flight
    push(shop)
    assert [c[1] for c in fake.calls] == [[("S-0", Decimal("30.00"))], [("S-0", Decimal("31.00"))]]
    assert SyncMarker.objects.count() == 0


def test_minimum_interval_makes_the_change_wait_not_drop(shop, fake):
    shop.min_push_interval_seconds = 60
    shop.save()
    push(shop)
    fake.calls.clear()
    set_price("S-0", "22.00")
    report = push(shop)
    assert (report.waiting, fake.calls) == (1, [])
    marker = SyncMarker.objects.get(kind="price")
    assert marker.due_at > timezone.now() + timedelta(seconds=50)
    push(shop, clock=lambda: timezone.now() + timedelta(seconds=61))
    assert fake.calls == [("price", [("S-0", Decimal("22.00"))])]


def test_connector_exception_loses_no_marker(shop, fake):
    fake.raise_exc = RuntimeError("bug in connector")
    push(shop)
    assert SyncMarker.objects.count() == 6
    assert set(SyncMarker.objects.values_list("attempts", flat=True)) == {1}


def test_a_claimed_marker_is_not_claimed_twice(shop):
    now = timezone.now()
    first = engine.markers_claim(shop.pk, limit=10, now=now)
    second = engine.markers_claim(shop.pk, limit=10, now=now)
    assert (len(first), len(second)) == (6, 0)
    # a lease that ran out (worker killed mid-batch) is claimed again
    third = engine.markers_claim(shop.pk, limit=10, now=now + timedelta(seconds=600))
    assert len(third) == 6


def test_disabled_channel_is_not_pushed(shop, fake):
    shop.is_enabled = False
    shop.save()
    assert push(shop).stopped == "disabled"
    assert fake.calls == []


def test_shopify_quantities_are_compare_and_set_and_a_mismatch_polls_orders_first(
    shop, fake, task_sends, django_capture_on_commit_callbacks
):
    shop.platform = "shopify"
    shop.save()
    fake.platform = "shopify"
    push(shop)
    assert set(fake.sent_expected) == {("S-0", None), ("S-1", None), ("S-2", None)}
    sends = task_sends
    location = shop.channel_locations.get().location
    services.stock_adjust(
        variant=Variant.objects.get(sku="S-0"),
        location=location,
        quantity=-1,
        reason="adjust",
        source="t",
        idempotency_key="cas-1",
    )
    fake.sent_expected.clear()
    fake.fail[("quantity", "S-0")] = failing(FailureKind.PERMANENT, "CHANGE_FROM_QUANTITY_STALE")
    fake.live_quantity["S-0"] = 17  # the channel sold 3 units we have not imported yet
    with django_capture_on_commit_callbacks(execute=True):
        push(shop)
    assert fake.sent_expected == [("S-0", 20)]  # the last confirmed quantity
    assert sends.args_of("channels_app.tasks.channel_poll_task") == [[shop.pk]]
    marker = SyncMarker.objects.get(kind="quantity")
    assert (marker.status, marker.attempts, marker.last_error_code) == (
        "pending",
        1,
        "CHANGE_FROM_QUANTITY_STALE",
    )
    assert ChannelListing.objects.get(variant__sku="S-0").last_confirmed_quantity == 17
    assert (
        SyncLogEntry.objects.get(sku="S-0", status="retrying").error_code
        == "CHANGE_FROM_QUANTITY_STALE"
    )
    assert not Alert.objects.filter(kind="dead_letter").exists()
    del fake.fail[("quantity", "S-0")]
    fake.sent_expected.clear()
    push(shop, clock=lambda: timezone.now() + timedelta(seconds=3))
    assert fake.sent_expected == [("S-0", 17)]


def test_quantity_push_waits_while_fetched_orders_are_unapplied(shop, fake):
    from channels_app.models import InboundEvent

    push(shop)
    fake.calls.clear()
    location = shop.channel_locations.get().location
    services.stock_adjust(
        variant=Variant.objects.get(sku="S-1"),
        location=location,
        quantity=-1,
        reason="adjust",
        source="t",
        idempotency_key="hold-1",
    )
    event = InboundEvent.objects.create(channel=shop, source="poll", delivery_id="poll:1")
    report = push(shop)
    assert (fake.calls, report.waiting) == ([], 1)
    event.status = "processed"
    event.save()
    push(shop, clock=lambda: timezone.now() + timedelta(seconds=2))
    assert fake.calls == [("quantity", [("S-1", 19)])]


def test_woocommerce_variations_go_one_parent_per_call(shop, fake):
    fake.platform = "woocommerce"
    ChannelListing.objects.filter(channel=shop, variant__sku="S-0").update(
        external_product_id="10", external_variant_id="101"
    )
    ChannelListing.objects.filter(channel=shop).exclude(variant__sku="S-0").update(
        external_product_id="20", external_variant_id="201"
    )
    push(shop)
    assert sorted(len(items) for k, items in fake.calls if k == "quantity") == [1, 2]
