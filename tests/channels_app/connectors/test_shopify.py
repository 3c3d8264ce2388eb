"""Shopify connector: against the sandbox over loopback HTTP, and against recorded
responses (API version 2026-01) for every failure class."""

from __future__ import annotations

import hmac
import json
import math
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
import requests
import responses

from channels_app.connectors import shopify as shopify_module
from channels_app.connectors.base import ListingRef, PriceUpdate, QuantityUpdate
from channels_app.connectors.errors import FailureKind
from channels_app.connectors.registry import get_connector
from channels_app.connectors.shopify import ORDERS_PAGE_MAX, ShopifyConnector
from sandbox.server import start_sandbox
from tests.support.sandbox import WEBHOOK_SECRET, control, seed_listings, shopify_config

BASE = "https://pimsync-test.myshopify.com"
ENDPOINT = f"{BASE}/admin/api/2026-01/graphql.json"


def connector_for(base_url: str, **overrides: Any) -> ShopifyConnector:
    connector = get_connector(shopify_config(base_url, **overrides))
    assert isinstance(connector, ShopifyConnector)
    return connector


def catalog_rows(count: int, big_product: int) -> list[dict[str, Any]]:
    """``big_product`` variants in one product (crosses the 250 cap), the rest in another."""
    return [
        {
            "sku": f"SKU-{n:04d}",
            "price": "1.00",
            "quantity": 1,
            "group": "big" if n < big_product else "small",
        }
        for n in range(count)
    ]


# --------------------------------------------------------------------------- sandbox


def test_push_320_quantities_and_prices_then_read_back_equal(sandbox) -> None:
    # given 320 SKUs: 300 variants of one product, 20 of another
    platform = sandbox.platform("shopify")
    listings = seed_listings(platform, catalog_rows(320, big_product=300))
    connector = connector_for(sandbox.platform_url("shopify"))
    quantities = [
        QuantityUpdate(ref, 100 + n, expected_quantity=1) for n, ref in enumerate(listings)
    ]
    prices = [
        PriceUpdate(ref, Decimal("9.99") + n, compare_at_price=Decimal("500.00"))
        for n, ref in enumerate(listings)
    ]

    # when
    quantity_results = connector.push_quantities(quantities)
    price_results = connector.push_prices(prices)
    states = connector.read_listings(listings)

    # then every SKU is confirmed, in input order
    assert [r.sku for r in quantity_results] == [ref.sku for ref in listings]
    assert all(r.kind is FailureKind.OK for r in quantity_results + price_results)
    assert [(s.sku, s.price, s.quantity) for s in states] == [
        (ref.sku, Decimal("9.99") + n, 100 + n) for n, ref in enumerate(listings)
    ]
    assert platform.catalog.get("SKU-0299").compare_at_price == Decimal("500.00")
    # 2 quantity calls (250 + 70); prices 250 + 50 for the big product, 20 for the small
    # one; reads 250 ids per query
    assert platform.counters.snapshot()["by_endpoint"] == {"graphql": 2 + 3 + 2}
    assert platform.counters.snapshot()["items"] == {"quantity": 320, "price": 320}


def test_stale_compare_and_set_fails_only_that_sku_and_the_rest_is_resent(sandbox) -> None:
    # given the channel moved SKU-0001 from 1 to 7 behind our back
    platform = sandbox.platform("shopify")
    listings = seed_listings(platform, catalog_rows(3, big_product=3))
    platform.catalog.set_values("SKU-0001", quantity=7)
    connector = connector_for(sandbox.platform_url("shopify"))

    # when
    results = connector.push_quantities(
        [QuantityUpdate(ref, 50, expected_quantity=1) for ref in listings]
    )

    # then
    assert [(r.sku, r.kind, r.code) for r in results] == [
        ("SKU-0000", FailureKind.OK, ""),
        ("SKU-0001", FailureKind.PERMANENT, "CHANGE_FROM_QUANTITY_STALE"),
        ("SKU-0002", FailureKind.OK, ""),
    ]
    assert [platform.catalog.get(ref.sku).quantity for ref in listings] == [50, 7, 50]


