from decimal import Decimal

import pytest

from inventory import services
from inventory.errors import (
    IdempotencyConflict,
    InsufficientStock,
    InvalidMovement,
    InvalidTransition,
    UnknownSku,
)
from inventory.models import Reservation, StockLevel, StockMovement
from inventory.services import Deltas, stock

pytestmark = pytest.mark.django_db


def level(variant, location) -> StockLevel:
    return StockLevel.objects.get(variant=variant, location=location)


def receive(variant, location, qty, key="k-receive"):
    return services.stock_adjust(
        variant=variant,
        location=location,
        quantity=qty,
        reason="receive",
        source="test",
        idempotency_key=key,
    )


def test_receive_writes_delta_and_ledger_row(variant, location):
    # when
    result = receive(variant, location, 7)
    # then
    assert result.created is True
    lvl = level(variant, location)
    assert (lvl.on_hand, lvl.available) == (7, 7)
    m = StockMovement.objects.get()
    assert (m.delta_on_hand, m.on_hand_after, m.available_after, m.reason) == (7, 7, 7, "receive")


def test_same_key_twice_applies_once_and_returns_first(variant, location):
    first = receive(variant, location, 5, key="same")
    second = receive(variant, location, 5, key="same")
    assert second.created is False
    assert second.movement.pk == first.movement.pk
    assert level(variant, location).on_hand == 5
    assert StockMovement.objects.count() == 1


def test_same_key_different_payload_is_a_conflict(variant, location):
    receive(variant, location, 5, key="same")
    with pytest.raises(IdempotencyConflict):
        receive(variant, location, 6, key="same")
    assert level(variant, location).on_hand == 5


def test_negative_on_hand_from_adjustment_is_refused_and_changes_nothing(variant, location):
    receive(variant, location, 3)
    with pytest.raises(InvalidMovement, match="on_hand would be -2"):
        services.stock_adjust(
            variant=variant,
            location=location,
            quantity=-5,
            reason="adjust",
            source="test",
            idempotency_key="k-neg",
        )
    assert level(variant, location).on_hand == 3
    assert StockMovement.objects.count() == 1


def test_unknown_sku_gives_a_clear_error_and_changes_nothing(location):
    with pytest.raises(UnknownSku, match="Unknown SKU 'NOPE-1'"):
        services.stock_movement_apply_for_sku(
            sku="NOPE-1",
            location_code=location.code,
            deltas=Deltas(on_hand=1),
            reason="receive",
            source="api",
            idempotency_key="k-x",
        )
    assert StockMovement.objects.count() == 0


def test_non_integer_delta_is_refused(variant, location):
    with pytest.raises(InvalidMovement, match="whole number"):
        Deltas(on_hand=1.5)


def test_unknown_reason_is_refused(variant, location):
    with pytest.raises(InvalidMovement, match="Unknown reason"):
        services.stock_movement_apply(
            variant=variant,
            location=location,
            deltas=Deltas(on_hand=1),
            reason="gift",
            source="t",
            idempotency_key="k",
        )


def test_cycle_count_computes_delta_under_lock(variant, location):
    receive(variant, location, 10)
    result = services.stock_count(
        variant=variant, location=location, counted_on_hand=7, source="admin", idempotency_key="c1"
    )
    assert result.movement.delta_on_hand == -3
    assert level(variant, location).on_hand == 7


def test_cycle_count_that_matches_is_recorded_as_zero_movement(variant, location):
    receive(variant, location, 4)
    result = services.stock_count(
        variant=variant, location=location, counted_on_hand=4, source="admin", idempotency_key="c2"
    )
    assert result.created is True
    assert result.movement.deltas == {"on_hand": 0, "committed": 0, "reserved": 0, "damaged": 0}


def test_transfer_moves_both_legs(variant, location, location2):
    receive(variant, location, 10)
    result = services.stock_transfer(
        variant=variant,
        from_location=location,
        to_location=location2,
        quantity=4,
        source="admin",
        idempotency_key="t1",
    )
    assert result.created is True
    assert level(variant, location).on_hand == 6
    assert level(variant, location2).on_hand == 4
    again = services.stock_transfer(
        variant=variant,
        from_location=location,
        to_location=location2,
        quantity=4,
        source="admin",
        idempotency_key="t1",
    )
    assert again.created is False
    assert level(variant, location).on_hand == 6


def test_transfer_to_same_location_is_refused(variant, location):
    receive(variant, location, 10)
    with pytest.raises(InvalidMovement, match="two different locations"):
        services.stock_transfer(
            variant=variant,
            from_location=location,
            to_location=location,
            quantity=1,
            source="admin",
            idempotency_key="t2",
        )
    assert StockMovement.objects.count() == 1


