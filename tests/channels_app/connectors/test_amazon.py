"""AmazonConnector against recorded SP-API responses (no network)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from channels_app.connectors.amazon import AmazonConnector, carrier_fields
from channels_app.connectors.base import ChannelConfig, ListingRef, PriceUpdate, QuantityUpdate
from channels_app.connectors.errors import FailureKind, PermanentError

BASE = "https://sellingpartnerapi-na.amazon.test"
SELLER = "A2SELLER"
MARKET = "ATVPDKIKX0DER"
ITEMS = f"{BASE}/listings/2021-08-01/items/{SELLER}"
TOKEN = "Atza|lwa-access-token"


class FakeTime:
    """A clock that only moves when the connector sleeps (no real waiting)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_connector(fake: FakeTime | None = None, **platform_config: Any) -> AmazonConnector:
    fake = fake or FakeTime()
    config = ChannelConfig(
        channel_id=9,
        platform="amazon",
        base_url=BASE,
        credentials={"access_token": TOKEN},
        platform_config={
            "seller_id": SELLER,
            "marketplace_id": MARKET,
            "product_type": "PRODUCT",
            "pacing": False,
            **platform_config,
        },
    )
    return AmazonConnector(config, sleep=fake.sleep, clock=fake.clock)


def prices(*skus: str) -> list[PriceUpdate]:
    return [PriceUpdate(ListingRef(sku=s), Decimal("19.99")) for s in skus]


def accepted(sku: str) -> dict[str, Any]:
    return {"sku": sku, "status": "ACCEPTED", "submissionId": "abc", "issues": []}


def sent_json(call_index: int) -> Any:
    return json.loads(responses.calls[call_index].request.body)


@responses.activate
def test_patch_per_sku_sends_purchasable_offer_and_maps_status() -> None:
    # given
    responses.patch(f"{ITEMS}/SKU-0", json=accepted("SKU-0"))
    responses.patch(
        f"{ITEMS}/SKU%2F1",
        json={
            "sku": "SKU/1",
            "status": "INVALID",
            "submissionId": "def",
            "issues": [
                {"code": "90220", "message": "'value_with_tax' is required", "severity": "ERROR"},
                {"code": "18027", "message": "note", "severity": "WARNING"},
            ],
        },
    )
    # when
    results = make_connector().push_prices(prices("SKU-0", "SKU/1"))
    # then
    assert results[0].ok
    assert results[1].kind is FailureKind.PERMANENT
    assert results[1].code == "90220"
    request = responses.calls[0].request
    assert request.headers["x-amz-access-token"] == TOKEN
    assert request.params == {"marketplaceIds": MARKET}
    assert sent_json(0) == {
        "productType": "PRODUCT",
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/purchasable_offer",
                "value": [
                    {
                        "marketplace_id": MARKET,
                        "currency": "USD",
                        "audience": "ALL",
                        "our_price": [{"schedule": [{"value_with_tax": 19.99}]}],
                    }
                ],
            }
        ],
    }


@responses.activate
def test_quantity_uses_merge_on_fulfillment_availability() -> None:
    responses.patch(f"{ITEMS}/SKU-0", json=accepted("SKU-0"))
    results = make_connector().push_quantities([QuantityUpdate(ListingRef(sku="SKU-0"), 12)])
    assert results[0].ok
    assert sent_json(0)["patches"] == [
        {
            "op": "merge",
            "path": "/attributes/fulfillment_availability",
            "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 12}],
        }
    ]


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        (
            {
                "json": {
                    "errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota"}]
                },
                "status": 429,
                "headers": {"x-amzn-RateLimit-Limit": "5.0"},
            },
            FailureKind.RETRYABLE,
            "QuotaExceeded",
        ),
        (
            {"json": {"errors": [{"code": "InternalFailure"}]}, "status": 503},
            FailureKind.RETRYABLE,
            "InternalFailure",
        ),
        ({"body": requests.ReadTimeout("read timed out")}, FailureKind.RETRYABLE, "timeout"),
        (
            {"body": '{"sku": "SKU-0", "status": "ACC', "status": 200},
            FailureKind.PERMANENT,
            "malformed_json",
        ),
        (
            {
                "body": "<html><body>Access denied</body></html>",
                "status": 200,
                "content_type": "text/html",
            },
            FailureKind.PERMANENT,
            "html_response",
        ),
    ],
    ids=["429-quota", "503", "read-timeout", "malformed-json", "html-page"],
)
@responses.activate
def test_one_skus_failure_is_classified_and_the_others_still_reported(
    answer: dict[str, Any], kind: FailureKind, code: str
) -> None:
    responses.patch(f"{ITEMS}/SKU-0", **answer)
    responses.patch(f"{ITEMS}/SKU-1", json=accepted("SKU-1"))
    responses.patch(f"{ITEMS}/SKU-2", json=accepted("SKU-2"))
    results = make_connector().push_prices(prices("SKU-0", "SKU-1", "SKU-2"))
    assert results[0].kind is kind
    assert results[0].code == code
    assert [r.ok for r in results[1:]] == [True, True]


