"""Orders change stock exactly once, whatever the delivery order."""

import itertools
from decimal import Decimal

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels_app.connectors.base import OrderLineData
from channels_app.models import ChannelOrder, Customer, SyncMarker
from channels_app.orders.apply import order_apply
from inventory.models import Reservation, StockLevel, StockMovement
from synclog.models import Alert
from tests.support.orders import order_data

pytestmark = pytest.mark.django_db


def buckets(location, sku="SKU-A"):
    lvl = StockLevel.objects.get(variant__sku=sku, location=location)
    return (lvl.on_hand, lvl.committed, lvl.reserved)


def test_lifecycle_reserve_commit_ship(stocked_channel, location):
    r = order_apply(channel=stocked_channel, data=order_data("pending", 1), source="webhook")
    assert (r.created, r.transitions) == (True, ["reserve"])
    assert buckets(location) == (3, 0, 2)
    assert order_apply(
        channel=stocked_channel, data=order_data("paid", 2), source="webhook"
    ).transitions == ["commit"]
    assert buckets(location) == (3, 2, 0)
    assert order_apply(
        channel=stocked_channel, data=order_data("fulfilled", 3), source="webhook"
    ).transitions == ["ship"]
    assert buckets(location) == (1, 0, 0)


def test_a_line_is_split_over_locations_in_priority_order(stocked_channel, location, location2):
    lines = [OrderLineData("L1", "SKU-A", 5, Decimal("20.00"))]
    order_apply(channel=stocked_channel, data=order_data("paid", 1, lines=lines), source="webhook")
    assert buckets(location) == (3, 3, 0)
    assert buckets(location2) == (5, 2, 0)
    line = ChannelOrder.objects.get().lines.get()
    assert [(a["location_id"], a["quantity"]) for a in line.allocation] == [
        (location.pk, 3),
        (location2.pk, 2),
    ]


def test_paid_before_created_and_cancelled_before_paid(stocked_channel, location):
    order_apply(channel=stocked_channel, data=order_data("paid", 2), source="webhook")
    stale = order_apply(channel=stocked_channel, data=order_data("pending", 1), source="webhook")
    assert stale.stale is True
    assert buckets(location) == (3, 2, 0)
    order_apply(
        channel=stocked_channel,
        data=order_data("cancelled", 3, external_id="2002"),
        source="webhook",
    )
    order_apply(
        channel=stocked_channel, data=order_data("paid", 2, external_id="2002"), source="webhook"
    )
    assert ChannelOrder.objects.get(external_id="2002").status == "cancelled"
    assert buckets(location) == (3, 2, 0)  # order 2002 never took anything


def test_the_same_delivery_three_times_and_by_polling_applies_once(stocked_channel, location):
    for source in ("webhook", "webhook", "webhook", "poll"):
        order_apply(channel=stocked_channel, data=order_data("paid", 1), source=source)
    assert buckets(location) == (3, 2, 0)
    assert StockMovement.objects.filter(source=f"channel:{stocked_channel.pk}").count() == 1
    order = ChannelOrder.objects.get()
    assert (order.first_seen_via, order.seen_via_webhook) == ("webhook", True)


def damaged(location, sku="SKU-A"):
    return StockLevel.objects.get(variant__sku=sku, location=location).damaged


def refunded_lines(restock):
    return [OrderLineData("L1", "SKU-A", 2, Decimal("20.00"), restock=restock)]


def test_a_refund_the_channel_restocked_goes_back_to_sellable_stock(stocked_channel, location):
    order_apply(channel=stocked_channel, data=order_data("fulfilled", 1), source="webhook")
    order_apply(
        channel=stocked_channel,
        data=order_data("refunded", 2, lines=refunded_lines(True)),
        source="webhook",
    )
    assert (buckets(location), damaged(location)) == ((3, 0, 0), 0)
    assert StockMovement.objects.filter(reason="return").count() == 1


