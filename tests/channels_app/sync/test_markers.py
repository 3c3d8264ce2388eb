"""What marks which listings dirty, and the debounced, never-hanging enqueue."""

from decimal import Decimal

import pytest
from django.utils import timezone

from channels_app import dispatch, services
from channels_app.dispatch import sweep_due_channels
from channels_app.models import BufferRule, ChannelListing, ChannelSyncState, PriceRule, SyncMarker
from inventory import services as inventory
from tests.plugins.tasks import SentTask

pytestmark = pytest.mark.django_db


def clear_markers():
    SyncMarker.objects.all().delete()


def marked(kind=None):
    qs = SyncMarker.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    return sorted(qs.values_list("listing__variant__sku", "listing__channel__name", "kind"))


def test_first_dirty_at_is_kept_when_changes_coalesce(shop):
    clear_markers()
    v = shop.listings.first().variant
    v.price = Decimal("1.00")
    inventory.variant_save(variant=v)
    first = SyncMarker.objects.get().first_dirty_at
    v.price = Decimal("2.00")
    inventory.variant_save(variant=v)
    marker = SyncMarker.objects.get()
    assert marker.first_dirty_at == first
    assert marker.last_dirty_at > first


def test_buffer_rule_edit_marks_only_the_listings_it_covers(shop, channel_factory, listing_factory):
    other = channel_factory(name="Other")
    target = shop.listings.select_related("variant").first().variant
    listing_factory(channel=other, variant=target)
    clear_markers()
    services.buffer_rule_save(rule=BufferRule(channel=shop, variant=target, value=Decimal("2")))
    assert marked() == [(target.sku, shop.name, "quantity")]
    clear_markers()
    rule = BufferRule.objects.get()
    rule.channel = None  # now every channel
    services.buffer_rule_save(rule=rule)
    assert marked() == sorted(
        [(target.sku, shop.name, "quantity"), (target.sku, "Other", "quantity")]
    )


def test_price_rule_edit_marks_every_listing_of_its_channel(shop):
    clear_markers()
    services.price_rule_save(rule=PriceRule(channel=shop, multiplier=Decimal("1.1")))
    assert [m[2] for m in marked()] == ["price"] * 3


def test_channel_locations_change_marks_every_quantity(shop):
    clear_markers()
    services.channel_locations_changed(channel=shop)
    assert [m[2] for m in marked()] == ["quantity"] * 3


def test_listing_override_marks_only_price(shop):
    clear_markers()
    listing = shop.listings.first()
    listing.price_override = Decimal("5.00")
    services.listing_save(listing=listing, changed_fields=["price_override"])
    assert [m[2] for m in marked()] == ["price"]


def test_push_now_and_force_resync_report_what_was_queued(shop):
    clear_markers()
    queued = services.listings_force_resync(listings=ChannelListing.objects.filter(channel=shop))
    assert str(queued) == "Queued 3 SKU(s) on 1 channel(s)."
    assert SyncMarker.objects.filter(is_forced=True).count() == 6


def test_requests_are_debounced_to_one_task(shop, task_sends):
    ChannelSyncState.objects.filter(channel=shop).update(push_queued=False)
    assert dispatch.channel_push_request(shop.pk) is True
    assert dispatch.channel_push_request(shop.pk) is False
    assert len(task_sends.named(dispatch.PUSH)) == 1


def test_broker_down_never_raises_and_the_sweeper_catches_up(shop, broker_down):
    ChannelSyncState.objects.update_or_create(channel=shop, defaults={"push_queued": False})
    assert dispatch.channel_push_request(shop.pk) is False
    assert ChannelSyncState.objects.get(channel=shop).push_queued is False
    sent = broker_down()  # the broker is back
    assert sweep_due_channels() == [shop.pk]
    assert sent == [SentTask(dispatch.PUSH, [shop.pk], {}, None)]


