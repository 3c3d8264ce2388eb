"""WooCommerce connector: against the sandbox over loopback HTTP, and against recorded
REST v3 responses for every failure class."""

from __future__ import annotations

import base64
import hmac
import json
from decimal import Decimal
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses

from channels_app.connectors import woocommerce as woo_module
from channels_app.connectors.base import ListingRef, PriceUpdate, QuantityUpdate
from channels_app.connectors.errors import FailureKind
from channels_app.connectors.registry import get_connector
from channels_app.connectors.woocommerce import WooCommerceConnector
from sandbox.server import start_sandbox
from tests.support.sandbox import (
    WEBHOOK_SECRET,
    WOO_KEY,
    WOO_SECRET,
    control,
    seed_listings,
    woocommerce_config,
)

BASE = "https://shop.example.test"
API = f"{BASE}/wp-json/wc/v3"


def connector_for(base_url: str, **overrides: Any) -> WooCommerceConnector:
    connector = get_connector(woocommerce_config(base_url, **overrides))
    assert isinstance(connector, WooCommerceConnector)
    return connector


def catalog_rows(simple: int, variations: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"sku": f"S-{n:04d}", "price": "1.00", "quantity": 1} for n in range(simple)
    ]
    rows += [
        {"sku": f"V-{n:04d}", "price": "1.00", "quantity": 1, "group": "tee"}
        for n in range(variations)
    ]
    return rows


# --------------------------------------------------------------------------- sandbox


def test_push_330_quantities_and_prices_then_read_back_equal(sandbox) -> None:
    # given 210 simple products and 120 variations of one parent
    platform = sandbox.platform("woocommerce")
    listings = seed_listings(platform, catalog_rows(simple=210, variations=120))
    connector = connector_for(sandbox.platform_url("woocommerce"))

    # when
    quantity_results = connector.push_quantities(
        [QuantityUpdate(ref, 40 + n) for n, ref in enumerate(listings)]
    )
    price_results = connector.push_prices(
        [
            PriceUpdate(
                ref, Decimal("4.99") + n, compare_at_price=Decimal("999") if n % 7 else None
            )
            for n, ref in enumerate(listings)
        ]
    )
    states = connector.read_listings(listings)

    # then
    assert [r.sku for r in price_results] == [ref.sku for ref in listings]
    assert all(r.kind is FailureKind.OK for r in quantity_results + price_results)
    assert [(s.sku, s.price, s.quantity) for s in states] == [
        (ref.sku, Decimal("4.99") + n, 40 + n) for n, ref in enumerate(listings)
    ]
    assert platform.catalog.get("S-0001").compare_at_price == Decimal("999")
    assert platform.catalog.get("S-0000").compare_at_price is None
    # 100 items per call: simple 100+100+10, variations 100+20 -> 5 calls per push
    counts = platform.counters.snapshot()["by_endpoint"]
    assert counts["products_batch"] == 6
    assert counts["variations_batch"] == 4
    assert counts["products_list"] == 3
    assert counts["variations_list"] == 2


def test_partial_batch_failure_from_the_sandbox_is_reported_per_sku(sandbox) -> None:
    platform = sandbox.platform("woocommerce")
    listings = seed_listings(platform, catalog_rows(simple=5, variations=0))
    platform.faults.configure({"fail_skus": ["S-0002"]})
    connector = connector_for(sandbox.platform_url("woocommerce"))

    results = connector.push_quantities([QuantityUpdate(ref, 9) for ref in listings])

    assert [(r.sku, r.kind) for r in results] == [
        ("S-0000", FailureKind.OK),
        ("S-0001", FailureKind.OK),
        ("S-0002", FailureKind.PERMANENT),
        ("S-0003", FailureKind.OK),
        ("S-0004", FailureKind.OK),
    ]
    assert results[2].code == "woocommerce_rest_product_not_saved"
    assert [platform.catalog.get(ref.sku).quantity for ref in listings] == [9, 9, 1, 9, 9]