def test_transfer_of_more_than_available_is_refused(variant, location, location2):
    receive(variant, location, 2)
    with pytest.raises(InsufficientStock, match="needs 3, 2 available"):
        services.stock_transfer(
            variant=variant,
            from_location=location,
            to_location=location2,
            quantity=3,
            source="admin",
            idempotency_key="t3",
        )
    assert level(variant, location).on_hand == 2


def test_transfer_failing_on_second_leg_leaves_both_unchanged(
    variant, location, location2, monkeypatch
):
    receive(variant, location, 10)
    real_write = stock._write_locked
    calls = {"n": 0}

    def failing_second_leg(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full on the second leg")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(stock, "_write_locked", failing_second_leg)
    with pytest.raises(RuntimeError):
        services.stock_transfer(
            variant=variant,
            from_location=location,
            to_location=location2,
            quantity=4,
            source="admin",
            idempotency_key="t4",
        )
    assert level(variant, location).on_hand == 10
    assert not StockLevel.objects.filter(
        variant=variant, location=location2, on_hand__gt=0
    ).exists()
    assert StockMovement.objects.filter(reason="transfer").count() == 0


def test_reservation_lifecycle_reserve_commit(variant, location):
    receive(variant, location, 5)
    r = services.reservation_create(
        variant=variant, location=location, quantity=2, source="channel:1", idempotency_key="r1"
    )
    lvl = level(variant, location)
    assert (lvl.reserved, lvl.available) == (2, 3)
    services.reservation_commit(reservation_id=r.pk)
    services.reservation_commit(reservation_id=r.pk)  # idempotent
    lvl = level(variant, location)
    assert (lvl.reserved, lvl.committed, lvl.available) == (0, 2, 3)
    with pytest.raises(InvalidTransition):
        services.reservation_release(reservation_id=r.pk)


def test_reservation_more_than_available_is_refused(variant, location):
    receive(variant, location, 1)
    with pytest.raises(InsufficientStock):
        services.reservation_create(
            variant=variant, location=location, quantity=2, source="c", idempotency_key="r2"
        )
    assert Reservation.objects.count() == 0
    assert level(variant, location).reserved == 0


def test_reservation_same_key_returns_first(variant, location):
    receive(variant, location, 5)
    a = services.reservation_create(
        variant=variant, location=location, quantity=1, source="c", idempotency_key="r3"
    )
    b = services.reservation_create(
        variant=variant, location=location, quantity=1, source="c", idempotency_key="r3"
    )
    assert a.pk == b.pk
    assert level(variant, location).reserved == 1


def test_expiry_releases_only_due_active_reservations(variant, location):
    from datetime import timedelta

    from django.utils import timezone

    receive(variant, location, 5)
    now = timezone.now()
    due = services.reservation_create(
        variant=variant,
        location=location,
        quantity=2,
        source="c",
        idempotency_key="r4",
        expires_at=now - timedelta(minutes=1),
    )
    later = services.reservation_create(
        variant=variant,
        location=location,
        quantity=1,
        source="c",
        idempotency_key="r5",
        expires_at=now + timedelta(minutes=10),
    )
    assert services.reservation_expire_due(now=now) == 1
    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.status, later.status) == ("expired", "active")
    assert level(variant, location).reserved == 1
    assert services.reservation_expire_due(now=now) == 0


def test_damage_moves_units_to_damaged_bucket(variant, location):
    receive(variant, location, 5)
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=2,
        reason="damage",
        source="admin",
        idempotency_key="d1",
    )
    lvl = level(variant, location)
    assert (lvl.on_hand, lvl.damaged, lvl.available) == (5, 2, 3)


def test_set_prices_in_bulk_fires_one_event(variant_factory, db):
    from inventory import events

    a, b = variant_factory(), variant_factory()
    seen = []

    def handler(sender, variant_ids, **kw):
        seen.append(variant_ids)

    events.price_changed.connect(handler)
    try:
        changed = services.variant_set_prices(
            prices={a.pk: Decimal("9.99"), b.pk: Decimal("20.00")}
        )
    finally:
        events.price_changed.disconnect(handler)
    assert changed == 1
    assert seen == [frozenset({a.pk})]


def test_set_prices_refuses_three_decimals(variant):
    with pytest.raises(InvalidMovement):
        services.variant_set_prices(prices={variant.pk: Decimal("9.999")})
