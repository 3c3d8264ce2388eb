"""catalog_page (catalog import) per platform against the sandbox: what each item
carries, how the pages chain, and that a stored cursor resumes where it stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from channels_app.connectors.amazon import AmazonConnector
from channels_app.connectors.base import CatalogItem, CatalogPage, Connector
from channels_app.connectors.ebay import EbayConnector
from channels_app.connectors.errors import PermanentError
from channels_app.connectors.magento import MagentoConnector
from channels_app.connectors.shopify import CATALOG_PAGE_MAX, ShopifyConnector
from channels_app.connectors.woocommerce import WooCommerceConnector
from tests.support.sandbox import (
    amazon_config,
    ebay_config,
    magento_config,
    shopify_config,
    woocommerce_config,
)

SOCK = {"product_title": "Trail Sock", "barcode": "4006381333931", "options": {"Size": "M"}}


def read_all(connector: Connector, page_size: int) -> tuple[list[CatalogItem], list[CatalogPage]]:
    items: list[CatalogItem] = []
    pages: list[CatalogPage] = []
    cursor = None
    while True:
        page = connector.catalog_page(cursor, page_size=page_size)
        pages.append(page)
        items.extend(page.items)
        if page.next_cursor is None:
            return items, pages
        cursor = page.next_cursor


def test_shopify_reads_variants_with_barcode_options_product_and_quantity(sandbox) -> None:
    platform = sandbox.platform("shopify")
    platform.seed(
        [
            {"sku": "SOCK-M", "price": "9.50", "quantity": 4, "group": "sock", **SOCK},
            {"sku": "SOCK-L", "price": "9.50", "quantity": 0, "group": "sock", **SOCK},
            {"sku": "MUG", "price": "12.00", "quantity": 7, "product_title": "Mug"},
        ]
    )
    connector = ShopifyConnector(shopify_config(sandbox.platform_url("shopify")))

    items, pages = read_all(connector, page_size=2)

    assert [len(p.items) for p in pages] == [2, 1]
    sock = next(i for i in items if i.sku == "SOCK-M")
    mug = next(i for i in items if i.sku == "MUG")
    assert (sock.product_title, sock.title, sock.barcode, dict(sock.options)) == (
        "Trail Sock",
        "M",
        "4006381333931",
        {"Size": "M"},
    )
    assert (sock.price, sock.quantity) == (Decimal("9.50"), 4)
    assert sock.key == sock.variant_id
    assert sock.variant_id.startswith("gid://shopify/ProductVariant/")
    assert sock.inventory_item_id.startswith("gid://shopify/InventoryItem/")
    assert sock.product_id == next(i for i in items if i.sku == "SOCK-L").product_id
    # A product without options: Shopify's "Default Title" is not a title.
    assert (mug.title, mug.product_title, dict(mug.options)) == ("", "Mug", {})
    assert list(platform.refusals) == []


def test_shopify_pages_stay_under_the_query_cost_cap(sandbox) -> None:
    platform = sandbox.platform("shopify")
    platform.seed([{"sku": f"S{n:04d}", "price": "1", "quantity": 1} for n in range(300)])
    connector = ShopifyConnector(shopify_config(sandbox.platform_url("shopify")))

    page = connector.catalog_page(None, page_size=1000)

    assert len(page.items) == CATALOG_PAGE_MAX == 249  # 2 + 4 x 249 = 998 points
    assert page.next_cursor is not None
    assert list(platform.refusals) == []


def test_woocommerce_reads_simple_products_then_each_parents_variations(sandbox) -> None:
    platform = sandbox.platform("woocommerce")
    platform.seed(
        [
            {
                "sku": "MUG",
                "price": "12.00",
                "quantity": 7,
                "product_title": "Mug",
                "options": {"Colour": "Red"},
            },
            {"sku": "SOCK-M", "price": "9.50", "quantity": 4, "group": "sock", **SOCK},
            {
                "sku": "SOCK-L",
                "price": "9.50",
                "quantity": 2,
                "group": "sock",
                **SOCK,
                "options": {"Size": "L"},
            },
        ]
    )
    connector = WooCommerceConnector(woocommerce_config(sandbox.platform_url("woocommerce")))

    items, pages = read_all(connector, page_size=1)

    # products page 1 (Mug), page 2 (the variable parent: queued), then its two variations
    assert [[i.sku for i in p.items] for p in pages] == [["MUG"], [], ["SOCK-M"], ["SOCK-L"]]
    sock = items[1]
    assert (sock.product_title, dict(sock.options), sock.barcode) == (
        "Trail Sock",
        {"Size": "M"},
        "4006381333931",
    )
    assert sock.product_id != sock.variant_id
    assert sock.product_id == items[2].product_id
    mug = items[0]
    assert (mug.product_id, mug.product_title, mug.price, mug.quantity) == (
        mug.variant_id,
        "Mug",
        Decimal("12.00"),
        7,
    )
    assert dict(mug.options) == {"Colour": "Red"}  # a simple product's one-valued attribute
    assert list(platform.refusals) == []


def test_a_stored_cursor_reads_the_same_page_again(sandbox) -> None:
    platform = sandbox.platform("woocommerce")
    platform.seed([{"sku": f"W{n}", "price": "1", "quantity": 1} for n in range(5)])
    connector = WooCommerceConnector(woocommerce_config(sandbox.platform_url("woocommerce")))
    first = connector.catalog_page(None, page_size=2)

    again = [connector.catalog_page(first.next_cursor, page_size=2) for _ in range(2)]

    assert again[0] == again[1]
    assert {i.sku for i in again[0].items}.isdisjoint({i.sku for i in first.items})


def test_ebay_reads_items_and_their_offers(sandbox) -> None:
    platform = sandbox.platform("ebay")
    platform.seed(
        [
            {"sku": "SOCK-M", "price": "9.50", "quantity": 4, **SOCK, "barcode": "012345678905"},
            {"sku": "MUG", "price": "12.00", "quantity": 7, "product_title": "Mug"},
        ]
    )
    connector = EbayConnector(ebay_config(sandbox.platform_url("ebay")))

    items, pages = read_all(connector, page_size=1)

    assert [p.calls for p in pages] == [2, 2]  # getInventoryItems + one getOffers each
    assert pages[0].total == 2
    mug, sock = sorted(items, key=lambda i: i.sku)
    catalog = platform.catalog.get("SOCK-M")
    assert (sock.barcode, dict(sock.options), sock.title) == (
        "012345678905",
        {"Size": "M"},
        "Trail Sock M",
    )
    assert (sock.offer_id, sock.product_id) == (catalog.ids["offer_id"], catalog.ids["product_id"])
    assert (sock.price, sock.quantity, mug.price) == (Decimal("9.50"), 4, Decimal("12.00"))
    assert list(platform.refusals) == []


def test_ebay_keeps_the_page_size_a_read_started_with(sandbox) -> None:
    sandbox.platform("ebay").seed([{"sku": f"E{n}", "price": "1", "quantity": 1} for n in range(6)])
    connector = EbayConnector(ebay_config(sandbox.platform_url("ebay")))
    first = connector.catalog_page(None, page_size=2)

    second = connector.catalog_page(first.next_cursor, page_size=5)  # offset counts pages of 2

    assert [i.sku for i in first.items] == ["E0", "E1"]
    assert [i.sku for i in second.items] == ["E2", "E3"]


def amazon_rows(count: int, *, same_second: range = range(0)) -> list[dict[str, Any]]:
    """Listings created a second apart, except those in ``same_second`` (created together)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return [
        {
            "sku": f"A{n:05d}",
            "price": "5.00",
            "quantity": n % 7,
            "created_at": (
                start + timedelta(seconds=same_second.start if n in same_second else n)
            ).isoformat(),
        }
        for n in range(count)
    ]


