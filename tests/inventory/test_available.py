"""Available stock (on_hand - committed - reserved - damaged) is one expression:
every reader, in SQL or in Python, gives the same number, negative ones included."""

from __future__ import annotations

import pytest

from channels_app.selectors import channel_atp_bulk, variants_channel_overview
from inventory.admin_csv import count_export_rows
from inventory.api.views import VariantViewSet
from inventory.models import StockLevel, Variant
from inventory.selectors import stock_available_compute, stock_available_expression
from inventory.services import Deltas

pytestmark = pytest.mark.django_db

# (on_hand, committed, reserved, damaged) -> available; each bucket is >= 0 in the
# database, available is not.
LEVELS = [
    ((10, 0, 0, 0), 10),
    ((10, 3, 2, 1), 4),
    ((7, 0, 7, 0), 0),
    ((2, 3, 0, 0), -1),
    ((0, 0, 0, 5), -5),
    ((0, 1, 1, 1), -3),
]


@pytest.fixture
def levels(variant_factory, location_factory):
    """One variant per row of LEVELS, its stock split over two locations (the
    second holds nothing), so sums over a variant's levels are exercised."""
    main, spare = location_factory(), location_factory()
    variants = []
    for (on_hand, committed, reserved, damaged), _ in LEVELS:
        variant = variant_factory()
        StockLevel.objects.create(
            variant=variant,
            location=main,
            on_hand=on_hand,
            committed=committed,
            reserved=reserved,
            damaged=damaged,
        )
        StockLevel.objects.create(variant=variant, location=spare)
        variants.append(variant)
    return main, spare, variants


def test_the_python_form_gives_the_expected_numbers():
    for (on_hand, committed, reserved, damaged), expected in LEVELS:
        assert (
            stock_available_compute(
                on_hand=on_hand, committed=committed, reserved=reserved, damaged=damaged
            )
            == expected
        )


def test_deltas_use_the_same_formula_on_negative_changes():
    assert Deltas(on_hand=-2, committed=3, reserved=-1).available == -4
    assert Deltas(reserved=-5, committed=5).available == 0
    assert Deltas(on_hand=4, damaged=-1).available == 5


def test_a_stock_level_and_its_annotation_agree(levels):
    main, _, variants = levels
    expected = {v.pk: available for v, (_, available) in zip(variants, LEVELS, strict=True)}

    annotated = StockLevel.objects.with_available().filter(location=main)
    plain = StockLevel.objects.filter(location=main).annotate(a=stock_available_expression())

    assert {lvl.variant_id: lvl.available_qty for lvl in annotated} == expected
    assert {lvl.variant_id: lvl.available for lvl in annotated} == expected
    assert {lvl.variant_id: lvl.a for lvl in plain} == expected


def test_variant_totals_in_admin_and_api_agree(levels):
    _, _, variants = levels
    expected = {v.pk: available for v, (_, available) in zip(variants, LEVELS, strict=True)}

    admin_totals = dict(Variant.objects.with_stock_totals().values_list("pk", "total_available"))
    api_totals = dict(VariantViewSet().get_queryset().values_list("pk", "total_available"))

    assert admin_totals == expected
    assert api_totals == expected


def test_the_csv_export_shows_the_same_available(levels):
    main, _, variants = levels
    rows = list(count_export_rows(StockLevel.objects.filter(location=main).order_by("variant")))

    # Columns: sku, product, options, location, on_hand, committed, reserved, damaged,
    # available, counted.
    assert [row[8] for row in rows] == [available for _, available in LEVELS]
    assert [row[0] for row in rows] == [v.sku for v in variants]


def test_channel_atp_sums_the_same_available(levels, channel_location_factory):
    main, spare, variants = levels
    link = channel_location_factory(location=main)
    channel_location_factory(channel=link.channel, location=spare, priority=2)
    # ATP is max(0, available - buffer); no buffer rule here.
    expected = {v.pk: max(0, available) for v, (_, available) in zip(variants, LEVELS, strict=True)}

    atp = channel_atp_bulk(channel=link.channel, variant_ids=[v.pk for v in variants])
    overview = variants_channel_overview(variants=variants)

    assert atp == expected
    assert {pk: [view.atp for view in views] for pk, views in overview.items()} == {
        pk: [value] for pk, value in expected.items()
    }
