"""The sandbox's control API: seeding, console edits, counters, resets, orders
delivered as signed webhooks, and the ids it hands out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import requests

from tests.support.sandbox import WEBHOOK_SECRET, control, graphql, woo


def test_seed_set_get_values_counters_and_reset(sandbox) -> None:
    status, seeded = control(
        sandbox.url,
        "POST",
        "/_control/seed",
        {
            "shopify": [
                {"sku": "A", "price": "5.00", "quantity": 3, "group": "tee"},
                {"sku": "B", "price": "6", "quantity": 4, "group": "tee"},
            ]
        },
    )
    assert status == 200
    assert seeded["shopify"][0]["product_id"] == seeded["shopify"][1]["product_id"]
    assert seeded["shopify"][0]["inventory_item_id"].startswith("gid://shopify/InventoryItem/")

    # a person edits the channel console
    status, _ = control(
        sandbox.url,
        "POST",
        "/_control/values",
        {"shopify": [{"sku": "A", "quantity": 9, "price": "7.50"}]},
    )
    assert status == 200
    status, values = control(sandbox.url, "GET", "/_control/values/shopify?sku=A")
    assert (values["A"]["quantity"], values["A"]["price"]) == (9, "7.50")
    assert list(values) == ["A"]

    graphql(sandbox.url, "query { shop { name } }")
    status, counters = control(sandbox.url, "GET", "/_control/counters/shopify")
    assert counters["by_endpoint"] == {"graphql": 1}

    assert control(sandbox.url, "POST", "/_control/reset", {"platforms": ["shopify"]})[0] == 200
    assert control(sandbox.url, "GET", "/_control/values/shopify")[1] == {}
    assert control(sandbox.url, "GET", "/_control/counters/shopify")[1]["calls"] == 0


def test_unknown_platform_and_route_are_404(sandbox) -> None:
    assert control(sandbox.url, "GET", "/_control/values/bigcommerce")[0] == 404
    assert requests.get(sandbox.url + "/bigcommerce/api/v3/catalog", timeout=5).status_code == 404
    assert woo(sandbox.url, "GET", "coupons").status_code == 404
    status, health = control(sandbox.url, "GET", "/_control/health")
    assert status == 200
    assert {"shopify", "woocommerce"} <= set(health["platforms"])


def test_orders_control_moves_stock_and_emits_signed_webhooks(sandbox, webhook_receiver) -> None:
    # given
    control(
        sandbox.url,
        "POST",
        "/_control/seed",
        {"shopify": [{"sku": "A", "price": "5", "quantity": 10}]},
    )
    control(
        sandbox.url,
        "POST",
        "/_control/webhooks",
        {"shopify": {"url": webhook_receiver.url, "secret": WEBHOOK_SECRET}},
    )

    # when a pending order is created, paid, then cancelled
    status, created = control(
        sandbox.url,
        "POST",
        "/_control/orders",
        {
            "platform": "shopify",
            "lines": [{"sku": "A", "quantity": 3}],
            "financial_status": "pending",
        },
    )
    order_id = created["order"]["id"]
    after_create = control(sandbox.url, "GET", "/_control/values/shopify")[1]["A"]["quantity"]
    control(sandbox.url, "POST", f"/_control/orders/shopify/{order_id}", {"action": "pay"})
    control(sandbox.url, "POST", f"/_control/orders/shopify/{order_id}", {"action": "cancel"})
    refused = control(
        sandbox.url, "POST", f"/_control/orders/shopify/{order_id}", {"action": "pay"}
    )

    # then
    assert status == 201
    assert after_create == 7
    assert control(sandbox.url, "GET", "/_control/values/shopify")[1]["A"]["quantity"] == 10
    assert refused[0] == 400
    topics = [d.headers["X-Shopify-Topic"] for d in webhook_receiver.received]
    assert topics == ["orders/create", "orders/paid", "orders/cancelled"]
    for delivery in webhook_receiver.received:
        digest = hmac.new(WEBHOOK_SECRET.encode(), delivery.body, hashlib.sha256).digest()
        assert delivery.headers["X-Shopify-Hmac-Sha256"] == base64.b64encode(digest).decode()
        for name in (
            "X-Shopify-Webhook-Id",
            "X-Shopify-Event-Id",
            "X-Shopify-Triggered-At",
            "X-Shopify-Shop-Domain",
            "X-Shopify-API-Version",
        ):
            assert delivery.headers[name]
    assert json.loads(webhook_receiver.received[-1].body)["cancelled_at"] is not None
    log = control(sandbox.url, "GET", "/_control/webhooks")[1]["shopify"]["deliveries"]
    assert [d["status"] for d in log] == [200, 200, 200]
    assert "secret" not in json.dumps(log)


def test_failed_delivery_is_recorded(sandbox, webhook_receiver) -> None:
    webhook_receiver.status = 500
    control(
        sandbox.url,
        "POST",
        "/_control/seed",
        {"woocommerce": [{"sku": "A", "price": "5", "quantity": 1}]},
    )
    control(
        sandbox.url,
        "POST",
        "/_control/webhooks",
        {"woocommerce": {"url": webhook_receiver.url, "secret": "s"}},
    )

    status, created = control(
        sandbox.url,
        "POST",
        "/_control/orders",
        {"platform": "woocommerce", "lines": [{"sku": "A"}]},
    )

    assert status == 201
    assert created["delivery"]["status"] == 500
    assert created["delivery"]["topic"] == "order.created"


def test_generated_ids_never_collide_with_seeded_ones(sandbox) -> None:
    platform = sandbox.platform("woocommerce")
    platform.seed(
        [{"sku": "A", "price": "1", "quantity": 1, "product_id": "5000", "variant_id": "5000"}]
    )

    generated = platform.seed([{"sku": "B", "price": "1", "quantity": 1}])[0]

    assert int(generated.ids["variant_id"]) > 5000