def test_orders_since_pages_through_260_orders(sandbox) -> None:
    platform = sandbox.platform("woocommerce")
    seed_listings(platform, catalog_rows(simple=1, variations=1))
    for n in range(260):
        platform.create_order(
            [{"sku": "S-0000", "quantity": 1}, {"sku": "V-0000", "quantity": 2 + n % 2}],
            adjust_stock=False,
        )
    connector = connector_for(sandbox.platform_url("woocommerce"))

    seen: list[str] = []
    cursor, pages = None, 0
    while True:
        page = connector.orders_since(cursor, page_size=100)
        pages += 1
        seen += [o.external_id for o in page.orders]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert pages == 3
    assert len(seen) == len(set(seen)) == 260
    last = max(platform.orders.all(), key=lambda o: o.updated_at)
    assert page.high_water_mark == last.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    order = page.orders[-1]
    assert order.status == "paid"
    assert order.financial_status == "processing"
    simple_line, variation_line = order.lines
    assert (simple_line.sku, simple_line.external_variant_id) == (
        "S-0000",
        simple_line.external_product_id,
    )
    assert variation_line.external_variant_id != variation_line.external_product_id
    assert order.total == sum((ln.unit_price * ln.quantity for ln in order.lines), Decimal(0))


def test_poll_from_high_water_mark_returns_later_changes(sandbox) -> None:
    platform = sandbox.platform("woocommerce")
    seed_listings(platform, catalog_rows(simple=1, variations=0))
    order = platform.create_order([{"sku": "S-0000", "quantity": 1}], adjust_stock=False)
    connector = connector_for(sandbox.platform_url("woocommerce"))
    hwm = connector.orders_since(None).high_water_mark

    platform.order_transition(order.id, "fulfil")
    page = connector.orders_since(hwm)

    assert [(o.external_id, o.status) for o in page.orders] == [(order.id, "fulfilled")]


def test_cancel_and_fulfil_orders_on_the_sandbox(sandbox) -> None:
    platform = sandbox.platform("woocommerce")
    seed_listings(platform, catalog_rows(simple=1, variations=0))
    to_cancel = platform.create_order([{"sku": "S-0000", "quantity": 1}])
    to_ship = platform.create_order([{"sku": "S-0000", "quantity": 1}])
    connector = connector_for(sandbox.platform_url("woocommerce"))

    assert connector.cancel_order(to_cancel.id, reason="oversell").ok
    assert connector.fulfil_order(to_ship.id, tracking_number="1Z1").ok
    unknown = connector.cancel_order("999999")

    assert platform.orders.get(to_cancel.id).status == "cancelled"
    assert platform.orders.get(to_ship.id).status == "fulfilled"
    assert (unknown.kind, unknown.code) == (
        FailureKind.PERMANENT,
        "woocommerce_rest_shop_order_invalid_id",
    )


def test_keys_in_the_query_string_are_accepted(sandbox) -> None:
    listings = seed_listings(sandbox.platform("woocommerce"), catalog_rows(simple=2, variations=0))
    connector = connector_for(
        sandbox.platform_url("woocommerce"), platform_config={"auth_in_query": True}
    )

    assert all(
        r.ok for r in connector.push_quantities([QuantityUpdate(ref, 3) for ref in listings])
    )
    assert connector.test_connection().ok


def test_wrong_keys_are_an_auth_failure_for_every_sku(sandbox) -> None:
    listings = seed_listings(sandbox.platform("woocommerce"), catalog_rows(simple=3, variations=0))
    connector = connector_for(
        sandbox.platform_url("woocommerce"),
        credentials={"consumer_key": WOO_KEY, "consumer_secret": "cs_wrong"},
    )

    results = connector.push_prices([PriceUpdate(ref, Decimal(2)) for ref in listings])

    assert [(r.kind, r.http_status) for r in results] == [(FailureKind.AUTH, 401)] * 3
    assert connector.test_connection().ok is False


