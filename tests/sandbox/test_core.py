"""The channel sandbox: limiter primitives, faults, rate limits, control API,
signed webhook emission and persistence."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command

from channels_app.connectors.base import PriceUpdate, QuantityUpdate
from channels_app.connectors.errors import FailureKind
from channels_app.connectors.shopify import ShopifyConnector
from channels_app.connectors.woocommerce import WooCommerceConnector
from pimsync.management.commands import run_sandbox as run_sandbox_command
from sandbox.counters import Counters
from sandbox.faults import Faults
from sandbox.ratelimit import CostBucket, TokenBucket
from sandbox.server import start_sandbox
from tests.channels_app.sandbox_fixtures import (
    SHOPIFY_TOKEN,
    WEBHOOK_SECRET,
    WOO_KEY,
    WOO_SECRET,
    control,
    sandbox,
    seed_listings,
    shopify_config,
    webhook_receiver,
    woocommerce_config,
)

__all__ = ["sandbox", "webhook_receiver"]  # fixtures used by name below

GRAPHQL = "/shopify/admin/api/2026-01/graphql.json"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def graphql(
    base_url: str, query: str, variables: dict[str, Any] | None = None
) -> requests.Response:
    return requests.post(
        base_url + GRAPHQL,
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": SHOPIFY_TOKEN},
        timeout=5,
    )


def woo(base_url: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method,
        f"{base_url}/woocommerce/wp-json/wc/v3/{path}",
        auth=(WOO_KEY, WOO_SECRET),
        timeout=5,
        **kwargs,
    )


# --------------------------------------------------------------------------- primitives


def test_token_bucket_spends_the_burst_then_refills_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=2.0, clock=clock)

    assert [bucket.try_take(), bucket.try_take()] == [0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.5)
    clock.now += 0.25
    assert bucket.try_take() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.try_take() == 0.0


def test_cost_bucket_needs_the_requested_cost_and_refunds_the_unused_part() -> None:
    clock = FakeClock()
    bucket = CostBucket(maximum=100, restore_rate=10, clock=clock)

    granted, status = bucket.try_take(60)
    assert (granted, status.currently_available) == (True, 40)
    granted, status = bucket.try_take(60)
    assert (granted, status.currently_available) == (False, 40)
    assert bucket.refund(50).currently_available == 90  # actual cost was 10
    clock.now += 5
    assert bucket.status().currently_available == 100  # capped at the maximum


def test_counters_track_the_highest_rate_in_any_second() -> None:
    clock = FakeClock()
    counters = Counters(clock=clock)
    for step in (0.0, 0.1, 0.2, 1.5, 1.6):
        clock.now = 100 + step
        counters.record_call("graphql")

    snapshot = counters.snapshot()
    assert (snapshot["calls"], snapshot["max_rate_1s"]) == (5, 3)
    assert snapshot["by_endpoint"] == {"graphql": 5}


def test_faults_reject_unknown_keys_and_bad_shares_and_replay_with_a_seed() -> None:
    with pytest.raises(ValueError, match="unknown fault keys"):
        Faults().configure({"explode": 1})
    with pytest.raises(ValueError, match="share"):
        Faults().configure({"error_5xx": 1.5})
    first, second = Faults(), Faults()
    first.configure({"item_failure": 0.5, "seed": 7})
    second.configure({"item_failure": 0.5, "seed": 7})
    rolls = [first.item_fails(f"S{n}") for n in range(20)]
    assert rolls == [second.item_fails(f"S{n}") for n in range(20)]
    assert 0 < sum(rolls) < 20


# --------------------------------------------------------------------------- faults


def test_injected_5xx_401_and_clearing(sandbox) -> None:
    seed_listings(sandbox.platform("woocommerce"), [{"sku": "A", "price": "1", "quantity": 1}])
    control(sandbox.url, "POST", "/_control/faults", {"woocommerce": {"error_5xx": 1.0}})
    outage = woo(sandbox.url, "GET", "products")
    assert outage.status_code == 503
    assert outage.text.startswith("<!DOCTYPE html>")  # hosts answer 5xx with HTML

    control(
        sandbox.url, "POST", "/_control/faults", {"woocommerce": {"error_5xx": 0.0, "auth": 1.0}}
    )
    assert woo(sandbox.url, "GET", "products").status_code == 401

    status, faults = control(sandbox.url, "DELETE", "/_control/faults/woocommerce")
    assert status == 200
    assert faults["woocommerce"]["auth"] == 0.0
    assert woo(sandbox.url, "GET", "products").status_code == 200
    assert sandbox.platform("woocommerce").counters.snapshot()["faults"] == {"5xx": 1, "auth": 1}


def test_injected_timeout_outlasts_the_read_timeout_and_is_not_applied(sandbox) -> None:
    platform = sandbox.platform("woocommerce")
    listings = seed_listings(platform, [{"sku": "A", "price": "1", "quantity": 1}])
    platform.faults.configure({"timeout": 1.0, "timeout_seconds": 2.0})
    connector = WooCommerceConnector(
        woocommerce_config(sandbox.platform_url("woocommerce"), read_timeout=0.3)
    )

    started = time.monotonic()
    result = connector.push_quantities([QuantityUpdate(listings[0], 50)])[0]

    assert time.monotonic() - started < 1.5
    assert (result.kind, result.code) == (FailureKind.RETRYABLE, "timeout")
    assert platform.catalog.get("A").quantity == 1


def test_outage_lasts_the_given_seconds(sandbox) -> None:
    seed_listings(sandbox.platform("woocommerce"), [{"sku": "A", "price": "1", "quantity": 1}])
    control(sandbox.url, "POST", "/_control/faults", {"woocommerce": {"outage_seconds": 0.3}})

    assert woo(sandbox.url, "GET", "products").status_code == 503
    time.sleep(0.35)
    assert woo(sandbox.url, "GET", "products").status_code == 200


def test_partial_failure_share_and_endpoint_filter(sandbox) -> None:
    # given every item fails, but only on the price endpoint of Shopify
    platform = sandbox.platform("shopify")
    rows = [{"sku": f"P{n}", "price": "1", "quantity": 1, "group": "g"} for n in range(4)]
    listings = seed_listings(platform, rows)
    platform.faults.configure({"item_failure": 1.0})
    connector = ShopifyConnector(shopify_config(sandbox.platform_url("shopify")))

    prices = connector.push_prices([PriceUpdate(ref, Decimal(2)) for ref in listings])

    assert {(r.kind, r.code) for r in prices} == {(FailureKind.PERMANENT, "INVALID")}
    assert platform.counters.snapshot()["faults"] == {"item": 4}
    # the endpoint filter limits 5xx faults to the named routes
    platform.faults.clear()
    platform.faults.configure({"error_5xx": 1.0, "endpoints": ["variations_batch"]})
    assert woo(sandbox.url, "GET", "products").status_code == 200


# --------------------------------------------------------------------------- limits


def test_shopify_cost_bucket_answers_throttled_with_throttle_status(sandbox) -> None:
    seed_listings(sandbox.platform("shopify"), [{"sku": "A", "price": "1", "quantity": 1}])
    limits = {"shopify": {"cost": {"maximum": 15, "restore_rate": 1}}}
    assert control(sandbox.url, "POST", "/_control/rate_limits", limits)[0] == 200
    mutation = "mutation { orderCancel(orderId: $orderId) { job { id } } }"

    first = graphql(sandbox.url, mutation, {"orderId": "gid://shopify/Order/1", "reason": "OTHER"})
    second = graphql(sandbox.url, mutation, {"orderId": "gid://shopify/Order/1", "reason": "OTHER"})

    assert first.status_code == 200
    assert first.json()["extensions"]["cost"]["throttleStatus"][
        "currentlyAvailable"
    ] == pytest.approx(5, abs=0.2)
    assert second.status_code == 200  # Shopify signals THROTTLED in the body
    body = second.json()
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10
    assert body["extensions"]["cost"]["throttleStatus"]["restoreRate"] == 1.0
    assert sandbox.platform("shopify").counters.snapshot()["rate_limited"] == 1

    control(sandbox.url, "POST", "/_control/rate_limits", {"shopify": {"reset": True}})
    assert sandbox.platform("shopify").limits["cost"]["maximum"] == 1000.0


def test_shopify_rejects_over_250_inputs_and_queries_over_1000_points(sandbox) -> None:
    rows = [{"inventoryItemId": f"gid://shopify/InventoryItem/{n}"} for n in range(251)]
    too_many = graphql(
        sandbox.url,
        "mutation { inventorySetQuantities(input: $input) { userErrors { code } } }",
        {"input": {"name": "available", "reason": "correction", "quantities": rows}},
    )
    too_costly = graphql(
        sandbox.url,
        "query { orders(first: $first) { nodes { lineItems(first: 50) { nodes { id } } } } }",
        {"first": 100},
    )

    assert too_many.json()["errors"][0]["extensions"]["code"] == "MAX_INPUT_SIZE_EXCEEDED"
    assert too_costly.json()["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"


def test_woocommerce_refuses_batches_over_100_items_with_413(sandbox) -> None:
    body = {
        "update": [{"id": n, "stock_quantity": 1} for n in range(60)],
        "delete": list(range(41)),
    }

    reply = woo(sandbox.url, "POST", "products/batch", json=body)

    assert reply.status_code == 413
    assert reply.json()["code"] == "woocommerce_rest_request_entity_too_large"


def test_woocommerce_default_limit_is_documented_and_enforced() -> None:
    with start_sandbox() as box:
        assert box.platform("woocommerce").limits == {"default": {"rate": 5.0, "burst": 10.0}}
        statuses = [woo(box.url, "GET", "products").status_code for _ in range(13)]

        assert statuses[:10] == [200] * 10
        assert 429 in statuses[10:]
        refused = next(
            reply
            for reply in (woo(box.url, "GET", "products") for _ in range(5))
            if reply.status_code == 429
        )
        assert int(refused.headers["Retry-After"]) >= 1


# --------------------------------------------------------------------------- control API


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
    assert control(sandbox.url, "GET", "/_control/values/magento")[0] == 404
    assert requests.get(sandbox.url + "/magento/rest/V1/products", timeout=5).status_code == 404
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


def test_state_file_survives_a_restart_and_seed_file_is_loaded(
    tmp_path: Path, webhook_receiver
) -> None:
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(
        json.dumps({"woocommerce": [{"sku": "A", "price": "5.00", "quantity": 4}]})
    )
    state_file = tmp_path / "state" / "sandbox.json"

    # first run: seeded from the seed file, then changed
    with start_sandbox(state_file=state_file, seed_file=seed_file) as first:
        assert first.platform("woocommerce").catalog.get("A").quantity == 4
        control(
            first.url, "POST", "/_control/values", {"woocommerce": [{"sku": "A", "quantity": 2}]}
        )
        control(
            first.url,
            "POST",
            "/_control/webhooks",
            {"woocommerce": {"url": webhook_receiver.url, "secret": "s"}},
        )
        status, created = control(
            first.url,
            "POST",
            "/_control/orders",
            {"platform": "woocommerce", "lines": [{"sku": "A", "quantity": 1}]},
        )
        assert status == 201

    # second run: the state wins over the seed file
    with start_sandbox(state_file=state_file, seed_file=seed_file) as second:
        platform = second.platform("woocommerce")
        assert platform.catalog.get("A").quantity == 1
        assert platform.catalog.get("A").price == Decimal("5.00")
        assert [o.id for o in platform.orders.all()] == [str(created["order"]["id"])]
        assert platform.webhook_target is not None
        assert platform.webhook_target.url == webhook_receiver.url
        # new ids never collide with restored ones
        assert platform.next_id() > int(created["order"]["id"])


def test_run_sandbox_command_serves_with_the_given_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_serve(**kwargs: Any) -> None:
        calls.append(kwargs)
        kwargs["on_ready"]("http://127.0.0.1:8700")

    monkeypatch.setattr(run_sandbox_command, "serve_forever", fake_serve)
    state = str(tmp_path / "s.json")

    call_command("run_sandbox", "--port", "8799", "--state", state)

    assert calls[0]["port"] == 8799
    assert calls[0]["host"] == "127.0.0.1"
    assert calls[0]["state_file"] == state
    assert calls[0]["seed_file"] is None


def test_generated_ids_never_collide_with_seeded_ones(sandbox) -> None:
    platform = sandbox.platform("woocommerce")
    platform.seed(
        [{"sku": "A", "price": "1", "quantity": 1, "product_id": "5000", "variant_id": "5000"}]
    )

    generated = platform.seed([{"sku": "B", "price": "1", "quantity": 1}])[0]

    assert int(generated.ids["variant_id"]) > 5000
