"""Response examples of the channel, listing, rule and order API (OpenAPI documentation)."""

from __future__ import annotations

from inventory.api.examples import response

CHANNEL = response(
    "Channel",
    {
        "id": 1,
        "name": "Shopify (sandbox)",
        "slug": "shopify",
        "platform": "shopify",
        "base_url": "http://127.0.0.1:8700/shopify",
        "currency": "USD",
        "is_enabled": True,
        "platform_config": {"location_id": "gid://shopify/Location/1"},
        "credential_keys": ["access_token"],
        "has_webhook_secret": True,
        "locations": [{"location": "main", "priority": 1}, {"location": "store", "priority": 2}],
        "webhooks": [
            {
                "topic": "inventory_levels/update",
                "state": "registered",
                "address": "https://pim.example.com/webhooks/shopify/",
                "error": "",
                "note": "created",
                "checked_at": "2026-11-23T09:00:02Z",
            }
        ],
        "inventory_threshold": 1,
        "low_stock_level": 5,
        "min_push_interval_seconds": 0,
        "max_push_interval_seconds": 300,
        "poll_interval_seconds": 300,
        "rate_limit_per_second": "2.000",
        "batch_size": None,
        "reservation_minutes": 60,
        "cancel_oversold_orders": False,
        "conflict_policy": "trust_pimsync",
        "public_url": "",
        "pending_pushes": 0,
        "sync_state": {
            "breaker": "closed",
            "auth_failed_at": None,
            "auth_error": "",
            "last_success_at": "2026-11-23T10:00:01Z",
            "last_failure_at": None,
            "open_until": None,
        },
        "created_at": "2026-11-23T09:00:00Z",
        "updated_at": "2026-11-23T09:00:00Z",
    },
)
LISTING = response(
    "Listing",
    {
        "id": 7,
        "channel": 1,
        "channel_slug": "shopify",
        "variant": 2,
        "sku": "DEMO-001-M",
        "external_product_id": "gid://shopify/Product/1000",
        "external_variant_id": "gid://shopify/ProductVariant/5001",
        "inventory_item_id": "gid://shopify/InventoryItem/9001",
        "offer_id": "",
        "listing_sku": "",
        "price_override": None,
        "is_enabled": True,
        "last_pushed_price": "29.00",
        "last_pushed_quantity": 28,
        "last_pushed_at": "2026-11-23T10:00:01Z",
        "last_confirmed_price": "29.00",
        "last_confirmed_quantity": 28,
        "last_confirmed_at": "2026-11-23T10:00:01Z",
        "sync_state": {"label": "in sync", "error": ""},
        "created_at": "2026-11-23T09:00:00Z",
        "updated_at": "2026-11-23T10:00:01Z",
    },
)
BUFFER_RULE = response(
    "Buffer rule",
    {
        "id": 1,
        "channel": 3,
        "variant": None,
        "product": None,
        "mode": "units",
        "value": "2.00",
        "is_active": True,
        "note": "keep 2 units back from eBay",
    },
)
PRICE_RULE = response(
    "Price rule",
    {
        "id": 1,
        "channel": 4,
        "multiplier": "1.1500",
        "adjustment": "0.00",
        "rounding": "0.99",
        "is_active": True,
    },
)
ORDER = response(
    "Order",
    {
        "id": 31,
        "channel": 1,
        "channel_slug": "shopify",
        "external_id": "gid://shopify/Order/4411",
        "name": "#1041",
        "status": "paid",
        "financial_status": "paid",
        "fulfillment_status": "",
        "currency": "USD",
        "total": "58.00",
        "customer": 9,
        "customer_email": "ann@example.com",
        "customer_phone": "",
        "placed_at": "2026-11-23T09:58:00Z",
        "channel_updated_at": "2026-11-23T09:59:00Z",
        "first_seen_via": "webhook",
        "seen_via_webhook": True,
        "has_unmatched_lines": False,
        "is_oversold": False,
        "lines": [
            {
                "id": 40,
                "external_line_id": "gid://shopify/LineItem/1",
                "sku": "DEMO-001-M",
                "variant": 2,
                "quantity": 2,
                "unit_price": "29.00",
                "state": "committed",
                "allocation": [{"location_id": 1, "quantity": 2}],
            }
        ],
        "channel_calls": [
            {
                "id": 7,
                "kind": "fulfil",
                "status": "pending",
                "attempts": 2,
                "next_attempt_at": "2026-11-24T10:02:00Z",
                "last_error_code": "503",
                "last_error": "503 Service Unavailable",
                "payload": {"tracking_number": "1Z999AA10123456784", "carrier": "UPS"},
                "created_at": "2026-11-24T10:00:00Z",
                "done_at": None,
            }
        ],
        "created_at": "2026-11-23T09:58:01Z",
        "updated_at": "2026-11-23T09:59:01Z",
    },
)
RETRIED_ON_CHANNEL = response("Calls sent again", {"calls_retried": 1, "order": ORDER.value})
CUSTOMER = response(
    "Customer",
    {
        "id": 9,
        "email": "ann@example.com",
        "phone": "+15550100",
        "name": "Ann Example",
        "order_count": 3,
        "total_spend": "141.00",
        "created_at": "2026-11-20T12:00:00Z",
    },
)