def test_orders_since_pages_through_260_orders(sandbox) -> None:
    # given
    platform = sandbox.platform("shopify")
    seed_listings(platform, catalog_rows(2, big_product=2))
    for n in range(260):
        platform.create_order(
            [{"sku": "SKU-0000", "quantity": 1}, {"sku": "SKU-0001", "quantity": 1 + n % 3}],
            adjust_stock=False,
        )
    connector = connector_for(sandbox.platform_url("shopify"))

    # when
    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        page = connector.orders_since(cursor, page_size=100)
        pages += 1
        seen += [order.external_id for order in page.orders]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    # then
    assert len(seen) == 260
    assert len(set(seen)) == 260
    assert pages == math.ceil(260 / ORDERS_PAGE_MAX)
    last = max(platform.orders.all(), key=lambda o: o.updated_at)
    assert page.high_water_mark == last.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    first = page.orders[-1]
    assert first.status == "paid"
    assert first.total == sum((line.unit_price * line.quantity for line in first.lines), Decimal(0))
    assert [line.sku for line in first.lines] == ["SKU-0000", "SKU-0001"]


def test_poll_from_high_water_mark_returns_later_changes(sandbox) -> None:
    # given a completed poll
    platform = sandbox.platform("shopify")
    seed_listings(platform, catalog_rows(1, big_product=1))
    platform.create_order([{"sku": "SKU-0000", "quantity": 1}], adjust_stock=False)
    connector = connector_for(sandbox.platform_url("shopify"))
    hwm = connector.orders_since(None).high_water_mark
    # when an order is cancelled afterwards
    cancelled = platform.orders.all()[0]
    platform.order_transition(cancelled.id, "cancel")
    page = connector.orders_since(hwm)
    # then
    assert [(o.external_id, o.status) for o in page.orders] == [(cancelled.id, "cancelled")]


def test_cancel_and_fulfil_orders_on_the_sandbox(sandbox) -> None:
    platform = sandbox.platform("shopify")
    seed_listings(platform, catalog_rows(1, big_product=1))
    to_cancel = platform.create_order([{"sku": "SKU-0000", "quantity": 1}])
    to_ship = platform.create_order([{"sku": "SKU-0000", "quantity": 1}])
    connector = connector_for(sandbox.platform_url("shopify"))

    assert connector.cancel_order(to_cancel.id, reason="oversell").ok
    assert connector.fulfil_order(to_ship.id, tracking_number="1Z999", carrier="UPS").ok
    again = connector.cancel_order(to_cancel.id)

    assert platform.orders.get(to_cancel.id).status == "cancelled"
    assert platform.orders.get(to_cancel.id).cancel_reason == "inventory"
    assert platform.orders.get(to_ship.id).status == "fulfilled"
    assert platform.orders.get(to_ship.id).tracking_number == "1Z999"
    assert (again.kind, again.code) == (FailureKind.PERMANENT, "INVALID")


def test_wrong_token_is_an_auth_failure_for_every_sku(sandbox) -> None:
    listings = seed_listings(sandbox.platform("shopify"), catalog_rows(2, big_product=2))
    connector = connector_for(
        sandbox.platform_url("shopify"), credentials={"access_token": "shpat_wrong"}
    )

    results = connector.push_prices([PriceUpdate(ref, Decimal("1.50")) for ref in listings])

    assert [(r.kind, r.http_status) for r in results] == [(FailureKind.AUTH, 401)] * 2
    assert connector.test_connection().ok is False


def test_sandbox_throttles_and_the_wait_comes_from_throttle_status() -> None:
    # given the documented bucket shape, shrunk: 25 points restored at 10/s
    with start_sandbox(limits={"shopify": {"cost": {"maximum": 25, "restore_rate": 10}}}) as box:
        listings = seed_listings(box.platform("shopify"), catalog_rows(1, big_product=1))
        box.platform("shopify").drain_limits()
        # a fresh connector knows nothing of the bucket, so it calls and is THROTTLED
        connector = connector_for(box.platform_url("shopify"))

        results = connector.push_quantities([QuantityUpdate(listings[0], 5)])

        assert results[0].kind is FailureKind.RETRYABLE
        assert results[0].code == "THROTTLED"
        assert 0.5 < results[0].retry_after <= 1.0  # (10 - ~0) / 10 points per second
        assert box.platform("shopify").counters.snapshot()["rate_limited"] == 1


def test_connector_paces_a_large_push_inside_the_bucket() -> None:
    # given a bucket smaller than the push: 30 points restored at 100/s, 6 calls of 10
    with start_sandbox(limits={"shopify": {"cost": {"maximum": 30, "restore_rate": 100}}}) as box:
        listings = seed_listings(box.platform("shopify"), catalog_rows(6, big_product=6))
        connector = connector_for(box.platform_url("shopify"), batch_size=1)

        results = connector.push_quantities([QuantityUpdate(ref, 3) for ref in listings])

        assert all(r.ok for r in results)
        assert box.platform("shopify").counters.snapshot()["rate_limited"] == 0