def test_sandbox_rate_limit_gives_429_with_retry_after() -> None:
    # given a burst of 10 that refills slowly (0.2/s), and 12 simple products
    limits = {"woocommerce": {"default": {"rate": 0.2, "burst": 10}}}
    with start_sandbox(limits=limits) as box:
        platform = box.platform("woocommerce")
        listings = seed_listings(platform, catalog_rows(simple=12, variations=0))
        connector = connector_for(box.platform_url("woocommerce"), batch_size=1)

        # when 12 one-item calls go out at once
        results = connector.push_quantities([QuantityUpdate(ref, 2) for ref in listings])

        # then the 11th is refused with Retry-After and the 12th is not even sent
        assert [r.kind for r in results[:10]] == [FailureKind.OK] * 10
        assert (results[10].kind, results[10].code) == (FailureKind.RETRYABLE, "too_many_requests")
        assert 1.0 <= results[10].retry_after <= 5.0
        assert results[11].message.startswith("not sent")
        assert platform.counters.snapshot()["rate_limited"] == 1


def test_pacing_at_the_documented_rate_is_never_refused() -> None:
    # given the default limit (5 requests/s) with its burst used up
    with start_sandbox() as box:
        platform = box.platform("woocommerce")
        listings = seed_listings(platform, catalog_rows(simple=4, variations=0))
        platform.drain_limits()
        connector = connector_for(
            box.platform_url("woocommerce"),
            batch_size=1,
            platform_config={"requests_per_second": 5, "burst": 1},
        )
        connector.pacer.drain()

        results = connector.push_quantities([QuantityUpdate(ref, 3) for ref in listings])

        assert all(r.ok for r in results)
        assert platform.counters.snapshot()["rate_limited"] == 0


def test_signed_webhook_from_the_sandbox_verifies_and_parses(sandbox, webhook_receiver) -> None:
    seed_listings(sandbox.platform("woocommerce"), catalog_rows(simple=1, variations=1))
    target = {"woocommerce": {"url": webhook_receiver.url, "secret": WEBHOOK_SECRET}}
    assert control(sandbox.url, "POST", "/_control/webhooks", target)[0] == 200
    status, created = control(
        sandbox.url,
        "POST",
        "/_control/orders",
        {
            "platform": "woocommerce",
            "lines": [{"sku": "V-0000", "quantity": 3}],
            "financial_status": "pending",
        },
    )
    assert status == 201
    order_id = created["order"]["id"]
    status, _ = control(
        sandbox.url, "POST", f"/_control/orders/woocommerce/{order_id}", {"action": "pay"}
    )
    assert status == 200

    connector = connector_for(sandbox.platform_url("woocommerce"))
    created_delivery, paid_delivery = webhook_receiver.received
    for delivery in (created_delivery, paid_delivery):
        assert connector.verify_webhook(delivery.headers, delivery.body) is True
    created_event = connector.parse_webhook(created_delivery.headers, created_delivery.body)
    paid_event = connector.parse_webhook(paid_delivery.headers, paid_delivery.body)
    assert (created_event.topic, created_event.order.status) == ("order.created", "pending")
    assert (paid_event.topic, paid_event.order.status) == ("order.updated", "paid")
    assert [(ln.sku, ln.quantity) for ln in paid_event.order.lines] == [("V-0000", 3)]
    assert paid_delivery.headers["X-WC-Webhook-Resource"] == "order"
    assert paid_delivery.headers["X-WC-Webhook-Event"] == "updated"
    # the delivery id alone can repeat within a second; the body hash keeps them apart
    assert created_event.delivery_id != paid_event.delivery_id
    assert created_event.delivery_id.startswith(
        created_delivery.headers["X-WC-Webhook-Delivery-ID"]
    )


# --------------------------------------------------------------------------- signatures

FIXED_BODY = b'{"id":727,"status":"processing"}'
# WordPress decodes "&amp;" in the stored secret to "&" before signing.
FIXED_SECRET = "wc-fixed&amp;secret"
FIXED_SIGNATURE = "Yf2c7vCWpj0Ut5gitgcMrCph3TDljbBOD3/eTKoiRww="


def fixed_connector() -> WooCommerceConnector:
    return connector_for(BASE, webhook_secret=FIXED_SECRET)


def test_fixed_vector_signature_verifies() -> None:
    headers = {"x-wc-webhook-signature": FIXED_SIGNATURE}
    assert fixed_connector().verify_webhook(headers, FIXED_BODY) is True


def test_one_byte_change_of_body_fails() -> None:
    headers = {"X-WC-Webhook-Signature": FIXED_SIGNATURE}
    assert fixed_connector().verify_webhook(headers, FIXED_BODY.replace(b"727", b"728")) is False


