"""Property: whatever sequence of movements is applied (or refused), every
StockLevel equals the sum of its ledger rows, and available is derived."""

import contextlib

import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory import services
from inventory.errors import InventoryError
from inventory.models import Location, Product, Reservation, StockLevel, StockMovement, Variant

OPS = st.one_of(
    st.tuples(st.just("adjust"), st.integers(0, 1), st.integers(0, 1), st.integers(-8, 12)),
    st.tuples(st.just("damage"), st.integers(0, 1), st.integers(0, 1), st.integers(1, 3)),
    st.tuples(st.just("count"), st.integers(0, 1), st.integers(0, 1), st.integers(0, 15)),
    st.tuples(st.just("transfer"), st.integers(0, 1), st.integers(0, 1), st.integers(1, 6)),
    st.tuples(st.just("reserve"), st.integers(0, 1), st.integers(0, 1), st.integers(1, 4)),
    st.tuples(st.just("commit"), st.integers(0, 1), st.integers(0, 1), st.integers(0, 5)),
    st.tuples(st.just("release"), st.integers(0, 1), st.integers(0, 1), st.integers(0, 5)),
    st.tuples(st.just("ship"), st.integers(0, 1), st.integers(0, 1), st.integers(1, 3)),
)


def _apply(op, variant, loc, other, qty, n, reservations):
    key = f"h-{n}"
    if op == "adjust" and qty:
        services.stock_adjust(
            variant=variant,
            location=loc,
            quantity=qty,
            reason="adjust",
            source="t",
            idempotency_key=key,
        )
    elif op == "damage":
        services.stock_adjust(
            variant=variant,
            location=loc,
            quantity=qty,
            reason="damage",
            source="t",
            idempotency_key=key,
        )
    elif op == "count":
        services.stock_count(
            variant=variant, location=loc, counted_on_hand=qty, source="t", idempotency_key=key
        )
    elif op == "transfer":
        services.stock_transfer(
            variant=variant,
            from_location=loc,
            to_location=other,
            quantity=qty,
            source="t",
            idempotency_key=key,
        )
    elif op == "reserve":
        reservations.append(
            services.reservation_create(
                variant=variant, location=loc, quantity=qty, source="t", idempotency_key=key
            ).pk
        )
    elif op in ("commit", "release") and reservations:
        pk = reservations[qty % len(reservations)]
        fn = services.reservation_commit if op == "commit" else services.reservation_release
        fn(reservation_id=pk)
    elif op == "ship":
        services.stock_movement_apply(
            variant=variant,
            location=loc,
            deltas=services.Deltas(on_hand=-qty, committed=-qty),
            reason="ship",
            source="t",
            idempotency_key=key,
        )


@pytest.mark.django_db
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(OPS, min_size=1, max_size=25))
def test_stock_levels_equal_sum_of_movements(ops):
    Reservation.objects.all().delete()
    StockMovement.objects.all().delete()
    StockLevel.objects.all().delete()
    product = Product.objects.get_or_create(handle="h", defaults={"title": "H"})[0]
    variants = [
        Variant.objects.get_or_create(sku=f"H-{i}", defaults={"product": product, "price": 1})[0]
        for i in range(2)
    ]
    locations = [
        Location.objects.get_or_create(code=f"h{i}", defaults={"name": f"H{i}"})[0]
        for i in range(2)
    ]
    reservations: list[int] = []
    for n, (op, vi, li, qty) in enumerate(ops):
        # A refused change must leave no trace; the invariant below checks it.
        with contextlib.suppress(InventoryError):
            _apply(op, variants[vi], locations[li], locations[1 - li], qty, n, reservations)
    for lvl in StockLevel.objects.all():
        sums = StockMovement.objects.filter(
            variant=lvl.variant_id, location=lvl.location_id
        ).aggregate(
            on_hand=Sum("delta_on_hand"),
            committed=Sum("delta_committed"),
            reserved=Sum("delta_reserved"),
            damaged=Sum("delta_damaged"),
        )
        assert (lvl.on_hand, lvl.committed, lvl.reserved, lvl.damaged) == tuple(
            sums[k] or 0 for k in ("on_hand", "committed", "reserved", "damaged")
        )
        assert lvl.available == lvl.on_hand - lvl.committed - lvl.reserved - lvl.damaged
        assert min(lvl.on_hand, lvl.committed, lvl.reserved, lvl.damaged) >= 0
        last = (
            StockMovement.objects.filter(variant=lvl.variant_id, location=lvl.location_id)
            .order_by("-id")
            .first()
        )
        if last is not None:
            assert (last.on_hand_after, last.available_after) == (lvl.on_hand, lvl.available)
