"""A partial refund of an order that stands: only the refunded units come back."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels_app.connectors.base import OrderLineData
from channels_app.connectors.shopify import refund_quantity_by_line
from channels_app.models import ChannelOrder
from channels_app.orders.apply import order_apply
from inventory.models import StockLevel, StockMovement
from tests.support.orders import order_data

pytestmark = pytest.mark.django_db


def levels(location, location2):
    """(on_hand, committed, damaged) at each location."""
    return tuple(
        StockLevel.objects.filter(variant__sku="SKU-A", location=loc)
        .values_list("on_hand", "committed", "damaged")
        .get()
        for loc in (location, location2)
    )


def five(refunded: int = 0, restock: bool | None = None) -> list[OrderLineData]:
    """5 units of SKU-A: 3 from the first location, 2 from the second."""
    return [
        OrderLineData(
            "L1", "SKU-A", 5, Decimal("20.00"), restock=restock, refunded_quantity=refunded
        )
    ]


def apply(channel, status, minute, lines):
    return order_apply(
        channel=channel, data=order_data(status, minute, lines=lines), source="webhook"
    )


def test_a_returned_unit_of_a_shipped_line_comes_back_and_the_rest_stays_sold(
    stocked_channel, location, location2
):
    apply(stocked_channel, "fulfilled", 1, five())
    assert levels(location, location2) == ((0, 0, 0), (3, 0, 0))

    result = apply(stocked_channel, "fulfilled", 2, five(refunded=1, restock=True))

    assert result.transitions == ["return-1"]
    assert levels(location, location2) == ((1, 0, 0), (3, 0, 0))
    line = ChannelOrder.objects.get().lines.get()
    assert (line.state, line.refunded_quantity) == ("shipped", 1)
    movement = StockMovement.objects.get(reason="return")
    assert (movement.delta_on_hand, movement.location_id) == (1, location.pk)


def test_later_refunds_move_only_the_difference_across_locations_and_repeat_nothing(
    stocked_channel, location, location2
):
    apply(stocked_channel, "fulfilled", 1, five())
    apply(stocked_channel, "fulfilled", 2, five(refunded=1, restock=True))

    apply(stocked_channel, "fulfilled", 3, five(refunded=4, restock=True))
    apply(stocked_channel, "fulfilled", 3, five(refunded=4, restock=True))  # a repeat
    apply(stocked_channel, "fulfilled", 4, five(refunded=2, restock=True))  # older count

    # Units 1-3 came from the first location, unit 4 from the second.
    assert levels(location, location2) == ((3, 0, 0), (4, 0, 0))
    assert StockMovement.objects.filter(reason="return").count() == 3  # 1 + (2 at A, 1 at B)


def test_a_return_the_channel_did_not_restock_is_held_as_damaged(
    stocked_channel, location, location2
):
    apply(stocked_channel, "fulfilled", 1, five())

    apply(stocked_channel, "fulfilled", 2, five(refunded=2, restock=False))

    assert levels(location, location2) == ((2, 0, 2), (3, 0, 0))


def test_a_unit_refunded_before_shipping_is_released_and_only_the_rest_ships(
    stocked_channel, location, location2
):
    apply(stocked_channel, "paid", 1, five())
    assert levels(location, location2) == ((3, 3, 0), (5, 2, 0))

    assert apply(stocked_channel, "paid", 2, five(refunded=1)).transitions == ["release-1"]
    assert levels(location, location2) == ((3, 2, 0), (5, 2, 0))

    assert apply(stocked_channel, "fulfilled", 3, five(refunded=1)).transitions == ["ship"]
    assert levels(location, location2) == ((1, 0, 0), (3, 0, 0))


def test_a_full_refund_after_a_partial_one_restocks_only_what_is_still_out(
    stocked_channel, location, location2
):
    apply(stocked_channel, "fulfilled", 1, five())
    apply(stocked_channel, "fulfilled", 2, five(refunded=2, restock=True))

    apply(stocked_channel, "refunded", 3, five(refunded=5, restock=True))

    assert levels(location, location2) == ((3, 0, 0), (5, 0, 0))
    line = ChannelOrder.objects.get().lines.get()
    assert line.state == "restocked"


def test_refunding_every_unit_one_by_one_ends_the_line(stocked_channel, location, location2):
    apply(stocked_channel, "paid", 1, five())
    for minute, refunded in enumerate(range(1, 6), start=2):
        apply(stocked_channel, "paid", minute, five(refunded=refunded))

    assert levels(location, location2) == ((3, 0, 0), (5, 0, 0))
    assert ChannelOrder.objects.get().lines.get().state == "released"
    apply(stocked_channel, "cancelled", 9, five(refunded=5))
    assert levels(location, location2) == ((3, 0, 0), (5, 0, 0))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["paid", "fulfilled"]), st.integers(0, 5)), min_size=1, max_size=6
    )
)
def test_whatever_the_refund_sequence_stock_and_ledger_agree(
    stocked_channel, location, location2, steps
):
    """Each delivery carries a cumulative refund count; a unit is never taken back twice,
    and the ledger always sums to the levels."""
    ChannelOrder.objects.all().delete()
    StockMovement.objects.exclude(source="t").delete()
    StockLevel.objects.filter(location=location).update(on_hand=3, committed=0, damaged=0)
    StockLevel.objects.filter(location=location2).update(on_hand=5, committed=0, damaged=0)

    for minute, (status, refunded) in enumerate(steps, start=1):
        apply(stocked_channel, status, minute, five(refunded=refunded, restock=True))

    line = ChannelOrder.objects.get().lines.get()
    (on_a, committed_a, _), (on_b, committed_b, _) = levels(location, location2)
    out = 8 - on_a - on_b  # units that left the building
    held = committed_a + committed_b
    assert line.refunded_quantity <= 5
    assert out + held == 5 - line.refunded_quantity
    for loc, on_hand in ((location, on_a), (location2, on_b)):
        ledger = StockMovement.objects.filter(variant__sku="SKU-A", location=loc)
        assert sum(m.delta_on_hand for m in ledger) == on_hand


def test_shopify_refund_quantities_are_summed_per_line():
    refunds = [
        {"refund_line_items": [{"line_item_id": 11, "quantity": 1, "restock_type": "return"}]},
        {
            "refund_line_items": [
                {"line_item_id": 11, "quantity": 2, "restock_type": "no_restock"},
                {"line_item": {"id": 12}, "quantity": 1, "restock_type": "cancel"},
                {"line_item_id": 13, "quantity": "x"},
                "junk",
            ]
        },
    ]
    assert refund_quantity_by_line(refunds) == {"11": 3, "12": 1}
    assert refund_quantity_by_line(None) == {}
