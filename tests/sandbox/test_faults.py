"""Injected faults of the channel sandbox: the fault spec, 5xx/401, timeouts that
outlast the client's read timeout, outages and partial batch failures."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from channels_app.connectors.base import PriceUpdate, QuantityUpdate
from channels_app.connectors.errors import FailureKind
from channels_app.connectors.shopify import ShopifyConnector
from channels_app.connectors.woocommerce import WooCommerceConnector
from sandbox.faults import Faults
from tests.support.sandbox import (
    control,
    seed_listings,
    shopify_config,
    woo,
    woocommerce_config,
)


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