def test_sweeper_requeues_a_lost_task(shop, task_sends, settings):
    settings.PIMSYNC_PUSH_STALE_SECONDS = 5
    lost_at = timezone.now() - timezone.timedelta(seconds=60)
    ChannelSyncState.objects.update_or_create(
        channel=shop, defaults={"push_queued": True, "push_queued_at": lost_at}
    )
    assert sweep_due_channels() == [shop.pk]
    fresh = timezone.now()
    ChannelSyncState.objects.filter(channel=shop).update(push_queued=True, push_queued_at=fresh)
    assert sweep_due_channels() == []  # a recent request is still in flight


def test_enqueue_happens_only_after_commit(shop, task_sends, django_capture_on_commit_callbacks):
    sent = task_sends
    ChannelSyncState.objects.update_or_create(channel=shop, defaults={"push_queued": False})
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        v = shop.listings.first().variant
        v.price = Decimal("3.00")
        inventory.variant_save(variant=v)
        assert sent == []
    assert len(callbacks) >= 1
    assert len(sent) == 1


def test_a_sold_out_sku_is_also_requested_on_the_urgent_lane(
    shop, task_sends, location, django_capture_on_commit_callbacks
):
    """A zero (or low stock) asks the urgent lane as well as the routine push; a
    routine change asks only the routine push."""
    from inventory.models import Variant

    ChannelSyncState.objects.filter(channel=shop).update(push_queued=False)
    variant = Variant.objects.get(sku="S-0")
    variant.price = Decimal("12.00")
    with django_capture_on_commit_callbacks(execute=True):
        inventory.variant_save(variant=variant)
    assert task_sends.named(dispatch.URGENT_PUSH) == []
    assert len(task_sends.named(dispatch.PUSH)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        inventory.stock_adjust(
            variant=Variant.objects.get(sku="S-1"),
            location=location,
            quantity=-20,
            reason="adjust",
            source="t",
            idempotency_key="sell-out-S-1",
        )
    assert [t.args for t in task_sends.named(dispatch.URGENT_PUSH)] == [[shop.pk]]


def _sell_out(sku, location, key):
    from inventory.models import Variant

    inventory.stock_adjust(
        variant=Variant.objects.get(sku=sku),
        location=location,
        quantity=-20,
        reason="adjust",
        source="t",
        idempotency_key=key,
    )


def test_urgent_requests_ride_on_one_not_started_yet(
    shop, task_sends, location, settings, django_capture_on_commit_callbacks
):
    """A burst of sell-outs asks the urgent lane once per channel while that request
    waits; once its run has started, the next sell-out asks again; a request not
    started within the stale time is asked again (lost, or every process busy)."""
    from channels_app.sync import engine

    settings.PIMSYNC_URGENT_STALE_SECONDS = 2
    for n, sku in enumerate(("S-0", "S-1", "S-2")):
        with django_capture_on_commit_callbacks(execute=True):
            _sell_out(sku, location, f"burst-{n}")
    assert len(task_sends.named(dispatch.URGENT_PUSH)) == 1

    engine.channel_push(shop.pk, urgent_only=True)  # the run starts: the flag is down
    assert ChannelSyncState.objects.get(channel=shop).urgent_queued_at is None
    assert dispatch.channel_urgent_push_request(shop.pk)
    assert not dispatch.channel_urgent_push_request(shop.pk)

    lost = timezone.now() - timezone.timedelta(seconds=3)
    ChannelSyncState.objects.filter(channel=shop).update(urgent_queued_at=lost)
    assert dispatch.channel_urgent_push_request(shop.pk)
    assert len(task_sends.named(dispatch.URGENT_PUSH)) == 3


def test_an_urgent_request_the_broker_refused_is_asked_again(shop, task_sends, monkeypatch):
    monkeypatch.setattr(dispatch, "task_send", lambda *a, **k: False)
    assert not dispatch.channel_urgent_push_request(shop.pk)
    assert ChannelSyncState.objects.get(channel=shop).urgent_queued_at is None
