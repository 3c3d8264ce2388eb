from decimal import Decimal

import pytest
from django.db import transaction

from inventory import events, services

pytestmark = pytest.mark.django_db


@pytest.fixture
def recorder():
    seen = []

    def on_stock(sender, variant_ids, location_ids, **kw):
        seen.append(
            ("stock", variant_ids, location_ids, transaction.get_connection().in_atomic_block)
        )

    def on_price(sender, variant_ids, **kw):
        seen.append(("price", variant_ids, None, transaction.get_connection().in_atomic_block))

    events.stock_changed.connect(on_stock)
    events.price_changed.connect(on_price)
    yield seen
    events.stock_changed.disconnect(on_stock)
    events.price_changed.disconnect(on_price)


def test_stock_event_fires_inside_the_writing_transaction(variant, location, recorder):
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=1,
        reason="receive",
        source="t",
        idempotency_key="e1",
    )
    assert recorder == [("stock", frozenset({variant.pk}), frozenset({location.pk}), True)]


def test_subscriber_failure_rolls_the_change_back(variant, location):
    from inventory.models import StockMovement

    def broken(**kw):
        raise RuntimeError("marker table unavailable")

    events.stock_changed.connect(broken)
    try:
        with pytest.raises(RuntimeError):
            services.stock_adjust(
                variant=variant,
                location=location,
                quantity=1,
                reason="receive",
                source="t",
                idempotency_key="e2",
            )
    finally:
        events.stock_changed.disconnect(broken)
    assert StockMovement.objects.count() == 0


def test_price_event_only_when_a_price_field_changes(variant, recorder):
    variant.title = "renamed"
    services.variant_save(variant=variant)
    assert recorder == []
    variant.price = variant.price + 1
    services.variant_save(variant=variant)
    assert [r[0] for r in recorder] == ["price"]


def test_repeated_key_fires_no_second_event(variant, location, recorder):
    for _ in range(2):
        services.stock_adjust(
            variant=variant,
            location=location,
            quantity=1,
            reason="receive",
            source="t",
            idempotency_key="e3",
        )
    assert len(recorder) == 1


# --- events_batched(): many writes, one stock event per location, one price event


def receive(variant, location, key):
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=2,
        reason="receive",
        source="t",
        idempotency_key=key,
    )


def test_events_are_published_once_per_location_at_the_end(
    variant_factory, location, location2, recorder
):
    a, b = variant_factory(), variant_factory()

    with transaction.atomic(), events.events_batched():
        receive(a, location, "1")
        receive(b, location, "2")
        receive(a, location2, "3")
        services.variant_set_prices(prices={a.pk: Decimal("1.00")})
        services.variant_set_prices(prices={b.pk: Decimal("2.00")})
        assert recorder == []

    assert recorder == [
        ("stock", frozenset({a.pk, b.pk}), frozenset({location.pk}), True),
        ("stock", frozenset({a.pk}), frozenset({location2.pk}), True),
        ("price", frozenset({a.pk, b.pk}), None, True),
    ]


def test_a_failing_block_publishes_nothing(variant, location, recorder):
    def refused_import():
        with transaction.atomic(), events.events_batched():
            receive(variant, location, "1")
            raise RuntimeError("import refused")

    with pytest.raises(RuntimeError):
        refused_import()

    assert recorder == []


def test_nested_batches_join_the_outer_one(variant, location, location2, recorder):
    with transaction.atomic(), events.events_batched():
        receive(variant, location, "1")
        with events.events_batched():
            receive(variant, location2, "2")
        assert recorder == []

    assert [r[2] for r in recorder] == [frozenset({location.pk}), frozenset({location2.pk})]


@pytest.mark.django_db(transaction=True)
def test_batching_outside_a_transaction_is_refused():
    def outside():
        with events.events_batched():
            pass

    with pytest.raises(RuntimeError, match="inside the writing transaction"):
        outside()