def test_amazon_reads_past_the_1000_items_one_search_can_page_through(sandbox) -> None:
    platform = sandbox.platform("amazon")
    # 20 listings created in the same second straddle the first search's end.
    platform.seed(amazon_rows(1450, same_second=range(990, 1010)))
    connector = AmazonConnector(amazon_config(sandbox.platform_url("amazon")))

    items, pages = read_all(connector, page_size=20)

    assert sorted(i.sku for i in items) == [f"A{n:05d}" for n in range(1450)]
    assert pages[0].total == 1450
    # The first search: 1000 listings in 50 pages. The second starts at the last second
    # seen: 460 listings (A00990-A00999 again, skipped) in 23 pages.
    assert len(pages) == 50 + 23
    assert sum(len(p.items) for p in pages[50:]) == 450
    assert list(platform.refusals) == []


def test_amazon_says_when_a_second_holds_more_than_it_can_page(sandbox) -> None:
    sandbox.platform("amazon").seed(amazon_rows(1010, same_second=range(1010)))
    connector = AmazonConnector(amazon_config(sandbox.platform_url("amazon")))

    with pytest.raises(PermanentError) as refused:
        read_all(connector, page_size=20)

    assert refused.value.code == "catalog_not_pageable"


def test_amazon_item_carries_barcode_options_and_parent(sandbox) -> None:
    sandbox.platform("amazon").seed(
        [{"sku": "SOCK-M", "price": "9.50", "quantity": 4, "group": "SOCK", **SOCK}]
    )
    connector = AmazonConnector(amazon_config(sandbox.platform_url("amazon")))

    (item,), _ = read_all(connector, page_size=20)

    assert (item.title, item.barcode, dict(item.options), item.parent_ref, item.group_ref) == (
        "Trail Sock M",
        "4006381333931",
        {"size": "M"},
        "SOCK",
        "SOCK",
    )
    assert (item.price, item.quantity) == (Decimal("9.50"), 4)
    assert item.product_id.startswith("B0")  # the ASIN


def test_magento_returns_configurables_as_groups_of_their_children(sandbox) -> None:
    platform = sandbox.platform("magento")
    platform.seed(
        [
            {"sku": "SOCK-M", "price": "9.50", "quantity": 4, "group": "SOCK", **SOCK},
            {"sku": "MUG", "price": "12.00", "quantity": 7, "product_title": "Mug"},
        ]
    )
    connector = MagentoConnector(magento_config(sandbox.platform_url("magento")))

    items, pages = read_all(connector, page_size=300)

    groups = [g for p in pages for g in p.groups]
    sock = next(i for i in items if i.sku == "SOCK-M")
    assert [(g.product_id, g.title, list(g.variant_ids)) for g in groups] == [
        ("SOCK", "Trail Sock", [sock.variant_id])
    ]
    assert (sock.title, sock.barcode, sock.price, sock.quantity) == (
        "Trail Sock-M",
        "4006381333931",
        Decimal("9.5"),
        4,
    )
    assert sorted(i.sku for i in items) == ["MUG", "SOCK-M"]  # the configurable is no item
    assert list(platform.refusals) == []