@responses.activate
def test_quota_exceeded_without_retry_after_waits_one_token_of_the_rate() -> None:
    responses.patch(
        f"{ITEMS}/SKU-0",
        json={"errors": [{"code": "QuotaExceeded", "message": "quota"}]},
        status=429,
        headers={"x-amzn-RateLimit-Limit": "5.0"},
    )
    results = make_connector(pacing=True).push_prices(prices("SKU-0"))
    assert results[0].kind is FailureKind.RETRYABLE
    assert results[0].retry_after == pytest.approx(1 / 4.5)  # one token at 90% of 5 rps


@responses.activate
def test_401_stops_the_batch_and_reports_auth_for_every_sku() -> None:
    responses.patch(
        f"{ITEMS}/SKU-0",
        json={"errors": [{"code": "Unauthorized", "message": "Access denied"}]},
        status=403,
    )
    results = make_connector().push_prices(prices("SKU-0", "SKU-1", "SKU-2"))
    assert [r.kind for r in results] == [FailureKind.AUTH] * 3
    assert len(responses.calls) == 1  # no point in calling again with a bad token


@responses.activate
def test_pacing_spends_the_documented_rate_and_follows_the_rate_header() -> None:
    # given: patchListingsItem is 5 rps, burst 5; Amazon later announces 2 rps
    for i in range(12):
        headers = {"x-amzn-RateLimit-Limit": "2.0"} if i == 6 else {}
        responses.patch(f"{ITEMS}/SKU-{i}", json=accepted(f"SKU-{i}"), headers=headers)
    fake = FakeTime()
    connector = make_connector(fake, pacing=True)
    # when
    results = connector.push_prices(prices(*[f"SKU-{i}" for i in range(12)]))
    # then: paced at 90% of the rate with one token of slack: 4 at once, then
    # 1/4.5 s apart until the header arrives (7th call), then 1/1.8 s apart
    assert all(r.ok for r in results)
    assert fake.slept == pytest.approx([1 / 4.5] * 3 + [1 / 1.8] * 5)


def feed_report(issues: list[dict[str, Any]]) -> bytes:
    report = {
        "header": {"sellerId": SELLER, "version": "2.0", "feedId": "F1"},
        "issues": issues,
        "summary": {"errors": len(issues), "warnings": 0, "messagesProcessed": 3},
    }
    return gzip.compress(json.dumps(report).encode())


def register_feed(final_status: str, report: bytes | None) -> None:
    upload = "https://tortuga-prod-na.s3.test/upload?X-Amz-Signature=presigned"
    responses.post(
        f"{BASE}/feeds/2021-06-30/documents",
        json={"feedDocumentId": "DOC-IN", "url": upload},
        status=201,
        match=[matchers.json_params_matcher({"contentType": "application/json; charset=UTF-8"})],
    )
    responses.put(upload, body="")
    responses.post(f"{BASE}/feeds/2021-06-30/feeds", json={"feedId": "F1"}, status=202)
    responses.get(f"{BASE}/feeds/2021-06-30/feeds/F1", json={"processingStatus": "IN_PROGRESS"})
    done: dict[str, Any] = {"feedId": "F1", "processingStatus": final_status}
    if report is not None:
        done["resultFeedDocumentId"] = "DOC-OUT"
    responses.get(f"{BASE}/feeds/2021-06-30/feeds/F1", json=done)
    download = "https://tortuga-prod-na.s3.test/report?X-Amz-Signature=presigned"
    responses.get(
        f"{BASE}/feeds/2021-06-30/documents/DOC-OUT",
        json={"feedDocumentId": "DOC-OUT", "url": download, "compressionAlgorithm": "GZIP"},
    )
    if report is not None:
        responses.get(download, body=report)


