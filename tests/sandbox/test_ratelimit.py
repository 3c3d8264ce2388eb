"""Rate limits of the channel sandbox: the bucket primitives, the busiest-second
counter, and the platforms' documented limits over HTTP."""

from __future__ import annotations

import pytest

from sandbox.counters import Counters
from sandbox.ratelimit import CostBucket, TokenBucket
from sandbox.server import start_sandbox
from tests.support.sandbox import FakeClock, control, graphql, seed_listings, woo

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


# --------------------------------------------------------------------------- limits


def test_shopify_cost_bucket_answers_throttled_with_throttle_status(sandbox) -> None:
    seed_listings(sandbox.platform("shopify"), [{"sku": "A", "price": "1", "quantity": 1}])
    limits = {"shopify": {"cost": {"maximum": 15, "restore_rate": 1}}}
    assert control(sandbox.url, "POST", "/_control/rate_limits", limits)[0] == 200
    mutation = (
        "mutation Cancel($orderId: ID!, $reason: OrderCancelReason!) {"
        " orderCancel(orderId: $orderId, reason: $reason, restock: true) { job { id } } }"
    )
    variables = {"orderId": "gid://shopify/Order/1", "reason": "OTHER"}

    first = graphql(sandbox.url, mutation, variables)
    second = graphql(sandbox.url, mutation, variables)

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
    rows = [
        {"inventoryItemId": f"gid://shopify/InventoryItem/{n}", "locationId": "L", "quantity": 1}
        for n in range(251)
    ]
    too_many = graphql(
        sandbox.url,
        "mutation Set($input: InventorySetQuantitiesInput!) {"
        " inventorySetQuantities(input: $input) { userErrors { code } } }",
        {"input": {"name": "available", "reason": "correction", "quantities": rows}},
    )
    too_costly = graphql(
        sandbox.url,
        "query Orders($first: Int!) {"
        " orders(first: $first) { nodes { lineItems(first: 50) { nodes { id } } } } }",
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
