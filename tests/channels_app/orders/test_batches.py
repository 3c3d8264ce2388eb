"""Inbound events applied in batches: one transaction, each stock row locked once,
orders in arrival order, one savepoint per order, failures recorded per event."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from channels_app.connectors.base import OrderLineData
from channels_app.models import ChannelOrder, ChannelOrderLine, InboundEvent, SyncMarker
from channels_app.orders import apply
from channels_app.orders.events import (
    inbound_event_process,
    inbound_events_apply,
    inbound_events_process,
    inbound_sweep,
)
from inventory import locks
from inventory.models import StockLevel
from synclog.models import Alert
from tests.support.orders import order_data, stored_poll_event

pytestmark = pytest.mark.django_db


def one_unit(external_id: str, status: str = "paid", minute: int = 1):
    return order_data(
        status,
        minute,
        external_id=external_id,
        lines=[OrderLineData("L1", "SKU-A", 1, Decimal("20.00"))],
        email=f"{external_id}@example.com",
    )


def level(location) -> tuple[int, int, int]:
    lvl = StockLevel.objects.get(variant__sku="SKU-A", location=location)
    return (lvl.on_hand, lvl.committed, lvl.reserved)


def states() -> dict[str, str]:
    return dict(ChannelOrderLine.objects.values_list("order__external_id", "state"))


@pytest.fixture
def lock_calls(monkeypatch):
    """Every time stock rows are locked in the database (not handed out again)."""
    calls: list[list[tuple[int, int]]] = []
    real = locks._lock

    def counting(wanted):
        calls.append(list(wanted))
        return real(wanted)

    monkeypatch.setattr(locks, "_lock", counting)
    return calls


def test_a_batch_applies_in_arrival_order_and_locks_the_hot_row_once(
    stocked_channel, location, location2, lock_calls
):
    events = [stored_poll_event(stocked_channel, one_unit(f"O{n}")) for n in range(10)]

    outcomes = inbound_events_apply(event_ids=[e.pk for e in events])

    assert outcomes == {e.pk: "processed" for e in events}
    assert len(lock_calls) == 1  # both locations' rows of SKU-A, once for ten orders
    assert states() == {
        **{f"O{n}": "committed" for n in range(8)},
        "O8": "oversold",
        "O9": "oversold",
    }
    assert (level(location), level(location2)) == ((3, 3, 0), (5, 5, 0))
    assert set(InboundEvent.objects.values_list("status", "attempts")) == {("processed", 1)}


def test_losers_of_a_batch_make_one_counted_alert_and_one_forced_push(stocked_channel):
    stocked_channel.cancel_oversold_orders = False
    stocked_channel.save()
    events = [stored_poll_event(stocked_channel, one_unit(f"O{n}")) for n in range(12)]
    SyncMarker.objects.all().delete()

    inbound_events_apply(event_ids=[e.pk for e in events])

    alert = Alert.objects.get(kind="oversell")
    assert (alert.count, alert.sku) == (4, "SKU-A")
    assert alert.message.startswith("4 orders on ")
    assert "(#O8, #O9, #O10, #O11)" in alert.message
    marker = SyncMarker.objects.get(kind="quantity")
    assert (marker.channel_id, marker.is_forced) == (stocked_channel.pk, True)


def test_one_bad_order_fails_only_itself_and_its_units_go_to_the_next(
    stocked_channel, location, location2, monkeypatch, settings
):
    settings.PIMSYNC_WEBHOOK_RETRY_BASE_SECONDS = 10

    def apply_but_break_o1(**kwargs):
        result = apply.order_apply(**kwargs)  # O1 takes its unit (the last at main) ...
        if kwargs["data"].external_id == "O1":
            raise RuntimeError("broken after the stock moved")  # ... and must give it back
        return result

    monkeypatch.setattr("channels_app.orders.events.order_apply", apply_but_break_o1)
    StockLevel.objects.filter(location=location2).delete()  # 3 units left, all at main
    bad_body = stored_poll_event(stocked_channel, one_unit("X"))
    InboundEvent.objects.filter(pk=bad_body.pk).update(raw_body="{not json")
    events = [
        stored_poll_event(stocked_channel, one_unit("O0")),
        stored_poll_event(stocked_channel, one_unit("O1")),
        bad_body,
        stored_poll_event(stocked_channel, one_unit("O2")),
        stored_poll_event(stocked_channel, one_unit("O3")),
    ]

    outcomes = inbound_events_apply(event_ids=[e.pk for e in events])

    assert [outcomes[e.pk] for e in events] == [
        "processed",
        "pending",
        "failed",
        "processed",
        "processed",
    ]
    assert states() == {"O0": "committed", "O2": "committed", "O3": "committed"}
    assert level(location) == (3, 3, 0)
    o1 = InboundEvent.objects.get(pk=events[1].pk)
    assert (o1.attempts, o1.error) == (1, "RuntimeError: broken after the stock moved")
    assert "unreadable poll event" in InboundEvent.objects.get(pk=bad_body.pk).error


def test_two_events_of_one_new_order_in_a_batch_make_one_order(stocked_channel, location):
    events = [
        stored_poll_event(stocked_channel, order_data("pending", 1)),
        stored_poll_event(stocked_channel, order_data("paid", 2)),
        stored_poll_event(stocked_channel, order_data("paid", 0)),  # older, delivered late
    ]

    outcomes = inbound_events_apply(event_ids=[e.pk for e in events])

    assert list(outcomes.values()) == ["processed", "processed", "processed"]
    order = ChannelOrder.objects.get()
    assert (order.status, order.lines.get().state) == ("paid", "committed")
    assert level(location) == (3, 2, 0)


def test_a_batch_that_fails_as_a_whole_goes_again_one_event_at_a_time(
    stocked_channel, location, monkeypatch
):
    real = apply.OrderApplyScope.prepare

    def refuse_batches(self, items):
        if len(items) > 1:
            raise RuntimeError("a lock wait the database ended")
        return real(self, items)

    monkeypatch.setattr(apply.OrderApplyScope, "prepare", refuse_batches)
    events = [stored_poll_event(stocked_channel, one_unit(f"O{n}")) for n in range(3)]

    outcomes = inbound_events_apply(event_ids=[e.pk for e in events])

    assert outcomes == {e.pk: "processed" for e in events}
    assert level(location) == (3, 3, 0)


def test_an_event_that_fails_before_its_order_is_applied_records_the_failure(
    stocked_channel, monkeypatch
):
    def broken(self, items):
        raise RuntimeError("look-up broke")

    monkeypatch.setattr(apply.OrderApplyScope, "prepare", broken)
    event = stored_poll_event(stocked_channel, one_unit("O1"))

    assert inbound_event_process(event.pk) == "pending"

    event.refresh_from_db()
    assert (event.attempts, event.error) == (1, "RuntimeError: look-up broke")


def test_a_task_drains_every_untried_event_in_batches(stocked_channel, settings):
    settings.PIMSYNC_INBOUND_BATCH_SIZE = 4
    events = [stored_poll_event(stocked_channel, one_unit(f"O{n}")) for n in range(10)]
    retrying = stored_poll_event(stocked_channel, one_unit("R"))
    InboundEvent.objects.filter(pk=retrying.pk).update(attempts=1)

    assert inbound_events_process([events[-1].pk]) == 10

    assert InboundEvent.objects.filter(status="pending").get() == retrying  # the sweeper's


def test_the_sweeper_takes_due_events_in_batches(stocked_channel, settings):
    settings.PIMSYNC_INBOUND_BATCH_SIZE = 3
    settings.PIMSYNC_WEBHOOK_SWEEP_GRACE_SECONDS = 0
    events = [stored_poll_event(stocked_channel, one_unit(f"O{n}")) for n in range(7)]

    assert inbound_sweep(now=timezone.now()) == 7

    assert set(InboundEvent.objects.filter(pk__in=[e.pk for e in events]).values_list(
        "status", flat=True
    )) == {"processed"}  # fmt: skip
