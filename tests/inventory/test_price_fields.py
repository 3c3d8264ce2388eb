"""variant_set_price_fields: many variants' price, compare-at and MAP, all or nothing."""

from decimal import Decimal

import pytest

from inventory import events, services
from inventory.errors import InvalidMovement, UnknownSku
from inventory.models import Variant
from inventory.services import catalog

pytestmark = pytest.mark.django_db


@pytest.fixture
def price_events():
    seen = []

    def handler(sender, variant_ids, **kw):
        seen.append(variant_ids)

    events.price_changed.connect(handler)
    yield seen
    events.price_changed.disconnect(handler)


def test_sets_and_clears_fields_and_announces_only_real_changes(variant_factory, price_events):
    a = variant_factory(price=Decimal("10.00"), compare_at_price=Decimal("12.00"))
    b = variant_factory(price=Decimal("5.00"))
    c = variant_factory(price=Decimal("7.00"), map_price=Decimal("6.00"))

    changed = services.variant_set_price_fields(
        changes={
            a.pk: {"price": Decimal("11.00"), "compare_at_price": None},
            b.pk: {"price": Decimal("5")},
            c.pk: {"price": Decimal("7.00"), "map_price": Decimal("6.50")},
        }
    )

    assert changed == sorted([a.pk, c.pk])
    assert price_events == [frozenset({a.pk, c.pk})]
    rows = Variant.objects.in_bulk([a.pk, b.pk, c.pk])
    assert (rows[a.pk].price, rows[a.pk].compare_at_price) == (Decimal("11.00"), None)
    assert (rows[b.pk].price, rows[c.pk].map_price) == (Decimal("5.00"), Decimal("6.50"))
    assert rows[a.pk].updated_at > a.updated_at
    assert rows[b.pk].updated_at == b.updated_at


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"price": Decimal("-1")}, "price must be 0 or more"),
        ({"price": Decimal("1.001")}, "price may have at most 2 decimal places"),
        ({"price": None}, "price is required"),
        ({"price": Decimal("1e10")}, "price must be below 10,000,000,000"),
        ({"price": Decimal("NaN")}, "price must be a decimal number"),
        ({"price": 3.5}, "price must be a decimal number"),
        ({"cost": Decimal("1")}, "Not price fields: cost"),
    ],
)
def test_one_bad_value_refuses_everything(variant_factory, price_events, values, message):
    good, bad = variant_factory(price=Decimal("1.00")), variant_factory(price=Decimal("1.00"))

    with pytest.raises(InvalidMovement, match=message):
        services.variant_set_price_fields(
            changes={good.pk: {"price": Decimal("2.00")}, bad.pk: values}
        )

    assert set(Variant.objects.values_list("price", flat=True)) == {Decimal("1.00")}
    assert price_events == []


def test_a_vanished_variant_refuses_everything(variant_factory, price_events):
    v = variant_factory(price=Decimal("1.00"))

    with pytest.raises(UnknownSku, match=r"1 variant\(s\) no longer exist"):
        services.variant_set_price_fields(
            changes={v.pk: {"price": Decimal("2.00")}, 999_999: {"price": Decimal("2.00")}}
        )

    assert Variant.objects.get(pk=v.pk).price == Decimal("1.00")
    assert price_events == []


def test_every_batch_of_the_update_is_written(variant_factory, price_events, monkeypatch):
    monkeypatch.setattr(catalog, "PRICE_UPDATE_BATCH", 2)
    variants = [variant_factory(price=Decimal("1.00")) for _ in range(5)]
    prices = {v.pk: Decimal(f"{i}.{i}5") for i, v in enumerate(variants)}

    assert services.variant_set_prices(prices=prices) == 5

    assert dict(Variant.objects.values_list("pk", "price")) == prices