def test_a_refund_the_channel_did_not_restock_is_held_as_damaged(stocked_channel, location):
    order_apply(channel=stocked_channel, data=order_data("fulfilled", 1), source="webhook")
    order_apply(
        channel=stocked_channel,
        data=order_data("refunded", 2, lines=refunded_lines(False)),
        source="webhook",
    )
    # Back on hand, not for sale: ATP stays where the sale left it.
    assert (buckets(location), damaged(location)) == ((3, 0, 0), 2)
    movement = StockMovement.objects.get(reason="damage")
    assert (movement.delta_on_hand, movement.delta_damaged) == (2, 2)


@pytest.mark.parametrize(("setting", "held"), [("damaged", 2), ("sellable", 0)])
def test_an_unsaid_restock_follows_the_channel_setting(stocked_channel, location, setting, held):
    stocked_channel.returns_restock = setting
    stocked_channel.save()
    order_apply(channel=stocked_channel, data=order_data("fulfilled", 1), source="webhook")
    order_apply(channel=stocked_channel, data=order_data("refunded", 2), source="webhook")
    assert (buckets(location), damaged(location)) == ((3, 0, 0), held)


def test_a_refund_delivered_twice_restocks_once(stocked_channel, location):
    order_apply(channel=stocked_channel, data=order_data("fulfilled", 1), source="webhook")
    for _ in range(2):
        order_apply(
            channel=stocked_channel,
            data=order_data("refunded", 2, lines=refunded_lines(True)),
            source="webhook",
        )
    assert buckets(location) == (3, 0, 0)
    assert StockMovement.objects.filter(reason="return").count() == 1


def test_unknown_sku_is_an_unmatched_line_not_a_crash(stocked_channel, location):
    lines = [
        OrderLineData("L1", "NOPE", 1, Decimal("5")),
        OrderLineData("L2", "SKU-A", 1, Decimal("20")),
    ]
    result = order_apply(
        channel=stocked_channel, data=order_data("paid", 1, lines=lines), source="poll"
    )
    assert result.unmatched_skus == ["NOPE"]
    order = ChannelOrder.objects.get()
    assert order.has_unmatched_lines is True
    assert sorted(order.lines.values_list("sku", "state")) == [
        ("NOPE", "unmatched"),
        ("SKU-A", "committed"),
    ]
    assert Alert.objects.get(kind="unmatched_sku").sku == "NOPE"


def test_lines_match_by_channel_variant_id_before_sku(stocked_channel, location):
    lines = [
        OrderLineData("L1", "renamed-on-channel", 1, Decimal("20"), external_variant_id="gid://v/1")
    ]
    order_apply(channel=stocked_channel, data=order_data("paid", 1, lines=lines), source="webhook")
    assert ChannelOrder.objects.get().lines.get().variant.sku == "SKU-A"


def test_oversell_first_wins_later_is_flagged_and_zero_goes_out(
    stocked_channel, location, location2, channel_factory, channel_location_factory, listing_factory
):
    other = channel_factory(platform="woocommerce")
    channel_location_factory(channel=other, location=location)
    channel_location_factory(channel=other, location=location2)
    variant = stocked_channel.listings.get().variant
    listing_factory(channel=other, variant=variant)
    big = [OrderLineData("L1", "SKU-A", 7, Decimal("20"))]
    order_apply(channel=stocked_channel, data=order_data("paid", 1, lines=big), source="webhook")
    SyncMarker.objects.all().delete()
    loser = order_apply(
        channel=other, data=order_data("paid", 1, external_id="W-9"), source="webhook"
    )
    assert loser.oversold_skus == ["SKU-A"]
    assert ChannelOrder.objects.get(external_id="W-9").is_oversold is True
    assert buckets(location) == (3, 3, 0)
    assert buckets(location2) == (5, 4, 0)
    assert Alert.objects.get(kind="oversell").channel_id == other.pk
    forced = SyncMarker.objects.filter(kind="quantity", is_forced=True)
    assert sorted(forced.values_list("channel_id", flat=True)) == sorted(
        [stocked_channel.pk, other.pk]
    )


