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


def test_current_quantity_says_how_many_units_left_the_order():
    body = payload(
        [{"refund_line_items": [{"line_item_id": 11, "quantity": 1, "restock_type": "return"}]}]
    )
    body["line_items"][0].update(quantity=3, current_quantity=1)  # 2 removed (refund + edit)
    body["line_items"][1].update(current_quantity=1)
    order = ShopifyConnector.order_from_rest(body)
    # current_quantity wins over summed refund lines; without it the refunds are summed
    assert [line.refunded_quantity for line in order.lines] == [2, 0, 0]
    del body["line_items"][0]["current_quantity"]
    assert ShopifyConnector.order_from_rest(body).lines[0].refunded_quantity == 1


def test_polled_lines_read_current_quantity():
    line = {
        "id": "gid://shopify/LineItem/11",
        "sku": "A",
        "quantity": 4,
        "currentQuantity": 1,
        "originalUnitPriceSet": {"shopMoney": {"amount": "10.00", "currencyCode": "USD"}},
        "variant": {"id": "gid://shopify/ProductVariant/5", "product": {"id": "gid://p/1"}},
    }
    parsed = ShopifyConnector._line_from_graphql(line)
    assert (parsed.external_line_id, parsed.refunded_quantity, parsed.restock) == ("11", 3, None)
    assert (
        ShopifyConnector._line_from_graphql({**line, "currentQuantity": None}).refunded_quantity
        == 0
    )
