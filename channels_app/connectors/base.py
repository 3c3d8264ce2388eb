"""The one interface every channel connector implements, and its DTOs.

Connectors speak HTTP (requests, explicit timeouts) and never touch the ORM:
services build the DTOs below from models and write results back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from .errors import FailureKind


@dataclass(frozen=True)
class ChannelConfig:
    """Everything a connector needs to know about one channel connection."""

    channel_id: int
    platform: str  # "shopify" | "woocommerce" | "ebay" | "amazon" | "magento"
    base_url: str  # e.g. https://shop.myshopify.com or http://127.0.0.1:8700/shopify
    credentials: Mapping[str, str]  # decrypted; never log
    webhook_secret: str = ""  # decrypted; never log
    # Non-secret platform settings: shopify "location_id" (gid), "api_version";
    # amazon "seller_id", "marketplace_id", "product_type"; ebay "marketplace_id";
    # magento: see connectors.magento.MagentoOptions.
    platform_config: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int | None = None  # optional cap below the platform maximum
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    # Called with the call's cost before every request to the channel's API: the
    # channel's one rate budget, shared by every worker (pushes, reads, polls, order
    # calls, connection tests alike). None: not limited (tests, scripts).
    rate_gate: Callable[[float], object] | None = field(default=None, compare=False, repr=False)
    # Called after an answer that reports the platform's own budget (Shopify's
    # extensions.cost): the shared limiter follows what the platform charged and
    # says is left. None: nothing follows it.
    rate_report: Callable[[CostReport], object] | None = field(
        default=None, compare=False, repr=False
    )
    # OAuth channels whose credentials hold a refresh token (eBay, Amazon): returns a
    # valid access token, refreshed ahead of expiry once for all workers; raises
    # AuthError when the refresh is refused, RetryableError when the token endpoint
    # is down. None: the static credentials["access_token"] is sent as it is.
    access_token: Callable[[], str] | None = field(default=None, compare=False, repr=False)
    # Called with an access token the API refused (401): the token to retry that call
    # with once, or None when there is no other (a static token, or one just issued).
    on_unauthorized: Callable[[str], str | None] | None = field(
        default=None, compare=False, repr=False
    )
    # Platforms that also limit single operations (Amazon's usage plans): their buckets,
    # shared by every worker. None: the connector paces them in its own memory.
    operation_budget: OperationBudget | None = field(default=None, compare=False, repr=False)

    def current_access_token(self) -> str:
        """The access token to send now (may refresh it; may raise a ConnectorError)."""
        if self.access_token is not None:
            return self.access_token()
        return str(self.credentials.get("access_token", ""))


class OperationBudget(Protocol):
    """A channel's per-operation rate buckets (token buckets with debt, like the
    channel's own budget)."""

    def take(self, operation: str, *, rate: float, burst: float) -> float:
        """Take one call of ``operation``; the seconds to wait before it may go out."""
        ...

    def give_back(self, operation: str, *, rate: float, burst: float) -> None:
        """Return a call taken but not made."""
        ...

    def exhausted(self, operation: str, *, rate: float, burst: float) -> None:
        """The platform refused a call for its quota: nothing is left in the bucket."""
        ...


@dataclass(frozen=True)
class CostReport:
    """What one call cost in a platform's own budget unit (Shopify query points)."""

    requested: float  # what was taken from the budget before the call
    actual: float | None  # what the platform charged (None: the query did not run)
    available: float | None = None  # the platform's bucket after the call
    restore_rate: float | None = None  # per second
    maximum: float | None = None  # the bucket's size


@dataclass(frozen=True)
class ListingRef:
    """A variant as the channel knows it (ChannelListing's channel ids)."""

    sku: str  # pimsync's master SKU
    listing_sku: str = ""  # the channel's SKU if it differs (eBay/Amazon key on it)
    # Shopify product gid, WooCommerce parent product id, Magento configurable parent SKU
    product_id: str = ""
    # Shopify variant gid, WooCommerce product/variation id, Magento product entity id
    variant_id: str = ""
    inventory_item_id: str = ""  # Shopify InventoryItem gid
    offer_id: str = ""  # eBay offer id

    @property
    def channel_sku(self) -> str:
        return self.listing_sku or self.sku


