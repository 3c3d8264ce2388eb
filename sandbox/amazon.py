"""Amazon SP-API stand-in: Listings Items, JSON_LISTINGS_FEED feeds, Orders 2026-01-01 and v0.

Paths (under the ``/amazon`` prefix) and payloads follow the SP-API models: every
request is validated against the trimmed copies in sandbox/contracts/ (paths,
query parameters, JSON bodies; an unknown field is refused) and refused with
Amazon's ``{"errors": [{code, message, details}]}``, recorded in ``refusals``;
feed documents are validated against the JSON_LISTINGS_FEED schema (an invalid
document makes the feed FATAL). The operations:

* ``PUT|PATCH|GET /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=``
  (putListingsItem: ``{productType, requirements, attributes}`` creates or
  replaces the listing; patchListingsItem: ``{productType, patches}``; both ->
  ``{sku, status, submissionId, issues}``: the attributes are checked against the
  product type definition (amazon_product-type-PRODUCT.json) and a listing that
  breaks it is INVALID with an ERROR issue per problem, recorded as a refusal;
  a child names its parent SKU, which must exist; getListingsItem with
  ``includedData`` summaries, offers,
  fulfillmentAvailability, issues) and ``GET .../items/{sellerId}``
  (searchListingsItems, ``pageSize`` <= 20, ``pageToken``, ``sortBy``/``sortOrder``,
  ``createdAfter``, at most 1000 items paged through per search as the model
  says; or up to 20 SKUs as ``identifiers`` with ``identifiersType=SKU``;
  ``includedData`` as on getListingsItem, plus ``attributes`` - the barcode in
  ``externally_assigned_product_identifier``, options by name - and
  ``relationships`` - a variation child's parent SKU and theme).
* Feeds 2021-06-30: ``POST /feeds/2021-06-30/documents`` (createFeedDocument ->
  a pre-signed upload URL under ``/amazon/_documents/``), ``PUT`` of the
  document, ``POST /feeds/2021-06-30/feeds`` (createFeed, JSON_LISTINGS_FEED
  only), ``GET .../feeds/{id}`` (getFeed: IN_QUEUE -> IN_PROGRESS -> DONE after
  ``feed_processing_seconds``), ``GET .../documents/{id}`` (getFeedDocument: a
  GZIP processing report ``{header, issues[messageId...], summary}``).
* Orders 2026-01-01: ``GET /orders/2026-01-01/orders`` (searchOrders: exactly
  one of createdAfter / lastUpdatedAfter, ``maxResultsPerPage`` 1-100,
  ``paginationToken``, ``includedData``; the items come with each order) and
  ``GET /orders/2026-01-01/orders/{orderId}`` (getOrder). Orders v0's
  getOrders/getOrderItems are deprecated and not served.
* Orders v0 ``POST /orders/v0/orders/{id}/shipmentConfirmation`` (204):
  ``carrierCode`` must be one of Amazon's carrier codes (CARRIER_CODES), and
  ``Other`` needs ``carrierName`` ("Required when carrierCode is Other").

Rate limits are token buckets per operation with the documented rate/burst
(``default_limits``, keyed by operation name). Over the limit: HTTP 429
``{"errors":[{"code":"QuotaExceeded",...}]}`` with ``x-amzn-RateLimit-Limit``
and no Retry-After (Amazon sends none). Every answer carries
``x-amzn-RequestId`` and, for rate-limited operations, ``x-amzn-RateLimit-Limit``.

Login with Amazon: ``POST /auth/o2/token`` (api.amazon.com in real life, served
here so one sandbox URL is enough: a channel's ``platform_config["token_url"]``
points at it) takes the refresh-token grant (form ``grant_type, refresh_token,
client_id, client_secret``) and answers ``{access_token, refresh_token,
token_type: "bearer", expires_in}`` (oauth.py). SP-API calls must carry
``credentials["access_token"]`` (static, never expires) or an issued token that
has not expired in ``x-amz-access-token``; else 403 ``Unauthorized`` ("The access
token you provided is revoked, malformed or invalid."), as SP-API answers.

Sandbox simplifications: one seller (any sellerId is accepted) and one
marketplace per request; a patch applies at once (real ACCEPTED means queued);
injected partial failures are INVALID patches / ERROR report issues with code
90220; unknown SKUs answer 404 NotFound on the item routes and an ERROR issue
with code ``NOT_FOUND`` in a feed report. Amazon notifications use SQS, so no
HTTP webhooks are sent. Refunds do not change an Amazon order's status (it
stays Shipped), as on Amazon. Feeds and feed documents live in memory only (not
in the ``--state`` file); what a finished feed changed is in the catalog.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from .contracts import contract_path
from .contracts.openapi_contract import Problem
from .contracts.openapi_contract import load_contract as load_openapi_contract
from .contracts.product_type import AttributeProblem, ProductType, load_product_type
from .http import ApiError, JsonDict, Request, Response, iso, parse_iso, to_decimal
from .oauth import form, oauth_error
from .platform import SandboxPlatform, describe_problem
from .store import CatalogItem, SandboxOrder

LWA_PATH = "/auth/o2/token"
LWA_CONTRACT = "amazon_lwa_oauth2.json"
LISTINGS = "/listings/2021-08-01/items"
FEEDS = "/feeds/2021-06-30"
ORDERS = "/orders/2026-01-01/orders"
ORDERS_V0 = "/orders/v0/orders"
LISTINGS_CONTRACT = "amazon_listingsItems_2021-08-01.json"
FEEDS_CONTRACT = "amazon_feeds_2021-06-30.json"
ORDERS_CONTRACT = "amazon_orders_2026-01-01.json"
ORDERS_V0_CONTRACT = "amazon_ordersV0.json"
FEED_SCHEMA = "amazon_listings-feed-schema-v2.json"
PRODUCT_TYPE = "amazon_product-type-PRODUCT.json"
# Attributes the sandbox reads besides price and quantity: what a shopper sees.
IMAGE_ATTRIBUTES = (
    "main_product_image_locator",
    *(f"other_product_image_locator_{n}" for n in range(1, 9)),
)
# Amazon's carrier codes for shipment confirmations: the CarrierCode enumeration of
# the feeds' amzn-base.xsd, the list Seller Central offers (the SP-API model types
# carrierCode as a free string; a value off the list is refused, an unlisted carrier
# is "Other" plus carrierName).
CARRIER_CODES = frozenset(
    {
        "USPS", "UPS", "UPSMI", "FedEx", "DHL", "Fastway", "GLS", "GO!",
        "Hermes Logistik Gruppe", "Royal Mail", "Parcelforce", "City Link", "TNT", "Target",
        "SagawaExpress", "NipponExpress", "YamatoTransport", "DHL Global Mail",
        "UPS Mail Innovations", "FedEx SmartPost", "OSM", "OnTrac", "Streamlite",
        "Newgistics", "Canada Post", "Blue Package", "Chronopost", "Deutsche Post", "DPD",
        "La Poste", "Parcelnet", "Poste Italiane", "SDA", "Smartmail", "FEDEX_JP",
        "JP_EXPRESS", "NITTSU", "SAGAWA", "YAMATO", "BlueDart", "AFL/Fedex", "Aramex",
        "India Post", "Professional", "DTDC", "Overnite Express", "Other",
    }
)  # fmt: skip
DOCUMENTS = "/_documents"
MAX_FEED_MESSAGES = 25_000
SEARCH_IDENTIFIERS_MAX = 20
# searchListingsItems: "The maximum number of items (SKUs) that can be returned and
# paged through is 1000" (ItemSearchResults.numberOfResults in the model).
SEARCH_PAGE_THROUGH_MAX = 1000
PATCH_OPS = frozenset({"add", "replace", "merge", "delete"})
INVALID_VALUE = "90220"
# Orders 2026-01-01 FulfillmentStatus per sandbox status.
ORDER_STATUS = {
    "pending": "PENDING",
    "paid": "UNSHIPPED",
    "cancelled": "CANCELLED",
    "fulfilled": "SHIPPED",
    "refunded": "SHIPPED",  # Amazon keeps SHIPPED; refunds live in the Finances API
}
ERROR_CODES = {
    "rate_limited": "QuotaExceeded",
    "unauthorized": "Unauthorized",
    "server_error": "InternalFailure",
    "outage": "ServiceUnavailable",
    "timeout": "RequestTimeout",
    "not_found": "NotFound",
}


@dataclass
class _Feed:
    feed_id: str
    marketplace_ids: list[str]
    document_id: str
    created_at: datetime
    ready_at: float  # when processing ends, on the platform's clock
    status: str = "IN_QUEUE"
    result_document_id: str = ""
    done_at: datetime | None = None


@dataclass
class _Change:
    """One validated patch: what it sets, or the issue that stops it."""

    price: Decimal | None = None
    quantity: int | None = None
    issues: list[JsonDict] = field(default_factory=list)
    attributes: JsonDict = field(default_factory=dict)  # other attributes it replaces
    invalid: list[AttributeProblem] = field(default_factory=list)  # product type broken


class AmazonSandbox(SandboxPlatform):
    name = "amazon"
    default_limits = {
        "patchListingsItem": {"rate": 5.0, "burst": 5.0},
        "putListingsItem": {"rate": 5.0, "burst": 10.0},
        "getListingsItem": {"rate": 5.0, "burst": 10.0},
        "searchListingsItems": {"rate": 5.0, "burst": 5.0},
        "createFeedDocument": {"rate": 0.5, "burst": 15.0},
        "createFeed": {"rate": 0.0083, "burst": 15.0},
        "getFeed": {"rate": 2.0, "burst": 15.0},
        "getFeedDocument": {"rate": 0.0222, "burst": 10.0},
        "searchOrders": {"rate": 0.0056, "burst": 20.0},
        "getOrder": {"rate": 0.5, "burst": 30.0},
        "confirmShipment": {"rate": 2.0, "burst": 10.0},
    }
    contracts = {
        "lwaRefreshAccessToken": LWA_CONTRACT,
        "patchListingsItem": LISTINGS_CONTRACT,
        "putListingsItem": LISTINGS_CONTRACT,
        "getListingsItem": LISTINGS_CONTRACT,
        "searchListingsItems": LISTINGS_CONTRACT,
        "createFeedDocument": FEEDS_CONTRACT,
        "getFeedDocument": FEEDS_CONTRACT,
        "createFeed": FEEDS_CONTRACT,
        "getFeed": FEEDS_CONTRACT,
        "searchOrders": ORDERS_CONTRACT,
        "getOrder": ORDERS_CONTRACT,
        "confirmShipment": ORDERS_V0_CONTRACT,
    }
    default_credentials = {
        "access_token": "sandbox-amazon-token",  # static: accepted, never expires
        "client_id": "amzn1.application-oa2-client.sandbox",
        "client_secret": "sandbox-amazon-secret",
        "refresh_token": "Atzr|sandbox-amazon-refresh",
    }
    # LWA access tokens last an hour ("expires_in": 3600); /_control/tokens sets the TTL.
    issues_tokens = ("Atza|sandbox-", 3600.0)
    # How long a feed takes to process (tests lower it on the platform object).
    feed_processing_seconds = 2.0

    def __init__(self, **kwargs: Any) -> None:
        self.documents: dict[str, bytes] = {}
        self.document_meta: dict[str, JsonDict] = {}
        self.feeds: dict[str, _Feed] = {}
        self.shipped: dict[str, dict[str, int]] = {}  # order id -> item id -> units shipped
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ routes

    def register_routes(self) -> None:
        item = rf"{LISTINGS}/(?P<seller>[^/]+)/(?P<sku>[^/]+)"
        add = self.add_route
        # Login with Amazon (api.amazon.com in real life, not the SP-API host): no
        # SP-API usage plan.
        add("POST", LWA_PATH, self.lwa_token, name="lwaRefreshAccessToken", limit_key=None)
        add("PATCH", item, self.patch_item, name="patchListingsItem", limit_key="patchListingsItem")
        add("PUT", item, self.put_item, name="putListingsItem", limit_key="putListingsItem")
        add("GET", item, self.get_item, name="getListingsItem", limit_key="getListingsItem")
        add(
            "GET",
            rf"{LISTINGS}/(?P<seller>[^/]+)",
            self.search_items,
            name="searchListingsItems",
            limit_key="searchListingsItems",
        )
        add(
            "POST",
            rf"{FEEDS}/documents",
            self.create_feed_document,
            name="createFeedDocument",
            limit_key="createFeedDocument",
        )
        add(
            "GET",
            rf"{FEEDS}/documents/(?P<document_id>[^/]+)",
            self.get_feed_document,
            name="getFeedDocument",
            limit_key="getFeedDocument",
        )
        add("POST", rf"{FEEDS}/feeds", self.create_feed, name="createFeed", limit_key="createFeed")
        add(
            "GET",
            rf"{FEEDS}/feeds/(?P<feed_id>[^/]+)",
            self.get_feed,
            name="getFeed",
            limit_key="getFeed",
        )
        # Pre-signed document URLs (S3 in real life): no token, no SP-API quota.
        add(
            "PUT", rf"{DOCUMENTS}/(?P<document_id>[^/]+)", self.upload, name="s3Put", limit_key=None
        )
        add(
            "GET",
            rf"{DOCUMENTS}/(?P<document_id>[^/]+)",
            self.download,
            name="s3Get",
            limit_key=None,
        )
        add("GET", ORDERS, self.search_orders, name="searchOrders", limit_key="searchOrders")
        add(
            "GET",
            rf"{ORDERS}/(?P<order_id>[^/]+)",
            self.get_order,
            name="getOrder",
            limit_key="getOrder",
        )
        add(
            "POST",
            rf"{ORDERS_V0}/(?P<order_id>[^/]+)/shipmentConfirmation",
            self.confirm_shipment,
            name="confirmShipment",
            limit_key="confirmShipment",
        )

    # ------------------------------------------------------------------ hooks

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        response.headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
        limit = self.limits.get(request.route_name, {}).get("rate")
        if limit is not None:
            response.headers.setdefault("x-amzn-RateLimit-Limit", _rate_text(limit))
        return response

    def check_auth(self, request: Request) -> Response | None:
        if request.route_name in ("s3Put", "s3Get"):
            return None  # the pre-signed URL is the credential
        if request.route_name == "lwaRefreshAccessToken":
            return None  # the client credentials in the form are the grant's business
        if self.accepts_token(request.header("x-amz-access-token")):
            return None
        return _errors(
            403,
            "Unauthorized",
            "Access to requested resource is denied.",
            "The access token you provided is revoked, malformed or invalid.",
        )

    def lwa_token(self, request: Request) -> Response:
        """Login with Amazon's refresh-token grant: a new access token (see oauth.py)."""
        issuer = self.issuer()
        fields = form(request)
        credentials = self.credentials
        if (
            not credentials.get("client_id")
            or fields["client_id"] != credentials.get("client_id")
            or fields["client_secret"] != credentials.get("client_secret")
        ):
            return issuer.refuse_grant(401, "invalid_client", "Client authentication failed")
        refresh_token = credentials.get("refresh_token", "")
        if fields["refresh_token"] != refresh_token or refresh_token in issuer.revoked:
            return issuer.refuse_grant(
                400, "invalid_grant", "The request has an invalid grant parameter : refresh_token"
            )
        token, ttl = issuer.issue()
        return Response.json(
            200,
            {
                "access_token": token,
                "refresh_token": refresh_token,
                "token_type": "bearer",
                "expires_in": ttl,
            },
        )

    def error_response(self, status: int, code: str, message: str) -> Response:
        return _errors(status, ERROR_CODES.get(code, "InvalidInput"), message)

    def refusal_response(self, problems: Sequence[Problem], request: Request) -> Response:
        """Amazon's 400: one InvalidInput per problem (LWA answers in OAuth's shape)."""
        if request.route_name == "lwaRefreshAccessToken":
            message = "; ".join(describe_problem(p) for p in problems)
            return oauth_error(400, "invalid_request", message)
        errors = [
            {
                "code": "InvalidInput",
                "message": f"Invalid {problem.location} {problem.name}".strip(),
                "details": problem.message,
            }
            for problem in problems
        ]
        return Response.json(400, {"errors": errors})

    def rate_limited_response(self, wait_seconds: float, request: Request) -> Response:
        del wait_seconds  # Amazon sends no Retry-After; the client paces by the rate header
        return self.error_response(
            429, "rate_limited", "You exceeded your quota for the requested resource."
        )

    def assign_ids(self, sku: str, ids: Mapping[str, str], group: str) -> dict[str, str]:
        result = dict(ids)
        result.setdefault("product_id", f"B0{self.next_id():08d}")  # the ASIN
        return result

    def render_order(self, order: SandboxOrder) -> JsonDict:
        """An Orders 2026-01-01 order with the BUYER, PROCEEDS and FULFILLMENT datasets."""
        shipped = self.shipped.get(order.id, {})
        status = ORDER_STATUS[order.status]
        if status == "UNSHIPPED" and any(shipped.values()):
            status = "PARTIALLY_SHIPPED"
        items = []
        for line in order.lines:
            done = (
                line.quantity
                if order.status in ("fulfilled", "refunded")
                else shipped.get(line.line_id, 0)
            )
            items.append(
                {
                    "orderItemId": line.line_id,
                    "quantityOrdered": line.quantity,
                    "product": {
                        "asin": line.ids.get("product_id", ""),
                        "title": f"Sandbox item {line.sku}",
                        "sellerSku": line.ids.get("listing_sku") or line.sku,
                        "price": {"unitPrice": _money(line.price, order.currency)},
                    },
                    "proceeds": {
                        "proceedsTotal": _money(line.price * line.quantity, order.currency)
                    },
                    "fulfillment": {
                        "quantityFulfilled": done,
                        "quantityUnfulfilled": line.quantity - done,
                    },
                }
            )
        rendered: JsonDict = {
            "orderId": order.id,
            "orderAliases": [{"aliasId": str(order.number), "aliasType": "SELLER_ORDER_ID"}],
            "createdTime": iso(order.created_at),
            "lastUpdatedTime": iso(order.updated_at),
            "salesChannel": {
                "channelName": "AMAZON",
                "marketplaceId": "ATVPDKIKX0DER",
                "marketplaceName": "Amazon.com",
            },
            "buyer": {"buyerEmail": order.email} if order.email else {},
            "fulfillment": {"fulfillmentStatus": status, "fulfilledBy": "MERCHANT"},
            "orderItems": items,
        }
        if order.status != "pending":  # Amazon has no proceeds for a pending order yet
            rendered["proceeds"] = {"grandTotal": _money(order.total, order.currency)}
        return rendered

    def reset(self) -> None:
        with self.lock:
            self.documents.clear()
            self.document_meta.clear()
            self.feeds.clear()
            self.shipped.clear()
        super().reset()

    def dump_extra(self) -> JsonDict:
        return {"shipped": self.shipped}

    def load_extra(self, state: Mapping[str, Any]) -> None:
        self.shipped = {
            str(order): {str(k): int(v) for k, v in items.items()}
            for order, items in (state.get("shipped") or {}).items()
        }

    # ------------------------------------------------------------------ listings

    def _item(self, channel_sku: str) -> CatalogItem | None:
        return self.catalog.find_by_id("listing_sku", channel_sku) or self.catalog.get(channel_sku)

    def _channel_sku(self, item: CatalogItem) -> str:
        return item.ids.get("listing_sku") or item.sku

    def _marketplace(self, request: Request, name: str = "marketplaceIds") -> str:
        raw = request.arg(name)
        if not raw:
            raise ApiError(_errors(400, "InvalidInput", f"Missing required parameter {name}"))
        return raw.split(",")[0]

    def patch_item(self, request: Request) -> Response:
        marketplace = self._marketplace(request)
        sku = unquote(request.params["sku"])
        body = request.json()
        if not isinstance(body, Mapping) or not body.get("productType"):
            raise ApiError(_errors(400, "InvalidInput", "productType is required"))
        patches = body.get("patches")
        if not isinstance(patches, list) or not patches:
            raise ApiError(_errors(400, "InvalidInput", "patches must hold at least one patch"))
        with self.lock:
            item = self._item(sku)
            if item is None and f"parent:{sku}" not in self.products:
                raise ApiError(_not_found(sku, marketplace))
            change = self._validate(item, marketplace, patches)
            change.issues += [_issue(INVALID_VALUE, p.message, p.attribute) for p in change.invalid]
            status = "INVALID" if change.issues else "ACCEPTED"
            if not change.issues:
                if item is not None:
                    self._apply(item, change, via="patchListingsItem")
                if change.attributes:
                    self._apply_attributes(sku, item, change.attributes)
        response = Response.json(
            200,
            {
                "sku": sku,
                "status": status,
                "submissionId": uuid.uuid4().hex,
                "issues": change.issues,
            },
        )
        if change.invalid:
            self.record_refusal(
                request, response, [f"{p.attribute}: {p.message}" for p in change.invalid]
            )
        return response

    @property
    def product_type(self) -> ProductType:
        return load_product_type(contract_path(PRODUCT_TYPE))

    def put_item(self, request: Request) -> Response:
        """Create or replace a listing whole (putListingsItem)."""
        marketplace = self._marketplace(request)
        sku = unquote(request.params["sku"])
        body = request.json()
        attributes = body.get("attributes") or {}
        requirements = str(body.get("requirements") or "LISTING")
        invalid = self.product_type.listing_problems(attributes, requirements)
        with self.lock:
            issues = [_issue(INVALID_VALUE, p.message, p.attribute) for p in invalid]
            parent = _child_parent(attributes)
            if parent and f"parent:{parent}" not in self.products:
                issues.append(
                    _issue("8541", f"The parent SKU {parent} does not exist", "parent_sku")
                )
            if not issues and self.faults.item_fails(sku):
                self.counters.record_fault("item")
                issues.append(_issue(INVALID_VALUE, "The value is invalid (injected failure)"))
            if not issues:
                self._put(sku, marketplace, attributes, requirements)
        response = Response.json(
            200,
            {
                "sku": sku,
                "status": "INVALID" if issues else "ACCEPTED",
                "submissionId": uuid.uuid4().hex,
                "issues": issues,
            },
        )
        if issues and not self.faults.item_fails(sku):
            self.record_refusal(request, response, [str(i["message"]) for i in issues])
        return response

    def _put(self, sku: str, marketplace: str, attributes: JsonDict, requirements: str) -> None:
        if _value(attributes, "parentage_level") == "parent":
            self._apply_attributes(sku, None, attributes)
            return
        item = self._item(sku)
        if item is None:
            item = CatalogItem(
                sku=sku,
                ids={"listing_sku": sku, "product_id": f"B0{self.next_id():08d}"},
                price=Decimal("0"),
                quantity=0,
            )
            self.catalog.put(item)
        if "purchasable_offer" in attributes:
            self.catalog.set_values(
                item.sku, price=_offer_price(attributes["purchasable_offer"], marketplace)
            )
        if "fulfillment_availability" in attributes:
            quantity = _channel_quantity(attributes["fulfillment_availability"])
            self.write_quantity(item, quantity, via="putListingsItem")
        parent = _child_parent(attributes)
        item.content = {"product": f"parent:{parent}" if parent else f"listing:{sku}"}
        self._apply_attributes(sku, item, attributes)

    def _apply_attributes(
        self, sku: str, item: CatalogItem | None, attributes: Mapping[str, Any]
    ) -> None:
        """What a shopper sees: a parent's page (item None), else the listing's own page
        and its title, color and identifier (a child is shown on its parent's page)."""
        page: dict[str, Any] = {}
        for name, field_name in (
            ("item_name", "title"),
            ("product_description", "description"),
            ("brand", "vendor"),
        ):
            if name in attributes:
                page[field_name] = _value(attributes, name)
        if any(name in attributes for name in IMAGE_ATTRIBUTES):
            page["images"] = [
                attributes[name][0]["media_location"]
                for name in IMAGE_ATTRIBUTES
                if name in attributes
            ]
        if item is not None:
            if "item_name" in attributes:
                item.content["title"] = _value(attributes, "item_name")
            if "color" in attributes:
                item.content.setdefault("options", {})["color"] = _value(attributes, "color")
            identifier = attributes.get("externally_assigned_product_identifier")
            if identifier:
                item.content["barcode"] = str(identifier[0]["value"])
        if page:
            self.product_put(f"parent:{sku}" if item is None else f"listing:{sku}", page)

    def _validate(self, item: CatalogItem | None, marketplace: str, patches: list[Any]) -> _Change:
        change = _Change()
        for patch in patches:
            if not isinstance(patch, Mapping) or patch.get("op") not in PATCH_OPS:
                change.issues.append(
                    _issue("4000001", "Each patch needs an op of add|replace|merge|delete")
                )
                continue
            path = str(patch.get("path", ""))
            value = patch.get("value")
            try:
                if path == "/attributes/purchasable_offer":
                    change.price = _offer_price(value, marketplace)
                elif path == "/attributes/fulfillment_availability":
                    change.quantity = _channel_quantity(value)
                elif not path.startswith("/attributes/") or path.count("/") != 2:
                    raise ValueError(f"only top-level attributes can be patched, not {path!r}")
                else:
                    name = path.rsplit("/", 1)[-1]
                    problems = self.product_type.attribute_problems(name, value)
                    change.invalid += problems
                    change.attributes[name] = value
            except ValueError as exc:
                attribute = path.rsplit("/", 1)[-1]
                change.issues.append(_issue(INVALID_VALUE, str(exc), attribute))
        if not change.issues and item is not None and self.faults.item_fails(item.sku):
            change.issues.append(_issue(INVALID_VALUE, "The value is invalid (injected failure)"))
        return change

    def _apply(self, item: CatalogItem, change: _Change, *, via: str) -> None:
        if change.price is not None:
            self.catalog.set_values(item.sku, price=change.price)
            self.counters.count_items("price", 1)
        if change.quantity is not None:
            self.write_quantity(item, change.quantity, via=via)
            self.counters.count_items("quantity", 1)

    def get_item(self, request: Request) -> Response:
        marketplace = self._marketplace(request)
        sku = unquote(request.params["sku"])
        included = set((request.arg("includedData") or "summaries").split(","))
        with self.lock:
            item = self._item(sku)
            if item is None:
                raise ApiError(_not_found(sku, marketplace))
            payload = self._item_payload(item, marketplace, included)
        return Response.json(200, payload)

    def _item_payload(self, item: CatalogItem, marketplace: str, included: set[str]) -> JsonDict:
        payload: JsonDict = {"sku": self._channel_sku(item)}
        if "summaries" in included:
            payload["summaries"] = [self._summary(item, marketplace)]
        if "attributes" in included:
            payload["attributes"] = self._attributes(item, marketplace)
        if "offers" in included:
            payload["offers"] = [
                {
                    "marketplaceId": marketplace,
                    "offerType": "B2C",
                    "price": {"currencyCode": "USD", "amount": f"{item.price:.2f}"},
                    "audience": {"value": "ALL", "displayName": "Sell on Amazon"},
                }
            ]
        if "fulfillmentAvailability" in included:
            payload["fulfillmentAvailability"] = [
                {"fulfillmentChannelCode": "DEFAULT", "quantity": item.quantity}
            ]
        if "relationships" in included:
            payload["relationships"] = [
                {"marketplaceId": marketplace, "relationships": self._relationships(item)}
            ]
        if "issues" in included:
            payload["issues"] = []
        return payload

    def _attributes(self, item: CatalogItem, marketplace: str) -> JsonDict:
        """The listing's attributes as the product type defines them: the barcode in
        externally_assigned_product_identifier, each option under its own name."""
        attributes: JsonDict = {}
        if item.barcode:
            kind = {12: "upc", 13: "ean", 14: "gtin"}.get(len(item.barcode), "ean")
            attributes["externally_assigned_product_identifier"] = [
                {"type": kind, "value": item.barcode, "marketplace_id": marketplace}
            ]
        for name, value in item.options.items():
            attributes[_attribute_name(name)] = [
                {"value": value, "language_tag": "en_US", "marketplace_id": marketplace}
            ]
        return attributes

    def _relationships(self, item: CatalogItem) -> list[JsonDict]:
        parent = item.group
        if not parent:
            return []
        names = [_attribute_name(name) for name in item.options]
        return [
            {
                "type": "VARIATION",
                "parentSkus": [parent],
                "variationTheme": {
                    "attributes": names,
                    "theme": "/".join(n.upper() for n in names) or "SIZE_NAME",
                },
            }
        ]

    def _summary(self, item: CatalogItem, marketplace: str) -> JsonDict:
        summary: JsonDict = {
            "marketplaceId": marketplace,
            "asin": item.ids.get("product_id", ""),
            "productType": "PRODUCT",
            "conditionType": "new_new",
            "status": ["BUYABLE", "DISCOVERABLE"],
            "itemName": " ".join([item.display_title, *item.options.values()])
            if item.product_title or item.title
            else f"Sandbox item {item.sku}",
            "createdDate": iso(item.created_at),
            "lastUpdatedDate": iso(item.updated_at),
        }
        if item.image:
            summary["mainImage"] = {"link": item.image, "height": 500, "width": 500}
        return summary

    def search_items(self, request: Request) -> Response:
        """Without ``identifiers``: every listing sorted by ``sortBy`` (createdDate,
        lastUpdatedDate or sku; default lastUpdatedDate DESC), from ``createdAfter``
        (at or after) on; at most the first 1000 matches can be paged through, as
        the model says ("The maximum number of items (SKUs) that can be returned and
        paged through is 1000"), while ``numberOfResults`` counts them all."""
        marketplace = self._marketplace(request)
        size = _bounded(request.arg("pageSize"), default=10, low=1, high=20, name="pageSize")
        included = set((request.arg("includedData") or "summaries").split(","))
        identifiers = [i for i in (request.arg("identifiers") or "").split(",") if i]
        if identifiers:
            return self._search_by_identifiers(request, identifiers, marketplace, included)
        start = (
            _decode_token(request.arg("pageToken")).get("offset", 0)
            if request.arg("pageToken")
            else 0
        )
        with self.lock:
            items = self._sorted_items(request)
            window = items[start : start + size]
            payload: JsonDict = {
                "numberOfResults": len(items),
                "pagination": {},
                "items": [self._item_payload(i, marketplace, included) for i in window],
            }
        if start + size < min(len(items), SEARCH_PAGE_THROUGH_MAX):
            payload["pagination"] = {"nextToken": _encode_token({"offset": start + size})}
        return Response.json(200, payload)

    def _sorted_items(self, request: Request) -> list[CatalogItem]:
        items = self.catalog.items()
        created_after = request.arg("createdAfter")
        if created_after:
            try:
                since = parse_iso(created_after)
            except ValueError as exc:
                raise ApiError(
                    _errors(400, "InvalidInput", "createdAfter is not an ISO 8601 date-time")
                ) from exc
            # Amazon renders whole seconds: "at or after" compares those.
            items = [i for i in items if i.created_at.replace(microsecond=0) >= since]
        sort_by = request.arg("sortBy") or "lastUpdatedDate"
        keys = {
            "sku": self._channel_sku,
            "createdDate": lambda i: (i.created_at.replace(microsecond=0), self._channel_sku(i)),
            "lastUpdatedDate": lambda i: (i.updated_at, self._channel_sku(i)),
        }
        if sort_by not in keys:
            raise ApiError(_errors(400, "InvalidInput", f"sortBy {sort_by!r} is not supported"))
        descending = (request.arg("sortOrder") or "DESC").upper() == "DESC"
        return sorted(items, key=keys[sort_by], reverse=descending)

    def _search_by_identifiers(
        self, request: Request, identifiers: list[str], marketplace: str, included: set[str]
    ) -> Response:
        """``identifiers`` (at most 20) of ``identifiersType`` SKU: the listed ones
        that exist, in the order asked; unknown SKUs are simply absent."""
        if len(identifiers) > SEARCH_IDENTIFIERS_MAX:
            raise ApiError(
                _errors(
                    400,
                    "InvalidInput",
                    f"identifiers accepts at most {SEARCH_IDENTIFIERS_MAX} values",
                )
            )
        if (request.arg("identifiersType") or "").upper() != "SKU":
            raise ApiError(
                _errors(400, "InvalidInput", "identifiersType is required with identifiers")
            )
        with self.lock:
            found = [item for sku in identifiers if (item := self._item(sku)) is not None]
            payload: JsonDict = {
                "numberOfResults": len(found),
                "pagination": {},
                "items": [self._item_payload(i, marketplace, included) for i in found],
            }
        return Response.json(200, payload)

    # ------------------------------------------------------------------ feeds

    def _document_url(self, request: Request, document_id: str) -> str:
        host = request.header("host", "127.0.0.1")
        return f"http://{host}/{self.name}{DOCUMENTS}/{document_id}"

    def create_feed_document(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, Mapping) or not body.get("contentType"):
            raise ApiError(_errors(400, "InvalidInput", "contentType is required"))
        document_id = f"amzn1.tortuga.4.na.{uuid.uuid4()}"
        with self.lock:
            self.document_meta[document_id] = {"contentType": str(body["contentType"])}
        return Response.json(
            201, {"feedDocumentId": document_id, "url": self._document_url(request, document_id)}
        )

    def upload(self, request: Request) -> Response:
        document_id = request.params["document_id"]
        with self.lock:
            if document_id not in self.document_meta:
                return Response.text(
                    403, "<Error><Code>AccessDenied</Code></Error>", "application/xml"
                )
            self.documents[document_id] = request.body
        return Response(200, b"")

    def download(self, request: Request) -> Response:
        with self.lock:
            content = self.documents.get(request.params["document_id"])
        if content is None:
            return Response.text(404, "<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        return Response(200, content, {"Content-Type": "application/octet-stream"})

    def get_feed_document(self, request: Request) -> Response:
        document_id = request.params["document_id"]
        with self.lock:
            meta = self.document_meta.get(document_id)
        if meta is None or document_id not in self.documents:
            raise ApiError(_errors(404, "NotFound", f"No feed document {document_id}"))
        payload = {"feedDocumentId": document_id, "url": self._document_url(request, document_id)}
        if meta.get("compressionAlgorithm"):
            payload["compressionAlgorithm"] = meta["compressionAlgorithm"]
        return Response.json(200, payload)

    def create_feed(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, Mapping):
            raise ApiError(_errors(400, "InvalidInput", "a JSON body is required"))
        if body.get("feedType") != "JSON_LISTINGS_FEED":
            message = f"feedType {body.get('feedType')!r} is not supported by the sandbox"
            raise ApiError(_errors(400, "InvalidInput", message))
        marketplaces = body.get("marketplaceIds")
        if not isinstance(marketplaces, list) or not marketplaces:
            raise ApiError(_errors(400, "InvalidInput", "marketplaceIds is required"))
        document_id = str(body.get("inputFeedDocumentId", ""))
        with self.lock:
            if document_id not in self.documents:
                raise ApiError(_errors(400, "InvalidInput", f"No uploaded document {document_id}"))
            feed = _Feed(
                feed_id=str(self.next_id()),
                marketplace_ids=[str(m) for m in marketplaces],
                document_id=document_id,
                created_at=datetime.now(UTC),
                ready_at=self.clock() + self.feed_processing_seconds,
            )
            self.feeds[feed.feed_id] = feed
        return Response.json(202, {"feedId": feed.feed_id})

    def get_feed(self, request: Request) -> Response:
        feed_id = request.params["feed_id"]
        with self.lock:
            feed = self.feeds.get(feed_id)
            if feed is None:
                raise ApiError(_errors(404, "NotFound", f"No feed {feed_id}"))
            self._advance(feed)
            payload: JsonDict = {
                "feedId": feed.feed_id,
                "feedType": "JSON_LISTINGS_FEED",
                "marketplaceIds": feed.marketplace_ids,
                "createdTime": iso(feed.created_at),
                "processingStatus": feed.status,
            }
            if feed.done_at is not None:
                payload["processingEndTime"] = iso(feed.done_at)
            if feed.result_document_id:
                payload["resultFeedDocumentId"] = feed.result_document_id
        return Response.json(200, payload)

    def _advance(self, feed: _Feed) -> None:
        """Move a feed along; on completion apply it and write its report."""
        if feed.status in ("DONE", "FATAL", "CANCELLED"):
            return
        if self.clock() < feed.ready_at:
            feed.status = "IN_PROGRESS"
            return
        report, fatal = self._process(feed)
        result_id = f"amzn1.tortuga.4.na.{uuid.uuid4()}"
        self.documents[result_id] = gzip.compress(json.dumps(report).encode())
        self.document_meta[result_id] = {
            "contentType": "application/json",
            "compressionAlgorithm": "GZIP",
        }
        feed.result_document_id = result_id
        feed.status = "FATAL" if fatal else "DONE"
        feed.done_at = datetime.now(UTC)
        self.changed()

    def _process(self, feed: _Feed) -> tuple[JsonDict, bool]:
        header = {"sellerId": "", "version": "2.0", "feedId": feed.feed_id}
        try:
            document = json.loads(self.documents[feed.document_id])
            problems = _feed_document_problems(document)
            if problems:
                self.refusals.append(
                    {
                        "platform": self.name,
                        "operation": "JSON_LISTINGS_FEED",
                        "method": "",
                        "path": feed.document_id,
                        "status": 0,
                        "problems": problems,
                    }
                )
                raise ValueError("; ".join(problems[:5]))
            messages = document["messages"]
            header["sellerId"] = str(document.get("header", {}).get("sellerId", ""))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            issue = {**_issue("4000003", f"The feed document is invalid: {exc}"), "messageId": 0}
            return {
                "header": header,
                "issues": [issue],
                "summary": _summary_counts(0, 0, [issue]),
            }, True
        marketplace = feed.marketplace_ids[0]
        issues: list[JsonDict] = []
        accepted = 0
        for message in messages:
            message_issues = self._process_message(message, marketplace)
            issues.extend(message_issues)
            if not any(i["severity"] == "ERROR" for i in message_issues):
                accepted += 1
        report = {
            "header": header,
            "issues": issues,
            "summary": _summary_counts(len(messages), accepted, issues),
        }
        return report, False

    def _process_message(self, message: Any, marketplace: str) -> list[JsonDict]:
        if not isinstance(message, Mapping):
            return [{**_issue("4000001", "a message must be an object"), "messageId": None}]
        message_id = message.get("messageId")
        sku = str(message.get("sku", ""))

        def tagged(issues: list[JsonDict]) -> list[JsonDict]:
            return [{**issue, "messageId": message_id, "sku": sku} for issue in issues]

        if message.get("operationType") != "PATCH":
            return tagged([_issue("4000001", "the sandbox processes PATCH messages only")])
        patches = message.get("patches")
        if not isinstance(patches, list) or not patches:
            return tagged([_issue("4000001", "patches must hold at least one patch")])
        item = self._item(sku)
        if item is None:
            return tagged([_issue("NOT_FOUND", f"SKU {sku} not found in {marketplace}")])
        change = self._validate(item, marketplace, patches)
        if change.issues:
            return tagged(change.issues)
        self._apply(item, change, via="JSON_LISTINGS_FEED")
        return []

    # ------------------------------------------------------------------ orders

    def search_orders(self, request: Request) -> Response:
        query = self._order_query(request)
        token = request.arg("paginationToken")
        start = int(_decode_token(token).get("offset", 0)) if token else 0
        with self.lock:
            matching = [o for o in self.orders.all() if _order_matches(o, query)]
            window = matching[start : start + int(query["size"])]
            # Orders 2026-01-01 lists each order with its items: listed is seen.
            self.mark_orders_seen(window)
            payload: JsonDict = {
                "orders": [self.render_order(order) for order in window],
                "lastUpdatedBefore": iso(datetime.now(UTC) - timedelta(minutes=2)),
            }
        if start + len(window) < len(matching):
            payload["pagination"] = {"nextToken": _encode_token({"offset": start + len(window)})}
        return Response.json(200, payload)

    def _order_query(self, request: Request) -> JsonDict:
        created = request.arg("createdAfter")
        updated = request.arg("lastUpdatedAfter")
        if bool(created) == bool(updated):
            message = "Exactly one of createdAfter and lastUpdatedAfter is required"
            raise ApiError(_errors(400, "InvalidInput", message), refusal=message)
        if created and (request.arg("lastUpdatedBefore") or request.arg("lastUpdatedAfter")):
            message = "createdAfter excludes lastUpdatedAfter and lastUpdatedBefore"
            raise ApiError(_errors(400, "InvalidInput", message), refusal=message)
        before = request.arg("lastUpdatedBefore" if updated else "createdBefore")
        try:
            after = parse_iso(created or updated)
            until = parse_iso(before) if before else None
        except ValueError:
            message = "Dates must be ISO 8601"
            raise ApiError(_errors(400, "InvalidInput", message), refusal=message) from None
        if until is not None and until > datetime.now(UTC) - timedelta(minutes=2):
            message = "The Before date must be at least 2 minutes ago"
            raise ApiError(_errors(400, "InvalidInput", message), refusal=message)
        size = _bounded(
            request.arg("maxResultsPerPage"), default=100, low=1, high=100, name="maxResultsPerPage"
        )
        return {
            "field": "created" if created else "updated",
            "after": after.isoformat(),
            "before": until.isoformat() if until else None,
            "size": size,
        }

    def get_order(self, request: Request) -> Response:
        with self.lock:
            order = self._order(request.params["order_id"])
            return Response.json(200, {"order": self.render_order(order)})

    def _order(self, order_id: str) -> SandboxOrder:
        order = self.orders.get(unquote(order_id))
        if order is None:
            raise ApiError(_errors(404, "NotFound", f"Invalid orderId {order_id}"))
        return order

    def confirm_shipment(self, request: Request) -> Response:
        body = request.json()
        package = body.get("packageDetail") if isinstance(body, Mapping) else None
        if not isinstance(package, Mapping) or not body.get("marketplaceId"):
            raise ApiError(
                _errors(400, "InvalidInput", "marketplaceId and packageDetail are required")
            )
        required = ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate", "orderItems")
        missing = [name for name in required if not package.get(name)]
        carrier = str(package.get("carrierCode") or "")
        if carrier == "Other" and not str(package.get("carrierName") or "").strip():
            missing.append("carrierName (required when carrierCode is Other)")
        if missing:
            message = f"packageDetail lacks {', '.join(missing)}"
            raise ApiError(_errors(400, "InvalidInput", message), refusal=message)
        if carrier not in CARRIER_CODES:
            message = (
                f"carrierCode {carrier!r} is not an Amazon carrier code (use Other + carrierName)"
            )
            raise ApiError(_errors(400, "InvalidInput", message), refusal=message)
        with self.lock:
            order = self._order(request.params["order_id"])
            if order.status != "paid":
                status = ORDER_STATUS[order.status]  # what Amazon reports for it
                raise ApiError(
                    _errors(400, "InvalidInput", f"Order is {status}; cannot confirm shipment")
                )
            lines = {line.line_id: line for line in order.lines}
            shipped = self.shipped.setdefault(order.id, {})
            for entry in package["orderItems"]:
                item_id = str(entry.get("orderItemId", "")) if isinstance(entry, Mapping) else ""
                line = lines.get(item_id)
                quantity = entry.get("quantity") if isinstance(entry, Mapping) else None
                left = line.quantity - shipped.get(item_id, 0) if line else 0
                if line is None or not isinstance(quantity, int) or not 0 < quantity <= left:
                    raise ApiError(
                        _errors(400, "InvalidInput", f"Invalid orderItems entry {entry!r}")
                    )
                shipped[item_id] = shipped.get(item_id, 0) + quantity
            if all(shipped.get(i, 0) >= line.quantity for i, line in lines.items()):
                self.order_transition(
                    order.id,
                    "fulfil",
                    tracking_number=str(package["trackingNumber"]),
                    carrier=str(package.get("carrierName") or carrier),
                )
            else:
                order.updated_at = self.stamp()
        return Response(204, b"")


# ---------------------------------------------------------------------- helpers


def _errors(status: int, code: str, message: str, details: str = "") -> Response:
    return Response.json(
        status, {"errors": [{"code": code, "message": message, "details": details}]}
    )


def _value(attributes: Mapping[str, Any], name: str) -> Any:
    """The first entry's value of an attribute (item_name, brand, …)."""
    entries = attributes.get(name) or [{}]
    return entries[0].get("value", "")


def _child_parent(attributes: Mapping[str, Any]) -> str:
    for relation in attributes.get("child_parent_sku_relationship") or []:
        if relation.get("parent_sku"):
            return str(relation["parent_sku"])
    return ""


def _money(amount: Decimal, currency: str) -> JsonDict:
    return {"amount": f"{amount:.2f}", "currencyCode": currency}


def _not_found(sku: str, marketplace: str) -> Response:
    return _errors(404, "NotFound", f"SKU '{sku}' not found in marketplace {marketplace}")


def _issue(code: str, message: str, attribute: str = "") -> JsonDict:
    issue: JsonDict = {"code": code, "message": message, "severity": "ERROR"}
    if attribute:
        issue["attributeNames"] = [attribute]
    return issue


def _offer_price(value: Any, marketplace: str) -> Decimal:
    if not isinstance(value, list) or not value or not isinstance(value[0], Mapping):
        raise ValueError("purchasable_offer must be a non-empty array of offers")
    offer = value[0]
    if offer.get("marketplace_id") != marketplace:
        raise ValueError(f"purchasable_offer.marketplace_id must be {marketplace}")
    try:
        amount = offer["our_price"][0]["schedule"][0]["value_with_tax"]
    except (KeyError, IndexError, TypeError):
        raise ValueError(
            "purchasable_offer needs our_price[0].schedule[0].value_with_tax"
        ) from None
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise ValueError("value_with_tax must be a number")
    price = to_decimal(amount)
    if price < 0:
        raise ValueError("value_with_tax must be >= 0")
    return price


def _channel_quantity(value: Any) -> int:
    if not isinstance(value, list) or not value or not isinstance(value[0], Mapping):
        raise ValueError("fulfillment_availability must be a non-empty array")
    entry = value[0]
    if entry.get("fulfillment_channel_code") != "DEFAULT":
        raise ValueError("the sandbox holds merchant-fulfilled (DEFAULT) quantities only")
    quantity = entry.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise ValueError("quantity must be a whole number >= 0")
    return quantity


def _summary_counts(processed: int, accepted: int, issues: list[JsonDict]) -> JsonDict:
    errors = sum(1 for i in issues if i.get("severity") == "ERROR")
    return {
        "errors": errors,
        "warnings": sum(1 for i in issues if i.get("severity") == "WARNING"),
        "messagesProcessed": processed,
        "messagesAccepted": accepted,
        "messagesInvalid": processed - accepted,
    }


def _feed_document_problems(document: Any) -> list[str]:
    """A JSON_LISTINGS_FEED document against its published schema (v2)."""
    contract = load_openapi_contract(contract_path(FEED_SCHEMA))
    return [
        f"{problem.name or 'document'}: {problem.message}"
        for problem in contract.schema_problems(contract.document, document, location="feed")
    ]


def _order_matches(order: SandboxOrder, state: Mapping[str, Any]) -> bool:
    stamp = order.created_at if state.get("field") == "created" else order.updated_at
    if stamp < parse_iso(str(state["after"])):
        return False
    before = state.get("before")
    return before is None or stamp <= parse_iso(str(before))


def _attribute_name(option: str) -> str:
    """An option's name as a listing attribute ("Size" -> "size")."""
    return "_".join(option.lower().split())


def _encode_token(state: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(dict(state)).encode()).decode()


def _decode_token(token: str) -> JsonDict:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise ApiError(_errors(400, "InvalidInput", "Invalid token"), refusal="token") from None
    if not isinstance(state, dict):
        raise ApiError(_errors(400, "InvalidInput", "Invalid token"), refusal="token")
    return state


def _bounded(raw: str, *, default: int, low: int, high: int, name: str) -> int:
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        message = f"{name} must be between {low} and {high}"
        raise ApiError(_errors(400, "InvalidInput", message), refusal=message)
    return value


def _rate_text(rate: float) -> str:
    return f"{rate:g}"
