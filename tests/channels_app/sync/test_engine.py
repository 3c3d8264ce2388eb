"""The push loop against a fake connector: every rule and failure path."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from channels_app.connectors.errors import FailureKind
from channels_app.models import ChannelListing, ChannelSyncState, SyncMarker
from channels_app.services import listing_save, markers_redrive
from channels_app.sync import engine
from channels_app.sync.markers import listings_mark_dirty, markers_release_after_poll
from inventory import services
from inventory.models import Location, Variant
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
    first = engine.markers_claim(shop.pk, limit=10, now=now, token="run-1")
    second = engine.markers_claim(shop.pk, limit=10, now=now, token="run-2")
    assert (len(first), len(second)) == (6, 0)
    # a lease that ran out (worker killed mid-batch) is claimed again
    third = engine.markers_claim(shop.pk, limit=10, now=now + timedelta(seconds=600), token="r3")
    assert len(third) == 6


def test_disabled_channel_is_not_pushed(shop, fake):
    shop.is_enabled = False
    shop.save()
    assert push(shop).stopped == "disabled"
    assert fake.calls == []


def _sell_outside(sku, key, quantity=-1):
    """A stock change in pimsync (so a quantity marker is written)."""
    services.stock_adjust(
        variant=Variant.objects.get(sku=sku),
        location=Location.objects.get(),
        quantity=quantity,
        reason="adjust",
        source="t",
        idempotency_key=key,
    )


def _confirmed_on_shopify(shop, fake):
    """The channel made a compare-and-set platform, every SKU pushed and confirmed."""
    shop.platform = fake.platform = "shopify"
    fake.compare_and_set = True
    shop.save()
    push(shop)


def test_a_compare_and_set_mismatch_never_pushes_before_the_orders_are_imported(
    shop, fake, task_sends, django_capture_on_commit_callbacks
):
    _confirmed_on_shopify(shop, fake)
    assert set(fake.sent_expected) == {("S-0", None), ("S-1", None), ("S-2", None)}
    _sell_outside("S-0", "cas-1")  # pimsync: 20 -> 19
    fake.sent_expected.clear()
    fake.fail[("quantity", "S-0")] = failing(FailureKind.PERMANENT, "CHANGE_FROM_QUANTITY_STALE")
    fake.live_quantity["S-0"] = 17  # the channel sold 3 units we have not imported yet
    with django_capture_on_commit_callbacks(execute=True):
        push(shop)
    assert fake.sent_expected == [("S-0", 20)]  # compared with the last confirmed quantity
    assert task_sends.args_of("channels_app.tasks.channel_poll_task") == [[shop.pk]]
    marker = SyncMarker.objects.get(kind="quantity")
    assert (marker.status, marker.last_error_code) == ("pending", "held_for_orders")
    assert marker.held_for_poll_at is not None
    assert ChannelListing.objects.get(variant__sku="S-0").last_confirmed_quantity == 17
    assert SyncLogEntry.objects.get(sku="S-0", status="held").error_code == "held_for_orders"
    assert not Alert.objects.filter(kind="dead_letter").exists()
    # no blind retry: however long we wait, nothing is written until a poll applied
    del fake.fail[("quantity", "S-0")]
    fake.sent_expected.clear()
    push(shop, clock=lambda: timezone.now() + timedelta(minutes=10))
    assert fake.sent_expected == []
    # a poll that started before the mismatch does not release it ...
    markers_release_after_poll(
        channel_id=shop.pk, poll_started_at=marker.held_for_poll_at - timedelta(seconds=1)
    )
    push(shop)
    assert fake.sent_expected == []
    # ... one that started after it does: recomputed and compared with what the channel showed
    markers_release_after_poll(channel_id=shop.pk, poll_started_at=timezone.now())
    push(shop)
    assert fake.sent_expected == [("S-0", 17)]


def test_a_compare_and_set_mismatch_on_a_decrease_below_the_channel_goes_at_once(
    shop, fake, task_sends
):
    _confirmed_on_shopify(shop, fake)
    _sell_outside("S-0", "cas-2", quantity=-15)  # pimsync: 20 -> 5 (low stock: urgent)
    fake.sent_expected.clear()
    stale = failing(FailureKind.PERMANENT, "CHANGE_FROM_QUANTITY_STALE")
    fake.fail[("quantity", "S-0")] = lambda sku: fake.fail.pop(("quantity", sku)) and stale(sku)
    fake.live_quantity["S-0"] = 18  # one unseen sale on the channel
    push(shop)
    # 5 < 18: writing it can only lower the channel, so it goes again at once (same run)
    # compared with what the channel showed, never waiting for the import
    assert fake.sent_expected == [("S-0", 20), ("S-0", 18)]
    assert not SyncMarker.objects.filter(kind="quantity").exists()


def test_a_sell_out_during_a_mismatched_call_goes_at_once(shop, fake, task_sends):
    _confirmed_on_shopify(shop, fake)
    _sell_outside("S-0", "cas-5")  # pimsync: 20 -> 19
    fake.sent_expected.clear()
    stale = failing(FailureKind.PERMANENT, "CHANGE_FROM_QUANTITY_STALE")

    def sold_out_meanwhile(sku):
        fake.fail.pop(("quantity", sku))
        _sell_outside("S-0", "cas-6", quantity=-19)  # the last 19 sold while 19 was sent
        return stale(sku)

    fake.fail[("quantity", "S-0")] = sold_out_meanwhile
    fake.live_quantity["S-0"] = 19  # and one unseen sale on the channel
    push(shop)
    # 19 is not below the 19 shown (it would wait for an orders poll), the 0 is: same run
    assert fake.sent_expected == [("S-0", 20), ("S-0", None)]
    assert ChannelListing.objects.get(variant__sku="S-0").last_confirmed_quantity == 0
    assert not SyncMarker.objects.filter(kind="quantity").exists()


def test_a_zero_is_set_unchecked_on_a_compare_and_set_channel(shop, fake, task_sends):
    _confirmed_on_shopify(shop, fake)
    _sell_outside("S-0", "cas-3", quantity=-19)  # pimsync: 20 -> 1 (compared)
    _sell_outside("S-1", "cas-4", quantity=-20)  # pimsync: 20 -> 0 (never raises the channel)
    fake.sent_expected.clear()
    push(shop)
    assert sorted(fake.sent_expected) == [("S-0", 20), ("S-1", None)]


def test_read_before_write_holds_an_increase_over_an_unimported_sale(
    shop, fake, task_sends, django_capture_on_commit_callbacks
):
    push(shop)  # confirmed 20 on the channel
    _sell_outside("S-1", "rbw-1", quantity=5)  # pimsync: 20 -> 25 (a receipt)
    fake.calls.clear()
    fake.live_quantity["S-1"] = 19  # the channel sold one we have not imported
    with django_capture_on_commit_callbacks(execute=True):
        report = push(shop)
    assert fake.calls == []  # 25 would offer the sold unit again
    assert report.waiting == 1
    marker = SyncMarker.objects.get(kind="quantity")
    assert marker.held_for_poll_at is not None
    assert task_sends.args_of("channels_app.tasks.channel_poll_task") == [[shop.pk]]
    # once a poll that started after the hold is applied, the value is recomputed
    # (here nothing new was imported) and written over the new baseline
    markers_release_after_poll(channel_id=shop.pk, poll_started_at=timezone.now())
    push(shop)
    assert fake.calls == [("quantity", [("S-1", 25)])]


def test_read_before_write_lets_a_decrease_below_the_channel_go_at_once(shop, fake):
    push(shop)
    _sell_outside("S-1", "rbw-2", quantity=-4)  # pimsync: 20 -> 16
    fake.calls.clear()
    fake.live_quantity["S-1"] = 19  # an unseen sale, but 16 < 19 lowers the channel
    push(shop)
    assert fake.calls == [("quantity", [("S-1", 16)])]
    assert fake.reads == 1  # the first push did not read: nothing confirmed to protect


def test_read_before_write_never_reads_for_a_zero(shop, fake):
    push(shop)
    fake.calls.clear()
    fake.reads = 0
    _sell_outside("S-1", "rbw-3", quantity=-20)  # pimsync: 20 -> 0
    fake.live_quantity["S-1"] = 19
    push(shop)
    assert fake.calls == [("quantity", [("S-1", 0)])]
    assert fake.reads == 0  # a 0 can never offer a sold unit again


def test_read_before_write_never_raises_over_an_unseen_sale_even_when_decreasing(shop, fake):
    push(shop)
    _sell_outside("S-1", "rbw-3", quantity=-1)  # pimsync: 20 -> 19
    fake.calls.clear()
    fake.live_quantity["S-1"] = 17  # two unseen sales: 19 would raise the channel
    push(shop)
    assert fake.calls == []
    assert SyncMarker.objects.get(kind="quantity").held_for_poll_at is not None


def test_an_increase_of_a_sku_whose_orders_are_being_imported_waits_others_go(shop, fake):
    from channels_app.models import InboundEvent

    push(shop)
    fake.calls.clear()
    _sell_outside("S-1", "hold-1", quantity=3)  # an increase of S-1 ...
    _sell_outside("S-2", "hold-2", quantity=-1)  # ... and a decrease of S-2
    event = InboundEvent.objects.create(
        channel=shop, source="poll", delivery_id="poll:1", skus=["S-1"]
    )
    report = push(shop)
    assert (fake.calls, report.waiting) == ([("quantity", [("S-2", 19)])], 1)
    # an event that failed for good (dead-lettered, alerted) stops holding
    event.status = "failed"
    event.save()
    push(shop, clock=lambda: timezone.now() + timedelta(seconds=2))
    assert fake.calls[-1] == ("quantity", [("S-1", 23)])


def test_a_zero_overtakes_a_marker_waiting_for_the_threshold(shop, fake):
    shop.inventory_threshold = 10
    shop.low_stock_level = 2
    shop.save()
    push(shop)
    _sell_outside("S-0", "wait-1", quantity=-3)  # 20 -> 17: below the threshold, waits
    fake.calls.clear()
    push(shop)
    waiting = SyncMarker.objects.get(kind="quantity")
    assert fake.calls == []
    assert waiting.due_at > timezone.now() + timedelta(seconds=60)
    _sell_outside("S-0", "wait-2", quantity=-17)  # 17 -> 0 while it waits
    marker = SyncMarker.objects.get(kind="quantity")
    assert marker.is_urgent
    assert marker.due_at <= timezone.now()
    push(shop)
    assert fake.calls == [("quantity", [("S-0", 0)])]


def test_a_zero_ignores_the_minimum_interval_and_goes_before_other_work(shop, fake):
    shop.min_push_interval_seconds = 3600
    shop.save()
    push(shop)
    for i in range(3):
        set_price(f"S-{i}", f"3{i}.00")  # price work, due now
    _sell_outside("S-2", "urgent-1", quantity=-20)  # 0: urgent
    fake.calls.clear()
    now = timezone.now()
    claimed = engine.markers_claim(shop.pk, limit=1, now=now, token="t")
    assert [(m.kind, m.listing.variant.sku) for m in claimed] == [("quantity", "S-2")]
    engine._release(claimed)
    push(shop)
    assert fake.calls == [("quantity", [("S-2", 0)])]  # the prices wait their interval


def test_urgent_work_arriving_during_a_long_batch_goes_next(shop, fake, variant_factory):
    shop.batch_size = 1  # one SKU per call: a long batch
    shop.save()
    push(shop)
    for i in range(3):
        set_price(f"S-{i}", f"4{i}.00")
    fake.calls.clear()

    def sell_out_during_the_first_call(kind, items):
        if kind == "price" and len(fake.calls) == 0:
            with transaction.atomic():
                _sell_outside("S-2", "urgent-2", quantity=-20)

    fake.on_call = sell_out_during_the_first_call
    push(shop)
    kinds = [kind for kind, _ in fake.calls]
    assert kinds == ["price", "quantity", "price", "price"]
    assert fake.calls[1] == ("quantity", [("S-2", 0)])


def test_urgent_calls_go_first_in_the_shared_rate_budget(shop, fake):
    """The channel's rate budget lets calls carrying urgent work pass the routine calls
    other runs queued (limiter.take_in_turn); routine calls stay routine."""
    from channels_app.sync.limiter import _URGENT_CALLS

    push(shop)
    set_price("S-0", "51.00")
    _sell_outside("S-2", "urgent-3", quantity=-20)
    fake.calls.clear()
    seen: list[tuple[str, bool]] = []
    fake.on_call = lambda kind, items: seen.append((kind, _URGENT_CALLS.get()))
    push(shop)
    assert seen == [("quantity", True), ("price", False)]
    assert _URGENT_CALLS.get() is False


def test_the_urgent_lane_pushes_zeros_ahead_and_passes_low_stock_on(shop, fake):
    """channel_push(urgent_only=True): the urgent markers' zeros, every call ahead of
    routine calls; low stock goes back, still urgent, to the routine runs (which claim
    it first); the routine request's debounce flag is the routine lane's."""
    from channels_app.sync.limiter import _URGENT_CALLS

    push(shop)
    shop.low_stock_level = 5
    shop.save()
    set_price("S-0", "52.00")  # routine
    _sell_outside("S-1", "low-1", quantity=-17)  # 3 left: low stock, urgent
    _sell_outside("S-2", "zero-1", quantity=-20)  # 0: urgent
    ChannelSyncState.objects.filter(channel=shop).update(push_queued=True)
    fake.calls.clear()
    seen: list[bool] = []
    fake.on_call = lambda kind, items: seen.append(_URGENT_CALLS.get())
    report = engine.channel_push(shop.pk, time_budget=30, urgent_only=True)
    assert fake.calls == [("quantity", [("S-2", 0)])]
    assert seen == [True]
    assert report.pushed == 1
    assert ChannelSyncState.objects.get(channel=shop).push_queued is True
    left = SyncMarker.objects.filter(channel=shop).order_by("kind")
    assert [(m.kind, m.listing.variant.sku, m.is_urgent, m.claim_token) for m in left] == [
        ("price", "S-0", False, ""),
        ("quantity", "S-1", True, ""),
    ]
    # the routine run takes the low stock first, then the price
    fake.calls.clear()
    push(shop)
    assert fake.calls == [("quantity", [("S-1", 3)]), ("price", [("S-0", Decimal("52.00"))])]


def test_a_sale_during_the_read_before_write_goes_with_the_write(shop, fake, monkeypatch):
    """The value is lowered to the stock available just before the call: a sale that
    came while the channel was read (or the rate budget waited) sends its 0 now,
    not in a second push after a stale 5."""
    push(shop)
    _sell_outside("S-1", "to-five", quantity=-15)
    fake.calls.clear()
    read = fake.read_listings

    def sell_out_while_reading(listings):
        _sell_outside("S-1", "sold-out-while-reading", quantity=-5)
        return read(listings)

    monkeypatch.setattr(fake, "read_listings", sell_out_while_reading)
    push(shop)
    assert fake.calls == [("quantity", [("S-1", 0)])]
    assert ChannelListing.objects.get(variant__sku="S-1").last_pushed_quantity == 0


def test_push_now_is_urgent_and_ignores_the_minimum_interval(shop, fake):
    from channels_app.services import listings_push_now

    shop.min_push_interval_seconds = 3600
    shop.save()
    push(shop)
    set_price("S-0", "99.00")
    fake.calls.clear()
    push(shop)
    assert fake.calls == []  # the minimum interval holds an ordinary change
    listings_push_now(listings=ChannelListing.objects.filter(variant__sku="S-0"))
    push(shop)
    assert fake.calls == [("price", [("S-0", Decimal("99.00"))])]


def test_retryable_failures_end_in_the_dead_letter_after_the_channel_limit(shop, fake):
    shop.retry_max_attempts = 3
    shop.save()
    fake.fail["price"] = failing(FailureKind.RETRYABLE, "503")
    later = timezone.now()
    for _ in range(3):
        later += timedelta(hours=1)
        push(shop, clock=lambda at=later: at)
    dead = SyncMarker.objects.filter(kind="price", status="dead")
    assert dead.count() == 3
    assert {m.last_error_code for m in dead} == {"exhausted"}
    alert = Alert.objects.filter(kind="dead_letter").first()
    assert alert is not None
    assert "gave up after retrying (failed 3 times)" in alert.message


def test_retryable_failures_end_in_the_dead_letter_after_the_channel_age_limit(shop, fake):
    shop.retry_max_hours = 24
    shop.save()
    fake.fail["price"] = failing(FailureKind.RETRYABLE, "503")
    start = timezone.now()
    push(shop, clock=lambda: start)
    assert not SyncMarker.objects.filter(status="dead").exists()
    push(shop, clock=lambda: start + timedelta(hours=25))
    assert SyncMarker.objects.filter(kind="price", status="dead").count() == 3


@pytest.mark.parametrize("how", ["listing disabled", "variant deactivated", "product archived"])
def test_what_is_no_longer_for_sale_is_told_zero_and_back_when_it_is_again(shop, fake, how):
    push(shop)
    fake.calls.clear()
    listing = ChannelListing.objects.get(variant__sku="S-0")
    variant = listing.variant

    def set_for_sale(on: bool) -> None:
        if how == "listing disabled":
            listing.is_enabled = on
            listing_save(listing=listing, changed_fields=["is_enabled"])
        elif how == "variant deactivated":
            variant.is_active = on
            services.variant_save(variant=variant, changed_fields=["is_active"])
        else:
            product = variant.product
            product.status = "active" if on else "archived"
            services.product_save(product=product)

    set_for_sale(False)
    push(shop)
    assert fake.calls == [("quantity", [("S-0", 0)])]
    assert SyncLogEntry.objects.filter(sku="S-0", value_sent="0", status="success").exists()
    fake.calls.clear()
    set_for_sale(True)
    push(shop)
    assert ("quantity", [("S-0", 20)]) in fake.calls


def test_a_deactivated_location_is_told_to_the_channels_it_fed(shop, fake):
    push(shop)
    fake.calls.clear()
    location = Location.objects.get()
    location.is_active = False
    services.location_save(location=location)
    assert SyncMarker.objects.filter(kind="quantity").count() == 3


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