@responses.activate
def test_large_push_goes_through_a_feed_and_maps_issues_by_message_id() -> None:
    # given: threshold 2, so 3 SKUs make one JSON_LISTINGS_FEED
    register_feed(
        "DONE",
        feed_report(
            [
                {
                    "messageId": 2,
                    "sku": "SKU-1",
                    "code": "90220",
                    "severity": "ERROR",
                    "message": "bad",
                },
                {
                    "messageId": 3,
                    "sku": "SKU-2",
                    "code": "18027",
                    "severity": "WARNING",
                    "message": "ok",
                },
            ]
        ),
    )
    fake = FakeTime()
    connector = make_connector(fake, feed_threshold=2, feed_poll_seconds=5)
    # when
    results = connector.push_quantities(
        [QuantityUpdate(ListingRef(sku=f"SKU-{i}"), i) for i in range(3)]
    )
    # then
    assert [r.kind for r in results] == [FailureKind.OK, FailureKind.PERMANENT, FailureKind.OK]
    assert results[1].code == "90220"
    upload = responses.calls[1].request
    assert "x-amz-access-token" not in upload.headers  # a pre-signed URL gets no token
    document = json.loads(upload.body)
    assert document["header"] == {"sellerId": SELLER, "version": "2.0", "issueLocale": "en_US"}
    assert [m["messageId"] for m in document["messages"]] == [1, 2, 3]
    assert document["messages"][2] == {
        "messageId": 3,
        "sku": "SKU-2",
        "operationType": "PATCH",
        "productType": "PRODUCT",
        "patches": [
            {
                "op": "merge",
                "path": "/attributes/fulfillment_availability",
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 2}],
            }
        ],
    }
    assert sent_json(2) == {
        "feedType": "JSON_LISTINGS_FEED",
        "marketplaceIds": [MARKET],
        "inputFeedDocumentId": "DOC-IN",
    }
    assert fake.slept == [5]  # one poll while IN_PROGRESS


@responses.activate
def test_fatal_feed_fails_every_sku_permanently() -> None:
    register_feed(
        "FATAL",
        feed_report(
            [{"messageId": 0, "code": "4000003", "severity": "ERROR", "message": "bad doc"}]
        ),
    )
    results = make_connector(feed_threshold=1, feed_poll_seconds=0).push_prices(prices("A", "B"))
    assert [r.kind for r in results] == [FailureKind.PERMANENT] * 2
    assert {r.code for r in results} == {"feed_fatal"}
    assert "bad doc" in results[0].message


@responses.activate
def test_cancelled_feed_is_retryable() -> None:
    register_feed("CANCELLED", None)
    results = make_connector(feed_threshold=1, feed_poll_seconds=0).push_prices(prices("A", "B"))
    assert [r.kind for r in results] == [FailureKind.RETRYABLE] * 2
    assert {r.code for r in results} == {"feed_cancelled"}


@responses.activate
def test_feed_still_processing_after_max_wait_is_retryable() -> None:
    register_feed("IN_PROGRESS", None)
    fake = FakeTime()
    connector = make_connector(
        fake, feed_threshold=1, feed_poll_seconds=10, feed_max_wait_seconds=5
    )
    results = connector.push_prices(prices("A", "B"))
    assert {r.code for r in results} == {"feed_pending"}
    assert {r.kind for r in results} == {FailureKind.RETRYABLE}


@responses.activate
def test_create_feed_quota_exceeded_fails_the_whole_feed_retryably() -> None:
    responses.post(
        f"{BASE}/feeds/2021-06-30/documents",
        json={"errors": [{"code": "QuotaExceeded", "message": "quota"}]},
        status=429,
    )
    results = make_connector(feed_threshold=1).push_prices(prices("A", "B"))
    assert [r.kind for r in results] == [FailureKind.RETRYABLE] * 2
    assert {r.code for r in results} == {"QuotaExceeded"}


def search_query(skus: list[str]) -> dict[str, str]:
    return {
        "marketplaceIds": MARKET,
        "identifiers": ",".join(skus),
        "identifiersType": "SKU",
        "pageSize": "20",
        "includedData": "summaries,offers,fulfillmentAvailability",
    }


