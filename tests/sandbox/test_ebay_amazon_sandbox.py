"""eBay and Amazon connectors against the sandbox over real HTTP on loopback."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import requests

from channels_app.connectors.amazon import AmazonConnector
from channels_app.connectors.base import ChannelConfig, ListingRef, PriceUpdate, QuantityUpdate
from channels_app.connectors.ebay import EbayConnector
from channels_app.connectors.errors import FailureKind
from channels_app.connectors.http import parse_timestamp
from sandbox.server import RunningSandbox
from tests.support.sandbox import AMAZON_SELLER as SELLER
from tests.support.sandbox import AMAZON_TOKEN, EBAY_TOKEN, control, seed_listings
from tests.support.sandbox import amazon_config as support_amazon_config
from tests.support.sandbox import ebay_config as support_ebay_config


def ebay_config(running: RunningSandbox, **platform_config: Any) -> ChannelConfig:
    return support_ebay_config(running.platform_url("ebay"), **platform_config)


def amazon_config(running: RunningSandbox, **platform_config: Any) -> ChannelConfig:
    return support_amazon_config(running.platform_url("amazon"), **platform_config)


def seed(running: RunningSandbox, platform: str, count: int, quantity: int = 5) -> list[ListingRef]:
    rows = [{"sku": f"SKU-{i:04d}", "price": "1.00", "quantity": quantity} for i in range(count)]
    return seed_listings(running.platform(platform), rows)


def price_for(index: int) -> Decimal:
    return Decimal("10.00") + Decimal(index) / 100


def push_and_read_back(connector: Any, listings: list[ListingRef]) -> None:
    """Push distinct prices and quantities, then read every SKU back equal."""
    prices = [PriceUpdate(ref, price_for(i)) for i, ref in enumerate(listings)]
    quantities = [QuantityUpdate(ref, i % 37) for i, ref in enumerate(listings)]
    price_results = connector.push_prices(prices)
    quantity_results = connector.push_quantities(quantities)
    assert [r.sku for r in price_results] == [ref.sku for ref in listings]
    assert all(r.ok for r in price_results), [r for r in price_results if not r.ok][:3]
    assert all(r.ok for r in quantity_results), [r for r in quantity_results if not r.ok][:3]
    states = connector.read_listings(listings)
    assert [(s.sku, s.price, s.quantity) for s in states] == [
        (ref.sku, price_for(i), i % 37) for i, ref in enumerate(listings)
    ]


def poll_all(connector: Any, cursor: str | None, page_size: int) -> tuple[list[Any], int, str]:
    orders: list[Any] = []
    pages = 0
    high_water_mark = ""
    while True:
        page = connector.orders_since(cursor, page_size=page_size)
        pages += 1
        orders.extend(page.orders)
        high_water_mark = page.high_water_mark or high_water_mark
        if page.next_cursor is None:
            return orders, pages, high_water_mark
        cursor = page.next_cursor


# ---------------------------------------------------------------------- eBay


def test_ebay_pushes_320_skus_in_batches_of_25_and_reads_them_back(
    sandbox: RunningSandbox,
) -> None:
    # given
    listings = seed(sandbox, "ebay", 320)
    connector = EbayConnector(ebay_config(sandbox))
    # when / then
    push_and_read_back(connector, listings)
    counts = sandbox.platform("ebay").counters.snapshot()["by_endpoint"]
    assert counts["bulkUpdatePriceQuantity"] == 2 * 13  # ceil(320 / 25) per push
    assert counts["bulkGetInventoryItem"] == 13
    assert counts["getOffers"] == 320  # the price lives on the offer


def test_ebay_reads_quantities_alone_without_a_call_per_offer(sandbox: RunningSandbox) -> None:
    # given: 60 listings whose quantities the channel has lowered (sales)
    listings = seed(sandbox, "ebay", 60, quantity=9)
    platform = sandbox.platform("ebay")
    for listing in listings[:3]:
        platform.catalog.adjust_quantity(listing.sku, -2)
    platform.counters.reset()
    # when: the guard's read before writing
    states = EbayConnector(ebay_config(sandbox)).read_quantities(listings)
    # then: every quantity, from three bulk reads and no offer read
    assert [s.quantity for s in states] == [7, 7, 7] + [9] * 57
    assert all(s.price is None and s.error is None for s in states)
    counts = platform.counters.snapshot()["by_endpoint"]
    assert counts == {"bulkGetInventoryItem": 3}


def test_ebay_orders_since_pages_through_260_orders(sandbox: RunningSandbox) -> None:
    # given
    platform = sandbox.platform("ebay")
    seed(sandbox, "ebay", 10, quantity=1000)
    created = [
        platform.create_order([{"sku": f"SKU-{i % 10:04d}", "quantity": 1 + i % 3}])
        for i in range(260)
    ]
    connector = EbayConnector(ebay_config(sandbox))
    # when
    orders, pages, high_water_mark = poll_all(connector, None, page_size=100)
    # then
    assert pages == 3
    assert sorted(o.external_id for o in orders) == sorted(o.id for o in created)
    assert all(o.status == "paid" and len(o.lines) == 1 for o in orders)
    assert orders[0].lines[0].quantity == 1
    # and a later poll from the high-water mark sees a new order
    newer = platform.create_order([{"sku": "SKU-0001", "quantity": 2}], status="pending")
    later, _, _ = poll_all(connector, high_water_mark, page_size=100)
    assert newer.id in {o.external_id for o in later}
    # (eBay dates have millisecond resolution: orders in the mark's millisecond repeat)
    assert all(o.updated_at >= parse_timestamp(high_water_mark) for o in later)


def test_ebay_rate_limit_answers_429_in_ebay_shape(sandbox: RunningSandbox) -> None:
    # given: a tight limit
    control(
        sandbox.url,
        "POST",
        "/_control/rate_limits",
        {"ebay": {"default": {"rate": 0.5, "burst": 2}}},
    )
    headers = {"Authorization": f"Bearer {EBAY_TOKEN}"}
    url = sandbox.platform_url("ebay") + "/sell/inventory/v1/inventory_item"
    # when
    answers = [requests.get(url, headers=headers, timeout=5) for _ in range(3)]
    # then
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["errors"][0]["errorId"] == 2001
    assert int(answers[2].headers["Retry-After"]) >= 1
    # and the connector reports it as retryable with the wait asked for
    check = EbayConnector(ebay_config(sandbox)).read_listings([ListingRef(sku="X")])
    assert check[0].error is not None
    assert check[0].error.kind is FailureKind.RETRYABLE
    assert check[0].error.retry_after is not None


def test_ebay_client_pacing_stays_under_the_sandbox_limit(sandbox: RunningSandbox) -> None:
    # given: the sandbox allows 40/s with a burst of 5; the connector paces just under it
    # (a little slack absorbs network jitter between the two buckets)
    listings = seed(sandbox, "ebay", 30)
    control(
        sandbox.url,
        "POST",
        "/_control/rate_limits",
        {"ebay": {"default": {"rate": 40, "burst": 5}}},
    )
    connector = EbayConnector(ebay_config(sandbox, rate_limit_per_second=35, rate_limit_burst=4))
    # when: 2 bulk reads + 30 offer look-ups
    states = connector.read_listings(listings)
    # then
    assert all(s.error is None and s.found for s in states)
    assert sandbox.platform("ebay").counters.snapshot()["rate_limited"] == 0


def test_ebay_injected_faults_are_classified(sandbox: RunningSandbox) -> None:
    # given
    listings = seed(sandbox, "ebay", 30)
    connector = EbayConnector(ebay_config(sandbox))
    updates = [QuantityUpdate(ref, 3) for ref in listings]
    control(
        sandbox.url, "POST", "/_control/faults", {"ebay": {"fail_skus": ["SKU-0002", "SKU-0027"]}}
    )
    # when: partial batch failure
    results = connector.push_quantities(updates)
    # then
    failed = {r.sku: r for r in results if not r.ok}
    assert set(failed) == {"SKU-0002", "SKU-0027"}
    assert {r.kind for r in failed.values()} == {FailureKind.PERMANENT}
    assert {r.code for r in failed.values()} == {"25709"}
    assert sandbox.platform("ebay").catalog.get("SKU-0002").quantity == 5  # unchanged
    assert sandbox.platform("ebay").catalog.get("SKU-0003").quantity == 3
    # when: every call answers 503, then 401
    control(sandbox.url, "DELETE", "/_control/faults/ebay")
    control(sandbox.url, "POST", "/_control/faults", {"ebay": {"error_5xx": 1.0}})
    assert {r.kind for r in connector.push_quantities(updates)} == {FailureKind.RETRYABLE}
    control(sandbox.url, "DELETE", "/_control/faults/ebay")
    control(sandbox.url, "POST", "/_control/faults", {"ebay": {"auth": 1.0}})
    assert {r.kind for r in connector.push_quantities(updates)} == {FailureKind.AUTH}


def test_ebay_wrong_token_and_oversized_bulk_get(sandbox: RunningSandbox) -> None:
    seed(sandbox, "ebay", 1)
    base = sandbox.platform_url("ebay") + "/sell/inventory/v1/bulk_get_inventory_item"
    bad = requests.post(
        base,
        json={"requests": [{"sku": "SKU-0000"}]},
        headers={"Authorization": "Bearer x"},
        timeout=5,
    )
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["errorId"] == 1001
    too_many = requests.post(
        base,
        json={"requests": [{"sku": f"S{i}"} for i in range(26)]},
        headers={"Authorization": f"Bearer {EBAY_TOKEN}"},
        timeout=5,
    )
    assert too_many.status_code == 400
    assert too_many.json()["errors"][0]["errorId"] == 25727


def test_ebay_revision_limit_per_listing_per_day(sandbox: RunningSandbox) -> None:
    listings = seed(sandbox, "ebay", 2)
    control(sandbox.url, "POST", "/_control/rate_limits", {"ebay": {"revisions": {"per_day": 2}}})
    connector = EbayConnector(ebay_config(sandbox))
    for value in (Decimal("2"), Decimal("3")):
        assert all(r.ok for r in connector.push_prices([PriceUpdate(listings[0], value)]))
    third = connector.push_prices(
        [PriceUpdate(listings[0], Decimal("4")), PriceUpdate(listings[1], Decimal("4"))]
    )
    assert third[0].kind is FailureKind.PERMANENT
    assert third[0].code == "25002"
    assert third[1].ok


def test_ebay_console_edit_is_what_a_read_sees(sandbox: RunningSandbox) -> None:
    listings = seed(sandbox, "ebay", 3)
    control(
        sandbox.url,
        "POST",
        "/_control/values",
        {"ebay": [{"sku": "SKU-0001", "price": "7.25", "quantity": 0}]},
    )
    states = EbayConnector(ebay_config(sandbox)).read_listings(listings)
    assert (states[1].price, states[1].quantity) == (Decimal("7.25"), 0)


def test_ebay_fulfil_and_cancel_move_the_sandbox_order(sandbox: RunningSandbox) -> None:
    # given
    platform = sandbox.platform("ebay")
    seed(sandbox, "ebay", 2, quantity=10)
    shipped = platform.create_order([{"sku": "SKU-0000", "quantity": 2}])
    cancelled = platform.create_order([{"sku": "SKU-0001", "quantity": 3}])
    connector = EbayConnector(ebay_config(sandbox))
    # when
    fulfil = connector.fulfil_order(shipped.id, tracking_number="1Z1", carrier="UPS")
    cancel = connector.cancel_order(cancelled.id, reason="OUT_OF_STOCK_OR_CANNOT_FULFILL")
    too_late = connector.cancel_order(shipped.id)
    # then
    assert fulfil.ok
    assert cancel.ok
    assert too_late.kind is FailureKind.PERMANENT
    assert platform.orders.get(shipped.id).status == "fulfilled"
    assert platform.orders.get(cancelled.id).status == "cancelled"
    assert platform.catalog.get("SKU-0001").quantity == 10  # the cancellation gave units back
    statuses = {o.external_id: o.status for o in poll_all(connector, None, 50)[0]}
    assert statuses == {shipped.id: "fulfilled", cancelled.id: "cancelled"}


# ---------------------------------------------------------------------- Amazon


def test_amazon_patches_300_skus_one_per_call_and_reads_them_back(
    sandbox: RunningSandbox,
) -> None:
    listings = seed(sandbox, "amazon", 300)
    connector = AmazonConnector(amazon_config(sandbox, feed_threshold=1000))
    push_and_read_back(connector, listings)
    counts = sandbox.platform("amazon").counters.snapshot()["by_endpoint"]
    assert counts["patchListingsItem"] == 600
    assert counts["searchListingsItems"] == 15  # 300 SKUs read back, 20 per search
    assert "createFeed" not in counts


def test_amazon_pushes_320_skus_as_feeds_and_reads_them_back(sandbox: RunningSandbox) -> None:
    # given: above the feed threshold every push is one JSON_LISTINGS_FEED
    listings = seed(sandbox, "amazon", 320)
    sandbox.platform("amazon").feed_processing_seconds = 0.1
    connector = AmazonConnector(amazon_config(sandbox, feed_threshold=250))
    # when / then
    push_and_read_back(connector, listings)
    counts = sandbox.platform("amazon").counters.snapshot()["by_endpoint"]
    assert counts["createFeed"] == 2
    assert counts["getFeedDocument"] == 2
    assert "patchListingsItem" not in counts


def test_amazon_feed_reports_partial_failure_per_sku(sandbox: RunningSandbox) -> None:
    listings = seed(sandbox, "amazon", 40)
    platform = sandbox.platform("amazon")
    platform.feed_processing_seconds = 0.0
    control(sandbox.url, "POST", "/_control/faults", {"amazon": {"fail_skus": ["SKU-0007"]}})
    connector = AmazonConnector(amazon_config(sandbox, feed_threshold=10))
    results = connector.push_prices([PriceUpdate(ref, Decimal("5.55")) for ref in listings])
    failed = [r for r in results if not r.ok]
    assert [(r.sku, r.kind, r.code) for r in failed] == [
        ("SKU-0007", FailureKind.PERMANENT, "90220")
    ]
    assert platform.catalog.get("SKU-0007").price == Decimal("1.00")
    assert platform.catalog.get("SKU-0008").price == Decimal("5.55")


def test_amazon_orders_since_pages_through_260_orders(sandbox: RunningSandbox) -> None:
    # given
    platform = sandbox.platform("amazon")
    seed(sandbox, "amazon", 5, quantity=1000)
    created = [
        platform.create_order(
            [{"sku": f"SKU-{i % 5:04d}", "quantity": 2}, {"sku": "SKU-0004", "quantity": 1}],
            status="paid" if i % 4 else "pending",
        )
        for i in range(260)
    ]
    connector = AmazonConnector(amazon_config(sandbox))
    # when
    orders, pages, high_water_mark = poll_all(connector, None, page_size=100)
    # then
    assert pages == 3
    assert sorted(o.external_id for o in orders) == sorted(o.id for o in created)
    by_id = {o.external_id: o for o in orders}
    assert by_id[created[0].id].status == "pending"
    assert by_id[created[1].id].status == "paid"
    assert [line.quantity for line in by_id[created[1].id].lines] == [2, 1]
    assert by_id[created[1].id].total == created[1].total
    assert high_water_mark.endswith("Z")


def test_amazon_quota_exceeded_shape_and_rate_header(sandbox: RunningSandbox) -> None:
    seed(sandbox, "amazon", 1)
    control(
        sandbox.url,
        "POST",
        "/_control/rate_limits",
        {"amazon": {"getListingsItem": {"rate": 0.1, "burst": 1}}},
    )
    url = f"{sandbox.platform_url('amazon')}/listings/2021-08-01/items/{SELLER}/SKU-0000"
    headers = {"x-amz-access-token": AMAZON_TOKEN}
    params = {"marketplaceIds": "ATVPDKIKX0DER"}
    first = requests.get(url, headers=headers, params=params, timeout=5)
    second = requests.get(url, headers=headers, params=params, timeout=5)
    assert first.status_code == 200
    assert first.headers["x-amzn-RateLimit-Limit"] == "0.1"
    assert second.status_code == 429
    assert second.json()["errors"][0]["code"] == "QuotaExceeded"
    assert "Retry-After" not in second.headers
    assert second.headers["x-amzn-RequestId"]


def test_amazon_connector_paces_to_the_documented_patch_rate(sandbox: RunningSandbox) -> None:
    # given: the documented patchListingsItem limit (5 rps, burst 5) and client pacing on
    listings = seed(sandbox, "amazon", 12)
    control(sandbox.url, "POST", "/_control/rate_limits", {"amazon": {"reset": True}})
    connector = AmazonConnector(amazon_config(sandbox, pacing=True))
    started = time.monotonic()
    # when
    results = connector.push_quantities([QuantityUpdate(ref, 1) for ref in listings])
    # then: no 429 burned; 7 calls beyond the burst need >= 1.4 s at 5 rps
    assert all(r.ok for r in results)
    assert time.monotonic() - started >= 1.3
    assert sandbox.platform("amazon").counters.snapshot()["rate_limited"] == 0


def test_amazon_auth_failure_and_shipment_confirmation(sandbox: RunningSandbox) -> None:
    # given
    platform = sandbox.platform("amazon")
    listings = seed(sandbox, "amazon", 3, quantity=10)
    order = platform.create_order(
        [{"sku": "SKU-0000", "quantity": 1}, {"sku": "SKU-0001", "quantity": 2}]
    )
    connector = AmazonConnector(amazon_config(sandbox))
    # when / then: shipment confirmation fulfils the order
    assert connector.fulfil_order(order.id, tracking_number="TBA1", carrier="AMZN_US").ok
    assert platform.orders.get(order.id).status == "fulfilled"
    assert connector.fulfil_order(order.id, tracking_number="TBA1", carrier="AMZN_US").ok  # no-op
    # and a wrong token is an auth failure for every SKU after one call
    wrong = AmazonConnector(
        ChannelConfig(
            channel_id=4,
            platform="amazon",
            base_url=sandbox.platform_url("amazon"),
            credentials={"access_token": "expired"},
            platform_config={"seller_id": SELLER, "pacing": False},
        )
    )
    before = platform.counters.snapshot()["calls"]
    results = wrong.push_prices([PriceUpdate(ref, Decimal("2")) for ref in listings])
    assert {r.kind for r in results} == {FailureKind.AUTH}
    assert platform.counters.snapshot()["calls"] == before + 1


def test_amazon_search_orders_validates_its_date_filters(sandbox: RunningSandbox) -> None:
    url = f"{sandbox.platform_url('amazon')}/orders/2026-01-01/orders"
    headers = {"x-amz-access-token": AMAZON_TOKEN}
    both = requests.get(
        url,
        headers=headers,
        params={
            "marketplaceIds": "ATVPDKIKX0DER",
            "createdAfter": "2026-01-01T00:00:00Z",
            "lastUpdatedAfter": "2026-01-01T00:00:00Z",
        },
        timeout=5,
    )
    assert both.status_code == 400
    assert both.json()["errors"][0]["code"] == "InvalidInput"
    refusal = sandbox.platform("amazon").refusals[-1]
    assert (refusal["operation"], refusal["status"]) == ("searchOrders", 400)
