"""Shopify's refunds say per line whether refunded units went back to stock."""

from channels_app.connectors.shopify import ShopifyConnector, refund_restock_by_line


def payload(refunds):
    return {
        "id": 1,
        "name": "#1",
        "updated_at": "2026-11-01T12:00:00Z",
        "created_at": "2026-11-01T11:00:00Z",
        "financial_status": "refunded",
        "fulfillment_status": "fulfilled",
        "currency": "USD",
        "total_price": "30.00",
        "line_items": [
            {"id": 11, "sku": "A", "quantity": 1, "price": "10.00"},
            {"id": 12, "sku": "B", "quantity": 1, "price": "10.00"},
            {"id": 13, "sku": "C", "quantity": 1, "price": "10.00"},
        ],
        "refunds": refunds,
    }


def test_restock_types_map_to_sellable_damaged_or_unsaid():
    refunds = [
        {
            "id": 900,
            "refund_line_items": [
                {"line_item_id": 11, "quantity": 1, "restock_type": "return"},
                {"line_item_id": 12, "quantity": 1, "restock_type": "no_restock"},
            ],
        }
    ]
    order = ShopifyConnector.order_from_rest(payload(refunds))
    assert [(line.sku, line.restock, line.refunded_quantity) for line in order.lines] == [
        ("A", True, 1),
        ("B", False, 1),
        ("C", None, 0),
    ]


def test_a_line_restocked_by_any_of_its_refunds_counts_as_restocked():
    refunds = [
        {"refund_line_items": [{"line_item_id": 11, "restock_type": "no_restock"}]},
        {"refund_line_items": [{"line_item": {"id": 11}, "restock_type": "cancel"}]},
        "junk",
    ]
    assert refund_restock_by_line(refunds) == {"11": True}
    assert refund_restock_by_line(None) == {}
    assert refund_restock_by_line([]) == {}
