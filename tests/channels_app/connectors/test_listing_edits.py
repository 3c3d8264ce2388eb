"""The listing values the connectors read from inventory and product webhooks (no database)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from channels_app.connectors.base import ChannelConfig, ListingEdit
from channels_app.connectors.errors import PermanentError
from channels_app.connectors.shopify import ShopifyConnector
from channels_app.connectors.woocommerce import WooCommerceConnector
from tests.support.webhooks import SECRET, shopify_headers, woo_headers

LOCATION = "gid://shopify/Location/24826418"


def connector(platform: str) -> ShopifyConnector | WooCommerceConnector:
    config = ChannelConfig(
        channel_id=1,
        platform=platform,
        base_url="http://127.0.0.1:9",
        credentials={},
        webhook_secret=SECRET,
        platform_config={"location_id": LOCATION},
    )
    return ShopifyConnector(config) if platform == "shopify" else WooCommerceConnector(config)


def level(available: object, location_id: int = 24826418) -> bytes:
    """inventory_levels/update as Shopify sends it."""
    return json.dumps(
        {
            "inventory_item_id": 271878346596884015,
            "location_id": location_id,
            "available": available,
            "updated_at": "2026-11-01T12:00:00-05:00",
            "admin_graphql_api_id": "gid://shopify/InventoryLevel/24826418?inventory_item_id=1",
        }
    ).encode()


def test_shopify_inventory_level_update_reports_the_quantity_at_our_location():
    body = level(6)

    event = connector("shopify").parse_webhook(
        shopify_headers(body, topic="inventory_levels/update"), body
    )

    assert event.order is None
    assert list(event.edits) == [
        ListingEdit(
            kind="quantity",
            value=Decimal(6),
            inventory_item_id="gid://shopify/InventoryItem/271878346596884015",
        )
    ]


@pytest.mark.parametrize(
    "body",
    [level(6, location_id=999), level(None)],
    ids=["another location", "untracked item"],
)
def test_shopify_levels_pimsync_does_not_set_report_nothing(body):
    event = connector("shopify").parse_webhook(
        shopify_headers(body, topic="inventory_levels/update"), body
    )

    assert list(event.edits) == []


def test_shopify_products_update_reports_each_variants_price_not_its_total_quantity():
    body = json.dumps(
        {
            "id": 632910392,
            "title": "Tee",
            "variants": [
                {"id": 808950810, "sku": "TEE-S", "price": "19.00", "inventory_quantity": 40},
                {"id": 808950811, "sku": "TEE-M", "price": "21.50", "inventory_quantity": 12},
            ],
        }
    ).encode()

    event = connector("shopify").parse_webhook(shopify_headers(body, topic="products/update"), body)

    assert list(event.edits) == [
        ListingEdit(
            kind="price",
            value=Decimal("19.00"),
            variant_id="gid://shopify/ProductVariant/808950810",
            sku="TEE-S",
        ),
        ListingEdit(
            kind="price",
            value=Decimal("21.50"),
            variant_id="gid://shopify/ProductVariant/808950811",
            sku="TEE-M",
        ),
    ]


def test_woocommerce_product_updated_reports_price_and_managed_stock():
    body = json.dumps(
        {
            "id": 794,
            "sku": "W-1",
            "type": "variation",
            "parent_id": 790,
            "price": "15.00",
            "regular_price": "18.00",
            "sale_price": "15.00",
            "manage_stock": True,
            "stock_quantity": 4,
        }
    ).encode()

    event = connector("woocommerce").parse_webhook(woo_headers(body, topic="product.updated"), body)

    assert list(event.edits) == [
        ListingEdit(kind="price", value=Decimal("15.00"), variant_id="794", sku="W-1"),
        ListingEdit(kind="quantity", value=Decimal(4), variant_id="794", sku="W-1"),
    ]


def test_woocommerce_stock_it_does_not_manage_is_no_quantity():
    body = json.dumps(
        {"id": 12, "sku": "W-2", "price": "9.00", "manage_stock": False, "stock_quantity": None}
    ).encode()

    event = connector("woocommerce").parse_webhook(woo_headers(body, topic="product.updated"), body)

    assert [edit.kind for edit in event.edits] == ["price"]


@pytest.mark.parametrize(
    ("platform", "topic", "body"),
    [
        ("shopify", "inventory_levels/update", b'{"available": 3}'),
        ("shopify", "products/update", b'{"variants": [{"id": 1, "price": "x"}]}'),
        ("woocommerce", "product.updated", b'{"sku": "no id"}'),
    ],
)
def test_an_unreadable_product_or_level_body_is_refused(platform, topic, body):
    headers = (shopify_headers if platform == "shopify" else woo_headers)(body, topic=topic)

    with pytest.raises(PermanentError) as refused:
        connector(platform).parse_webhook(headers, body)

    assert refused.value.code == "unexpected_body"