def test_signed_webhook_from_the_sandbox_verifies_and_parses(sandbox, webhook_receiver) -> None:
    # given a webhook target registered the way the demo does it
    seed_listings(sandbox.platform("shopify"), catalog_rows(2, big_product=2))
    target = {"shopify": {"url": webhook_receiver.url, "secret": WEBHOOK_SECRET}}
    assert control(sandbox.url, "POST", "/_control/webhooks", target)[0] == 200
    # when a buyer orders
    status, created = control(
        sandbox.url,
        "POST",
        "/_control/orders",
        {"platform": "shopify", "lines": [{"sku": "SKU-0001", "quantity": 2}], "email": "a@b.c"},
    )
    # then pimsync's side receives a delivery that verifies and parses
    assert status == 201
    assert created["delivery"]["status"] == 200
    delivery = webhook_receiver.received[0]
    connector = connector_for(sandbox.platform_url("shopify"))
    assert connector.verify_webhook(delivery.headers, delivery.body) is True
    event = connector.parse_webhook(delivery.headers, delivery.body)
    assert event.topic == "orders/create"
    assert event.delivery_id == delivery.headers["X-Shopify-Webhook-Id"]
    assert event.order is not None
    assert event.order.external_id == str(created["order"]["id"])
    assert [(line.sku, line.quantity) for line in event.order.lines] == [("SKU-0001", 2)]
    assert event.order.status == "paid"
    assert event.order.customer_email == "a@b.c"
    wrong = connector_for(sandbox.platform_url("shopify"), webhook_secret="other")
    assert wrong.verify_webhook(delivery.headers, delivery.body) is False


# --------------------------------------------------------------------------- signatures

FIXED_SECRET = "shpss_fixed_vector_secret"
FIXED_BODY = b'{"id":820982911946154508,"email":"jon@example.com","financial_status":"paid"}'
FIXED_SIGNATURE = "aoTA3EQT35iziexBlETmSi3S7M3T0xtzi6U7WJqrV6c="


def fixed_connector() -> ShopifyConnector:
    return connector_for(BASE, webhook_secret=FIXED_SECRET)


def test_fixed_vector_signature_verifies() -> None:
    headers = {"x-shopify-hmac-sha256": FIXED_SIGNATURE}  # header names are case-insensitive
    assert fixed_connector().verify_webhook(headers, FIXED_BODY) is True


def test_one_byte_change_of_body_fails() -> None:
    tampered = FIXED_BODY.replace(b"paid", b"pais")
    headers = {"X-Shopify-Hmac-Sha256": FIXED_SIGNATURE}
    assert fixed_connector().verify_webhook(headers, tampered) is False


def test_one_byte_change_of_signature_fails() -> None:
    tampered = "b" + FIXED_SIGNATURE[1:]
    assert (
        fixed_connector().verify_webhook({"X-Shopify-Hmac-Sha256": tampered}, FIXED_BODY) is False
    )


def test_missing_signature_or_secret_fails() -> None:
    assert fixed_connector().verify_webhook({}, FIXED_BODY) is False
    no_secret = connector_for(BASE, webhook_secret="")
    assert no_secret.verify_webhook({"X-Shopify-Hmac-Sha256": FIXED_SIGNATURE}, FIXED_BODY) is False


def test_signature_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = mock.Mock(wraps=hmac.compare_digest)
    monkeypatch.setattr(shopify_module.hmac, "compare_digest", spy)

    assert fixed_connector().verify_webhook({"X-Shopify-Hmac-Sha256": FIXED_SIGNATURE}, FIXED_BODY)

    spy.assert_called_once()


# --------------------------------------------------------------------------- recorded


def listings_for(count: int) -> list[ListingRef]:
    return [
        ListingRef(
            sku=f"R-{n}",
            product_id="gid://shopify/Product/9",
            variant_id=f"gid://shopify/ProductVariant/{n}",
            inventory_item_id=f"gid://shopify/InventoryItem/{n}",
        )
        for n in range(count)
    ]