def test_customer_is_matched_across_channels_by_email_then_phone(stocked_channel, channel_factory):
    other = channel_factory(platform="woocommerce")
    order_apply(
        channel=stocked_channel,
        data=order_data("cancelled", 1, email="Ann@Example.com "),
        source="webhook",
    )
    order_apply(
        channel=other,
        data=order_data("cancelled", 1, external_id="W1", email="ann@example.com"),
        source="webhook",
    )
    order_apply(
        channel=other,
        data=order_data("cancelled", 1, external_id="W2", email="", phone="+1 (555) 010"),
        source="webhook",
    )
    order_apply(
        channel=other,
        data=order_data("cancelled", 1, external_id="W3", email="", phone="+1555010"),
        source="webhook",
    )
    assert Customer.objects.count() == 2
    ann = Customer.objects.get(email="ann@example.com")
    assert ann.orders.count() == 2


DELIVERIES = [("pending", 1), ("paid", 2), ("fulfilled", 3)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(DELIVERIES * 3),  # each delivered three times, in any order
    poll_at=st.integers(0, 8),
    cancel=st.booleans(),
)
def test_any_delivery_order_gives_one_set_of_movements(
    stocked_channel, location, order, poll_at, cancel
):
    ChannelOrder.objects.all().delete()
    StockMovement.objects.filter(source__startswith="channel:").delete()
    Reservation.objects.all().delete()
    StockLevel.objects.filter(variant__sku="SKU-A").update(on_hand=3, committed=0, reserved=0)
    deliveries = list(order)
    if cancel:  # cancelled after paid: the order never ships
        deliveries = [d for d in deliveries if d[0] != "fulfilled"] + [("cancelled", 3)]
        deliveries = deliveries[::-1] if poll_at % 2 else deliveries
    for i, (status, minute) in enumerate(deliveries):
        order_apply(
            channel=stocked_channel,
            data=order_data(status, minute, external_id="H1"),
            source="webhook",
        )
        if i == poll_at:
            order_apply(
                channel=stocked_channel,
                data=order_data(status, minute, external_id="H1"),
                source="poll",
            )
    final = ChannelOrder.objects.get(external_id="H1")
    assert final.status == ("cancelled" if cancel else "fulfilled")
    assert buckets(location) == ((3, 0, 0) if cancel else (1, 0, 0))
    moved = StockMovement.objects.filter(source=f"channel:{stocked_channel.pk}").aggregate(
        on_hand=Sum("delta_on_hand"),
        committed=Sum("delta_committed"),
        reserved=Sum("delta_reserved"),
    )
    assert (moved["on_hand"] or 0, moved["committed"] or 0, moved["reserved"] or 0) == (
        (0, 0, 0) if cancel else (-2, 0, 0)
    )
    keys = list(
        StockMovement.objects.filter(source=f"channel:{stocked_channel.pk}").values_list(
            "idempotency_key", flat=True
        )
    )
    assert len(keys) == len(set(keys))


def test_expired_hold_then_payment_takes_the_units_again(stocked_channel, location):
    from inventory.services import reservation_expire_due

    order_apply(channel=stocked_channel, data=order_data("pending", 1), source="webhook")
    from datetime import timedelta

    from django.utils import timezone

    assert reservation_expire_due(now=timezone.now() + timedelta(days=400)) == 1
    assert buckets(location) == (3, 0, 0)
    order_apply(channel=stocked_channel, data=order_data("paid", 2), source="webhook")
    assert buckets(location) == (3, 2, 0)


def test_every_permutation_of_cancel_and_pay_is_consistent(stocked_channel, location):
    for n, perm in enumerate(
        itertools.permutations([("pending", 1), ("paid", 2), ("cancelled", 3)])
    ):
        for status, minute in perm:
            order_apply(
                channel=stocked_channel,
                data=order_data(status, minute, external_id=f"P{n}"),
                source="webhook",
            )
        assert ChannelOrder.objects.get(external_id=f"P{n}").status == "cancelled"
    assert buckets(location) == (3, 0, 0)


