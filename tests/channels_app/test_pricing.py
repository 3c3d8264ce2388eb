"""Table-driven: channel price and ATP maths, and buffer rule precedence."""

from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from channels_app.pricing import (
    buffer_units,
    channel_atp_compute,
    channel_price_compute,
    price_round_to_ending,
)
from channels_app.selectors import buffer_rule_pick


@pytest.mark.parametrize(
    ("price", "ending", "expected"),
    [
        ("12.00", "0.99", "12.99"),
        ("12.99", "0.99", "12.99"),
        ("13.00", "0.99", "13.99"),
        ("12.50", "0.99", "12.99"),
        ("12.96", "0.95", "13.95"),
        ("12.10", "0.95", "12.95"),
        ("0.40", "0.99", "0.99"),
        ("12.345", "none", "12.35"),
        ("12.344", "none", "12.34"),
    ],
)
def test_round_to_ending(price, ending, expected):
    assert price_round_to_ending(D(price), ending) == D(expected)


@pytest.mark.parametrize(
    ("case", "kwargs", "expected"),
    [
        ("plain", {"variant_price": D("20.00"), "map_price": None}, "20.00"),
        (
            "multiplier",
            {"variant_price": D("20.00"), "map_price": None, "multiplier": D("1.15")},
            "23.00",
        ),
        (
            "mult+adj+99",
            {
                "variant_price": D("20.00"),
                "map_price": None,
                "multiplier": D("1.1"),
                "adjustment": D("1.50"),
                "rounding": "0.99",
            },
            "23.99",
        ),
        (
            "map floor",
            {"variant_price": D("20.00"), "map_price": D("25.00"), "multiplier": D("0.9")},
            "25.00",
        ),
        (
            "map floor after rounding",
            {"variant_price": D("20.00"), "map_price": D("21.00"), "rounding": "0.95"},
            "21.00",
        ),
        (
            "override wins",
            {
                "variant_price": D("20.00"),
                "map_price": None,
                "override": D("17.00"),
                "multiplier": D("2"),
            },
            "17.00",
        ),
        (
            "override floored by map",
            {"variant_price": D("20.00"), "map_price": D("18.00"), "override": D("17.00")},
            "18.00",
        ),
        (
            "negative adjustment clamps at 0",
            {"variant_price": D("1.00"), "map_price": None, "adjustment": D("-5")},
            "0.00",
        ),
    ],
)
def test_channel_price(case, kwargs, expected):
    assert channel_price_compute(**kwargs) == D(expected), case


@pytest.mark.parametrize(
    ("available", "mode", "value", "expected_atp"),
    [
        (10, "units", D("2"), 8),
        (1, "units", D("2"), 0),  # never negative
        (-3, "units", D("0"), 0),  # oversold locations never publish negative
        (10, "percent", D("10"), 9),
        (11, "percent", D("10"), 9),  # 1.1 rounds up to 2 held back
        (0, "percent", D("50"), 0),
        (7, "units", D("0"), 7),
        (100, "percent", D("100"), 0),
    ],
)
def test_atp_after_buffer(available, mode, value, expected_atp):
    held = buffer_units(available, mode=mode, value=value)
    assert channel_atp_compute(available, held) == expected_atp


def rule(pk, channel=None, variant=None, product=None):
    r = SimpleNamespace(
        pk=pk, channel_id=channel, variant_id=variant, product_id=product, is_active=True
    )
    r.specificity = (2 if variant else 1 if product else 0, 1 if channel else 0)
    return r


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([rule(1), rule(2, product=7), rule(3, variant=5)], 3),  # variant over product over all
        ([rule(1), rule(2, product=7)], 2),
        ([rule(1), rule(2, channel=9)], 2),  # channel-specific over all-channels
        ([rule(1, channel=9), rule(2, product=7)], 2),  # scope before channel
        ([rule(1, variant=5), rule(2, variant=5, channel=9)], 2),
        ([rule(1, channel=8), rule(2, variant=6)], None),  # other channel, other variant
        ([rule(1, product=99)], None),
    ],
)
def test_buffer_rule_precedence(rules, expected):
    picked = buffer_rule_pick(rules, channel_id=9, variant_id=5, product_id=7)
    assert (picked.pk if picked else None) == expected