@responses.activate
def test_read_listings_searches_20_skus_per_call_and_parses_offer_price_and_quantity() -> None:
    skus = [f"SKU-{i}" for i in range(23)]
    first = responses.get(
        ITEMS,
        match=[matchers.query_param_matcher(search_query(skus[:20]))],
        json={
            "numberOfResults": 1,
            "items": [
                {
                    "sku": "SKU-0",
                    "offers": [
                        {"marketplaceId": MARKET, "offerType": "B2B", "price": {"amount": "1.00"}},
                        {
                            "marketplaceId": MARKET,
                            "offerType": "B2C",
                            "price": {"currencyCode": "USD", "amount": "24.50"},
                        },
                    ],
                    "fulfillmentAvailability": [
                        {"fulfillmentChannelCode": "AMAZON_NA", "quantity": 99},
                        {"fulfillmentChannelCode": "DEFAULT", "quantity": 3},
                    ],
                }
            ],
        },
    )
    second = responses.get(
        ITEMS,
        match=[matchers.query_param_matcher(search_query(skus[20:]))],
        json={"errors": [{"code": "QuotaExceeded"}]},
        status=429,
    )
    states = make_connector().read_listings([ListingRef(sku=sku) for sku in skus])
    assert first.call_count == 1
    assert second.call_count == 1
    assert (states[0].price, states[0].quantity, states[0].found) == (Decimal("24.50"), 3, True)
    assert [s.found for s in states[1:20]] == [False] * 19
    assert [s.sku for s in states] == skus
    assert all(s.error is not None and s.error.kind is FailureKind.RETRYABLE for s in states[20:])


def amazon_order(
    order_id: str, status: str, updated: str, *, shipped: int = 0, unit_price: str | None = "20.00"
) -> dict[str, Any]:
    """An Orders 2026-01-01 order with includedData BUYER, PROCEEDS, FULFILLMENT."""
    product: dict[str, Any] = {"asin": "B000000001", "sellerSku": "SKU-1"}
    if unit_price is not None:
        product["price"] = {"unitPrice": {"amount": unit_price, "currencyCode": "USD"}}
    order: dict[str, Any] = {
        "orderId": order_id,
        "createdTime": "2026-05-01T10:00:00Z",
        "lastUpdatedTime": updated,
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": MARKET},
        "buyer": {"buyerEmail": "x@marketplace.amazon.com"},
        "fulfillment": {"fulfillmentStatus": status, "fulfilledBy": "MERCHANT"},
        "orderItems": [
            {
                "orderItemId": f"{order_id}-I1",
                "quantityOrdered": 2,
                "product": product,
                "proceeds": {"proceedsTotal": {"amount": "40.00", "currencyCode": "USD"}},
                "fulfillment": {"quantityFulfilled": shipped, "quantityUnfulfilled": 2 - shipped},
            }
        ],
    }
    if status != "PENDING":  # pending orders carry no proceeds yet
        order["proceeds"] = {"grandTotal": {"amount": "40.00", "currencyCode": "USD"}}
    return order


@responses.activate
def test_orders_since_searches_orders_2026_and_pages_with_the_pagination_token() -> None:
    # given
    orders_url = f"{BASE}/orders/2026-01-01/orders"
    query = {
        "marketplaceIds": MARKET,
        "lastUpdatedAfter": "2026-05-01T00:00:00Z",
        "maxResultsPerPage": "2",
        "includedData": "BUYER,PROCEEDS,FULFILLMENT",
    }
    responses.get(
        orders_url,
        match=[matchers.query_param_matcher(query)],
        json={
            "orders": [
                amazon_order("111-1", "UNSHIPPED", "2026-05-02T10:00:00Z"),
                amazon_order("111-2", "PENDING", "2026-05-03T10:00:00Z", unit_price=None),
            ],
            "pagination": {"nextToken": "tok+/="},
        },
    )
    responses.get(
        orders_url,
        match=[matchers.query_param_matcher({**query, "paginationToken": "tok+/="})],
        json={"orders": [amazon_order("111-3", "CANCELLED", "2026-05-02T12:00:00Z")]},
    )
    connector = make_connector()
    # when
    first = connector.orders_since("2026-05-01T00:00:00Z", page_size=2)
    second = connector.orders_since(first.next_cursor, page_size=2)
    # then: items come with the orders (no getOrderItems call)
    assert len(responses.calls) == 2
    assert [(o.external_id, o.status) for o in first.orders] == [
        ("111-1", "paid"),
        ("111-2", "pending"),
    ]
    assert first.orders[0].total == Decimal("40.00")
    assert first.orders[1].total == Decimal("0")  # pending orders carry no proceeds
    line = first.orders[0].lines[0]
    assert (line.sku, line.quantity, line.unit_price) == ("SKU-1", 2, Decimal("20.00"))
    assert line.external_product_id == "B000000001"
    # without a unit price, the item's proceeds over its quantity
    assert first.orders[1].lines[0].unit_price == Decimal("20.00")
    assert first.orders[0].customer_email == "x@marketplace.amazon.com"
    assert first.orders[0].updated_at == datetime(2026, 5, 2, 10, tzinfo=UTC)
    assert [(o.external_id, o.status) for o in second.orders] == [("111-3", "cancelled")]
    assert second.next_cursor is None
    assert second.high_water_mark == "2026-05-03T10:00:00Z"