def test_marking_shipped_moves_stock_and_tells_the_channel_once(
    stocked_channel, location, monkeypatch, django_capture_on_commit_callbacks, task_sends
):
    from channels_app import dispatch
    from channels_app.connectors.base import ItemResult
    from channels_app.connectors.errors import FailureKind
    from channels_app.orders import apply, on_channel
    from synclog.models import SyncLogEntry

    calls = []

    class Channel:
        def fulfil_order(self, external_id, *, tracking_number="", carrier=""):
            calls.append((external_id, tracking_number, carrier))
            return ItemResult(external_id, FailureKind.OK)

    monkeypatch.setattr("channels_app.orders.on_channel.channel_connector", lambda c: Channel())
    order_apply(channel=stocked_channel, data=order_data("paid", 1), source="webhook")
    order = ChannelOrder.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        assert apply.order_mark_shipped(order=order, tracking_number="1Z999", carrier="UPS") == 1
    assert buckets(location) == (1, 0, 0)
    [[call_ids]] = task_sends.args_of(dispatch.ORDER_CALLS)
    assert on_channel.order_channel_calls_run(call_ids) == {call_ids[0]: "done"}
    assert calls == [("1001", "1Z999", "UPS")]
    assert SyncLogEntry.objects.get(event_type="order").status == "success"
    # the channel's own 'fulfilled' delivery afterwards changes nothing twice
    order_apply(channel=stocked_channel, data=order_data("fulfilled", 5), source="webhook")
    assert buckets(location) == (1, 0, 0)


def test_oversold_order_is_cancelled_on_its_channel_when_the_channel_says_so(
    stocked_channel, monkeypatch, django_capture_on_commit_callbacks, task_sends
):
    from channels_app import dispatch
    from channels_app.connectors.base import ItemResult
    from channels_app.connectors.errors import FailureKind
    from channels_app.orders import on_channel
    from synclog.models import SyncLogEntry

    cancelled = []

    class Channel:
        def cancel_order(self, external_id, *, reason=""):
            cancelled.append((external_id, reason))
            return ItemResult(external_id, FailureKind.OK)

    monkeypatch.setattr("channels_app.orders.on_channel.channel_connector", lambda c: Channel())
    stocked_channel.cancel_oversold_orders = True
    stocked_channel.save()
    too_many = [OrderLineData("L1", "SKU-A", 9, Decimal("20"))]
    with django_capture_on_commit_callbacks(execute=True):
        order_apply(
            channel=stocked_channel, data=order_data("paid", 1, lines=too_many), source="webhook"
        )
    [[call_ids]] = task_sends.args_of(dispatch.ORDER_CALLS)
    on_channel.order_channel_calls_run(call_ids)
    assert cancelled == [("1001", "oversold")]
    entry = SyncLogEntry.objects.get(event_type="order")
    assert (entry.status, entry.value_sent, entry.sku) == ("success", "cancel 1001", "SKU-A")


def test_admin_mark_shipped_action_confirms_then_ships(
    stocked_channel, location, admin_client, task_sends
):
    from django.urls import reverse

    order_apply(channel=stocked_channel, data=order_data("paid", 1), source="webhook")
    order = ChannelOrder.objects.get()
    url = reverse("admin:channels_app_channelorder_changelist")
    selection = {"action": "mark_shipped_action", "_selected_action": [order.pk]}
    page = admin_client.post(url, selection)
    assert "Mark shipped" in page.content.decode()
    assert buckets(location) == (3, 2, 0)
    bad = admin_client.post(
        url, {**selection, "confirm": "yes", "tracking_number": "1Z9", "carrier": ""}
    )
    assert "together" in bad.content.decode()
    done = admin_client.post(
        url,
        {**selection, "confirm": "yes", "tracking_number": "1Z9", "carrier": "UPS"},
        follow=True,
    )
    assert [str(m) for m in done.context["messages"]] == [
        "Marked 1 order(s) shipped; the channels are being told."
    ]
    assert buckets(location) == (1, 0, 0)
    assert ChannelOrder.objects.get().status == "fulfilled"