def cost(available: float = 990.0, requested: int = 10, actual: int | None = 10) -> dict[str, Any]:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": 1000.0,
                "currentlyAvailable": available,
                "restoreRate": 100.0,
            },
        }
    }


def isq_ok() -> dict[str, Any]:
    return {
        "data": {
            "inventorySetQuantities": {
                "inventoryAdjustmentGroup": {"id": "gid://shopify/InventoryAdjustmentGroup/1"},
                "userErrors": [],
            }
        },
        "extensions": cost(),
    }


THROTTLED = {
    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
    "extensions": cost(available=5.0, actual=None),
}

FAILURES = [
    pytest.param(
        {
            "status": 429,
            "json": {"errors": "Exceeded 2 calls per second"},
            "headers": {"Retry-After": "2"},
        },
        FailureKind.RETRYABLE,
        "429",
        2.0,
        id="429-retry-after",
    ),
    pytest.param(
        {"status": 200, "json": THROTTLED},
        FailureKind.RETRYABLE,
        "THROTTLED",
        0.05,
        id="throttled-200",
    ),
    pytest.param(
        {"status": 429, "json": THROTTLED},
        FailureKind.RETRYABLE,
        "THROTTLED",
        0.05,
        id="throttled-429",
    ),
    pytest.param(
        {"status": 401, "json": {"errors": "[API] Invalid API key or access token"}},
        FailureKind.AUTH,
        "401",
        None,
        id="401",
    ),
    pytest.param(
        {"status": 503, "body": "upstream unavailable"},
        FailureKind.RETRYABLE,
        "503",
        None,
        id="503",
    ),
    pytest.param(
        {"body": requests.exceptions.ReadTimeout("read timed out")},
        FailureKind.RETRYABLE,
        "timeout",
        None,
        id="read-timeout",
    ),
    pytest.param(
        {
            "status": 200,
            "body": '{"data": {"inventorySetQuantities": ',
            "content_type": "application/json",
        },
        FailureKind.PERMANENT,
        "malformed_json",
        None,
        id="malformed-json",
    ),
    pytest.param(
        {
            "status": 200,
            "body": "<!DOCTYPE html><html><body><h1>Shop unavailable</h1></body></html>",
            "content_type": "text/html",
        },
        FailureKind.PERMANENT,
        "html_response",
        None,
        id="html-page",
    ),
]


@pytest.mark.parametrize(("reply", "kind", "code", "retry_after"), FAILURES)
@responses.activate
def test_failure_of_second_call_is_classified_and_first_call_skus_still_reported(
    reply: dict[str, Any], kind: FailureKind, code: str, retry_after: float | None
) -> None:
    # given 4 SKUs sent 2 per call; the first call succeeds, the second fails
    responses.post(ENDPOINT, json=isq_ok())
    responses.post(ENDPOINT, **reply)
    connector = connector_for(BASE, batch_size=2)

    # when
    results = connector.push_quantities([QuantityUpdate(ref, 4) for ref in listings_for(4)])

    # then
    assert [r.sku for r in results] == ["R-0", "R-1", "R-2", "R-3"]
    assert [r.kind for r in results[:2]] == [FailureKind.OK, FailureKind.OK]
    assert [(r.kind, r.code) for r in results[2:]] == [(kind, code)] * 2
    if retry_after is None:
        assert results[2].retry_after is None
    else:
        assert results[2].retry_after == pytest.approx(retry_after)
    if code in ("malformed_json", "html_response"):
        assert reply["body"][:20] in results[2].message  # the body's first bytes


@responses.activate
def test_retryable_failure_stops_the_batch_and_reports_the_rest_as_not_sent() -> None:
    responses.post(ENDPOINT, json=THROTTLED)
    connector = connector_for(BASE, batch_size=2)

    results = connector.push_quantities([QuantityUpdate(ref, 4) for ref in listings_for(6)])

    assert len(responses.calls) == 1
    assert [(r.kind, r.code) for r in results] == [(FailureKind.RETRYABLE, "THROTTLED")] * 6
    assert results[5].message.startswith("not sent")


