"""Response examples of the catalog and stock API (OpenAPI documentation)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample


def response(name: str, value: dict) -> OpenApiExample:
    return OpenApiExample(name, value=value, response_only=True)


PRODUCT = response(
    "Product",
    {
        "id": 1,
        "title": "Black Tee 01",
        "handle": "black-tee-01",
        "description": "",
        "vendor": "pimsync demo",
        "product_type": "Tee",
        "status": "active",
        "variant_count": 4,
        "created_at": "2026-11-23T09:00:00Z",
        "updated_at": "2026-11-23T09:00:00Z",
    },
)
VARIANT = response(
    "Variant",
    {
        "id": 2,
        "product": 1,
        "sku": "DEMO-001-M",
        "title": "M",
        "options": {"size": "M", "colour": "Black"},
        "price": "29.00",
        "compare_at_price": None,
        "map_price": None,
        "barcode": "400000001123",
        "is_active": True,
        "on_hand": 30,
        "available": 28,
        "created_at": "2026-11-23T09:00:00Z",
        "updated_at": "2026-11-23T10:00:00Z",
    },
)
LOCATION = response(
    "Location",
    {"id": 1, "code": "main", "name": "Main warehouse", "address": "", "is_active": True},
)
STOCK_LEVEL = response(
    "Stock level",
    {
        "id": 5,
        "variant": 2,
        "sku": "DEMO-001-M",
        "location": "main",
        "on_hand": 30,
        "committed": 1,
        "reserved": 1,
        "damaged": 0,
        "available": 28,
        "updated_at": "2026-11-23T10:00:00Z",
    },
)
RESERVATION = response(
    "Reservation",
    {
        "id": 12,
        "variant": 2,
        "sku": "DEMO-001-M",
        "location": "main",
        "quantity": 2,
        "status": "active",
        "source": "api",
        "source_ref": "cart-991",
        "expires_at": "2026-11-23T11:00:00Z",
        "created_at": "2026-11-23T10:00:00Z",
        "closed_at": None,
    },
)
