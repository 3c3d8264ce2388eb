"""Ledger edge cases: inactive and negative locations, partly expired holds,
customers by e-mail, reservation keys that change their request."""

from __future__ import annotations

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import IntegrityError, transaction
from django.utils import timezone

from channels_app.connectors.base import OrderLineData
from channels_app.models import ChannelOrder, Customer, SyncMarker
from channels_app.orders.apply import order_apply
from channels_app.selectors import channel_atp, variant_channel_overview
from inventory import services
from inventory.errors import IdempotencyConflict, InvalidMovement
from inventory.models import Reservation, StockLevel, StockMovement
from tests.support.orders import order_data

pytestmark = pytest.mark.django_db


def buckets(location, sku="SKU-A"):
    level = StockLevel.objects.get(variant__sku=sku, location=location)
    return (level.on_hand, level.committed, level.reserved)


def deactivate(location):
    location.is_active = False
    services.location_save(location=location)


def lines(quantity: int) -> list[OrderLineData]:
    return [OrderLineData("L1", "SKU-A", quantity, Decimal("20.00"))]


# --- a location deactivated while linked to a channel ---------------------------------------


def test_an_inactive_location_counts_for_neither_atp_nor_allocation(
    stocked_channel, location, location2
):
    variant = stocked_channel.listings.get().variant
    assert channel_atp(channel=stocked_channel, variant=variant) == 8

    deactivate(location)  # 3 units there, still linked to the channel

    assert channel_atp(channel=stocked_channel, variant=variant) == 5
    [view] = variant_channel_overview(variant=variant)
    assert view.atp == 5
    result = order_apply(
        channel=stocked_channel, data=order_data("paid", 1, lines=lines(4)), source="webhook"
    )
    assert (result.transitions, result.oversold_skus) == (["commit"], [])
    assert buckets(location) == (3, 0, 0)
    assert buckets(location2) == (5, 4, 0)


def test_an_order_the_active_locations_cannot_cover_is_an_oversell_not_a_failure(
    stocked_channel, location
):
    deactivate(location)

    result = order_apply(
        channel=stocked_channel, data=order_data("paid", 1, lines=lines(6)), source="webhook"
    )

    assert result.oversold_skus == ["SKU-A"]
    assert ChannelOrder.objects.get().is_oversold is True


def test_what_an_inactive_location_already_holds_still_ships_and_releases(
    stocked_channel, location
):
    order_apply(channel=stocked_channel, data=order_data("paid", 1), source="webhook")
    order_apply(
        channel=stocked_channel,
        data=order_data("pending", 1, external_id="2002", lines=lines(1)),
        source="webhook",
    )
    assert buckets(location) == (3, 2, 1)
    deactivate(location)

    shipped = order_apply(channel=stocked_channel, data=order_data("fulfilled", 2), source="poll")
    released = order_apply(
        channel=stocked_channel,
        data=order_data("cancelled", 2, external_id="2002", lines=lines(1)),
        source="poll",
    )

    assert (shipped.transitions, released.transitions) == (["ship"], ["release"])
    assert buckets(location) == (1, 0, 0)


def test_an_inactive_location_takes_no_new_stock(location, variant):
    deactivate(location)

    with pytest.raises(InvalidMovement, match="inactive"):
        services.stock_adjust(
            variant=variant,
            location=location,
            quantity=1,
            reason="receive",
            source="t",
            idempotency_key="late-receipt",
        )


def test_deactivating_a_location_pushes_its_channels_the_new_atp(stocked_channel, location):
    SyncMarker.objects.all().delete()

    deactivate(location)

    marker = SyncMarker.objects.get()
    assert (marker.channel_id, marker.kind) == (stocked_channel.pk, "quantity")
    SyncMarker.objects.all().delete()
    location.name = "Renamed"
    services.location_save(location=location)
    assert not SyncMarker.objects.exists()  # only a change of what can be sold


# --- a location whose available is negative ----------------------------------------------------


def test_atp_and_allocation_agree_when_a_location_is_negative(stocked_channel, location, location2):
    variant = stocked_channel.listings.get().variant
    order_apply(
        channel=stocked_channel, data=order_data("paid", 1, lines=lines(3)), source="webhook"
    )
    services.stock_count(
        variant=variant, location=location, counted_on_hand=1, source="t", idempotency_key="c"
    )
    assert StockLevel.objects.get(variant=variant, location=location).available == -2

    atp = channel_atp(channel=stocked_channel, variant=variant)
    [view] = variant_channel_overview(variant=variant)
    taken = order_apply(
        channel=stocked_channel,
        data=order_data("paid", 1, external_id="2002", lines=lines(atp)),
        source="webhook",
    )
    too_many = order_apply(
        channel=stocked_channel,
        data=order_data("paid", 1, external_id="2003", lines=lines(1)),
        source="webhook",
    )

    assert atp == view.atp == 5  # not 5 - 2: the shortfall at one place takes nothing elsewhere
    assert (taken.oversold_skus, too_many.oversold_skus) == ([], ["SKU-A"])
    assert buckets(location2) == (5, 5, 0)


# --- a multi-location hold that partly expired ---------------------------------------------------


def _expire(reservation: Reservation) -> None:
    """Only this hold runs out (the order's others are kept far from their expiry)."""
    now = timezone.now()
    Reservation.objects.exclude(pk=reservation.pk).update(expires_at=now + timedelta(days=1))
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=now)
    assert services.reservation_expire_due(now=now) == 1