def test_one_byte_change_of_signature_fails() -> None:
    tampered = FIXED_SIGNATURE[:-2] + "x="
    assert (
        fixed_connector().verify_webhook({"X-WC-Webhook-Signature": tampered}, FIXED_BODY) is False
    )


def test_save_time_ping_without_signature_fails() -> None:
    assert fixed_connector().verify_webhook({}, b"webhook_id=1") is False


def test_signature_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = mock.Mock(wraps=hmac.compare_digest)
    monkeypatch.setattr(woo_module.hmac, "compare_digest", spy)

    assert fixed_connector().verify_webhook({"X-WC-Webhook-Signature": FIXED_SIGNATURE}, FIXED_BODY)

    spy.assert_called_once()


# --------------------------------------------------------------------------- recorded


def simple_listings(count: int) -> list[ListingRef]:
    return [
        ListingRef(sku=f"R-{n}", product_id=str(100 + n), variant_id=str(100 + n))
        for n in range(count)
    ]


def batch_ok(ids: list[int]) -> dict[str, Any]:
    return {"update": [{"id": i, "sku": f"R-{i - 100}", "stock_quantity": 4} for i in ids]}


FAILURES = [
    pytest.param(
        {
            "status": 429,
            "json": {"code": "too_many_requests", "message": "slow down"},
            "headers": {"Retry-After": "7"},
        },
        FailureKind.RETRYABLE,
        "too_many_requests",
        7.0,
        id="429-retry-after",
    ),
    pytest.param(
        {
            "status": 401,
            "json": {
                "code": "woocommerce_rest_cannot_view",
                "message": "Sorry",
                "data": {"status": 401},
            },
        },
        FailureKind.AUTH,
        "woocommerce_rest_cannot_view",
        None,
        id="401",
    ),
    pytest.param(
        {
            "status": 503,
            "body": "<html><body>503 Service Unavailable</body></html>",
            "content_type": "text/html",
        },
        FailureKind.RETRYABLE,
        "503",
        None,
        id="503-html",
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
            "body": '{"update": [{"id": 102, "sku"',
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
            "body": "<!DOCTYPE html><html><head><title>Maintenance</title></head></html>",
            "content_type": "text/html",
        },
        FailureKind.PERMANENT,
        "html_response",
        None,
        id="html-page",
    ),
    pytest.param(
        {"status": 200, "json": {"create": []}},
        FailureKind.PERMANENT,
        "unexpected_response",
        None,
        id="unexpected-shape",
    ),
]


@pytest.mark.parametrize(("reply", "kind", "code", "retry_after"), FAILURES)
@responses.activate
def test_failure_of_second_call_is_classified_and_first_call_skus_still_reported(
    reply: dict[str, Any], kind: FailureKind, code: str, retry_after: float | None
) -> None:
    responses.post(f"{API}/products/batch", json=batch_ok([100, 101]))
    responses.post(f"{API}/products/batch", **reply)
    connector = connector_for(BASE, batch_size=2)

    results = connector.push_quantities([QuantityUpdate(ref, 4) for ref in simple_listings(4)])

    assert [r.sku for r in results] == ["R-0", "R-1", "R-2", "R-3"]
    assert [r.kind for r in results[:2]] == [FailureKind.OK, FailureKind.OK]
    assert [(r.kind, r.code) for r in results[2:]] == [(kind, code)] * 2
    assert results[2].retry_after == retry_after
    if code in ("malformed_json", "html_response"):
        assert reply["body"][:20] in results[2].message


