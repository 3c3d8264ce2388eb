"""The Magento sandbox as a client sees it over HTTP: Magento's paths, payloads and
error shapes, what it refuses, MSI salable quantity through an order's life, async
bulk operations with their status, and its state kept across a restart."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests

from sandbox.magento import MagentoSandbox
from sandbox.server import RunningSandbox, start_sandbox
from tests.support.sandbox import MAGENTO_TOKEN, FakeClock, control

AUTH = {"Authorization": f"Bearer {MAGENTO_TOKEN}"}


def call(box: RunningSandbox, method: str, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("headers", AUTH)
    return requests.request(method, f"{box.url}/magento/rest{path}", timeout=5, **kwargs)


def sku_in(*skus: str) -> dict[str, str]:
    prefix = "searchCriteria[filterGroups][0][filters][0]"
    return {
        f"{prefix}[field]": "sku",
        f"{prefix}[value]": ",".join(skus),
        f"{prefix}[conditionType]": "in",
    }


@pytest.fixture
def shop(sandbox) -> MagentoSandbox:
    platform = sandbox.platform("magento")
    platform.seed(
        [
            {"sku": "TEE-S", "price": "10.00", "quantity": 5, "group": "TEE"},
            {"sku": "TEE-M", "price": "10.00", "quantity": 5, "group": "TEE"},
            {"sku": "CAP", "price": "3.00", "quantity": 2},
        ]
    )
    assert isinstance(platform, MagentoSandbox)
    return platform


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("path", "body", "message", "parameters"),
    [
        (
            "/V1/products/base-prices",
            {"prices": [{"sku": "CAP", "price": 1, "store_id": 0, "special": 2}]},
            '"%fieldName" is not supported. Correct the field name and try again.',
            {"fieldName": "Special"},
        ),
        (
            "/V1/products/base-prices",
            {"price": []},
            '"%fieldName" is not supported. Correct the field name and try again.',
            {"fieldName": "Price"},
        ),
        (
            "/V1/products/base-prices",
            {},
            '"%fieldName" is required. Enter and try again.',
            {"fieldName": "prices"},
        ),
        (
            "/V1/inventory/source-items",
            {"sourceItems": [{"sku": "CAP", "source_code": "default", "quantity": 1, "qty": 1}]},
            '"%fieldName" is not supported. Correct the field name and try again.',
            {"fieldName": "Qty"},
        ),
        (
            "/V1/products/base-prices",
            {"prices": [{"sku": "CAP", "price": "ten", "store_id": 0}]},
            'The "%value" value\'s type is invalid. The "%type" type was expected. Verify and '
            "try again.",
            {"value": "ten", "type": "float"},
        ),
    ],
)
def test_what_magentos_input_processor_refuses_is_refused(
    sandbox, shop, path, body, message, parameters
):
    response = call(sandbox, "POST", path, json=body)

    assert response.status_code == 400
    assert response.json() == {"message": message, "parameters": parameters}
    assert shop.catalog.get("CAP").price == Decimal("3.00")


def test_an_invalid_source_item_refuses_the_whole_call_with_the_validation_errors(sandbox, shop):
    body = {
        "sourceItems": [
            {"sku": "CAP", "source_code": "default", "quantity": 9, "status": 1},
            {"sku": "TEE-S", "source_code": "default", "status": 1},
        ]
    }

    response = call(sandbox, "POST", "/V1/inventory/source-items", json=body)

    assert response.status_code == 400
    assert response.json() == {
        "message": 'Validation Failed: "quantity" should be numeric.',
        "errors": [{"message": '"%field" should be numeric.', "parameters": {"field": "quantity"}}],
    }
    assert shop.catalog.get("CAP").quantity == 2  # nothing saved
    unknown = call(
        sandbox,
        "POST",
        "/V1/inventory/source-items",
        json={"sourceItems": [{"sku": "CAP", "source_code": "mars", "quantity": 1, "status": 1}]},
    )
    assert unknown.json() == {"message": "Could not save Source Item"}


def test_unknown_search_keys_and_fields_are_refused(sandbox, shop):
    unknown_key = call(sandbox, "GET", "/V1/products", params={"searchCriteria[pagesize]": "5"})
    unknown_field = call(
        sandbox,
        "GET",
        "/V1/products",
        params={
            "searchCriteria[filter_groups][0][filters][0][field]": "colour",
            "searchCriteria[filter_groups][0][filters][0][value]": "red",
        },
    )

    assert unknown_key.status_code == unknown_field.status_code == 400
    assert unknown_key.json()["parameters"] == {"fieldName": "Pagesize"}
    assert unknown_field.json() == {
        "message": "Invalid attribute identifier for filter (%1)",
        "parameters": {"1": "colour"},
    }


def test_input_limits_refuse_long_arrays_and_pages_when_enabled(sandbox, shop):
    prices = [{"sku": "CAP", "price": 1, "store_id": 0}] * 3
    assert call(sandbox, "POST", "/V1/products/base-prices", json={"prices": prices}).ok
    control(
        sandbox.url,
        "POST",
        "/_control/rate_limits",
        {"magento": {"input": {"list": 2, "max_page_size": 300}}},
    )

    too_long = call(sandbox, "POST", "/V1/products/base-prices", json={"prices": prices})
    too_big = call(sandbox, "GET", "/V1/products", params={"searchCriteria[pageSize]": "301"})

    assert too_long.status_code == 400
    assert too_long.json() == {
        "message": 'Maximum items of type "%type" is %max',
        "parameters": {"type": "\\Magento\\Catalog\\Api\\Data\\BasePriceInterface", "max": 2},
    }
    assert too_big.json()["message"] == "Maximum SearchCriteria pageSize is %max"


def test_a_wrong_token_names_the_acl_resource_and_maintenance_is_an_html_503(sandbox, shop):
    refused = call(sandbox, "GET", "/V1/orders", headers={"Authorization": "Bearer nope"})
    shop.faults.configure({"outage_seconds": 30})
    down = call(sandbox, "GET", "/V1/orders")

    assert refused.status_code == 401
    assert refused.json() == {
        "message": "The consumer isn't authorized to access %resources.",
        "parameters": {"resources": "Magento_Sales::actions_view"},
    }
    assert down.status_code == 503
    assert down.headers["Content-Type"].startswith("text/html")
    assert "Service Temporarily Unavailable" in down.text


def test_unknown_routes_and_store_codes(sandbox, shop):
    assert call(sandbox, "GET", "/V1/nowhere").json() == {
        "message": "Request does not match any route."
    }
    assert call(sandbox, "GET", "/nl/V1/store/storeViews").status_code == 400
    assert [v["code"] for v in call(sandbox, "GET", "/all/V1/store/storeViews").json()] == [
        "admin",
        "default",
    ]


# --------------------------------------------------------------------------- catalog


def test_products_search_pages_like_magento_and_trims_fields(sandbox, shop):
    page = {"searchCriteria[pageSize]": "2", "searchCriteria[currentPage]": "9"}
    found = call(
        sandbox, "GET", "/V1/products", params={**page, "fields": "items[sku,type_id],total_count"}
    )

    # a page past the end answers the last page again
    assert found.json() == {
        "items": [{"sku": "TEE-M", "type_id": "simple"}, {"sku": "CAP", "type_id": "simple"}],
        "total_count": 4,  # the configurable TEE, its two children and CAP
    }
    children = call(sandbox, "GET", "/V1/configurable-products/TEE/children").json()
    assert [(c["sku"], c["type_id"], c["visibility"]) for c in children] == [
        ("TEE-S", "simple", 1),
        ("TEE-M", "simple", 1),
    ]


def test_prices_are_per_website_and_refusals_name_the_row(sandbox, shop):
    body = {
        "prices": [
            {"sku": "CAP", "price": 4.5, "store_id": 1},
            {"sku": "TEE", "price": 9, "store_id": 0},
            {"sku": "TEE-S", "price": 9, "store_id": 7},
        ]
    }

    refused = call(sandbox, "POST", "/V1/products/base-prices", json=body).json()

    assert refused == [
        {"message": "Invalid attribute %fieldName = %fieldValue.", "parameters": ["SKU", "TEE"]},
        {
            "message": "Requested store is not found. Row ID: SKU = %SKU, Store ID: %storeId.",
            "parameters": ["TEE-S", "7"],
        },
    ]
    in_view = call(sandbox, "GET", "/default/V1/products", params=sku_in("CAP")).json()
    in_admin = call(sandbox, "GET", "/admin/V1/products", params=sku_in("CAP")).json()
    assert (in_view["items"][0]["price"], in_admin["items"][0]["price"]) == (4.5, 3)


def test_salable_quantity_follows_an_order_from_placing_to_shipping(sandbox, shop):
    def salable() -> float:
        return call(sandbox, "GET", "/V1/inventory/get-product-salable-quantity/TEE-S/1").json()

    order = shop.create_order([{"sku": "TEE-S", "quantity": 2}], status="pending")
    assert (salable(), shop.sources["TEE-S"]["default"][0]) == (3, 5)

    shop.order_transition(order.id, "pay")
    assert call(sandbox, "POST", f"/V1/orders/{order.id}/cancel").json() is False  # invoiced
    shipped = call(
        sandbox,
        "POST",
        f"/V1/order/{order.id}/ship",
        json={
            "items": [],
            "tracks": [{"track_number": "1Z", "title": "UPS", "carrier_code": "ups"}],
        },
    )

    assert shipped.status_code == 200
    assert isinstance(shipped.json(), int)
    assert (salable(), shop.sources["TEE-S"]["default"][0]) == (3, 3)
    rendered = call(sandbox, "GET", f"/V1/orders/{order.id}").json()
    assert (rendered["state"], rendered["status"]) == ("complete", "complete")
    assert [(i["sku"], i["product_type"], "parent_item_id" in i) for i in rendered["items"]] == [
        ("TEE-S", "configurable", False),
        ("TEE-S", "simple", True),
    ]
    exported = call(
        sandbox,
        "GET",
        "/V1/inventory/export-stock-salable-qty/website/base",
        params=sku_in("TEE-S", "TEE", "CAP"),
    ).json()
    assert exported["items"] == [
        {"sku": "TEE-S", "qty": 3, "is_salable": True},
        {"sku": "CAP", "qty": 2, "is_salable": True},
    ]


def test_held_orders_cannot_be_cancelled_or_shipped_until_released(sandbox, shop):
    order = shop.create_order([{"sku": "CAP", "quantity": 1}], status="pending")

    assert call(sandbox, "POST", f"/V1/orders/{order.id}/hold").json() is True
    assert call(sandbox, "GET", f"/V1/orders/{order.id}").json()["state"] == "holded"
    assert call(sandbox, "POST", f"/V1/orders/{order.id}/cancel").json() is False
    assert call(sandbox, "POST", f"/V1/order/{order.id}/ship", json={}).status_code == 400
    assert call(sandbox, "POST", f"/V1/orders/{order.id}/unhold").json() is True
    assert call(sandbox, "POST", f"/V1/orders/{order.id}/cancel").json() is True
    assert shop.orders.get(order.id).status == "cancelled"


def test_a_console_edit_sets_the_salable_quantity_whatever_is_reserved(sandbox, shop):
    shop.create_order([{"sku": "CAP", "quantity": 1}], status="paid")

    status, _ = control(
        sandbox.url,
        "POST",
        "/_control/values",
        {"magento": [{"sku": "CAP", "quantity": 7, "price": "2.50"}]},
    )

    assert status == 200
    assert (shop.salable("CAP"), shop.sources["CAP"]["default"][0]) == (7, 8)
    assert shop.catalog.get("CAP").price == Decimal("2.50")


# --------------------------------------------------------------------------- async bulk


def test_an_async_bulk_is_open_until_the_consumer_runs_it():
    clock = FakeClock()
    with start_sandbox(clock=clock) as box:
        shop = box.platform("magento")
        shop.seed([{"sku": "CAP", "price": "3.00", "quantity": 2}])
        body = [
            {"prices": [{"sku": "CAP", "price": 5, "store_id": 0}]},
            {"prices": [{"sku": "NOPE", "price": 5, "store_id": 0}]},
        ]

        accepted = call(box, "POST", "/async/bulk/V1/products/base-prices", json=body)
        uuid = accepted.json()["bulk_uuid"]
        before = call(box, "GET", f"/V1/bulk/{uuid}/status").json()
        clock.advance(10)
        after = call(box, "GET", f"/V1/bulk/{uuid}/detailed-status").json()

        assert accepted.status_code == 202
        assert [i["status"] for i in accepted.json()["request_items"]] == ["accepted"] * 2
        assert [op["status"] for op in before["operations_list"]] == [4, 4]
        assert [op["status"] for op in after["operations_list"]] == [1, 1]
        assert json.loads(after["operations_list"][1]["result_serialized_data"]) == [
            {
                "message": "Invalid attribute %fieldName = %fieldValue.",
                "parameters": ["SKU", "NOPE"],
            }
        ]
        meta = json.loads(
            json.loads(after["operations_list"][0]["serialized_data"])["meta_information"]
        )
        assert meta == body[0]
        assert after["description"] == (
            "Topic async.magento.catalog.api.basepricestorageinterface.update.post"
        )
        assert shop.catalog.get("CAP").price == Decimal(5)
        assert call(box, "GET", "/V1/bulk/unknown/status").status_code == 404


def test_a_failed_async_source_item_operation_is_status_3_with_magentos_message():
    clock = FakeClock()
    with start_sandbox(clock=clock) as box:
        box.platform("magento").seed([{"sku": "CAP", "price": "3.00", "quantity": 2}])
        body = [
            {"sourceItems": [{"sku": "CAP", "source_code": "mars", "quantity": 1, "status": 1}]}
        ]
        uuid = call(box, "POST", "/async/bulk/V1/inventory/source-items", json=body).json()[
            "bulk_uuid"
        ]
        clock.advance(10)

        [operation] = call(box, "GET", f"/V1/bulk/{uuid}/detailed-status").json()["operations_list"]

        assert (operation["status"], operation["result_message"], operation["error_code"]) == (
            3,
            "Could not save Source Item",
            0,
        )


# --------------------------------------------------------------------------- persistence


def test_state_survives_a_restart(tmp_path):
    state = tmp_path / "sandbox.json"
    with start_sandbox(state_file=state) as box:
        shop = box.platform("magento")
        shop.seed([{"sku": "TEE-S", "price": "10.00", "quantity": 5, "group": "TEE"}])
        order = shop.create_order([{"sku": "TEE-S", "quantity": 1}], status="paid")
        shop.held.add(order.id)
        shop.prices["TEE-S"][1] = Decimal("8.00")
    with start_sandbox(state_file=state) as box:
        shop = box.platform("magento")

        assert shop.salable("TEE-S") == 4
        assert (shop.parents.keys(), shop.held, shop.invoiced) == ({"TEE"}, {order.id}, {order.id})
        assert shop.store_price("TEE-S", 1) == Decimal("8.00")
        rendered = call(box, "GET", f"/V1/orders/{order.id}").json()
        assert rendered["items"][1]["parent_item_id"] == rendered["items"][0]["item_id"]
