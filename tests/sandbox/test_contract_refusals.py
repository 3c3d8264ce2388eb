"""The sandbox refuses what the platforms refuse, in each platform's error shape, and
records every refusal (sandbox/contracts/ holds the definitions it checks against)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import requests

from channels_app.connectors.http import format_timestamp
from sandbox.server import RunningSandbox
from tests.support.sandbox import (
    AMAZON_SELLER,
    AMAZON_TOKEN,
    EBAY_TOKEN,
    control,
    graphql,
    seed_listings,
    woo,
)

EBAY_ORDERS = "/sell/fulfillment/v1/order"


def ebay_get(sandbox: RunningSandbox, path: str, **params: object) -> requests.Response:
    return requests.get(
        sandbox.platform_url("ebay") + path,
        params=params,
        headers={"Authorization": f"Bearer {EBAY_TOKEN}"},
        timeout=5,
    )


def amazon(sandbox: RunningSandbox, method: str, path: str, **kwargs: object) -> requests.Response:
    return requests.request(
        method,
        sandbox.platform_url("amazon") + path,
        headers={"x-amz-access-token": AMAZON_TOKEN},
        timeout=5,
        **kwargs,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------- Shopify


def test_shopify_answers_an_unknown_argument_and_field_as_graphql_ruby_does(sandbox) -> None:
    document = (
        "mutation Cancel($orderId: ID!) {\n"
        "  orderCancel(orderId: $orderId, reason: OTHER, restock: true, refund: true) {\n"
        "    job { id } jobStatus\n"
        "  }\n"
        "}"
    )

    answer = graphql(sandbox.url, document, {"orderId": "gid://shopify/Order/1"})

    assert answer.status_code == 200
    assert answer.json() == {
        "errors": [
            {
                "message": "Field 'orderCancel' doesn't accept argument 'refund'",
                "locations": [{"line": 2, "column": 64}],
                "path": ["mutation Cancel", "orderCancel", "refund"],
                "extensions": {
                    "code": "argumentNotAccepted",
                    "name": "orderCancel",
                    "typeName": "Field",
                    "argumentName": "refund",
                },
            },
            {
                "message": "Field 'jobStatus' doesn't exist on type 'OrderCancelPayload'",
                "locations": [{"line": 3, "column": 16}],
                "path": ["mutation Cancel", "orderCancel", "jobStatus"],
                "extensions": {
                    "code": "undefinedField",
                    "typeName": "OrderCancelPayload",
                    "fieldName": "jobStatus",
                },
            },
        ]
    }
    refusal = sandbox.platform("shopify").refusals[-1]
    assert (refusal["operation"], refusal["status"]) == ("graphql", 200)
    assert len(refusal["problems"]) == 2


def test_shopify_refuses_variables_of_the_wrong_shape_with_invalid_variable(sandbox) -> None:
    document = (
        "mutation Set($input: InventorySetQuantitiesInput!) {"
        " inventorySetQuantities(input: $input) { userErrors { code } } }"
    )
    row = {"inventoryItemId": "gid://shopify/InventoryItem/1", "locationId": "L", "quantity": "3"}
    row["compareQuantity"] = 2  # removed in 2026-01: changeFromQuantity replaced it

    error = graphql(
        sandbox.url,
        document,
        {"input": {"name": "available", "reason": "correction", "quantities": [row]}},
    ).json()["errors"][0]

    assert error["message"] == (
        "Variable $input of type InventorySetQuantitiesInput! was provided invalid value for "
        "quantities.0.compareQuantity (Field is not defined on InventoryQuantityInput), "
        'quantities.0.quantity (Could not coerce value "3" to Int)'
    )
    assert error["extensions"]["code"] == "INVALID_VARIABLE"
    assert sorted(p["path"][-1] for p in error["extensions"]["problems"]) == [
        "compareQuantity",
        "quantity",
    ]


def test_shopify_answers_exactly_the_selected_fields(sandbox) -> None:
    answer = graphql(sandbox.url, "query Shop { shop { name } }").json()

    assert answer["data"] == {"shop": {"name": "pimsync sandbox"}}
    assert list(sandbox.platform("shopify").refusals) == []


# ---------------------------------------------------------------------- eBay


def test_ebay_get_orders_refuses_a_limit_above_200_and_a_start_beyond_two_years(
    sandbox,
) -> None:
    recent = format_timestamp(datetime.now(UTC) - timedelta(days=400), millis=True)
    too_old = format_timestamp(datetime.now(UTC) - timedelta(days=800), millis=True)

    over = ebay_get(sandbox, EBAY_ORDERS, limit=201)
    ok = ebay_get(sandbox, EBAY_ORDERS, limit=200, filter=f"lastmodifieddate:[{recent}..]")
    old = ebay_get(sandbox, EBAY_ORDERS, filter=f"lastmodifieddate:[{too_old}..]")

    assert (over.status_code, over.json()["errors"][0]["errorId"]) == (400, 31100)
    assert ok.status_code == 200
    assert (old.status_code, old.json()["errors"][0]["errorId"]) == (400, 30830)
    problems = [r["problems"] for r in sandbox.platform("ebay").refusals]
    assert problems == [
        ["31100 Invalid value for limit: 201"],
        ["30830 Time range between start date and end date must be within '2' years."],
    ]


def test_ebay_refuses_unknown_fields_and_parameters_in_its_error_shape(sandbox) -> None:
    seed_listings(sandbox.platform("ebay"), [{"sku": "E-1", "price": "1", "quantity": 1}])
    body = {"requests": [{"sku": "E-1", "shipToLocationAvailability": {"quantity": 2, "qty": 2}}]}

    answer = requests.post(
        sandbox.platform_url("ebay") + "/sell/inventory/v1/bulk_update_price_quantity",
        json=body,
        headers={"Authorization": f"Bearer {EBAY_TOKEN}"},
        timeout=5,
    )
    unknown = ebay_get(sandbox, "/sell/inventory/v1/offer", sku="E-1", market="EBAY_US")

    assert answer.status_code == 400
    assert answer.json()["errors"] == [
        {
            "errorId": 25709,
            "domain": "API_INVENTORY",
            "category": "REQUEST",
            "message": "Invalid value for body requests/0/shipToLocationAvailability",
            "longMessage": "unknown field(s) qty",
            "parameters": [
                {
                    "name": "requests/0/shipToLocationAvailability",
                    "value": "{'quantity': 2, 'qty': 2}",
                }
            ],
        }
    ]
    assert (unknown.status_code, unknown.json()["errors"][0]["errorId"]) == (400, 2004)
    assert sandbox.platform("ebay").catalog.get("E-1").quantity == 1  # nothing applied


# ---------------------------------------------------------------------- Amazon


def test_amazon_confirm_shipment_needs_a_carrier_code_and_a_name_for_other(sandbox) -> None:
    platform = sandbox.platform("amazon")
    seed_listings(platform, [{"sku": "A-1", "price": "1", "quantity": 5}])
    order = platform.create_order([{"sku": "A-1", "quantity": 1}])
    path = f"/orders/v0/orders/{order.id}/shipmentConfirmation"

    def confirm(**carrier: str) -> requests.Response:
        package = {
            "packageReferenceId": "1",
            "trackingNumber": "T1",
            "shipDate": "2026-05-01T00:00:00Z",
            "orderItems": [{"orderItemId": order.lines[0].line_id, "quantity": 1}],
            **carrier,
        }
        return amazon(
            sandbox,
            "POST",
            path,
            json={"marketplaceId": "ATVPDKIKX0DER", "packageDetail": package},
        )

    no_name = confirm(carrierCode="Other")
    free_text = confirm(carrierCode="Speedy Couriers")
    typo = confirm(carrierCode="UPS", carierName="x")
    shipped = confirm(carrierCode="Other", carrierName="Speedy Couriers")

    assert [a.status_code for a in (no_name, free_text, typo, shipped)] == [400, 400, 400, 204]
    assert no_name.json()["errors"][0]["code"] == "InvalidInput"
    assert platform.orders.get(order.id).status == "fulfilled"
    problems = [r["problems"][0] for r in platform.refusals]
    assert problems == [
        "packageDetail lacks carrierName (required when carrierCode is Other)",
        "carrierCode 'Speedy Couriers' is not an Amazon carrier code (use Other + carrierName)",
        "body packageDetail: unknown field(s) carierName",
    ]


def test_amazon_makes_a_feed_that_breaks_the_listings_feed_schema_fatal(sandbox) -> None:
    platform = sandbox.platform("amazon")
    platform.feed_processing_seconds = 0.0
    created = amazon(
        sandbox, "POST", "/feeds/2021-06-30/documents", json={"contentType": "application/json"}
    ).json()
    document = {
        "header": {"sellerId": AMAZON_SELLER, "version": "2.0"},
        "messages": [{"sku": "A-1", "operationType": "PATCH", "productType": "PRODUCT"}],
    }
    requests.put(created["url"], data=json.dumps(document), timeout=5)
    feed = amazon(
        sandbox,
        "POST",
        "/feeds/2021-06-30/feeds",
        json={
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": ["ATVPDKIKX0DER"],
            "inputFeedDocumentId": created["feedDocumentId"],
        },
    ).json()

    status = amazon(sandbox, "GET", f"/feeds/2021-06-30/feeds/{feed['feedId']}").json()

    assert status["processingStatus"] == "FATAL"
    report_url = amazon(
        sandbox, "GET", f"/feeds/2021-06-30/documents/{status['resultFeedDocumentId']}"
    ).json()["url"]
    report = json.loads(gzip.decompress(requests.get(report_url, timeout=5).content))
    assert "'messageId' is a required property" in report["issues"][0]["message"]
    assert platform.refusals[-1]["operation"] == "JSON_LISTINGS_FEED"


# ---------------------------------------------------------------------- WooCommerce


def test_woocommerce_refuses_bad_parameters_big_batches_and_unknown_routes(sandbox) -> None:
    too_many = woo(sandbox.url, "GET", "orders", params={"per_page": 101})
    misspelt = woo(sandbox.url, "GET", "orders", params={"modified_since": "2026-01-01T00:00:00"})
    batch = woo(
        sandbox.url, "POST", "products/batch", json={"update": [{"id": n} for n in range(101)]}
    )
    no_route = woo(sandbox.url, "GET", "inventory")

    assert too_many.status_code == 400
    assert too_many.json() == {
        "code": "rest_invalid_param",
        "message": "Invalid parameter(s): per_page",
        "data": {
            "status": 400,
            "params": {"per_page": "per_page 101 is greater than the maximum of 100"},
        },
    }
    assert misspelt.json()["data"]["params"] == {
        "modified_since": "modified_since is not a parameter of this operation"
    }
    assert (batch.status_code, batch.json()["code"]) == (
        413,
        "woocommerce_rest_request_entity_too_large",
    )
    assert (no_route.status_code, no_route.json()["code"]) == (404, "rest_no_route")
    assert [r["status"] for r in sandbox.platform("woocommerce").refusals] == [400, 400, 413, 404]


# ---------------------------------------------------------------------- control API


def test_control_api_lists_and_clears_refusals_and_turns_on_answer_checks(sandbox) -> None:
    woo(sandbox.url, "GET", "orders", params={"per_page": 0})

    status, listed = control(sandbox.url, "GET", "/_control/refusals/woocommerce")
    assert status == 200
    assert [r["problems"] for r in listed["woocommerce"]["refusals"]] == [
        ["query per_page: 0 is less than the minimum of 1"]
    ]
    assert control(sandbox.url, "DELETE", "/_control/refusals")[1]["woocommerce"] == {
        "refusals": [],
        "answer_problems": [],
    }
    status, flags = control(
        sandbox.url, "POST", "/_control/contracts", {"ebay": {"check_answers": True}}
    )
    assert (status, flags["ebay"], flags["amazon"]) == (200, True, False)
