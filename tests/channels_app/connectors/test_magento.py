"""Magento 2 connector: against the sandbox over loopback HTTP, and against recorded
REST answers where the sandbox cannot produce the case (a refusal naming no SKU)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import responses

from channels_app.connectors.base import ListingRef, PriceUpdate, QuantityUpdate
from channels_app.connectors.errors import FailureKind, PermanentError
from channels_app.connectors.magento import (
    MagentoConnector,
    magento_options,
    platform_config_problems,
    refused_sku,
    render_message,
)
from channels_app.connectors.registry import credentials_problems, get_connector
from sandbox.server import start_sandbox
from tests.support.sandbox import magento_config, seed_listings

BASE = "https://shop.example.test"
API = f"{BASE}/rest/default/V1"


def connector_for(base_url: str, **overrides: Any) -> MagentoConnector:
    connector = get_connector(magento_config(base_url, **overrides))
    assert isinstance(connector, MagentoConnector)
    return connector


def tee_rows(quantity: int = 5) -> list[dict[str, Any]]:
    """A configurable TEE with four simple children, and one simple CAP."""
    rows: list[dict[str, Any]] = [
        {"sku": f"TEE-{size}", "price": "10.00", "quantity": quantity, "group": "TEE"}
        for size in ("S", "M", "L", "XL")
    ]
    rows.append({"sku": "CAP", "price": "3.00", "quantity": quantity})
    return rows


@pytest.fixture
def magento(sandbox):
    platform = sandbox.platform("magento")
    listings = seed_listings(platform, tee_rows())
    return platform, listings, connector_for(sandbox.platform_url("magento"))


# --------------------------------------------------------------------------- pushes


def test_a_configurable_with_four_children_is_pushed_and_read_back_by_child_sku(magento):
    platform, listings, connector = magento
    platform.counters.reset()

    prices = connector.push_prices(
        [PriceUpdate(ref, Decimal("19.90") + n) for n, ref in enumerate(listings)]
    )
    quantities = connector.push_quantities(
        [QuantityUpdate(ref, 7 + n) for n, ref in enumerate(listings)]
    )
    states = connector.read_listings(listings)

    assert [ref.product_id for ref in listings] == ["TEE", "TEE", "TEE", "TEE", ""]
    assert all(r.ok for r in prices + quantities)
    assert [(s.sku, s.price, s.quantity) for s in states] == [
        (ref.sku, Decimal("19.90") + n, 7 + n) for n, ref in enumerate(listings)
    ]
    assert [platform.catalog.get(ref.sku).quantity for ref in listings] == [7, 8, 9, 10, 11]
    calls = platform.counters.snapshot()["by_endpoint"]
    # one write per push; the quantity push reads the stock once, then sources and salable
    assert (calls["basePrices"], calls["sourceItemsSave"]) == (1, 1)
    assert (calls["stock"], calls["stockSourceLinks"]) == (1, 1)
    assert (calls["sourceItemsSearch"], calls["exportSalableQty"]) == (1, 2)
    assert calls["productsSearch"] == 1


def test_per_item_refusals_of_a_bulk_price_call_are_mapped_to_their_skus(magento):
    platform, listings, connector = magento
    platform.faults.configure({"fail_skus": ["TEE-M"]})
    ghost = ListingRef(sku="PIM-GHOST", listing_sku="NOT-IN-MAGENTO")
    negative = PriceUpdate(listings[4], Decimal("-1"))

    results = connector.push_prices(
        [PriceUpdate(ref, Decimal("12.00")) for ref in listings[:4]]
        + [PriceUpdate(ghost, Decimal("5.00")), negative]
    )

    assert [(r.sku, r.kind, r.code) for r in results] == [
        ("TEE-S", FailureKind.OK, ""),
        ("TEE-M", FailureKind.PERMANENT, "refused"),
        ("TEE-L", FailureKind.OK, ""),
        ("TEE-XL", FailureKind.OK, ""),
        ("PIM-GHOST", FailureKind.PERMANENT, "refused"),
        ("CAP", FailureKind.PERMANENT, "invalid_price"),
    ]
    assert results[1].message == "Invalid attribute SKU = TEE-M."
    assert results[4].message == "Invalid attribute SKU = NOT-IN-MAGENTO."
    assert [platform.catalog.get(f"TEE-{s}").price for s in ("S", "M", "L", "XL")] == [
        Decimal("12.00"),
        Decimal("10.00"),
        Decimal("12.00"),
        Decimal("12.00"),
    ]
    assert platform.counters.snapshot()["by_endpoint"]["basePrices"] == 1


def test_a_refused_source_item_call_is_halved_until_the_refused_sku_stands_alone(magento):
    platform, listings, connector = magento
    platform.faults.configure({"fail_skus": ["TEE-L"]})
    platform.counters.reset()

    results = connector.push_quantities([QuantityUpdate(ref, 4) for ref in listings])

    assert [(r.sku, r.kind) for r in results] == [
        ("TEE-S", FailureKind.OK),
        ("TEE-M", FailureKind.OK),
        ("TEE-L", FailureKind.PERMANENT),
        ("TEE-XL", FailureKind.OK),
        ("CAP", FailureKind.OK),
    ]
    assert results[2].message == "HTTP 400: Could not save Source Item"
    assert [platform.catalog.get(ref.sku).quantity for ref in listings] == [4, 4, 5, 4, 4]
    # all 5 refused -> S,M saved + L,XL,CAP refused -> L refused alone + XL,CAP saved
    assert platform.counters.snapshot()["by_endpoint"]["sourceItemsSave"] == 5


def test_the_source_keeps_the_units_of_unshipped_orders(magento):
    platform, listings, connector = magento
    order = platform.create_order([{"sku": "TEE-S", "quantity": 2}], status="paid")
    assert platform.catalog.get("TEE-S").quantity == 3  # salable fell, the source did not

    assert connector.push_quantities([QuantityUpdate(listings[0], 6)])[0].ok
    assert (platform.sources["TEE-S"]["default"][0], platform.salable("TEE-S")) == (8, 6)

    assert connector.fulfil_order(order.id, tracking_number="1Z999", carrier="UPS").ok
    assert (platform.sources["TEE-S"]["default"][0], platform.salable("TEE-S")) == (6, 6)
    assert platform.shipments[order.id][0]["tracks"] == [
        {"track_number": "1Z999", "title": "UPS", "carrier_code": "ups"}
    ]


def test_zero_is_salable_zero_and_stock_of_other_sources_counts(sandbox):
    platform = sandbox.platform("magento")
    listings = seed_listings(platform, tee_rows(quantity=0))
    platform.sources["TEE-S"]["store"] = [Decimal(3), 1]  # a source pimsync does not write
    platform.create_order([{"sku": "TEE-M", "quantity": 1}], status="pending")
    connector = connector_for(sandbox.platform_url("magento"))

    results = connector.push_quantities(
        [QuantityUpdate(listings[0], 5), QuantityUpdate(listings[1], 0)]
    )

    assert all(r.ok for r in results)
    assert platform.sources["TEE-S"] == {"default": [2, 1], "store": [3, 1]}
    assert (platform.salable("TEE-S"), platform.salable("TEE-M")) == (5, 0)
    assert platform.sources["TEE-M"]["default"] == [1, 1]  # the reserved unit stays shippable


def test_every_configured_source_is_written_and_the_first_holds_the_stock(sandbox):
    platform = sandbox.platform("magento")
    listings = seed_listings(platform, tee_rows(quantity=2))
    connector = connector_for(
        sandbox.platform_url("magento"), platform_config={"source_codes": ["store", "default"]}
    )

    assert connector.push_quantities([QuantityUpdate(listings[0], 9)])[0].ok

    assert platform.sources["TEE-S"] == {"default": [0, 0], "store": [9, 1]}
    assert platform.salable("TEE-S") == 9


def test_input_limits_are_learnt_from_magentos_refusal(sandbox):
    platform = sandbox.platform("magento")
    listings = seed_listings(
        platform, [{"sku": f"P-{n:03d}", "price": "1.00", "quantity": 1} for n in range(45)]
    )
    platform.set_limits({"input": {"list": 20}})
    connector = connector_for(sandbox.platform_url("magento"))

    results = connector.push_prices([PriceUpdate(ref, Decimal("2.50")) for ref in listings])

    assert all(r.ok for r in results)
    assert connector.sync_batch == 20
    # one refused call of 45, then 20 + 20 + 5
    assert platform.counters.snapshot()["by_endpoint"]["basePrices"] == 4


# --------------------------------------------------------------------------- async bulk


def test_a_large_push_goes_through_one_async_bulk_and_reads_its_status(sandbox):
    platform = sandbox.platform("magento")
    platform.async_start_seconds = 0.05
    listings = seed_listings(
        platform, [{"sku": f"B-{n:03d}", "price": "1.00", "quantity": 1} for n in range(30)]
    )
    platform.faults.configure({"fail_skus": ["B-007"]})
    connector = connector_for(
        sandbox.platform_url("magento"),
        platform_config={"async_threshold": 10, "sync_batch_size": 8},
    )
    ghost = ListingRef(sku="GHOST")

    prices = connector.push_prices(
        [PriceUpdate(ref, Decimal("4.00")) for ref in listings] + [PriceUpdate(ghost, Decimal(1))]
    )
    quantities = connector.push_quantities([QuantityUpdate(ref, 6) for ref in listings])

    assert [r.sku for r in prices if not r.ok] == ["B-007", "GHOST"]
    assert {r.code for r in prices if not r.ok} == {"refused"}
    assert [r.sku for r in quantities if not r.ok] == ["B-007"]
    assert quantities[7].message == "HTTP 400: Could not save Source Item"
    assert all(
        platform.catalog.get(ref.sku).price == Decimal("4.00")
        for ref in listings
        if ref.sku != "B-007"
    )
    assert all(
        platform.catalog.get(ref.sku).quantity == 6 for ref in listings if ref.sku != "B-007"
    )
    calls = platform.counters.snapshot()["by_endpoint"]
    assert (calls["asyncBasePrices"], calls["asyncSourceItems"]) == (1, 1)
    assert calls["bulkDetailedStatus"] >= 2
    assert "basePrices" not in calls  # every price operation completed
    # the failed source-item operation (8 SKUs) went again synchronously, halved down to B-007
    assert calls["sourceItemsSave"] == 7
    assert len(platform.bulks) == 2
    operations = next(iter(platform.bulks.values())).operations
    assert [len(op.body["prices"]) for op in operations] == [8, 8, 8, 7]


def test_a_bulk_the_consumer_never_runs_is_retryable(sandbox):
    platform = sandbox.platform("magento")
    platform.consumer_running = False
    listings = seed_listings(platform, tee_rows())
    connector = connector_for(
        sandbox.platform_url("magento"),
        platform_config={"async_threshold": 2, "bulk_max_wait_seconds": 0.2},
    )

    results = connector.push_prices([PriceUpdate(ref, Decimal("8.00")) for ref in listings])

    assert {(r.kind, r.code) for r in results} == {(FailureKind.RETRYABLE, "bulk_pending")}
    assert "async.operations.all" in results[0].message
    assert platform.catalog.get("TEE-S").price == Decimal("10.00")


# --------------------------------------------------------------------------- reads


def test_reads_are_bulk_and_paged_and_flag_parents_and_unknown_skus(sandbox):
    platform = sandbox.platform("magento")
    listings = seed_listings(
        platform, [{"sku": f"R-{n:03d}", "price": "2.00", "quantity": n} for n in range(250)]
    )
    seed_listings(platform, tee_rows())
    connector = connector_for(sandbox.platform_url("magento"))
    platform.counters.reset()

    states = connector.read_listings(
        [*listings, ListingRef(sku="PIM-TEE", listing_sku="TEE"), ListingRef(sku="NOPE")]
    )

    assert [(s.quantity, s.found) for s in states[:250]] == [(n, True) for n in range(250)]
    parent, unknown = states[250:]
    assert (parent.error.code, parent.error.kind) == ("configurable_parent", FailureKind.PERMANENT)
    assert (unknown.found, unknown.error) == (False, None)
    calls = platform.counters.snapshot()["by_endpoint"]
    assert (calls["productsSearch"], calls["exportSalableQty"]) == (3, 3)  # 100 + 100 + 52


def test_read_product_variants_lists_the_four_children_of_a_configurable(magento):
    _, listings, connector = magento

    children = connector.read_product_variants("TEE")

    assert children == [
        ListingRef(sku=ref.sku, product_id="TEE", variant_id=ref.variant_id) for ref in listings[:4]
    ]
    assert connector.read_product_variants("CAP") == []
    with pytest.raises(PermanentError, match="doesn't exist"):
        connector.read_product_variants("NOPE")


def test_without_msi_the_legacy_stock_item_is_written_one_call_per_sku(magento, sandbox):
    platform, listings, _ = magento
    connector = connector_for(sandbox.platform_url("magento"), platform_config={"msi": False})
    platform.counters.reset()

    results = connector.push_quantities([QuantityUpdate(ref, 3) for ref in listings])
    states = connector.read_listings(listings)

    assert all(r.ok for r in results)
    assert [s.quantity for s in states] == [3] * 5
    calls = platform.counters.snapshot()["by_endpoint"]
    assert (calls["legacyStockItem"], calls["productsSearch"]) == (5, 2)
    assert "sourceItemsSave" not in calls


# --------------------------------------------------------------------------- orders


def test_orders_are_polled_by_updated_at_and_a_configurable_line_counts_once(magento):
    platform, _, connector = magento
    for n in range(25):
        platform.create_order(
            [{"sku": "TEE-M", "quantity": 1 + n % 2}, {"sku": "CAP", "quantity": 1}],
            email=f"b{n}@example.com",
            phone="+49 30 1234",
            adjust_stock=False,
        )

    seen, cursor, pages = [], None, 0
    while True:
        page = connector.orders_since(cursor, page_size=10)
        pages += 1
        seen += [o.external_id for o in page.orders]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert len(set(seen)) == 25
    assert pages >= 3
    order = page.orders[-1]
    tee, cap = order.lines
    raw_items = order.raw["items"]
    assert len(raw_items) == 3  # configurable parent, its simple child, the cap
    assert (tee.sku, tee.quantity, tee.unit_price) == ("TEE-M", 1, Decimal("10"))
    assert tee.external_variant_id == platform.catalog.get("TEE-M").ids["variant_id"]
    assert tee.external_product_id == str(platform.parents["TEE"])
    assert (cap.sku, cap.external_variant_id) == ("CAP", cap.external_product_id)
    assert (order.status, order.financial_status, order.fulfillment_status) == (
        "paid",
        "processing",
        "unshipped",
    )
    assert (order.customer_email, order.customer_phone) == ("b24@example.com", "+49 30 1234")
    assert order.total == Decimal("13")


def test_the_page_cursor_restarts_at_the_last_time_seen(magento):
    platform, _, connector = magento
    same_second = datetime(2026, 11, 2, 9, 30, 15, tzinfo=UTC)
    for n in range(3):
        order = platform.create_order([{"sku": "CAP", "quantity": 1}], adjust_stock=False)
        order.updated_at = same_second.replace(microsecond=n)

    pages = [connector.orders_since("2020-01-01T00:00:00Z", page_size=2)]
    while pages[-1].next_cursor is not None:
        pages.append(connector.orders_since(pages[-1].next_cursor, page_size=2))

    # Whole seconds: the second page starts again at the last second seen (so the
    # first two come again, dropped downstream); only then does the page number move.
    assert [[o.external_id for o in page.orders] for page in pages] == [
        [o.id for o in platform.orders.all()[:2]],
        [o.id for o in platform.orders.all()[:2]],
        [platform.orders.all()[2].id],
    ]


@pytest.mark.parametrize(
    ("steps", "status", "state"),
    [
        ([], "pending", "new"),
        (["hold"], "pending", "holded"),
        (["pay", "hold"], "paid", "holded"),
        (["pay"], "paid", "processing"),
        (["fulfil"], "fulfilled", "processing"),  # shipped, not invoiced
        (["pay", "fulfil"], "fulfilled", "complete"),
        (["cancel"], "cancelled", "canceled"),
        (["pay", "fulfil", "refund"], "refunded", "closed"),
    ],
)
def test_magento_states_map_onto_pimsyncs_statuses(magento, steps, status, state):
    platform, _, connector = magento
    order = platform.create_order([{"sku": "CAP", "quantity": 1}], status="pending")
    for step in steps:
        if step == "hold":
            platform.held.add(order.id)
        else:
            platform.order_transition(order.id, step)

    [data] = connector.orders_since(None).orders

    assert (data.status, data.raw["state"]) == (status, state)


def test_cancel_and_ship_are_idempotent_and_report_magentos_refusals(magento):
    platform, _, connector = magento
    pending = platform.create_order([{"sku": "CAP", "quantity": 1}], status="pending")
    invoiced = platform.create_order([{"sku": "CAP", "quantity": 1}], status="paid")

    assert connector.cancel_order(pending.id, reason="oversold").ok
    assert connector.cancel_order(pending.id).ok  # cancelled already
    refused = connector.cancel_order(invoiced.id, reason="oversold")
    assert (refused.kind, refused.code) == (FailureKind.PERMANENT, "cancel_refused")
    assert "credit memo" in refused.message

    assert connector.fulfil_order(invoiced.id, tracking_number="T1", carrier="Royal Mail").ok
    assert connector.fulfil_order(invoiced.id, tracking_number="T1").ok  # shipped already
    assert platform.shipments[invoiced.id][0]["tracks"][0]["carrier_code"] == "custom"
    cancelled = connector.fulfil_order(pending.id)
    assert cancelled.kind is FailureKind.PERMANENT
    assert "does not allow a shipment" in cancelled.message
    missing = connector.cancel_order("999999")
    assert (missing.kind, missing.http_status) == (FailureKind.PERMANENT, 404)


def test_magento_sends_no_webhooks_pimsync_can_verify(magento):
    _, _, connector = magento

    assert connector.verify_webhook({"X-Anything": "1"}, b"{}") is False
    with pytest.raises(PermanentError) as caught:
        connector.parse_webhook({}, b"{}")
    assert caught.value.code == "webhooks_unsupported"


# --------------------------------------------------------------------------- failures


def test_a_refused_token_is_an_auth_failure_for_every_sku(magento, sandbox):
    _, listings, _ = magento
    connector = connector_for(
        sandbox.platform_url("magento"), credentials={"access_token": "wrong-token"}
    )

    results = connector.push_prices([PriceUpdate(ref, Decimal(2)) for ref in listings])

    assert [(r.kind, r.http_status) for r in results] == [(FailureKind.AUTH, 401)] * 5
    assert results[0].message == (
        "HTTP 401: The consumer isn't authorized to access Magento_Catalog::catalog."
    )
    assert connector.test_connection().ok is False


def test_a_maintenance_window_is_a_retryable_outage_for_every_sku(magento):
    platform, listings, connector = magento
    platform.faults.configure({"outage_seconds": 60})

    prices = connector.push_prices([PriceUpdate(ref, Decimal(2)) for ref in listings])
    quantities = connector.push_quantities([QuantityUpdate(ref, 2) for ref in listings])
    states = connector.read_listings(listings)

    for result in (*prices, *quantities):
        assert (result.kind, result.code, result.http_status) == (
            FailureKind.RETRYABLE,
            "maintenance",
            503,
        )
    assert "maintenance mode" in prices[0].message
    assert {s.error.code for s in states} == {"maintenance"}
    assert platform.counters.snapshot()["faults"]["outage"] == 3


def test_a_server_error_is_retryable_with_magentos_report_message(magento):
    platform, listings, connector = magento
    platform.faults.configure({"error_5xx": 1.0, "error_status": 500})

    [result] = connector.push_prices([PriceUpdate(listings[0], Decimal(2))])

    assert (result.kind, result.http_status) == (FailureKind.RETRYABLE, 500)
    assert "Report ID: webapi-" in result.message


def test_a_host_rate_limit_is_retryable_after_its_retry_after_and_pacing_avoids_it():
    with start_sandbox(limits={"magento": {"default": {"rate": 0.2, "burst": 3}}}) as box:
        platform = box.platform("magento")
        listings = seed_listings(platform, tee_rows())
        unpaced = connector_for(box.platform_url("magento"), platform_config={"sync_batch_size": 1})

        results = unpaced.push_prices([PriceUpdate(ref, Decimal(3)) for ref in listings])

        assert [r.kind for r in results[:3]] == [FailureKind.OK] * 3
        assert (results[3].kind, results[3].http_status) == (FailureKind.RETRYABLE, 429)
        assert 1.0 <= results[3].retry_after <= 5.0
        assert results[4].message.startswith("not sent")

    with start_sandbox(limits={"magento": {"default": {"rate": 20, "burst": 1}}}) as box:
        platform = box.platform("magento")
        listings = seed_listings(platform, tee_rows())
        paced = connector_for(
            box.platform_url("magento"),
            # a little under the host's rate: equal buckets turn jitter into 429s
            platform_config={"sync_batch_size": 1, "requests_per_second": 16, "burst": 1},
        )
        platform.drain_limits()
        paced.pacer.drain()

        assert all(r.ok for r in paced.push_prices([PriceUpdate(r, Decimal(3)) for r in listings]))
        assert platform.counters.snapshot()["rate_limited"] == 0


def test_test_connection_checks_the_store_view_and_the_stocks_sources(sandbox):
    url = sandbox.platform_url("magento")

    assert connector_for(url).test_connection().ok
    assert connector_for(url, platform_config={"store_code": "all"}).test_connection().ok
    unknown = connector_for(url, platform_config={"store_code": "nl"}).test_connection()
    not_linked = connector_for(url, platform_config={"source_codes": ["eu"]}).test_connection()

    assert (unknown.ok, not_linked.ok) == (False, False)
    assert "source(s) eu are not assigned to stock 1" in not_linked.message


# --------------------------------------------------------------------------- recorded


@responses.activate
def test_a_price_refusal_naming_no_sku_is_pinned_down_one_sku_per_call():
    refusal = [
        {"message": "Invalid attribute %fieldName = %fieldValue.", "parameters": ["Price", "-5"]}
    ]
    responses.post(f"{API}/products/base-prices", json=refusal)  # both SKUs together
    responses.post(f"{API}/products/base-prices", json=[])  # A alone
    responses.post(f"{API}/products/base-prices", json=refusal)  # B alone
    connector = connector_for(BASE)
    refs = [ListingRef(sku="A"), ListingRef(sku="B")]

    results = connector.push_prices([PriceUpdate(ref, Decimal(1)) for ref in refs])

    assert [(r.sku, r.kind) for r in results] == [
        ("A", FailureKind.OK),
        ("B", FailureKind.PERMANENT),
    ]
    assert results[1].message == "Invalid attribute Price = -5."
    bodies = [json.loads(call.request.body) for call in responses.calls]
    assert [[p["sku"] for p in body["prices"]] for body in bodies] == [["A", "B"], ["A"], ["B"]]
    assert bodies[0]["prices"][0] == {"sku": "A", "price": 1, "store_id": 0}


@responses.activate
def test_the_async_operations_are_paired_by_the_skus_they_carry():
    responses.post(
        f"{BASE}/rest/default/async/bulk/V1/products/base-prices",
        status=202,
        json={
            "bulk_uuid": "u-1",
            "request_items": [{"id": 0, "status": "accepted"}, {"id": 1, "status": "accepted"}],
            "errors": False,
        },
    )

    def operation(key: int, skus: list[str], refused: list[Any]) -> dict[str, Any]:
        body = {"prices": [{"sku": s, "price": 1, "store_id": 0} for s in skus]}
        return {
            "id": 100 + key,
            "status": 1,
            "serialized_data": json.dumps(
                {"entity_id": None, "meta_information": json.dumps(body)}
            ),
            "result_serialized_data": json.dumps(refused),
        }

    # listed out of order: the SKUs in serialized_data decide which group each answers
    responses.get(
        f"{API}/bulk/u-1/detailed-status",
        json={
            "operations_list": [
                operation(
                    1,
                    ["C"],
                    [
                        {
                            "message": "Invalid attribute %fieldName = %fieldValue.",
                            "parameters": ["SKU", "C"],
                        }
                    ],
                ),
                operation(0, ["A", "B"], []),
            ]
        },
    )
    connector = connector_for(BASE, platform_config={"async_threshold": 2, "sync_batch_size": 2})

    results = connector.push_prices([PriceUpdate(ListingRef(sku=s), Decimal(1)) for s in "ABC"])

    assert [(r.sku, r.kind) for r in results] == [
        ("A", FailureKind.OK),
        ("B", FailureKind.OK),
        ("C", FailureKind.PERMANENT),
    ]


# --------------------------------------------------------------------------- settings


def test_settings_are_checked_with_a_message_per_problem():
    assert platform_config_problems({}) == []
    assert platform_config_problems(
        {"msi": "yes", "source_codes": [], "stock_id": 0, "typo": 1}
    ) == [
        "typo: not a Magento setting",
        "msi: true or false",
        'source_codes: a list of distinct MSI source codes, e.g. ["default"]',
        "stock_id: a whole number from 1 to 2147483648",
    ]
    assert platform_config_problems({"store_code": "Default"}) == [
        "store_code: a store view code such as default or all"
    ]
    assert platform_config_problems([]) == ["platform_config: a JSON object"]
    assert magento_options({"source_codes": ["a", "b"], "sync_batch_size": 20}).source_codes == (
        "a",
        "b",
    )
    with pytest.raises(PermanentError, match="read_page_size"):
        magento_options({"read_page_size": 301})
    assert credentials_problems("magento", {"access_token": "x"}) == []
    assert credentials_problems("magento", {}) == [
        'credentials: {"access_token": "<integration access token>"}'
    ]
    assert credentials_problems("shopify", {}) == []


@pytest.mark.parametrize(
    ("failure", "message", "sku"),
    [
        (
            {
                "message": "Invalid attribute %fieldName = %fieldValue.",
                "parameters": ["SKU", "A-1"],
            },
            "Invalid attribute SKU = A-1.",
            "A-1",
        ),
        (
            {
                "message": "Invalid attribute %fieldName = %fieldValue.",
                "parameters": {"fieldName": "SKU", "fieldValue": "A-2"},
            },
            "Invalid attribute SKU = A-2.",
            "A-2",
        ),
        (
            {
                "message": "Requested store is not found. Row ID: SKU = %SKU, Store ID: %storeId.",
                "parameters": ["A-3", "9"],
            },
            "Requested store is not found. Row ID: SKU = A-3, Store ID: 9.",
            "A-3",
        ),
        (
            {
                "message": "Invalid attribute %fieldName = %fieldValue.",
                "parameters": ["Price", "-1"],
            },
            "Invalid attribute Price = -1.",
            None,
        ),
        (
            {"message": "No such entity with %1 = %2", "parameters": ["sku", "Z"]},
            "No such entity with sku = Z",
            None,
        ),
    ],
)
def test_magentos_messages_are_rendered_and_their_sku_found(failure, message, sku):
    assert render_message(failure["message"], failure["parameters"]) == message
    assert refused_sku(failure) == sku