@responses.activate
def test_user_error_rows_fail_and_the_other_rows_are_sent_again() -> None:
    # given the all-or-nothing mutation rejects row 1, then accepts the rest
    rejected = {
        "data": {
            "inventorySetQuantities": {
                "inventoryAdjustmentGroup": None,
                "userErrors": [
                    {
                        "code": "ITEM_NOT_STOCKED_AT_LOCATION",
                        "field": ["input", "quantities", "1", "locationId"],
                        "message": "The specified inventory item is not stocked at the location.",
                    }
                ],
            }
        },
        "extensions": cost(),
    }
    responses.post(ENDPOINT, json=rejected)
    responses.post(ENDPOINT, json=isq_ok())
    connector = connector_for(BASE)

    # when
    results = connector.push_quantities(
        [QuantityUpdate(ref, 8, expected_quantity=2) for ref in listings_for(3)]
    )

    # then
    assert [(r.sku, r.kind, r.code) for r in results] == [
        ("R-0", FailureKind.OK, ""),
        ("R-1", FailureKind.PERMANENT, "ITEM_NOT_STOCKED_AT_LOCATION"),
        ("R-2", FailureKind.OK, ""),
    ]
    first, second = (json.loads(call.request.body) for call in responses.calls)
    sent_first = first["variables"]["input"]["quantities"]
    sent_second = second["variables"]["input"]["quantities"]
    assert [q["inventoryItemId"][-1] for q in sent_first] == ["0", "1", "2"]
    assert [q["inventoryItemId"][-1] for q in sent_second] == ["0", "2"]
    assert sent_first[0]["changeFromQuantity"] == 2
    assert sent_first[0]["locationId"] == "gid://shopify/Location/1"
    # a new idempotency key for the new request
    assert first["query"] != second["query"]
    assert '@idempotent(key: "' in first["query"]
    assert responses.calls[0].request.headers["X-Shopify-Access-Token"] == "shpat_sandbox"


@responses.activate
def test_partial_price_update_reports_each_variant() -> None:
    payload = {
        "data": {
            "productVariantsBulkUpdate": {
                "product": {"id": "gid://shopify/Product/9"},
                "productVariants": [
                    {"id": "gid://shopify/ProductVariant/0", "price": "5.00"},
                    {"id": "gid://shopify/ProductVariant/2", "price": "5.00"},
                ],
                "userErrors": [
                    {
                        "code": "INVALID",
                        "field": ["variants", "1", "price"],
                        "message": "Price is invalid",
                    }
                ],
            }
        },
        "extensions": cost(),
    }
    responses.post(ENDPOINT, json=payload)

    results = fixed_connector().push_prices(
        [PriceUpdate(ref, Decimal("5")) for ref in listings_for(3)]
    )

    assert [(r.sku, r.kind, r.code) for r in results] == [
        ("R-0", FailureKind.OK, ""),
        ("R-1", FailureKind.PERMANENT, "INVALID"),
        ("R-2", FailureKind.OK, ""),
    ]
    sent = json.loads(responses.calls[0].request.body)["variables"]
    assert sent["allowPartialUpdates"] is True
    assert sent["variants"][0] == {
        "id": "gid://shopify/ProductVariant/0",
        "price": "5.00",
        "compareAtPrice": None,
    }


@responses.activate
def test_read_listings_failure_is_reported_per_sku_not_raised() -> None:
    responses.post(ENDPOINT, body="<html><body>502 Bad Gateway</body></html>", status=502)

    states = fixed_connector().read_listings(listings_for(2))

    assert [(s.sku, s.found, s.error.kind, s.error.code) for s in states] == [
        ("R-0", False, FailureKind.RETRYABLE, "502"),
        ("R-1", False, FailureKind.RETRYABLE, "502"),
    ]


def test_missing_ids_are_permanent_per_sku_without_a_call() -> None:
    connector = fixed_connector()
    bare = ListingRef(sku="NO-IDS")

    assert connector.push_quantities([QuantityUpdate(bare, 1)])[0].code == "missing_id"
    assert connector.push_prices([PriceUpdate(bare, Decimal(1))])[0].code == "missing_id"
    assert connector.read_listings([bare])[0].found is False


# --------------------------------------------------------------------------- registry


def test_registry_picks_the_connector_by_platform() -> None:
    from channels_app.connectors.registry import UnknownPlatformError, connector_class, platforms
    from channels_app.connectors.woocommerce import WooCommerceConnector

    assert connector_class("shopify") is ShopifyConnector
    assert connector_class("woocommerce") is WooCommerceConnector
    assert platforms() == ["amazon", "ebay", "magento", "shopify", "woocommerce"]
    assert {connector_class(name).platform for name in platforms()} == set(platforms())
    with pytest.raises(UnknownPlatformError, match="bigcommerce"):
        connector_class("bigcommerce")