@responses.activate
def test_fulfil_order_reads_the_order_and_confirms_shipment_of_what_is_unshipped() -> None:
    responses.get(
        f"{BASE}/orders/2026-01-01/orders/111-1",
        match=[matchers.query_param_matcher({"includedData": "FULFILLMENT"})],
        json={
            "order": amazon_order("111-1", "PARTIALLY_SHIPPED", "2026-05-02T10:00:00Z", shipped=1)
        },
    )
    responses.post(f"{BASE}/orders/v0/orders/111-1/shipmentConfirmation", status=204, body="")
    result = make_connector().fulfil_order("111-1", tracking_number="1Z9", carrier="ups")
    assert result.ok
    body = sent_json(1)
    assert body["marketplaceId"] == MARKET
    package = body["packageDetail"]
    assert package["carrierCode"] == "UPS"  # a listed carrier by its Amazon code
    assert "carrierName" not in package
    assert package["trackingNumber"] == "1Z9"
    assert package["orderItems"] == [{"orderItemId": "111-1-I1", "quantity": 1}]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("UPS", {"carrierCode": "UPS"}),
        ("fedex", {"carrierCode": "FedEx"}),
        ("Federal Express", {"carrierCode": "FedEx"}),
        ("royal mail", {"carrierCode": "Royal Mail"}),
        ("DHL Express", {"carrierCode": "DHL"}),
        ("Speedy Couriers Ltd", {"carrierCode": "Other", "carrierName": "Speedy Couriers Ltd"}),
    ],
)
def test_carrier_fields_map_known_names_to_codes_and_the_rest_to_other_with_a_name(
    typed: str, expected: dict[str, str]
) -> None:
    assert carrier_fields(typed) == expected


def test_fulfil_needs_tracking_and_a_carrier_and_cancel_is_unsupported() -> None:
    connector = make_connector()
    assert connector.fulfil_order("111-1").code == "tracking_required"
    assert connector.fulfil_order("111-1", tracking_number="1Z9").code == "carrier_required"
    cancel = connector.cancel_order("111-1", reason="oversell")
    assert cancel.kind is FailureKind.PERMANENT
    assert cancel.code == "unsupported"


def test_notifications_come_from_sqs_not_http() -> None:
    message = {
        "NotificationType": "ORDER_CHANGE",
        "PayloadVersion": "1.0",
        "EventTime": "2026-05-02T10:00:00Z",
        "Payload": {"OrderChangeNotification": {"AmazonOrderId": "111-1"}},
        "NotificationMetadata": {"NotificationId": "n-42", "SubscriptionId": "s"},
    }
    connector = make_connector()
    raw = json.dumps(message).encode()
    assert connector.verify_webhook({}, raw) is False
    event = connector.parse_webhook({}, raw)
    assert event.delivery_id == "n-42"
    assert event.topic == "ORDER_CHANGE"
    assert event.occurred_at == datetime(2026, 5, 2, 10, tzinfo=UTC)
    assert event.order is None
    with pytest.raises(PermanentError):
        connector.parse_webhook({}, b"<html>")
    with pytest.raises(PermanentError):
        connector.parse_webhook({}, b'{"NotificationType": "ORDER_CHANGE"}')