@dataclass(frozen=True)
class PriceUpdate:
    listing: ListingRef
    price: Decimal
    compare_at_price: Decimal | None = None


@dataclass(frozen=True)
class QuantityUpdate:
    listing: ListingRef
    quantity: int
    # Shopify compare-and-set: the quantity we last confirmed on the channel
    # (None = no check). Other platforms ignore it (last write wins).
    expected_quantity: int | None = None


@dataclass(frozen=True)
class ItemResult:
    """Outcome for one SKU of a batch call."""

    sku: str
    kind: FailureKind
    code: str = ""  # the channel's error code ("THROTTLED", "25001", "429", ...)
    message: str = ""
    retry_after: float | None = None  # seconds the channel asked us to wait
    http_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.kind is FailureKind.OK


@dataclass(frozen=True)
class ListingState:
    """The channel's live values for one listing."""

    sku: str
    price: Decimal | None
    quantity: int | None
    found: bool = True
    error: ItemResult | None = None


@dataclass(frozen=True)
class OrderLineData:
    external_line_id: str
    sku: str
    quantity: int
    unit_price: Decimal
    external_variant_id: str = ""
    external_product_id: str = ""
    # For a refunded line: True restocked, False not restocked (e.g. damaged), None unsaid.
    restock: bool | None = None
    # Units of this line refunded so far (cumulative); a partial refund of an order that
    # stands returns (shipped) or releases (not shipped) just these units.
    refunded_quantity: int = 0


@dataclass(frozen=True)
class OrderData:
    """One order as the channel reports it, normalised."""

    external_id: str
    name: str  # human order number
    status: str  # normalised: pending | paid | cancelled | fulfilled | refunded
    financial_status: str  # the channel's own value
    fulfillment_status: str  # the channel's own value
    currency: str
    total: Decimal
    updated_at: datetime
    created_at: datetime
    lines: Sequence[OrderLineData]
    customer_email: str = ""
    customer_phone: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OrdersPage:
    orders: Sequence[OrderData]
    next_cursor: str | None  # None when there is no further page
    # Cursor to store after the last page (e.g. the max updated_at seen).
    high_water_mark: str | None = None


@dataclass(frozen=True)
class ListingEdit:
    """A listing's value as a channel reported it by webhook (Shopify
    inventory_levels/update and products/update, WooCommerce product.updated).

    It may be a person's edit in the channel's console, a sale, or the echo of
    pimsync's own write: the receiver tells them apart. The listing is found by
    whichever ids the platform sends."""

    kind: str  # "price" | "quantity" (SyncKind values)
    value: Decimal
    variant_id: str = ""  # Shopify variant gid, WooCommerce product/variation id
    inventory_item_id: str = ""  # Shopify InventoryItem gid
    sku: str = ""


@dataclass(frozen=True)
class WebhookEvent:
    delivery_id: str  # the platform's delivery / event id (dedupe key part)
    topic: str  # e.g. "orders/create", "order.updated"
    occurred_at: datetime | None
    order: OrderData | None
    payload: Mapping[str, Any]
    edits: Sequence[ListingEdit] = ()


@dataclass(frozen=True)
class Subscription:
    """A webhook subscription as the channel holds it."""

    topic: str  # pimsync's name of the topic: the platform's delivery header value
    address: str  # where the channel delivers it
    external_id: str  # the channel's id of the subscription
    active: bool = True  # WooCommerce pauses or disables webhooks; Shopify's are always on
    name: str = ""
    # Made by pimsync (its to repair): every subscription Shopify lists is this app's;
    # a WooCommerce store also holds webhooks people and plugins made.
    ours: bool = False


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str


@dataclass(frozen=True)
class CatalogItem:
    """One sellable item of a channel's catalog as the channel shows it (catalog import).

    The channel ids mirror ListingRef's, so a linked item becomes a listing as is;
    ``barcode`` is whatever GTIN/EAN/UPC/ISBN the platform gives, digits as given.
    """

    key: str  # unique within the channel's catalog (its variant id, else its SKU)
    sku: str  # the channel's SKU ("" when the channel has none)
    title: str  # the variant's own title (often the options, "M / Blue")
    product_title: str = ""  # the product it belongs to ("Trail Sock")
    barcode: str = ""
    options: Mapping[str, str] = field(default_factory=dict)  # {"Size": "M"}
    price: Decimal | None = None
    quantity: int | None = None
    product_id: str = ""  # ListingRef.product_id on this platform
    variant_id: str = ""  # ListingRef.variant_id
    inventory_item_id: str = ""
    offer_id: str = ""
    image_url: str = ""
    # The channel's product grouping variants (Amazon: the parent SKU; eBay: the
    # inventory item group); "" = product_id.
    parent_ref: str = ""

    @property
    def group_ref(self) -> str:
        return self.parent_ref or self.product_id


