"""Injected faults of the channel sandbox: the fault spec, 5xx/401, timeouts that
outlast the client's read timeout, outages and partial batch failures.

The outage and timeout tests run the sandbox on a clock they advance by hand:
what they assert does not depend on how fast a loaded machine runs."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from channels_app.connectors.base import ItemResult, PriceUpdate, QuantityUpdate
from channels_app.connectors.errors import FailureKind
from channels_app.connectors.shopify import ShopifyConnector
from channels_app.connectors.woocommerce import WooCommerceConnector
from sandbox.faults import Faults
from sandbox.server import start_sandbox
from tests.support.sandbox import (
    FakeClock,
    control,
    seed_listings,
    shopify_config,
    woo,
    woocommerce_config,
)

# Generous bounds for real threads to do a few milliseconds of work on a busy
# machine; a test only waits this long when it is about to fail.
WAIT_SECONDS = 30


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


def test_injected_timeout_outlasts_the_read_timeout_and_is_not_applied() -> None:
    # given a sandbox whose clock stands still, so its slow answer never comes by itself
    clock = FakeClock()
    with start_sandbox(scale_limits=1000, clock=clock) as box:
        platform = box.platform("woocommerce")
        listings = seed_listings(platform, [{"sku": "A", "price": "1", "quantity": 1}])
        # Longer than WAIT_SECONDS: only the sandbox's clock, not real time, ends the hold.
        platform.faults.configure({"timeout": 1.0, "timeout_seconds": 60.0})
        connector = WooCommerceConnector(
            woocommerce_config(box.platform_url("woocommerce"), read_timeout=0.3)
        )

        # when the connector pushes (in a thread: without a read timeout it would wait forever)
        results: list[ItemResult] = []
        push = threading.Thread(
            target=lambda: results.extend(
                connector.push_quantities([QuantityUpdate(listings[0], 50)])
            ),
            daemon=True,
        )
        push.start()
        push.join(timeout=WAIT_SECONDS)

        # then the connector's read timeout ended the call while the sandbox still held
        # its answer, and the write was not applied
        assert not push.is_alive(), "the connector waited for the held answer"
        assert box.server.wait_held(1, timeout=WAIT_SECONDS)
        [result] = results
        assert (result.kind, result.code) == (FailureKind.RETRYABLE, "timeout")
        assert result.message.startswith("read timeout")
        assert platform.catalog.get("A").quantity == 1

        # and the sandbox lets the answer go once timeout_seconds pass on its clock
        clock.advance(60.0)
        assert box.server.wait_held(0, timeout=WAIT_SECONDS)
        assert platform.catalog.get("A").quantity == 1


def test_outage_lasts_the_given_seconds() -> None:
    clock = FakeClock()
    with start_sandbox(scale_limits=1000, clock=clock) as box:
        seed_listings(box.platform("woocommerce"), [{"sku": "A", "price": "1", "quantity": 1}])
        control(box.url, "POST", "/_control/faults", {"woocommerce": {"outage_seconds": 0.3}})

        assert woo(box.url, "GET", "products").status_code == 503
        clock.advance(0.29)
        assert woo(box.url, "GET", "products").status_code == 503
        faults = control(box.url, "GET", "/_control/faults")[1]
        assert faults["woocommerce"]["outage_remaining"] == pytest.approx(0.01)
        clock.advance(0.02)
        assert woo(box.url, "GET", "products").status_code == 200


def test_partial_failure_share_and_endpoint_filter(sandbox) -> None:
    # given every item fails, but only on the price endpoint of Shopify
    platform = sandbox.platform("shopify")
    rows = [{"sku": f"P{n}", "price": "1", "quantity": 1, "group": "g"} for n in range(4)]
    listings = seed_listings(platform, rows)
    platform.faults.configure({"item_failure": 1.0})
    connector = ShopifyConnector(shopify_config(sandbox.platform_url("shopify")))

    prices = connector.push_prices([PriceUpdate(ref, Decimal(2)) for ref in listings])

    assert {(r.kind, r.code) for r in prices} == {(FailureKind.PERMANENT, "INVALID_INPUT")}
    assert platform.counters.snapshot()["faults"] == {"item": 4}
    # the endpoint filter limits 5xx faults to the named routes
    platform.faults.clear()
    platform.faults.configure({"error_5xx": 1.0, "endpoints": ["variations_batch"]})
    assert woo(sandbox.url, "GET", "products").status_code == 200
