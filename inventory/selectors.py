"""Reads of catalog and stock.

Available stock is defined here and nowhere else:
``available = on_hand - committed - reserved - damaged`` (units on hand that are
promised to no one and sellable). Readers in SQL (admin lists, API, channel ATP)
annotate with stock_available_expression; readers in Python (a StockLevel or a
Deltas in memory, CSV rows) call stock_available_compute. Neither clamps: a
count or damage may leave it below zero, and each reader decides what that means.
What a location can *sell* never goes below zero — one location's shortfall
does not take units away from another — and that clamped form
(stock_sellable_expression / stock_sellable_compute) is what channel ATP sums
and what order allocation takes from, so the two always agree.

This module imports no model, because inventory.models builds its queryset
annotations and StockLevel.available from it.
"""

from __future__ import annotations

from django.db.models import F, IntegerField, Value
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Greatest


def stock_available_expression(*, prefix: str = "") -> CombinedExpression:
    """Available units of the StockLevel row reached through ``prefix`` (``""`` on
    StockLevel itself, ``"stock_levels__"`` from Variant), as a SQL expression to
    annotate with or to sum."""
    return (
        F(f"{prefix}on_hand")
        - F(f"{prefix}committed")
        - F(f"{prefix}reserved")
        - F(f"{prefix}damaged")
    )


def stock_sellable_expression(*, prefix: str = "") -> Greatest:
    """``max(0, available)`` of one StockLevel row: what that location can sell.
    Sum this, never the raw available, over several locations."""
    return Greatest(
        stock_available_expression(prefix=prefix), Value(0), output_field=IntegerField()
    )


def stock_available_compute(*, on_hand: int, committed: int, reserved: int, damaged: int) -> int:
    """The same as stock_available_expression, for buckets already in memory."""
    return on_hand - committed - reserved - damaged


def stock_sellable_compute(available: int) -> int:
    """The same as stock_sellable_expression, for an available count in memory."""
    return max(0, available)
