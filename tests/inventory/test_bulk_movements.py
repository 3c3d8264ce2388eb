"""stock_movements_apply_bulk: the same result as applying the movements one by one,
or nothing at all."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory import services
from inventory.errors import BulkMovementRejected, InsufficientStock, InvalidMovement
from inventory.models import StockLevel, StockMovement
from inventory.services import Deltas, MovementSpec

pytestmark = pytest.mark.django_db

REASONS = {"receive": 1, "sale": -1, "adjust": 0, "damage": 1}

movement = st.tuples(
    st.integers(0, 2),  # variant
    st.integers(0, 1),  # location
    st.sampled_from(sorted(REASONS)),
    st.integers(1, 6),
    st.booleans(),  # sign for adjust
)


def _spec(variants, locations, row, n, prefix):
    v, loc, reason, qty, negative = row
    sign = REASONS[reason] or (-1 if negative else 1)
    deltas = Deltas(damaged=qty) if reason == "damage" else Deltas(on_hand=sign * qty)
    return MovementSpec(
        variant_id=variants[v].pk,
        location_id=locations[loc].pk,
        deltas=deltas,
        reason=reason,
        idempotency_key=f"{prefix}{n}",
    )


def _state():
    levels = sorted(
        StockLevel.objects.values_list("variant_id", "location_id", "on_hand", "damaged")
    )
    ledger = sorted(
        StockMovement.objects.values_list(
            "variant_id",
            "location_id",
            "delta_on_hand",
            "delta_damaged",
            "on_hand_after",
            "available_after",
            "reason",
        )
    )
    return levels, ledger


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(movement, min_size=1, max_size=12))
def test_bulk_equals_one_by_one_or_changes_nothing(rows, variant_factory, location_factory):
    from django.db import transaction

    variants = [variant_factory() for _ in range(3)]
    locations = [location_factory(), location_factory()]
    for v in variants:
        services.stock_adjust(
            variant=v,
            location=locations[0],
            quantity=4,
            reason="receive",
            source="t",
            idempotency_key=f"seed{v.pk}",
        )

    class Undo(Exception):
        pass

    # One by one, inside a transaction rolled back afterwards.
    try:
        with transaction.atomic():
            failed = False
            for n, row in enumerate(rows):
                spec = _spec(variants, locations, row, n, "k")
                try:
                    services.stock_movement_apply(
                        variant=variants[row[0]],
                        location=locations[row[1]],
                        deltas=spec.deltas,
                        reason=spec.reason,
                        source="t",
                        idempotency_key=spec.idempotency_key,
                    )
                except (InvalidMovement, InsufficientStock):
                    failed = True
            sequential = None if failed else _state()
            raise Undo
    except Undo:
        pass

    before = _state()
    specs = [_spec(variants, locations, row, n, "k") for n, row in enumerate(rows)]
    if sequential is None:
        with pytest.raises(BulkMovementRejected):
            services.stock_movements_apply_bulk(specs=specs, source="t")
        assert _state() == before
    else:
        results = services.stock_movements_apply_bulk(specs=specs, source="t")
        assert all(r.created for r in results)
        assert _state() == sequential
        # A repeat of the same keys applies nothing and reports every row as done before.
        again = services.stock_movements_apply_bulk(specs=specs, source="t")
        assert [r.movement.pk for r in again] == [r.movement.pk for r in results]
        assert not any(r.created for r in again)
        assert _state() == sequential
    StockMovement.objects.all().delete()
    StockLevel.objects.all().delete()
    for v in variants:
        v.delete()
