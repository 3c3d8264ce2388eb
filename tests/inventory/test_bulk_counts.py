"""stock_counts_apply_bulk: stock_count's rules for many counts in one transaction."""

from __future__ import annotations

import pytest

from inventory import services
from inventory.errors import BulkMovementRejected
from inventory.models import MovementReason, StockLevel, StockMovement
from inventory.services import CountSpec

pytestmark = pytest.mark.django_db


@pytest.fixture
def shelf(location, location2, variant_factory):
    """A-1: 10 at main (2 committed), 4 at store; B-2: 5 at main."""
    a, b = variant_factory(sku="A-1"), variant_factory(sku="B-2")
    for variant, where, qty in ((a, location, 10), (a, location2, 4), (b, location, 5)):
        services.stock_adjust(
            variant=variant,
            location=where,
            quantity=qty,
            reason="receive",
            source="t",
            idempotency_key=f"seed:{variant.sku}:{where.code}",
        )
    services.stock_movement_apply(
        variant=a,
        location=location,
        deltas=services.Deltas(committed=2),
        reason="sale",
        source="t",
        idempotency_key="sold",
    )
    return {"A": a, "B": b, "main": location, "store": location2}


def _count(shelf, sku, where, counted, key):
    return CountSpec(
        variant_id=shelf[sku].pk,
        location_id=shelf[where].pk,
        counted_on_hand=counted,
        idempotency_key=key,
        note="sheet row",
    )


def _on_hand():
    return {
        (sku, code): qty
        for sku, code, qty in StockLevel.objects.values_list(
            "variant__sku", "location__code", "on_hand"
        )
    }


def test_each_delta_is_computed_under_the_lock_and_a_match_is_still_recorded(shelf) -> None:
    counts = [
        _count(shelf, "A", "main", 7, "c1"),
        _count(shelf, "A", "store", 4, "c2"),  # matches: a zero movement, as evidence
        _count(shelf, "B", "main", 9, "c3"),
    ]

    results = services.stock_counts_apply_bulk(counts=counts, source="admin")

    assert [r.created for r in results] == [True, True, True]
    assert [(r.movement.delta_on_hand, r.movement.on_hand_after) for r in results] == [
        (-3, 7),
        (0, 4),
        (4, 9),
    ]
    assert {r.movement.reason for r in results} == {MovementReason.COUNT}
    assert results[0].movement.available_after == 5  # 7 on hand, 2 committed
    assert _on_hand() == {("A-1", "main"): 7, ("A-1", "store"): 4, ("B-2", "main"): 9}


def test_the_same_keys_again_change_nothing_and_return_the_first_movements(shelf) -> None:
    counts = [_count(shelf, "A", "main", 7, "c1"), _count(shelf, "B", "main", 9, "c3")]
    first = services.stock_counts_apply_bulk(counts=counts, source="admin")
    ledger = StockMovement.objects.count()

    again = services.stock_counts_apply_bulk(counts=counts, source="admin")

    assert [r.created for r in again] == [False, False]
    assert [r.movement.pk for r in again] == [r.movement.pk for r in first]
    assert StockMovement.objects.count() == ledger
    assert _on_hand()[("A-1", "main")] == 7


def test_a_key_used_for_another_level_rejects_the_whole_request(shelf) -> None:
    services.stock_counts_apply_bulk(counts=[_count(shelf, "A", "main", 7, "c1")], source="t")
    before, ledger = _on_hand(), StockMovement.objects.count()

    with pytest.raises(BulkMovementRejected) as refused:
        services.stock_counts_apply_bulk(
            counts=[_count(shelf, "B", "main", 1, "fresh"), _count(shelf, "A", "store", 1, "c1")],
            source="t",
        )

    assert list(refused.value.row_errors) == [1]
    assert "already used for another count" in refused.value.row_errors[1][0]
    assert (_on_hand(), StockMovement.objects.count()) == (before, ledger)


def test_a_failing_row_is_named_by_its_own_index_and_nothing_is_applied(shelf) -> None:
    shelf["store"].is_active = False
    shelf["store"].save(update_fields=["is_active"])
    services.stock_counts_apply_bulk(counts=[_count(shelf, "B", "main", 5, "done")], source="t")
    before, ledger = _on_hand(), StockMovement.objects.count()

    with pytest.raises(BulkMovementRejected) as refused:
        services.stock_counts_apply_bulk(
            counts=[
                _count(shelf, "B", "main", 5, "done"),  # a repeat: not a spec of the bulk apply
                _count(shelf, "A", "main", 1, "ok"),
                _count(shelf, "A", "store", 1, "inactive"),
            ],
            source="t",
        )

    assert list(refused.value.row_errors) == [2]
    assert "inactive" in refused.value.row_errors[2][0]
    assert (_on_hand(), StockMovement.objects.count()) == (before, ledger)


def test_a_negative_count_is_refused_before_anything_is_locked(shelf) -> None:
    with pytest.raises(BulkMovementRejected) as refused:
        services.stock_counts_apply_bulk(
            counts=[_count(shelf, "A", "main", 3, "a"), _count(shelf, "B", "main", -1, "b")],
            source="t",
        )

    assert list(refused.value.row_errors) == [1]
    assert _on_hand()[("A-1", "main")] == 10


def test_repeats_and_new_counts_mix_across_locations(shelf) -> None:
    first = services.stock_counts_apply_bulk(
        counts=[_count(shelf, "A", "store", 6, "s1")], source="t"
    )

    mixed = services.stock_counts_apply_bulk(
        counts=[_count(shelf, "A", "store", 6, "s1"), _count(shelf, "B", "main", 2, "m1")],
        source="t",
    )

    assert [r.created for r in mixed] == [False, True]
    assert mixed[0].movement.pk == first[0].movement.pk
    assert _on_hand() == {("A-1", "main"): 10, ("A-1", "store"): 6, ("B-2", "main"): 2}