@responses.activate
def test_per_item_errors_in_a_200_batch_are_reported_per_sku() -> None:
    # given WooCommerce's mirror response with one failed item
    responses.post(
        f"{API}/products/batch",
        json={
            "update": [
                {"id": 100, "sku": "R-0", "stock_quantity": 4},
                {
                    "id": 101,
                    "error": {
                        "code": "woocommerce_rest_product_invalid_id",
                        "message": "Invalid ID.",
                        "data": {"status": 400},
                    },
                },
                {"id": 102, "sku": "R-2", "stock_quantity": 4},
            ]
        },
    )

    results = fixed_connector().push_quantities(
        [QuantityUpdate(ref, 4) for ref in simple_listings(3)]
    )

    assert [(r.sku, r.kind, r.code) for r in results] == [
        ("R-0", FailureKind.OK, ""),
        ("R-1", FailureKind.PERMANENT, "woocommerce_rest_product_invalid_id"),
        ("R-2", FailureKind.OK, ""),
    ]
    request = responses.calls[0].request
    assert json.loads(request.body) == {
        "update": [{"id": 100 + n, "manage_stock": True, "stock_quantity": 4} for n in range(3)]
    }
    expected_auth = base64.b64encode(f"{WOO_KEY}:{WOO_SECRET}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"
    assert request.headers["User-Agent"].startswith("pimsync/")


@responses.activate
def test_413_for_an_oversized_batch_is_permanent() -> None:
    responses.post(
        f"{API}/products/batch",
        status=413,
        json={
            "code": "woocommerce_rest_request_entity_too_large",
            "message": "Unable to accept more than 100 items for this request.",
            "data": {"status": 413},
        },
    )

    results = fixed_connector().push_quantities(
        [QuantityUpdate(ref, 1) for ref in simple_listings(2)]
    )

    assert {(r.kind, r.code) for r in results} == {
        (FailureKind.PERMANENT, "woocommerce_rest_request_entity_too_large")
    }


@responses.activate
def test_prices_send_strings_and_a_sale_when_compare_at_is_higher() -> None:
    responses.post(f"{API}/products/batch", json=batch_ok([100, 101]))

    fixed_connector().push_prices(
        [
            PriceUpdate(simple_listings(2)[0], Decimal("8"), compare_at_price=Decimal("10")),
            PriceUpdate(simple_listings(2)[1], Decimal("8.5")),
        ]
    )

    assert json.loads(responses.calls[0].request.body)["update"] == [
        {"id": 100, "regular_price": "10.00", "sale_price": "8.00"},
        {"id": 101, "regular_price": "8.50", "sale_price": ""},
    ]


@responses.activate
def test_orders_request_uses_modified_after_one_second_early_and_total_pages() -> None:
    order = {
        "id": 5,
        "number": "5",
        "status": "completed",
        "currency": "EUR",
        "total": "20.00",
        "date_created_gmt": "2026-01-02T03:04:00",
        "date_modified_gmt": "2026-01-02T03:04:05",
        "billing": {"email": "x@y.z", "phone": ""},
        "line_items": [
            {
                "id": 9,
                "product_id": 7,
                "variation_id": 0,
                "sku": "A",
                "quantity": 2,
                "subtotal": "20.00",
                "price": 10,
            }
        ],
    }
    responses.get(
        f"{API}/orders", json=[order], headers={"X-WP-Total": "101", "X-WP-TotalPages": "2"}
    )

    page = fixed_connector().orders_since("2026-01-01T00:00:00Z", page_size=100)

    query = parse_qs(urlparse(responses.calls[0].request.url).query)
    assert query["modified_after"] == ["2025-12-31T23:59:59"]
    assert query["dates_are_gmt"] == ["true"]
    assert (query["orderby"], query["order"], query["per_page"], query["page"]) == (
        ["modified"],
        ["asc"],
        ["100"],
        ["1"],
    )
    assert page.next_cursor is not None
    assert page.high_water_mark == "2026-01-02T03:04:05Z"
    assert page.orders[0].status == "fulfilled"
    assert page.orders[0].lines[0].unit_price == Decimal("10.00")


@responses.activate
def test_read_listings_failure_is_reported_per_sku_not_raised() -> None:
    responses.get(f"{API}/products", body="not json at all", status=200)

    states = fixed_connector().read_listings(simple_listings(2))

    assert [(s.found, s.error.kind, s.error.code) for s in states] == [
        (False, FailureKind.PERMANENT, "malformed_json")
    ] * 2
    assert "not json at all" in states[0].error.message


def test_plain_http_shop_is_refused_by_test_connection() -> None:
    check = connector_for("http://shop.example.test").test_connection()
    assert check.ok is False
    assert "HTTPS" in check.message
