"""Signed webhook deliveries for the inbound tests.

Signatures here are computed with hmac/hashlib/base64 directly, never through
the connectors, so a connector bug cannot sign and verify its own mistake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

SECRET = "hush"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shopify_order(
    order_id: int = 5001,
    *,
    financial_status: str = "paid",
    minute: int = 0,
    sku: str = "SKU-A",
    quantity: int = 2,
    email: str = "ann@example.com",
) -> bytes:
    """An orders/* webhook body in Shopify's REST shape."""
    return json.dumps(
        {
            "id": order_id,
            "name": f"#{order_id}",
            "email": email,
            "created_at": iso(T0),
            "updated_at": iso(T0 + timedelta(minutes=minute)),
            "financial_status": financial_status,
            "fulfillment_status": None,
            "cancelled_at": None,
            "currency": "USD",
            "total_price": "40.00",
            "line_items": [
                {
                    "id": order_id * 10,
                    "variant_id": 77,
                    "sku": sku,
                    "quantity": quantity,
                    "price": "20.00",
                }
            ],
        }
    ).encode()


def woo_order(
    order_id: int = 7001,
    *,
    status: str = "processing",
    minute: int = 0,
    sku: str = "SKU-A",
    quantity: int = 2,
) -> bytes:
    """An order.* webhook body in WooCommerce's REST v3 shape."""
    return json.dumps(
        {
            "id": order_id,
            "number": str(order_id),
            "status": status,
            "currency": "USD",
            "total": "40.00",
            "date_created_gmt": iso(T0)[:-1],
            "date_modified_gmt": iso(T0 + timedelta(minutes=minute))[:-1],
            "billing": {"email": "bob@example.com", "phone": ""},
            "line_items": [
                {
                    "id": order_id * 10,
                    "product_id": 12,
                    "variation_id": 0,
                    "sku": sku,
                    "quantity": quantity,
                    "subtotal": "40.00",
                    "price": 20,
                }
            ],
        }
    ).encode()


def shopify_headers(
    body: bytes,
    *,
    topic: str = "orders/paid",
    webhook_id: str = "wh-1",
    triggered_at: datetime | None = None,
    signature: str | None = None,
) -> dict[str, str]:
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "test.myshopify.com",
        "X-Shopify-API-Version": "2026-01",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": f"ev-{webhook_id}",
        "X-Shopify-Triggered-At": iso(triggered_at or datetime.now(UTC)),
    }
    if signature != "":
        headers["X-Shopify-Hmac-Sha256"] = signature or sign(body)
    return headers


def woo_headers(
    body: bytes,
    *,
    topic: str = "order.updated",
    delivery_id: str = "d41d8cd9",
    signature: str | None = None,
) -> dict[str, str]:
    headers = {
        "X-WC-Webhook-Source": "https://woo.example.com/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": topic.split(".")[0],
        "X-WC-Webhook-Event": topic.split(".")[1],
        "X-WC-Webhook-ID": "3",
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }
    if signature != "":
        headers["X-WC-Webhook-Signature"] = signature or sign(body)
    return headers


def deliver(client: Any, slug: str, body: bytes, headers: dict[str, str], **extra: Any) -> Any:
    return client.post(
        f"/webhooks/{slug}/",
        data=body,
        content_type=extra.pop("content_type", "application/json"),
        headers=headers,
        **extra,
    )
