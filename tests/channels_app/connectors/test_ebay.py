"""EbayConnector against recorded eBay responses (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from channels_app.connectors.base import ChannelConfig, ListingRef, PriceUpdate, QuantityUpdate
from channels_app.connectors.ebay import EbayConnector
from channels_app.connectors.errors import (
    POLL_WINDOW_EXCEEDED,
    AuthError,
    FailureKind,
    PermanentError,
)
from channels_app.connectors.http import decode_page_cursor, format_timestamp

BASE = "https://api.ebay.test"
BULK = f"{BASE}/sell/inventory/v1/bulk_update_price_quantity"
BULK_GET = f"{BASE}/sell/inventory/v1/bulk_get_inventory_item"
OFFER = f"{BASE}/sell/inventory/v1/offer"
ORDERS = f"{BASE}/sell/fulfillment/v1/order"
TOKEN = "v^1.1#ebay-user-token"


def make_connector(**platform_config: Any) -> EbayConnector:
    config = ChannelConfig(
        channel_id=7,
        platform="ebay",
        base_url=BASE + "/",
        credentials={"access_token": TOKEN},
        platform_config={
            "marketplace_id": "EBAY_US",
            "rate_limit_per_second": 0,
            **platform_config,
        },
    )
    return EbayConnector(config)


def price_updates(n: int) -> list[PriceUpdate]:
    return [
        PriceUpdate(ListingRef(sku=f"SKU-{i}", offer_id=f"OF-{i}"), Decimal("10.5") + i)
        for i in range(n)
    ]


def ok_answer(sku: str, offer_id: str = "") -> dict[str, Any]:
    answer: dict[str, Any] = {"statusCode": 200, "sku": sku, "errors": [], "warnings": []}
    if offer_id:
        answer["offerId"] = offer_id
    return answer


def sent_json(call_index: int) -> Any:
    return json.loads(responses.calls[call_index].request.body)


@responses.activate
def test_push_prices_splits_at_25_and_reports_partial_failure_per_sku() -> None:
    # given: 30 SKUs -> a call of 25 and a call of 5; the first answers 207 with two failures
    first = [ok_answer(f"SKU-{i}", f"OF-{i}") for i in range(25)]
    first[3] = {
        "statusCode": 400,
        "sku": "SKU-3",
        "offerId": "OF-3",
        "errors": [{"errorId": 25709, "message": "Invalid value for price"}],
    }
    first[4] = {
        "statusCode": 500,
        "sku": "SKU-4",
        "offerId": "OF-4",
        "errors": [{"errorId": 25001, "message": "A system error has occurred"}],
    }
    responses.post(BULK, json={"responses": first}, status=207)
    responses.post(BULK, json={"responses": [ok_answer(f"SKU-{i}") for i in range(25, 30)]})
    connector = make_connector()
    # when
    results = connector.push_prices(price_updates(30))
    # then
    assert [r.sku for r in results] == [f"SKU-{i}" for i in range(30)]
    assert results[3].kind is FailureKind.PERMANENT
    assert results[3].code == "25709"
    assert results[4].kind is FailureKind.RETRYABLE
    assert results[4].code == "25001"
    assert sum(r.ok for r in results) == 28
    assert len(responses.calls) == 2
    body = sent_json(0)
    assert len(body["requests"]) == 25
    assert len(sent_json(1)["requests"]) == 5
    assert body["requests"][0] == {
        "sku": "SKU-0",
        "offers": [{"offerId": "OF-0", "price": {"value": "10.50", "currency": "USD"}}],
    }
    headers = responses.calls[0].request.headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["X-EBAY-C-MARKETPLACE-ID"] == "EBAY_US"


@responses.activate
def test_429_with_retry_after_marks_that_batch_retryable_and_keeps_the_others() -> None:
    responses.post(BULK, json={"responses": [ok_answer(f"SKU-{i}") for i in range(25)]})
    responses.post(
        BULK,
        json={"errors": [{"errorId": 2001, "message": "Too many requests"}]},
        status=429,
        headers={"Retry-After": "12"},
    )
    results = make_connector().push_prices(price_updates(30))
    assert all(r.ok for r in results[:25])
    for result in results[25:]:
        assert result.kind is FailureKind.RETRYABLE
        assert result.retry_after == 12.0
        assert result.code == "2001"
        assert result.http_status == 429


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        (
            {
                "json": {"errors": [{"errorId": 1001, "message": "Invalid access token"}]},
                "status": 401,
            },
            FailureKind.AUTH,
            "1001",
        ),
        ({"body": "Service Unavailable", "status": 503}, FailureKind.RETRYABLE, "503"),
        ({"body": requests.ReadTimeout("read timed out")}, FailureKind.RETRYABLE, "timeout"),
        (
            {"body": '{"responses": [{"statusCode": 200, "sku"', "status": 200},
            FailureKind.PERMANENT,
            "malformed_json",
        ),
        (
            {
                "body": "<!DOCTYPE html><html><body><h1>Gateway error</h1></body></html>",
                "status": 200,
                "content_type": "text/html",
            },
            FailureKind.PERMANENT,
            "html_response",
        ),
    ],
    ids=["401", "503", "read-timeout", "malformed-json", "html-page"],
)
@responses.activate
def test_whole_call_failures_are_classified_for_every_sku_of_that_call(
    answer: dict[str, Any], kind: FailureKind, code: str
) -> None:
    # given: the first call (25 SKUs) fails, the second (5 SKUs) succeeds
    responses.post(BULK, **answer)
    responses.post(BULK, json={"responses": [ok_answer(f"SKU-{i}") for i in range(25, 30)]})
    # when
    results = make_connector().push_prices(price_updates(30))
    # then
    assert [r.kind for r in results[:25]] == [kind] * 25
    assert {r.code for r in results[:25]} == {code}
    assert all(r.ok for r in results[25:])


@responses.activate
def test_a_sku_missing_from_the_answer_is_a_permanent_failure() -> None:
    responses.post(BULK, json={"responses": [ok_answer("SKU-0")]})
    results = make_connector().push_prices(price_updates(2))
    assert results[0].ok
    assert results[1].kind is FailureKind.PERMANENT
    assert results[1].code == "missing_response"


@responses.activate
def test_refused_multi_sku_batch_falls_back_to_one_sku_per_call() -> None:
    # given: eBay rejects a 3-SKU request as a whole (the "one SKU per call" reading)
    responses.post(
        BULK,
        json={"errors": [{"errorId": 25002, "message": "Only one SKU per request"}]},
        status=400,
    )
    for i in range(3):
        responses.post(BULK, json={"responses": [ok_answer(f"SKU-{i}")]})
    connector = make_connector()
    # when
    results = connector.push_prices(price_updates(3))
    # then: every SKU went out alone and succeeded
    assert all(r.ok for r in results)
    assert [len(sent_json(i)["requests"]) for i in range(4)] == [3, 1, 1, 1]


@responses.activate
def test_push_quantities_sets_item_and_offer_and_looks_up_unknown_offers() -> None:
    # given: SKU-A knows its offer, SKU-B has one to look up, SKU-C has none
    responses.get(
        OFFER,
        match=[matchers.query_param_matcher({"sku": "SKU-B", "marketplace_id": "EBAY_US"})],
        json={"total": 1, "offers": [{"offerId": "OF-B", "marketplaceId": "EBAY_US"}]},
    )
    responses.get(
        OFFER,
        match=[matchers.query_param_matcher({"sku": "SKU-C", "marketplace_id": "EBAY_US"})],
        json={"errors": [{"errorId": 25713, "message": "This Offer is not available."}]},
        status=404,
    )
    responses.post(BULK, json={"responses": [ok_answer(s) for s in ("SKU-A", "SKU-B", "SKU-C")]})
    items = [
        QuantityUpdate(ListingRef(sku="SKU-A", offer_id="OF-A"), 4),
        QuantityUpdate(ListingRef(sku="SKU-B"), 0),
        QuantityUpdate(ListingRef(sku="SKU-C"), -2),
    ]
    # when
    results = make_connector().push_quantities(items)
    # then
    assert all(r.ok for r in results)
    assert sent_json(2)["requests"] == [
        {
            "sku": "SKU-A",
            "shipToLocationAvailability": {"quantity": 4},
            "offers": [{"offerId": "OF-A", "availableQuantity": 4}],
        },
        {
            "sku": "SKU-B",
            "shipToLocationAvailability": {"quantity": 0},
            "offers": [{"offerId": "OF-B", "availableQuantity": 0}],
        },
        {"sku": "SKU-C", "shipToLocationAvailability": {"quantity": 0}},
    ]


@responses.activate
def test_price_push_without_an_offer_fails_that_sku_only() -> None:
    responses.get(OFFER, json={"total": 0, "offers": []})
    responses.post(BULK, json={"responses": [ok_answer("SKU-1")]})
    items = [
        PriceUpdate(ListingRef(sku="SKU-0"), Decimal("5")),
        PriceUpdate(ListingRef(sku="SKU-1", offer_id="OF-1"), Decimal("6")),
    ]
    results = make_connector().push_prices(items)
    assert results[0].kind is FailureKind.PERMANENT
    assert results[0].code == "no_offer"
    assert results[1].ok


@responses.activate
def test_read_listings_combines_item_quantity_and_offer_price() -> None:
    responses.post(
        BULK_GET,
        status=207,
        json={
            "responses": [
                {
                    "statusCode": 200,
                    "sku": "L-1",
                    "inventoryItem": {
                        "sku": "L-1",
                        "availability": {"shipToLocationAvailability": {"quantity": 9}},
                    },
                },
                {
                    "statusCode": 404,
                    "sku": "SKU-2",
                    "errors": [{"errorId": 25702, "message": "SKU not found"}],
                },
            ]
        },
    )
    responses.get(
        OFFER,
        json={
            "offers": [
                {
                    "offerId": "OF-1",
                    "marketplaceId": "EBAY_US",
                    "availableQuantity": 7,
                    "pricingSummary": {"price": {"value": "19.99", "currency": "USD"}},
                }
            ]
        },
    )
    listings = [ListingRef(sku="SKU-1", listing_sku="L-1"), ListingRef(sku="SKU-2")]
    states = make_connector().read_listings(listings)
    assert states[0].sku == "SKU-1"
    assert states[0].price == Decimal("19.99")
    assert states[0].quantity == 7  # a buyer sees the smaller of item and offer quantity
    assert states[1].found is False
    assert len(responses.calls) == 2  # no offer look-up for the missing SKU


def ebay_order(order_id: str, modified: str, **extra: Any) -> dict[str, Any]:
    order = {
        "orderId": order_id,
        "creationDate": "2026-05-15T08:00:00.000Z",
        "lastModifiedDate": modified,
        "orderFulfillmentStatus": "NOT_STARTED",
        "orderPaymentStatus": "PAID",
        "cancelStatus": {"cancelState": "NONE_REQUESTED"},
        "buyer": {"buyerRegistrationAddress": {"email": "b@example.com"}},
        "pricingSummary": {"total": {"value": "30.00", "currency": "USD"}},
        "lineItems": [
            {
                "lineItemId": f"{order_id}-1",
                "legacyItemId": "110",
                "sku": "SKU-1",
                "quantity": 3,
                "lineItemCost": {"value": "30.00", "currency": "USD"},
            }
        ],
    }
    order.update(extra)
    return order


@responses.activate
def test_orders_since_pages_with_offset_and_tracks_high_water_mark() -> None:
    # given
    since = format_timestamp(datetime.now(UTC) - timedelta(days=1), millis=True)
    responses.get(
        ORDERS,
        match=[
            matchers.query_param_matcher(
                {"filter": f"lastmodifieddate:[{since}..]", "limit": "2", "offset": "0"}
            )
        ],
        json={
            "total": 3,
            "offset": 0,
            "limit": 2,
            "next": "x",
            "orders": [
                ebay_order("O-1", "2026-05-15T09:00:00.000Z"),
                ebay_order("O-2", "2026-05-15T10:00:00.000Z", orderPaymentStatus="PENDING"),
            ],
        },
    )
    responses.get(
        ORDERS,
        match=[
            matchers.query_param_matcher(
                {"filter": f"lastmodifieddate:[{since}..]", "limit": "2", "offset": "2"}
            )
        ],
        json={
            "total": 3,
            "offset": 2,
            "limit": 2,
            "orders": [
                ebay_order(
                    "O-3", "2026-05-15T09:30:00.000Z", cancelStatus={"cancelState": "CANCELED"}
                )
            ],
        },
    )
    connector = make_connector()
    # when
    first = connector.orders_since(since, page_size=2)
    second = connector.orders_since(first.next_cursor, page_size=2)
    # then
    assert [o.external_id for o in first.orders] == ["O-1", "O-2"]
    assert [o.status for o in first.orders] == ["paid", "pending"]
    assert first.orders[0].lines[0].unit_price == Decimal("10.00")
    assert first.orders[0].lines[0].quantity == 3
    assert first.orders[0].customer_email == "b@example.com"
    assert first.next_cursor is not None
    assert decode_page_cursor(first.next_cursor) == {
        "since": since,
        "offset": 2,
        "hwm": "2026-05-15T10:00:00.000Z",
    }
    assert [o.status for o in second.orders] == ["cancelled"]
    assert second.next_cursor is None
    assert second.high_water_mark == "2026-05-15T10:00:00.000Z"


@responses.activate
def test_orders_since_reads_back_as_far_as_the_cursor_within_two_years() -> None:
    # given: a cursor 400 days old (after a long outage), beyond the old 90-day clamp
    since = format_timestamp(datetime.now(UTC) - timedelta(days=400), millis=True)
    responses.get(ORDERS, json={"total": 0, "orders": []})
    # when
    page = make_connector().orders_since(since, page_size=500)
    # then: the filter starts at the cursor, and the page size stays within eBay's 200
    params = responses.calls[0].request.params
    assert params["filter"] == f"lastmodifieddate:[{since}..]"
    assert params["limit"] == "200"
    assert page.orders == []
    assert page.next_cursor is None


@responses.activate
def test_orders_since_refuses_a_cursor_beyond_two_years_instead_of_skipping() -> None:
    with pytest.raises(PermanentError) as refused:
        make_connector().orders_since("2020-01-01T00:00:00Z")
    assert refused.value.code == POLL_WINDOW_EXCEEDED
    assert "2020-01-01T00:00:00Z" in refused.value.message
    assert len(responses.calls) == 0  # nothing read, nothing skipped


@responses.activate
def test_orders_since_raises_the_classified_error() -> None:
    responses.get(ORDERS, json={"errors": [{"errorId": 1001, "message": "bad token"}]}, status=401)
    with pytest.raises(AuthError):
        make_connector().orders_since(None)


@responses.activate
def test_cancel_order_uses_post_order_api() -> None:
    responses.post(
        f"{BASE}/post-order/v2/cancellation",
        json={"cancelId": "5000012345"},
        status=201,
        match=[
            matchers.json_params_matcher(
                {"legacyOrderId": "12-345-678", "cancelReason": "OUT_OF_STOCK_OR_CANNOT_FULFILL"}
            )
        ],
    )
    result = make_connector().cancel_order("12-345-678", reason="oversell")
    assert result.ok
    headers = responses.calls[0].request.headers
    assert headers["Authorization"] == f"IAF {TOKEN}"
    assert headers["X-EBAY-C-MARKETPLACE-ID"] == "EBAY-US"


@responses.activate
def test_cancel_order_not_eligible_is_permanent() -> None:
    responses.post(
        f"{BASE}/post-order/v2/cancellation",
        json={"orderEligibilityResult": {"eligible": False, "failureReason": ["SHIPPED"]}},
    )
    result = make_connector().cancel_order("12-345-678")
    assert result.kind is FailureKind.PERMANENT
    assert result.code == "cancel_not_eligible"


@responses.activate
def test_fulfil_order_ships_the_open_lines() -> None:
    order = ebay_order("O-9", "2026-05-15T09:00:00.000Z")
    order["lineItems"].append(
        {"lineItemId": "done", "sku": "X", "quantity": 1, "lineItemFulfillmentStatus": "FULFILLED"}
    )
    responses.get(f"{ORDERS}/O-9", json=order)
    responses.post(f"{ORDERS}/O-9/shipping_fulfillment", status=201, body="")
    result = make_connector().fulfil_order("O-9", tracking_number="1Z999", carrier="UPS")
    assert result.ok
    body = sent_json(1)
    assert body["lineItems"] == [{"lineItemId": "O-9-1", "quantity": 3}]
    assert body["trackingNumber"] == "1Z999"
    assert body["shippingCarrierCode"] == "UPS"
    assert body["shippedDate"].endswith("Z")


def test_fulfil_order_needs_carrier_and_tracking_together() -> None:
    result = make_connector().fulfil_order("O-9", tracking_number="1Z999")
    assert result.kind is FailureKind.PERMANENT
    assert result.code == "tracking_incomplete"


def test_webhooks_are_not_verifiable_and_not_parsed() -> None:
    connector = make_connector()
    assert connector.verify_webhook({"X-EBAY-SIGNATURE": "e30="}, b"{}") is False
    with pytest.raises(PermanentError, match="polling"):
        connector.parse_webhook({}, b"{}")


@responses.activate
def test_test_connection_reports_auth_failure() -> None:
    responses.get(
        f"{BASE}/sell/inventory/v1/inventory_item",
        json={"errors": [{"errorId": 1001, "message": "Invalid access token"}]},
        status=401,
    )
    check = make_connector().test_connection()
    assert check.ok is False
    assert "auth" in check.message
    assert TOKEN not in check.message