def test_a_partly_expired_hold_commits_the_live_part_once_and_only_retakes_the_lapsed_one(
    stocked_channel, location, location2
):
    order_apply(
        channel=stocked_channel, data=order_data("pending", 1, lines=lines(5)), source="webhook"
    )
    assert (buckets(location), buckets(location2)) == ((3, 0, 3), (5, 0, 2))
    _expire(Reservation.objects.get(location=location2))

    paid = order_apply(
        channel=stocked_channel, data=order_data("paid", 2, lines=lines(5)), source="webhook"
    )

    assert paid.transitions == ["commit"]
    assert (buckets(location), buckets(location2)) == ((3, 3, 0), (5, 2, 0))
    line = ChannelOrder.objects.get().lines.get()
    assert [(p["location_id"], p["quantity"]) for p in line.allocation] == [
        (location.pk, 3),
        (location2.pk, 2),
    ]
    order_apply(
        channel=stocked_channel, data=order_data("fulfilled", 3, lines=lines(5)), source="webhook"
    )
    assert (buckets(location), buckets(location2)) == ((0, 0, 0), (3, 0, 0))


def test_a_lapsed_part_taken_again_where_a_live_hold_sits_is_one_part_per_location(
    stocked_channel, location, location2
):
    order_apply(
        channel=stocked_channel, data=order_data("pending", 1, lines=lines(5)), source="webhook"
    )
    _expire(Reservation.objects.get(location=location2))
    services.stock_adjust(
        variant=stocked_channel.listings.get().variant,
        location=location,
        quantity=2,
        reason="receive",
        source="t",
        idempotency_key="more-at-main",
    )

    order_apply(
        channel=stocked_channel, data=order_data("paid", 2, lines=lines(5)), source="webhook"
    )

    line = ChannelOrder.objects.get().lines.get()
    assert [(p["location_id"], p["quantity"]) for p in line.allocation] == [(location.pk, 5)]
    assert (buckets(location), buckets(location2)) == ((5, 5, 0), (5, 0, 0))
    order_apply(
        channel=stocked_channel, data=order_data("fulfilled", 3, lines=lines(5)), source="webhook"
    )
    assert buckets(location) == (0, 0, 0)


def test_a_lapsed_part_that_is_gone_makes_an_oversell_and_frees_the_live_hold(
    stocked_channel, location, location2, channel_factory, channel_location_factory
):
    order_apply(
        channel=stocked_channel, data=order_data("pending", 1, lines=lines(5)), source="webhook"
    )
    _expire(Reservation.objects.get(location=location2))
    other = channel_factory(platform="woocommerce")
    channel_location_factory(channel=other, location=location2)
    order_apply(
        channel=other, data=order_data("paid", 1, external_id="W1", lines=lines(5)), source="poll"
    )

    paid = order_apply(
        channel=stocked_channel, data=order_data("paid", 2, lines=lines(5)), source="webhook"
    )

    assert paid.oversold_skus == ["SKU-A"]
    assert (buckets(location), buckets(location2)) == ((3, 0, 0), (5, 5, 0))
    assert Reservation.objects.get(location=location).status == "released"


# --- customers by normalised e-mail ------------------------------------------------------------


def test_the_database_refuses_a_second_customer_with_one_email(db):
    Customer.objects.create(email="ann@example.com")
    Customer.objects.create(email="")
    Customer.objects.create(email="")  # no e-mail: not a key

    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(email="ann@example.com")


def test_the_migration_merges_duplicates_onto_the_oldest_customer(stocked_channel):
    merge = importlib.import_module(
        "channels_app.migrations.0009_customer_email_merge_duplicates"
    ).merge_duplicates
    oldest = Customer.objects.create(email=" Ann@Example.com", name="Ann")
    newer = Customer.objects.create(email="ann@example.com", phone="+1555")
    other = Customer.objects.create(email="bob@example.com")
    Customer.objects.filter(pk=newer.pk).update(created_at=oldest.created_at + timedelta(days=1))
    order_apply(channel=stocked_channel, data=order_data("cancelled", 1), source="webhook")
    ChannelOrder.objects.update(customer=newer)

    merge(apps, None)

    assert sorted(Customer.objects.values_list("pk", "email", "phone", "name")) == [
        (oldest.pk, "ann@example.com", "+1555", "Ann"),
        (other.pk, "bob@example.com", "", ""),
    ]
    assert ChannelOrder.objects.get().customer_id == oldest.pk


# --- reservation keys --------------------------------------------------------------------------


def test_a_reservation_key_reused_for_a_different_hold_is_a_conflict(
    location, location2, variant, variant_factory
):
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=5,
        reason="receive",
        source="t",
        idempotency_key="seed",
    )
    request = {
        "variant": variant,
        "location": location,
        "quantity": 1,
        "source": "api",
        "idempotency_key": "cart-1",
    }
    first = services.reservation_create(**request)
    changes = [
        {"quantity": 2},
        {"source": "checkout"},
        {"location": location2},
        {"variant": variant_factory()},
    ]

    for change in changes:
        with pytest.raises(IdempotencyConflict, match="cart-1"):
            services.reservation_create(**{**request, **change})

    later = timezone.now() + timedelta(hours=3)  # a retry's "in an hour" is another time
    assert services.reservation_create(**request, expires_at=later) == first
    assert Reservation.objects.count() == 1
    assert StockMovement.objects.filter(reason="reserve").count() == 1