@dataclass(frozen=True)
class CatalogGroup:
    """A channel product that groups variants the catalog lists as items of their own
    (Magento: a configurable and its simple children, which may sit on other pages)."""

    product_id: str
    title: str
    variant_ids: Sequence[str]


@dataclass(frozen=True)
class CatalogPage:
    items: Sequence[CatalogItem]
    next_cursor: str | None  # None after the last page
    total: int | None = None  # the platform's count of items, when it gives one
    groups: Sequence[CatalogGroup] = ()
    calls: int = 1  # API calls this page took (for progress and the read floor)


class Connector(Protocol):
    """One per platform; instances are cheap and hold one requests.Session."""

    platform: str
    max_price_batch: int
    max_quantity_batch: int

    def __init__(self, config: ChannelConfig) -> None: ...

    def push_prices(self, items: Sequence[PriceUpdate]) -> list[ItemResult]:
        """One result per input item, same SKUs; splits over the platform max."""
        ...

    def push_quantities(self, items: Sequence[QuantityUpdate]) -> list[ItemResult]: ...

    def read_listings(self, listings: Sequence[ListingRef]) -> list[ListingState]: ...

    def orders_since(self, cursor: str | None, *, page_size: int = 100) -> OrdersPage: ...

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool: ...

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEvent: ...

    def cancel_order(self, external_order_id: str, *, reason: str = "") -> ItemResult: ...

    def fulfil_order(
        self, external_order_id: str, *, tracking_number: str = "", carrier: str = ""
    ) -> ItemResult: ...

    def test_connection(self) -> ConnectionCheck: ...

    def catalog_page(self, cursor: str | None, *, page_size: int = 100) -> CatalogPage:
        """One page of the channel's whole catalog, read with its bulk listing calls.

        ``cursor`` None starts at the beginning; pass the page's ``next_cursor`` to go
        on (a stored cursor resumes an interrupted read). ``page_size`` is capped at
        the platform's maximum. Raises ConnectorError."""
        ...


@dataclass(frozen=True)
class BatchStatus:
    """Where an asynchronous batch (Amazon feed, Magento async bulk) stands."""

    state: str  # "pending" | "done" | "cancelled" | "failed"
    detail: str = ""  # the platform's own status word
    result_ref: str = ""  # where the per-item results are read (Amazon: the report document)

    @property
    def final(self) -> bool:
        return self.state != "pending"


@runtime_checkable
class AsyncBatchConnector(Protocol):
    """A platform that takes large writes as a submitted batch processed later.

    The engine submits, records the batch (its id, SKUs and values) and returns to
    other work; a watcher reads the status and then the per-item results — each
    step retried on its own, so a failure after the platform accepted the batch
    never submits it again."""

    batch_threshold: int

    def batch_submit(
        self, kind: str, items: Sequence[PriceUpdate] | Sequence[QuantityUpdate]
    ) -> str:
        """Submit; returns the platform's batch id. Raises ConnectorError."""
        ...

    def batch_status(self, batch_id: str) -> BatchStatus: ...

    def batch_results(
        self, status: BatchStatus, listings: Sequence[ListingRef]
    ) -> list[ItemResult]:
        """One result per listing, in the order they were submitted."""


@runtime_checkable
class VariantReader(Protocol):
    """Optional: a connector that can list the variants of one channel product
    (Magento: the simple children of a configurable), for linking them by SKU."""

    def read_product_variants(self, product_ref: str) -> list[ListingRef]:
        """The product's variants as listings: channel SKU and channel ids."""
        ...


# --------------------------------------------------------------------------- product content


