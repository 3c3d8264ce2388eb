"""Query filters of the catalog and stock lists."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django_filters import rest_framework as filters

from pimsync.api.filters import DateTimeFilter, IntFilter

from ..models import MovementReason, Product, Reservation, StockLevel, StockMovement, Variant


class ProductFilter(filters.FilterSet):
    handle = filters.CharFilter()
    status = filters.ChoiceFilter(choices=Product.Status.choices)
    updated_since = DateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Product
        fields = ("handle", "status", "updated_since")


class VariantFilter(filters.FilterSet):
    sku = filters.CharFilter(help_text="Exact SKU")
    barcode = filters.CharFilter()
    product = IntFilter(field_name="product_id")
    is_active = filters.BooleanFilter()
    updated_since = DateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="ISO 8601, e.g. 2026-11-23T10:00:00Z"
    )

    class Meta:
        model = Variant
        fields = ("sku", "barcode", "product", "is_active", "updated_since")


class StockLevelFilter(filters.FilterSet):
    sku = filters.CharFilter(field_name="variant__sku")
    location = filters.CharFilter(field_name="location__code", help_text="Location code")
    low_stock = filters.BooleanFilter(
        method="filter_low_stock",
        help_text="true: available at or below PIMSYNC_API_LOW_STOCK_LEVEL (default 5)",
    )
    available_lte = IntFilter(field_name="available_qty", lookup_expr="lte")

    class Meta:
        model = StockLevel
        fields = ("sku", "location", "low_stock", "available_lte")

    def filter_low_stock(self, qs: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return qs
        level = settings.PIMSYNC_API_LOW_STOCK_LEVEL
        return qs.filter(available_qty__lte=level) if value else qs.filter(available_qty__gt=level)


class StockMovementFilter(filters.FilterSet):
    sku = filters.CharFilter(field_name="variant__sku")
    location = filters.CharFilter(field_name="location__code")
    reason = filters.ChoiceFilter(choices=MovementReason.choices)
    source = filters.CharFilter()
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = StockMovement
        fields = ("sku", "location", "reason", "source", "created_after", "created_before")


class ReservationFilter(filters.FilterSet):
    sku = filters.CharFilter(field_name="variant__sku")
    location = filters.CharFilter(field_name="location__code")
    status = filters.ChoiceFilter(choices=Reservation.Status.choices)

    class Meta:
        model = Reservation
        fields = ("sku", "location", "status")
