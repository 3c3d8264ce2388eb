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
