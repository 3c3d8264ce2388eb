"""Every connector operation against the sandbox that validates requests by the platforms'
published definitions (sandbox/contracts/): pimsync sends nothing the platform refuses.

Each platform's scenario runs every operation pimsync uses - prices and quantities
in a small batch and in one larger than the platform's call maximum, the
read-back, an order poll over several pages, cancel, fulfil (with a known and an
unknown carrier where it matters), the whole catalog read page by page (catalog
import), the connection test and, on Shopify and WooCommerce, the webhook
subscriptions (create, list, repair); on all five, publishing a product (with
options and without), publishing it again and pushing every part of its content -
and then asserts the
sandbox refused nothing and answered nothing outside the definition. A field,
argument or parameter renamed in a connector fails here (the last tests show it
for one rename per platform).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from channels_app.connectors import oauth as oauth_module
from channels_app.connectors import shopify as shopify_module
from channels_app.connectors.amazon import AmazonConnector
from channels_app.connectors.base import (
    CONTENT_PARTS,
    CatalogItem,
    ChannelConfig,
    Connector,
    ContentPublisher,
    ContentUpdate,
    ListingRef,
    OrderData,
    PriceUpdate,
    ProductContent,
    PublishResult,
    QuantityUpdate,
    VariantContent,
    WebhookConnector,
)
from channels_app.connectors.ebay import EbayConnector
from channels_app.connectors.errors import AuthError, PermanentError
from channels_app.connectors.magento import MagentoConnector
from channels_app.connectors.oauth import refresh_access_token
from channels_app.connectors.shopify import ShopifyConnector
from channels_app.connectors.woocommerce import WooCommerceConnector
from sandbox.platform import SandboxPlatform
from sandbox.server import RunningSandbox, start_sandbox
from tests.support.sandbox import (
    AMAZON_SELLER,
    amazon_config,
    ebay_config,
    magento_config,
    oauth_config,
    seed_listings,
    shopify_config,
    woocommerce_config,
)

SMALL = 3


@pytest.fixture
def validating_sandbox() -> Iterator[RunningSandbox]:
    """The sandbox with its own answers checked against the definitions too."""
    running = start_sandbox(scale_limits=1000)
    for platform in running.app.platforms.values():
        platform.check_answers = True
    running.platform("amazon").feed_processing_seconds = 0.0  # type: ignore[attr-defined]
    yield running
    running.stop()


def exercise(
    connector: Connector,
    platform: SandboxPlatform,
    listings: list[ListingRef],
    *,
    large: int,
    cancels: bool = True,
    after_pushes: Callable[[], object] = lambda: None,
) -> None:
    """Push (small, then large), read back, poll orders over pages, cancel, fulfil, test."""
    small, everything = listings[:SMALL], listings[: SMALL + large]
    for batch in (small, everything):
        prices = connector.push_prices([PriceUpdate(ref, Decimal("12.50")) for ref in batch])
        quantities = connector.push_quantities(
            [QuantityUpdate(ref, 7, expected_quantity=None) for ref in batch]
        )
        assert [r for r in [*prices, *quantities] if not r.ok] == []
    after_pushes()
    states = connector.read_listings(everything)
    assert {(s.price, s.quantity) for s in states} == {(Decimal("12.50"), 7)}
    skus = [ref.sku for ref in listings[:2]]
    orders = [platform.create_order([{"sku": sku, "quantity": 1}]) for sku in skus * 3]
    seen = poll_everything(connector, page_size=2)
    assert {o.id for o in orders} <= {o.external_id for o in seen}
    catalog = read_catalog(connector, page_size=SMALL + 1)
    assert {item.sku for item in catalog} == {ref.channel_sku for ref in listings}
    cancelled = connector.cancel_order(orders[0].id, reason="oversell")
    assert cancelled.ok if cancels else cancelled.code == "unsupported"
    assert connector.fulfil_order(orders[1].id, tracking_number="1Z999", carrier="UPS").ok
    assert connector.test_connection().ok
    if isinstance(connector, WebhookConnector):
        exercise_subscriptions(connector)


def exercise_subscriptions(connector: WebhookConnector) -> None:
    """Subscribe every topic pimsync reads, list them, point one at a new address.
    (Loopback addresses on a closed port: nothing is delivered anywhere.)"""
    address = "https://127.0.0.1:9/webhooks/shop/"
    for topic in connector.webhook_topics:
        assert connector.webhook_subscribe(topic, address).address == address
    listed = connector.webhook_subscriptions()
    assert sorted((s.topic, s.address) for s in listed) == sorted(
        (topic, address) for topic in connector.webhook_topics
    )
    moved = connector.webhook_subscription_repair(listed[0], address.replace("shop", "shop-2"))
    assert (moved.external_id, moved.address) == (
        listed[0].external_id,
        address.replace("shop", "shop-2"),
    )


def read_catalog(connector: Connector, *, page_size: int) -> list[CatalogItem]:
    """Every page of the channel's catalog (the paging parameters exercised too)."""
    items: list[CatalogItem] = []
    cursor, pages = None, 0
    while True:
        page = connector.catalog_page(cursor, page_size=page_size)
        items.extend(page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages > 1
    return items


def poll_everything(connector: Connector, *, page_size: int) -> list[OrderData]:
    orders: list[OrderData] = []
    cursor = "2026-01-01T00:00:00Z"
    pages = 0
    while True:
        page = connector.orders_since(cursor, page_size=page_size)
        orders.extend(page.orders)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages > 1  # the paging parameters were exercised too
    return orders


def assert_nothing_refused(platform: SandboxPlatform) -> None:
    assert list(platform.refusals) == []
    assert list(platform.answer_problems) == []


# ---------------------------------------------------------------------- the four platforms


def rows(prefix: str, count: int, group: str = "") -> list[dict[str, Any]]:
    return [
        {"sku": f"{prefix}-{n:03d}", "price": "1", "quantity": 100, "group": group}
        for n in range(count)
    ]


# platform -> (catalog rows, connector, size of the large batch)
SCENARIOS: dict[str, tuple[list[dict[str, Any]], Callable[[str], Connector], int]] = {
    # 260 variants of one product: productVariantsBulkUpdate takes 250 per call
    "shopify": (
        rows("S", 263, group="tee"),
        lambda url: ShopifyConnector(shopify_config(url)),
        260,
    ),
    # 150 items: products/batch calls of 100 and 30, one variations/batch call
    "woocommerce": (
        rows("W", 133) + rows("V", 20, group="hoodie"),
        lambda url: WooCommerceConnector(woocommerce_config(url)),
        150,
    ),
    # 30 SKUs: bulk calls of 25 and 5
    "ebay": (rows("E", 33), lambda url: EbayConnector(ebay_config(url)), 30),
}


@pytest.mark.parametrize("platform_name", sorted(SCENARIOS))
def test_every_operation_matches_the_platforms_definition(
    validating_sandbox, platform_name: str
) -> None:
    catalog, make, large = SCENARIOS[platform_name]
    platform = validating_sandbox.platform(platform_name)
    listings = seed_listings(platform, catalog)
    connector = make(validating_sandbox.platform_url(platform_name))

    exercise(connector, platform, listings, large=large)

    assert_nothing_refused(platform)


def test_amazon_connector_matches_the_sp_api_models(validating_sandbox) -> None:
    platform = validating_sandbox.platform("amazon")
    listings = seed_listings(platform, rows("A", 213))
    connector = AmazonConnector(amazon_config(validating_sandbox.platform_url("amazon")))

    # 213 SKUs: above the feed threshold (200), so the large push is a JSON_LISTINGS_FEED;
    # Amazon has no seller cancellation in pimsync (a permanent "unsupported", no call)
    exercise(connector, platform, listings, large=210, cancels=False)
    extra = platform.create_order([{"sku": listings[0].sku, "quantity": 1}])
    unlisted = connector.fulfil_order(extra.id, tracking_number="T-1", carrier="Speedy Couriers")

    assert unlisted.ok
    assert platform.orders.get(extra.id).carrier == "Speedy Couriers"  # type: ignore[union-attr]
    assert_nothing_refused(platform)


# ---------------------------------------------------------------------- OAuth token calls


class Refreshing:
    """A token source that refreshes through the platform's grant, as tokens.py does."""

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self.token = ""
        self.grants = 0

    def current(self) -> str:
        return self.token or self.renew("")

    def renew(self, rejected: str) -> str:
        self.token = refresh_access_token(self.config).access_token
        self.grants += 1
        return self.token


@pytest.mark.parametrize(
    ("platform_name", "make", "catalog", "large"),
    [
        ("ebay", EbayConnector, rows("E", 33), 30),
        ("amazon", AmazonConnector, rows("A", 213), 210),
    ],
)
def test_refreshed_tokens_and_their_grants_match_the_definitions(
    validating_sandbox, platform_name: str, make: Any, catalog: list[Any], large: int
) -> None:
    platform = validating_sandbox.platform(platform_name)
    listings = seed_listings(platform, catalog)
    base = oauth_config(
        validating_sandbox,
        platform_name,
        platform_config={
            **({"pacing": False, "feed_poll_seconds": 0.05} if platform_name == "amazon" else {}),
            "seller_id": AMAZON_SELLER,
            "rate_limit_per_second": 0,
        },
    )
    tokens = Refreshing(base)
    connector = make(replace(base, access_token=tokens.current, on_unauthorized=tokens.renew))

    # every issued token expires after the pushes: the read-back is refused, renewed, retried
    exercise(
        connector,
        platform,
        listings,
        large=large,
        cancels=platform_name == "ebay",
        after_pushes=platform.issuer().expire_all,
    )

    assert tokens.grants == 2
    assert platform.issuer().describe()["expired_refusals"] == 1
    assert_nothing_refused(platform)


def test_a_renamed_grant_field_is_refused_as_the_token_endpoint_refuses_it(
    validating_sandbox, monkeypatch
) -> None:
    encode = oauth_module.urlencode

    def renamed(form: dict[str, str]) -> str:
        return encode({("clientId" if k == "client_id" else k): v for k, v in form.items()})

    monkeypatch.setattr(oauth_module, "urlencode", renamed)

    with pytest.raises(AuthError) as refused:
        refresh_access_token(oauth_config(validating_sandbox, "amazon"))

    assert (refused.value.code, refused.value.status) == ("invalid_request", 400)
    problems = validating_sandbox.platform("amazon").refusals[-1]["problems"]
    assert problems == [
        "body: 'client_id' is a required property",
        "body: unknown field(s) clientId",
    ]


# ---------------------------------------------------------------------- renames are caught


def renamed(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, old: str, new: str) -> None:
    monkeypatch.setattr(target, name, getattr(target, name).replace(old, new))


def test_a_renamed_graphql_argument_is_refused_as_shopify_refuses_it(
    validating_sandbox, monkeypatch
) -> None:
    platform = validating_sandbox.platform("shopify")
    order = platform.create_order(
        [{"sku": seed_listings(platform, [{"sku": "S", "price": "1", "quantity": 5}])[0].sku}]
    )
    renamed(
        monkeypatch, shopify_module, "CANCEL_MUTATION", "staffNote: $staffNote", "note: $staffNote"
    )
    connector = ShopifyConnector(shopify_config(validating_sandbox.platform_url("shopify")))

    result = connector.cancel_order(order.id)

    assert (result.ok, result.code) == (False, "argumentNotAccepted")
    assert platform.refusals[-1]["problems"] == [
        "Field 'orderCancel' doesn't accept argument 'note'"
    ]


def test_a_renamed_body_field_is_refused_by_ebay_and_woocommerce(
    validating_sandbox, monkeypatch
) -> None:
    ebay_listing = seed_listings(
        validating_sandbox.platform("ebay"), [{"sku": "E", "price": "1", "quantity": 5}]
    )[0]
    woo_listing = seed_listings(
        validating_sandbox.platform("woocommerce"), [{"sku": "W", "price": "1", "quantity": 5}]
    )[0]
    ebay = EbayConnector(ebay_config(validating_sandbox.platform_url("ebay")))
    woo = WooCommerceConnector(woocommerce_config(validating_sandbox.platform_url("woocommerce")))
    original_woo_push = WooCommerceConnector._push

    def woo_push_renamed(self: Any, listings: Any, bodies: Any) -> Any:
        bodies = [
            {"stock_qty" if k == "stock_quantity" else k: v for k, v in b.items()} for b in bodies
        ]
        return original_woo_push(self, listings, bodies)

    monkeypatch.setattr(WooCommerceConnector, "_push", woo_push_renamed)
    original_call = EbayConnector._call

    def ebay_call_renamed(self: Any, method: str, url: str, **kwargs: Any) -> Any:
        body = kwargs.get("json")
        if isinstance(body, dict) and "requests" in body:
            for entry in body["requests"]:
                for offer in entry.get("offers", []):
                    offer["availableQty"] = offer.pop("availableQuantity", None)
        return original_call(self, method, url, **kwargs)

    monkeypatch.setattr(EbayConnector, "_call", ebay_call_renamed)

    ebay_result = ebay.push_quantities([QuantityUpdate(ebay_listing, 3)])[0]
    woo_result = woo.push_quantities([QuantityUpdate(woo_listing, 3)])[0]

    assert (ebay_result.ok, ebay_result.code, ebay_result.http_status) == (False, "25709", 400)
    assert validating_sandbox.platform("ebay").refusals[-1]["problems"] == [
        "body requests/0/offers/0: unknown field(s) availableQty"
    ]
    assert (woo_result.ok, woo_result.code) == (False, "rest_invalid_param")
    assert validating_sandbox.platform("woocommerce").refusals[-1]["problems"] == [
        "body update/0: unknown field(s) stock_qty"
    ]


def test_a_renamed_query_parameter_is_refused_by_amazon(validating_sandbox, monkeypatch) -> None:
    connector = AmazonConnector(amazon_config(validating_sandbox.platform_url("amazon")))
    original_call = AmazonConnector._call

    def call_renamed(self: Any, operation: str, method: str, path: str, **kwargs: Any) -> Any:
        params = dict(kwargs.pop("params", None) or {})
        if "lastUpdatedAfter" in params:
            params["lastUpdateAfter"] = params.pop("lastUpdatedAfter")
        return original_call(self, operation, method, path, params=params, **kwargs)

    monkeypatch.setattr(AmazonConnector, "_call", call_renamed)

    with pytest.raises(PermanentError) as refused:
        connector.orders_since("2026-01-01T00:00:00Z")

    assert (refused.value.code, refused.value.status) == ("InvalidInput", 400)

    problems = validating_sandbox.platform("amazon").refusals[-1]["problems"]
    assert problems == ["query lastUpdateAfter: is not a parameter of this operation"]


def test_the_pre_2024_callback_url_input_is_refused_as_shopify_2026_01_refuses_it(
    validating_sandbox, monkeypatch
) -> None:
    # WebhookSubscriptionInput has `uri` in 2026-01; `callbackUrl` was the older name
    connector = ShopifyConnector(shopify_config(validating_sandbox.platform_url("shopify")))
    original_execute = ShopifyConnector.execute

    def execute_renamed(self: Any, query: str, variables: Any, **kwargs: Any) -> Any:
        subscription = dict(variables.get("subscription") or {})
        if "uri" in subscription:
            subscription["callbackUrl"] = subscription.pop("uri")
            variables = {**variables, "subscription": subscription}
        return original_execute(self, query, variables, **kwargs)

    monkeypatch.setattr(ShopifyConnector, "execute", execute_renamed)

    with pytest.raises(PermanentError) as refused:
        connector.webhook_subscribe("products/update", "https://127.0.0.1:9/webhooks/shop/")

    assert refused.value.code == "INVALID_VARIABLE"
    assert validating_sandbox.platform("shopify").refusals[-1]["problems"] == [
        "Variable $subscription of type WebhookSubscriptionInput! was provided invalid value "
        "for callbackUrl (Field is not defined on WebhookSubscriptionInput)"
    ]


# ---------------------------------------------------------------------- publishing


def variant_content(sku: str, size: str, barcode: str, price: str) -> VariantContent:
    return VariantContent(
        sku=sku,
        channel_sku=sku,
        title="",
        options=(("Size", size),) if size else (),
        barcode=barcode,
        price=Decimal(price),
        compare_at_price=None,
        quantity=4,
        listing=ListingRef(sku=sku),
    )


def product_content(handle: str, sizes: tuple[str, ...]) -> ProductContent:
    return ProductContent(
        handle=handle,
        title=handle.replace("-", " ").title(),
        description="<p>Merino.</p>",
        vendor="Acme",
        product_type="Socks",
        image_urls=("https://images.example.com/a.jpg", "https://images.example.com/b.jpg"),
        option_names=("Size",) if sizes != ("",) else (),
        variants=tuple(
            variant_content(f"{handle.upper()}-{size or 'ONE'}", size, f"040063813339{n}", "12.00")
            for n, size in enumerate(sizes)
        ),
    )


EBAY_PUBLISHING = {
    "category_id": "15687",
    "fulfillment_policy_id": "sandbox-fulfillment",
    "payment_policy_id": "sandbox-payment",
    "return_policy_id": "sandbox-return",
    "merchant_location_key": "sandbox-warehouse",
}
# platform -> the connector a channel that can publish gets
PUBLISHERS: dict[str, Callable[[str], Any]] = {
    "shopify": lambda url: ShopifyConnector(shopify_config(url)),
    "woocommerce": lambda url: WooCommerceConnector(woocommerce_config(url)),
    "ebay": lambda url: EbayConnector(ebay_config(url, **EBAY_PUBLISHING)),
    "amazon": lambda url: AmazonConnector(
        amazon_config(url, product_type="PRODUCT", country_of_origin="US")
    ),
    "magento": lambda url: MagentoConnector(
        magento_config(url, platform_config={"barcode_attribute": "gtin"})
    ),
}


def published_again(content: ProductContent, result: PublishResult) -> ProductContent:
    """The content as pimsync holds it after publishing: the channel's ids on each variant,
    a new title, description, first image and option values."""
    refs = {v.sku: v.listing for v in result.variants}
    return replace(
        content,
        title=f"{content.title} Pro",
        description="<p>Merino, reinforced heel.</p>",
        image_urls=content.image_urls[::-1],
        product_ref=result.product_ref,
        variants=tuple(
            replace(
                v,
                listing=refs[v.sku],
                options=tuple((name, f"{value}-wide") for name, value in v.options),
                barcode=f"{v.barcode[:-1]}9",
            )
            for v in content.variants
        ),
    )


@pytest.mark.parametrize("platform_name", sorted(PUBLISHERS))
@pytest.mark.parametrize("sizes", [("S", "M", "L"), ("",)], ids=["options", "single"])
def test_publishing_and_content_pushes_match_the_platforms_definition(
    validating_sandbox, platform_name: str, sizes: tuple[str, ...]
) -> None:
    platform = validating_sandbox.platform(platform_name)
    connector = PUBLISHERS[platform_name](validating_sandbox.platform_url(platform_name))
    assert isinstance(connector, ContentPublisher)
    content = product_content("trail-sock", sizes)

    published = connector.publish_product(content)
    again = connector.publish_product(replace(content, product_ref=published.product_ref))
    edited = published_again(content, published)
    pushed = connector.push_content(
        [
            ContentUpdate(listing=v.listing, product=edited, changed=frozenset(CONTENT_PARTS))
            for v in edited.variants
        ]
    )

    assert (published.ok, again.ok) == (True, True), (published, again)
    assert again.product_ref == published.product_ref
    assert [r for r in pushed if not r.ok] == []
    assert_nothing_refused(platform)
