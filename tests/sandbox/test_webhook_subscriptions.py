"""Webhooks registered through the sandbox's platform APIs: who receives which topic,
how catalog changes are announced, and what is kept across a restart."""

from __future__ import annotations

import json

from sandbox.server import start_sandbox
from tests.support.sandbox import control, graphql, woo

SUBSCRIBE = """
mutation Subscribe($topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}
"""


def subscribe_shopify(sandbox, topic: str, uri: str) -> dict:
    answer = graphql(sandbox.url, SUBSCRIBE, {"topic": topic, "subscription": {"uri": uri}})
    return answer.json()["data"]["webhookSubscriptionCreate"]


def subscribe_woo(sandbox, topic: str, url: str) -> dict:
    body = {"topic": topic, "delivery_url": url, "secret": "s"}
    return woo(sandbox.url, "POST", "webhooks", json=body).json()


def topics_received(receiver) -> list[str]:
    return [
        r.headers.get("X-Shopify-Topic") or r.headers.get("X-WC-Webhook-Topic")
        for r in receiver.received
    ]


def test_a_console_edit_reaches_the_subscribers_of_its_topic_only(sandbox, webhook_receiver):
    shopify = sandbox.platform("shopify")
    shopify.seed([{"sku": "A", "price": "5.00", "quantity": 4}])
    assert (
        subscribe_shopify(sandbox, "INVENTORY_LEVELS_UPDATE", webhook_receiver.url)["userErrors"]
        == []
    )

    control(sandbox.url, "POST", "/_control/values", {"shopify": [{"sku": "A", "price": "6"}]})
    control(sandbox.url, "POST", "/_control/values", {"shopify": [{"sku": "A", "quantity": 9}]})
    assert shopify.outbox.drain(timeout=5)

    # the price change went to nobody (no products/update subscriber), the level's to us
    assert topics_received(webhook_receiver) == ["inventory_levels/update"]
    body = json.loads(webhook_receiver.received[0].body)
    assert (body["available"], body["location_id"]) == (9, 1)


def test_the_console_target_gets_order_webhooks_only_while_nothing_is_registered(
    sandbox, webhook_receiver
):
    shopify = sandbox.platform("shopify")
    shopify.seed([{"sku": "A", "price": "5.00", "quantity": 4}])
    control(
        sandbox.url,
        "POST",
        "/_control/webhooks",
        {"shopify": {"url": webhook_receiver.url, "secret": "s"}},
    )
    order = {"platform": "shopify", "lines": [{"sku": "A", "quantity": 1}]}

    first = control(sandbox.url, "POST", "/_control/orders", order)[1]
    subscribe_shopify(sandbox, "PRODUCTS_UPDATE", "http://127.0.0.1:9/elsewhere/")
    second = control(sandbox.url, "POST", "/_control/orders", order)[1]
    shopify.outbox.drain(timeout=5)

    assert first["delivery"]["status"] == 200
    assert second["delivery"] is None  # registered webhooks replace the console target
    assert topics_received(webhook_receiver) == ["orders/create"]  # no level update either


def test_a_shopify_sale_announces_the_level_and_a_woocommerce_sale_does_not(
    sandbox, webhook_receiver
):
    for name in ("shopify", "woocommerce"):
        sandbox.platform(name).seed([{"sku": "A", "price": "5.00", "quantity": 4}])
    subscribe_shopify(sandbox, "INVENTORY_LEVELS_UPDATE", webhook_receiver.url)
    subscribe_woo(sandbox, "product.updated", webhook_receiver.url)

    for name in ("shopify", "woocommerce"):
        control(
            sandbox.url,
            "POST",
            "/_control/orders",
            {"platform": name, "lines": [{"sku": "A", "quantity": 1}]},
        )
        sandbox.platform(name).outbox.drain(timeout=5)

    # WooCommerce writes a checkout's stock directly: no product.updated
    assert topics_received(webhook_receiver) == ["inventory_levels/update"]


def test_woocommerce_disables_a_webhook_after_five_failed_deliveries(sandbox, webhook_receiver):
    platform = sandbox.platform("woocommerce")
    platform.seed([{"sku": "W", "price": "5.00", "quantity": 4}])
    created = subscribe_woo(sandbox, "product.updated", webhook_receiver.url)
    webhook_receiver.status = 500

    for quantity in range(7):
        control(
            sandbox.url,
            "POST",
            "/_control/values",
            {"woocommerce": [{"sku": "W", "quantity": quantity}]},
        )
    platform.outbox.drain(timeout=5)

    listed = woo(sandbox.url, "GET", "webhooks").json()
    assert [(w["id"], w["status"]) for w in listed] == [(created["id"], "disabled")]
    assert len(webhook_receiver.received) == 6  # five failures are tolerated, the sixth is not
    repaired = woo(sandbox.url, "PUT", f"webhooks/{created['id']}", json={"status": "active"})
    assert repaired.json()["status"] == "active"


def test_shopify_refuses_a_plain_http_address_that_is_not_loopback(sandbox):
    answer = subscribe_shopify(sandbox, "ORDERS_CREATE", "http://pimsync.example.com/webhooks/x/")

    assert answer["webhookSubscription"] is None
    assert answer["userErrors"] == [
        {
            "field": ["webhookSubscription", "callbackUrl"],
            "message": "Address protocol http:// is not supported",
        }
    ]


def test_subscriptions_survive_a_restart(tmp_path, webhook_receiver):
    state = tmp_path / "state.json"
    with start_sandbox(state_file=state) as first:
        subscribe_shopify(first, "ORDERS_PAID", webhook_receiver.url)
        subscribe_woo(first, "order.created", webhook_receiver.url)

    with start_sandbox(state_file=state) as second:
        shopify = [s.to_json() for s in second.platform("shopify").subscriptions.values()]
        stored = list(second.platform("woocommerce").subscriptions.values())

    assert [(s["topic"], s["address"]) for s in shopify] == [("orders/paid", webhook_receiver.url)]
    assert [(s.topic, s.address, s.secret) for s in stored] == [
        ("order.created", webhook_receiver.url, "s")
    ]