@dataclass(frozen=True)
class VariantContent:
    """One variant of a product as it is published (or its content pushed)."""

    sku: str  # pimsync's master SKU
    channel_sku: str  # the SKU the channel keys it on (listing_sku or sku)
    title: str  # the variant's own title ("" = the product's)
    options: tuple[tuple[str, str], ...]  # (option name, value) in the product's option order
    barcode: str  # GTIN / EAN / UPC, "" when none
    price: Decimal
    compare_at_price: Decimal | None
    quantity: int  # the channel's ATP when published
    listing: ListingRef  # the channel's ids when known (a re-publish, a content push)

    @property
    def options_label(self) -> str:
        return " / ".join(value for _, value in self.options)


@dataclass(frozen=True)
class ProductContent:
    """A pimsync product as one channel should show it: the descriptive data and every
    variant listed (or to be listed) there."""

    handle: str  # pimsync's product handle: the channel's handle / group key / parent SKU
    title: str
    description: str  # HTML as entered in pimsync
    vendor: str
    product_type: str
    image_urls: tuple[str, ...]  # first = main image
    option_names: tuple[str, ...]  # () for a product without options
    variants: tuple[VariantContent, ...]
    product_ref: str = ""  # the channel's product id when it was published before

    @property
    def has_variants(self) -> bool:
        """Several variants, or named options: the channel's variable / configurable form."""
        return len(self.variants) > 1 or bool(self.option_names)


# Parts of a product's content a push may carry; ContentUpdate.changed names those that
# differ from what the channel was last told (connectors send only what they must).
CONTENT_PRODUCT = "product"  # title, description, vendor, product type
CONTENT_IMAGES = "images"
CONTENT_VARIANT = "variant"  # options, barcode, variant title
CONTENT_PARTS = (CONTENT_PRODUCT, CONTENT_IMAGES, CONTENT_VARIANT)


@dataclass(frozen=True)
class ContentUpdate:
    """Push one listing's content: its product as the channel should show it now, and
    which parts changed since the last push (all of them when forced)."""

    listing: ListingRef
    product: ProductContent
    changed: frozenset[str]

    @property
    def variant(self) -> VariantContent:
        for variant in self.product.variants:
            if variant.sku == self.listing.sku:
                return variant
        raise LookupError(f"{self.listing.sku} is not a variant of {self.product.handle}")


@dataclass(frozen=True)
class PublishedVariant:
    """What the channel made of one variant: its ids (ok) or why not. ``values_set``
    is False when the variant is listed but its price and quantity may not be the
    ones published (a quantity call that failed, an offer made earlier): the pushes
    that follow set them."""

    sku: str
    listing: ListingRef
    result: ItemResult
    values_set: bool = True


@dataclass(frozen=True)
class PublishResult:
    product_ref: str  # the channel's product id (Shopify gid, Woo parent id, eBay group...)
    variants: list[PublishedVariant]

    @property
    def ok(self) -> bool:
        return bool(self.variants) and all(v.result.ok for v in self.variants)


@runtime_checkable
class ContentPublisher(Protocol):
    """A platform pimsync can create products on and keep their content current."""

    def publish_product(self, product: ProductContent) -> PublishResult:
        """Create (or, when it exists, update) the product with its variants, prices and
        quantities; one PublishedVariant per variant. Raises ConnectorError when nothing
        could be created (auth, throttling, the channel down)."""
        ...

    def push_content(self, items: Sequence[ContentUpdate]) -> list[ItemResult]:
        """Push the changed content of these listings; one result per item, same SKUs."""
        ...


@runtime_checkable
class WebhookConnector(Protocol):
    """A platform whose webhook subscriptions pimsync manages through its API
    (Shopify webhookSubscriptionCreate, WooCommerce POST /webhooks). Pure I/O:
    every method is one or a few calls and raises ConnectorError on failure."""

    webhook_topics: tuple[str, ...]  # the topics pimsync reads, in pimsync's names

    def webhook_subscriptions(self) -> list[Subscription]:
        """The subscriptions of pimsync's topics the channel holds (all pages)."""
        ...

    def webhook_subscribe(self, topic: str, address: str) -> Subscription:
        """Create a subscription of ``topic`` delivering to ``address``."""
        ...

    def webhook_subscription_repair(self, subscription: Subscription, address: str) -> Subscription:
        """Point an existing subscription at ``address`` (and make it active)."""
        ...
