"""eBay stand-in: the Sell Inventory, Sell Fulfillment and Post-Order calls pimsync uses.

Paths (under the ``/ebay`` prefix) and payloads follow eBay's OpenAPI contracts
(Sell Inventory v1.18.4, Sell Fulfillment v1.20.7): every request to those APIs
is validated against the trimmed copies in sandbox/contracts/ (paths, query
parameters, JSON bodies; an unknown field is refused) and refused with eBay's
error shape ``{"errors": [{errorId, domain, category, message, longMessage,
parameters}]}``, recorded in ``refusals``:

* ``POST /sell/inventory/v1/bulk_update_price_quantity`` - at most 25 requests,
  per-item ``statusCode`` in a 200 (all good) or 207 (some failed) answer.
* ``POST /sell/inventory/v1/bulk_get_inventory_item`` - at most 25 SKUs
  (25727 over, 25734 duplicate SKU), 200/207.
* ``GET /sell/inventory/v1/inventory_item`` (``limit`` 1-200, ``offset`` = page;
  the product's title, ``ean``/``upc``/``isbn``, ``aspects`` - a JSON string, as the
  contract types it - and ``imageUrls``)
  and ``GET /sell/inventory/v1/inventory_item/{sku}``.
* ``GET /sell/inventory/v1/offer?sku=`` - the SKU's one offer (404 without one).
* Publishing: ``POST .../bulk_create_or_replace_inventory_item`` (25 items; an item
  is replaced whole: what a request leaves out is gone, the quantity too),
  ``PUT .../inventory_item_group/{key}`` (its variant SKUs must exist),
  ``POST .../bulk_create_offer`` (one offer per SKU and marketplace: a second is
  refused with 25002 "Offer entity already exists"), ``POST .../offer/{id}/publish``
  and ``POST .../offer/publish_by_inventory_item_group`` (an offer needs a
  category, the three business policies and a merchant location the sandbox knows,
  ``PUBLISHING_SETTINGS``, and its item a title, description and at least one
  picture; else 25002 naming what is missing). A live listing shows its group's
  title, description and pictures, or its single item's.
* ``GET /sell/fulfillment/v1/order?filter=lastmodifieddate:[a..b]&limit&offset``
  (limit 1-200: "If a requested limit is more than 200, the call fails";
  offset counts records; orders "up to two years old": a start further back is
  refused with 30830), ``GET .../order/{id}``,
  ``POST .../order/{id}/shipping_fulfillment`` (201 + Location).
* ``POST /post-order/v2/cancellation`` - seller cancellation of a pending/paid order.
  The specs hold no definition of the Post-Order API: this route is checked by
  hand (legacyOrderId required), not against a contract.

Choices where eBay documents nothing (say so when you rely on them):

* Rate limit: eBay publishes daily quotas per API but not their values, and no
  per-second rate. The sandbox enforces an assumed 10 requests/s with a burst
  of 25 for the whole application (``limits["default"]``) and answers 429 in
  eBay's error shape (errorId 2001, "Too many requests") with ``Retry-After``.
* The documented 250 revisions per listing per calendar day is enforced
  (``limits["revisions"]["per_day"]``); the 251st update of a SKU that day
  fails for that SKU only (errorId 25002).
* One quantity per SKU: the inventory item's ship-to-home quantity and the
  offer's ``availableQuantity`` are the same number here (real eBay keeps two
  and shows the smaller); an update of either sets it.
* Injected partial failures answer ``statusCode`` 400 with errorId 25709
  (invalid value) for that SKU; 5xx/timeouts/401 come from the shared faults (faults.py).
* Auth: ``Authorization: Bearer <access_token>`` (``IAF <token>`` on
  Post-Order) must be ``credentials["access_token"]`` (static, never expires) or
  a token issued by ``POST /identity/v1/oauth2/token`` that has not expired; else
  401 errorId 1001. The token endpoint takes the refresh-token grant (Basic
  client_id:client_secret, form grant_type/refresh_token/scope) and answers
  ``{access_token, expires_in, token_type: "User Access Token"}`` (oauth.py);
  it shares the application's ``default`` rate limit.
* eBay sends no order webhooks here: pimsync polls ``getOrders``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlencode

from .contracts.openapi_contract import Problem
from .http import ApiError, JsonDict, Request, Response, parse_iso, to_decimal
from .oauth import form, oauth_error
from .platform import SandboxPlatform, describe_problem
from .store import CatalogItem, SandboxOrder

INVENTORY = "/sell/inventory/v1"
FULFILLMENT = "/sell/fulfillment/v1"
MAX_BULK = 25
MAX_ORDER_LIMIT = 200
ORDER_WINDOW = timedelta(days=2 * 365)  # getOrders serves orders up to two years old
TOKEN_PATH = "/identity/v1/oauth2/token"  # noqa: S105 - an endpoint, not a secret
TOKEN_CONTRACT = "ebay_identity_oauth2.json"  # noqa: S105 - a file name
# Scopes the sandbox's seller granted the application (a grant may ask for a subset).
GRANTED_SCOPES = frozenset(
    {
        "https://api.ebay.com/oauth/api_scope",
        "https://api.ebay.com/oauth/api_scope/sell.inventory",
        "https://api.ebay.com/oauth/api_scope/sell.inventory.readonly",
        "https://api.ebay.com/oauth/api_scope/sell.fulfillment",
        "https://api.ebay.com/oauth/api_scope/sell.fulfillment.readonly",
    }
)
INVENTORY_CONTRACT = "ebay_sell_inventory_v1.json"
# The seller account's business policies and inventory location the sandbox knows
# (real ids come from the Account API and createInventoryLocation).
PUBLISHING_SETTINGS = {
    "fulfillmentPolicyId": {"sandbox-fulfillment"},
    "paymentPolicyId": {"sandbox-payment"},
    "returnPolicyId": {"sandbox-return"},
    "merchantLocationKey": {"sandbox-warehouse"},
}
FULFILLMENT_CONTRACT = "ebay_sell_fulfillment_v1.json"
# A malformed request in general; the inventory API's "invalid value" for a body field.
INVALID_REQUEST = (2004, "ACCESS", "Invalid request")
INVALID_VALUE = 25709
FILTER_RE = re.compile(r"^(?P<field>\w+):\[(?P<start>[^\]]*?)\.\.(?P<end>[^\]]*)\]$")
# eBay errorIds for the generic answers the base class asks for (error_response codes).
ERROR_IDS = {
    "rate_limited": (2001, "ACCESS", "Too many requests"),
    "unauthorized": (1001, "OAuth", "Invalid access token"),
    "server_error": (25001, "API_INVENTORY", "A system error has occurred"),
    "outage": (25001, "API_INVENTORY", "A system error has occurred"),
    "timeout": (25001, "API_INVENTORY", "A system error has occurred"),
    "not_found": (2002, "API_INVENTORY", "Resource not found"),
}


def _barcode_kind(code: str) -> str:
    """Where eBay keeps a product code: 12 digits UPC, an ISBN-13 prefix ISBN, else EAN."""
    if len(code) == 12:
        return "upc"
    if len(code) == 13 and code.startswith(("978", "979")):
        return "isbn"
    return "ean"


def _basic(encoded: str) -> str:
    """The ``client_id:client_secret`` of a Basic credential ("" when unreadable)."""
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def ebay_time(value: datetime) -> str:
    """eBay renders UTC with milliseconds: 2026-05-15T08:25:43.511Z."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def ebay_error(
    error_id: int, message: str, *, domain: str = "API_INVENTORY", long_message: str = ""
) -> JsonDict:
    error: JsonDict = {
        "errorId": error_id,
        "domain": domain,
        "category": "REQUEST",
        "message": message,
    }
    if long_message:
        error["longMessage"] = long_message
    return error


class EbaySandbox(SandboxPlatform):
    name = "ebay"
    default_limits = {
        "default": {"rate": 10.0, "burst": 25.0},
        "revisions": {"per_day": 250.0},
    }
    default_credentials = {
        "access_token": "sandbox-ebay-token",  # static: accepted, never expires
        "client_id": "sandbox-ebay-client",
        "client_secret": "sandbox-ebay-secret",
        "refresh_token": "v^1.1#i^1#r^1#sandbox-ebay-refresh",
    }
    # User access tokens last two hours ("expires_in": 7200); /_control/tokens sets the TTL.
    issues_tokens = ("v^1.1#i^1#p^3#sandbox#t^", 7200.0)
    contracts = {
        "refreshUserAccessToken": TOKEN_CONTRACT,
        "bulkUpdatePriceQuantity": INVENTORY_CONTRACT,
        "bulkGetInventoryItem": INVENTORY_CONTRACT,
        "getInventoryItems": INVENTORY_CONTRACT,
        "getInventoryItem": INVENTORY_CONTRACT,
        "getOffers": INVENTORY_CONTRACT,
        "bulkCreateOrReplaceInventoryItem": INVENTORY_CONTRACT,
        "createOrReplaceInventoryItemGroup": INVENTORY_CONTRACT,
        "bulkCreateOffer": INVENTORY_CONTRACT,
        "publishOffer": INVENTORY_CONTRACT,
        "publishOfferByInventoryItemGroup": INVENTORY_CONTRACT,
        "getOrders": FULFILLMENT_CONTRACT,
        "getOrder": FULFILLMENT_CONTRACT,
        "createShippingFulfillment": FULFILLMENT_CONTRACT,
    }

    def __init__(self, **kwargs: Any) -> None:
        # Revision counts per (channel SKU, UTC day) and fulfilled line ids per order.
        self.revisions: dict[tuple[str, str], int] = {}
        self.fulfilled_lines: dict[str, set[str]] = {}
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ routes

    def register_routes(self) -> None:
        add = self.add_route
        add("POST", TOKEN_PATH, self.token, name="refreshUserAccessToken")
        add(
            "POST",
            rf"{INVENTORY}/bulk_update_price_quantity",
            self.bulk_update,
            name="bulkUpdatePriceQuantity",
        )
        add(
            "POST",
            rf"{INVENTORY}/bulk_get_inventory_item",
            self.bulk_get,
            name="bulkGetInventoryItem",
        )
        add("GET", rf"{INVENTORY}/inventory_item", self.list_items, name="getInventoryItems")
        add(
            "GET",
            rf"{INVENTORY}/inventory_item/(?P<sku>[^/]+)",
            self.get_item,
            name="getInventoryItem",
        )
        add("GET", rf"{INVENTORY}/offer", self.get_offers, name="getOffers")
        add(
            "POST",
            rf"{INVENTORY}/bulk_create_or_replace_inventory_item",
            self.bulk_replace_items,
            name="bulkCreateOrReplaceInventoryItem",
        )
        add(
            "PUT",
            rf"{INVENTORY}/inventory_item_group/(?P<key>[^/]+)",
            self.put_group,
            name="createOrReplaceInventoryItemGroup",
        )
        add("POST", rf"{INVENTORY}/bulk_create_offer", self.bulk_offers, name="bulkCreateOffer")
        add(
            "POST",
            rf"{INVENTORY}/offer/publish_by_inventory_item_group",
            self.publish_group,
            name="publishOfferByInventoryItemGroup",
        )
        add(
            "POST",
            rf"{INVENTORY}/offer/(?P<offer_id>[^/]+)/publish",
            self.publish_offer,
            name="publishOffer",
        )
        add("GET", rf"{FULFILLMENT}/order", self.get_orders, name="getOrders")
        add("GET", rf"{FULFILLMENT}/order/(?P<order_id>[^/]+)", self.get_order, name="getOrder")
        add(
            "POST",
            rf"{FULFILLMENT}/order/(?P<order_id>[^/]+)/shipping_fulfillment",
            self.create_fulfillment,
            name="createShippingFulfillment",
        )
        add(
            "POST",
            r"/post-order/v2/cancellation",
            self.create_cancellation,
            name="createCancellation",
        )

    # ------------------------------------------------------------------ hooks

    def check_auth(self, request: Request) -> Response | None:
        if request.route_name == "refreshUserAccessToken":
            return None  # the client's Basic credentials are the grant's business
        scheme, _, token = request.header("authorization").partition(" ")
        if scheme in ("Bearer", "IAF", "TOKEN") and self.accepts_token(token):
            return None
        return self.error_response(401, "unauthorized", "Invalid access token")

    # ------------------------------------------------------------------ OAuth

    def token(self, request: Request) -> Response:
        """The refresh-token grant: a new user access token (see oauth.py)."""
        issuer = self.issuer()
        fields = form(request)
        scheme, _, encoded = request.header("authorization").partition(" ")
        client_id = self.credentials.get("client_id", "")
        expected = f"{client_id}:{self.credentials.get('client_secret', '')}"
        if scheme != "Basic" or not client_id or _basic(encoded) != expected:
            return issuer.refuse_grant(401, "invalid_client", "client authentication failed")
        refresh_token = self.credentials.get("refresh_token", "")
        if fields["refresh_token"] != refresh_token or refresh_token in issuer.revoked:
            return issuer.refuse_grant(
                400,
                "invalid_grant",
                "the provided authorization refresh token is invalid or was issued to "
                "another client",
            )
        if set(fields["scope"].split()) - GRANTED_SCOPES:
            return issuer.refuse_grant(
                400,
                "invalid_scope",
                "The requested scope is invalid, unknown, malformed, or exceeds the scope "
                "granted to the client",
            )
        token, ttl = issuer.issue()
        return Response.json(
            200, {"access_token": token, "expires_in": ttl, "token_type": "User Access Token"}
        )

    def error_response(self, status: int, code: str, message: str) -> Response:
        fallback = (
            (25001, "API_INVENTORY", message)
            if status >= 500
            else (25002, "API_INVENTORY", message)
        )
        error_id, domain, short = ERROR_IDS.get(code, fallback)
        return Response.json(
            status, {"errors": [ebay_error(error_id, short, domain=domain, long_message=message)]}
        )

    def refusal_response(self, problems: Sequence[Problem], request: Request) -> Response:
        """eBay's 400: one error per problem, the field named in ``parameters`` (the token
        endpoint answers in OAuth's shape)."""
        if request.route_name == "refreshUserAccessToken":
            message = "; ".join(describe_problem(p) for p in problems)
            return oauth_error(400, "invalid_request", message)
        inventory = request.path.startswith(INVENTORY)
        errors = []
        for problem in problems:
            where = f"{problem.location} {problem.name}".strip()
            if problem.location == "body" and inventory:
                error_id, domain, short = INVALID_VALUE, "API_INVENTORY", "Invalid value"
            else:
                error_id, domain, short = INVALID_REQUEST
            error = ebay_error(
                error_id, f"{short} for {where}", domain=domain, long_message=problem.message
            )
            error["parameters"] = [
                {"name": problem.name or problem.location, "value": str(problem.value)}
            ]
            errors.append(error)
        return Response.json(400, {"errors": errors})

    def assign_ids(self, sku: str, ids: Mapping[str, str], group: str) -> dict[str, str]:
        result = dict(ids)
        result.setdefault("offer_id", str(self.next_id()))
        result.setdefault("product_id", f"11{self.next_id():010d}")  # the listing (legacy item) id
        return result

    def render_order(self, order: SandboxOrder) -> JsonDict:
        payment, fulfilment = {
            "pending": ("PENDING", "NOT_STARTED"),
            "paid": ("PAID", "NOT_STARTED"),
            "cancelled": ("FULLY_REFUNDED", "NOT_STARTED"),
            "fulfilled": ("PAID", "FULFILLED"),
            "refunded": ("FULLY_REFUNDED", "FULFILLED"),
        }[order.status]
        done = self.fulfilled_lines.get(order.id, set())
        if fulfilment == "NOT_STARTED" and done:
            fulfilment = "IN_PROGRESS"
        total = {"value": f"{order.total:.2f}", "currency": order.currency}
        lines = []
        for line in order.lines:
            shipped = order.status in ("fulfilled", "refunded") or line.line_id in done
            cost = {"value": f"{line.price * line.quantity:.2f}", "currency": order.currency}
            lines.append(
                {
                    "lineItemId": line.line_id,
                    "legacyItemId": line.ids.get("product_id", ""),
                    "legacyVariationId": "",
                    "sku": line.ids.get("listing_sku") or line.sku,
                    "title": f"Sandbox item {line.sku}",
                    "quantity": line.quantity,
                    "lineItemCost": cost,
                    "total": cost,
                    "lineItemFulfillmentStatus": "FULFILLED" if shipped else "NOT_STARTED",
                }
            )
        return {
            "orderId": order.id,
            "creationDate": ebay_time(order.created_at),
            "lastModifiedDate": ebay_time(order.updated_at),
            "orderFulfillmentStatus": fulfilment,
            "orderPaymentStatus": payment,
            "cancelStatus": {
                "cancelState": "CANCELED" if order.status == "cancelled" else "NONE_REQUESTED",
                "cancelRequests": [],
            },
            "buyer": {
                "username": "sandbox_buyer",
                "buyerRegistrationAddress": {
                    "email": order.email,
                    "primaryPhone": {"phoneNumber": order.phone},
                },
            },
            "pricingSummary": {"priceSubtotal": total, "total": total},
            "salesRecordReference": str(order.number),
            "lineItems": lines,
        }

    def dump_extra(self) -> JsonDict:
        return {
            "revisions": [[sku, day, n] for (sku, day), n in self.revisions.items()],
            "fulfilled_lines": {k: sorted(v) for k, v in self.fulfilled_lines.items()},
        }

    def load_extra(self, state: Mapping[str, Any]) -> None:
        self.revisions = {(str(s), str(d)): int(n) for s, d, n in state.get("revisions", [])}
        self.fulfilled_lines = {
            str(k): {str(x) for x in v} for k, v in state.get("fulfilled_lines", {}).items()
        }

    def reset(self) -> None:
        with self.lock:
            self.revisions.clear()
            self.fulfilled_lines.clear()
        super().reset()

    # ------------------------------------------------------------------ helpers

    def _item(self, channel_sku: str) -> CatalogItem | None:
        """Catalog item by the SKU eBay knows (listing_sku, else the master SKU)."""
        return self.catalog.find_by_id("listing_sku", channel_sku) or self.catalog.get(channel_sku)

    def _channel_sku(self, item: CatalogItem) -> str:
        return item.ids.get("listing_sku") or item.sku

    def _bad_request(self, error_id: int, message: str, status: int = 400) -> ApiError:
        return ApiError(Response.json(status, {"errors": [ebay_error(error_id, message)]}))

    def _refused(self, error_id: int, message: str) -> ApiError:
        """A 400 for a request eBay's definition refuses (recorded as a refusal)."""
        response = Response.json(400, {"errors": [ebay_error(error_id, message)]})
        return ApiError(response, refusal=f"{error_id} {message}")

    def _requests(self, request: Request) -> list[Mapping[str, Any]]:
        body = request.json()
        entries = body.get("requests") if isinstance(body, Mapping) else None
        if not isinstance(entries, list) or not entries:
            raise self._refused(25709, "Invalid value for requests: a non-empty array is required")
        if not all(isinstance(entry, Mapping) for entry in entries):
            raise self._refused(25709, "Invalid value for requests: objects expected")
        return entries

    def _marketplace(self, request: Request) -> str:
        return (
            request.arg("marketplace_id") or request.header("x-ebay-c-marketplace-id") or "EBAY_US"
        )

    def _offer_json(self, item: CatalogItem, marketplace: str) -> JsonDict:
        offer: JsonDict = {
            "offerId": item.ids.get("offer_id", ""),
            "sku": self._channel_sku(item),
            "marketplaceId": marketplace,
            "format": "FIXED_PRICE",
            "availableQuantity": item.quantity,
            "pricingSummary": {"price": {"value": f"{item.price:.2f}", "currency": "USD"}},
            "status": "PUBLISHED" if item.ids.get("product_id") else "UNPUBLISHED",
        }
        if item.ids.get("product_id"):
            offer["listing"] = {
                "listingId": item.ids["product_id"],
                "listingStatus": "ACTIVE",
                "soldQuantity": 0,
            }
        return offer

    def _item_json(self, item: CatalogItem) -> JsonDict:
        # A product published through the API keeps what was sent; a seeded one is
        # described from its seed (title, barcode, options, image).
        product = item.content.get("item_product") or _seeded_product(item)
        data: JsonDict = {
            "sku": self._channel_sku(item),
            "locale": "en_US",
            "product": product,
            "condition": item.content.get("condition", "NEW"),
            "availability": {"shipToLocationAvailability": {"quantity": item.quantity}},
        }
        if item.content.get("group"):
            data["inventoryItemGroupKeys"] = [item.content["group"]]
        return data

    # ------------------------------------------------------------------ inventory

    def bulk_update(self, request: Request) -> Response:
        entries = self._requests(request)
        if len(entries) > MAX_BULK:
            raise self._refused(25002, f"A maximum of {MAX_BULK} requests is allowed per call")
        responses: list[JsonDict] = []
        with self.lock:
            for entry in entries:
                responses.extend(self._update_one(entry))
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return Response.json(status, {"responses": responses})

    def _update_one(self, entry: Mapping[str, Any]) -> list[JsonDict]:
        sku = str(entry.get("sku", ""))
        offers = entry.get("offers") or []
        offer_id = (
            str(offers[0].get("offerId", "")) if offers and isinstance(offers[0], Mapping) else ""
        )

        def answer(status: int, *errors: JsonDict) -> list[JsonDict]:
            result: JsonDict = {
                "statusCode": status,
                "sku": sku,
                "errors": list(errors),
                "warnings": [],
            }
            if offer_id:
                result["offerId"] = offer_id
            return [result]

        item = self._item(sku)
        if item is None:
            return answer(404, ebay_error(25702, f"SKU {sku} is not available in the system"))
        try:
            price, quantity = self._parse_update(entry, item)
        except ValueError as exc:
            return answer(400, ebay_error(25709, f"Invalid value: {exc}"))
        if price is None and quantity is None:
            return answer(400, ebay_error(25709, "Invalid value: nothing to update"))
        if self.faults.item_fails(item.sku):
            return answer(400, ebay_error(25709, "Invalid value for price or quantity (injected)"))
        if not self._take_revision(sku):
            return answer(
                400, ebay_error(25002, "This listing has reached its revision limit for today")
            )
        if price is not None:
            self.catalog.set_values(item.sku, price=price)
            self.counters.count_items("price", 1)
        if quantity is not None:
            self.write_quantity(item, quantity, via="bulkUpdatePriceQuantity")
            self.counters.count_items("quantity", 1)
        return answer(200)

    def _parse_update(
        self, entry: Mapping[str, Any], item: CatalogItem
    ) -> tuple[Decimal | None, int | None]:
        price: Decimal | None = None
        quantity: int | None = None
        ship = entry.get("shipToLocationAvailability")
        if ship is not None:
            quantity = _quantity(ship.get("quantity") if isinstance(ship, Mapping) else None)
        offers = entry.get("offers") or []
        if not isinstance(offers, list):
            raise ValueError("offers must be an array")
        seen: set[str] = set()
        for offer in offers:
            offer_id = str(offer.get("offerId", "")) if isinstance(offer, Mapping) else ""
            if offer_id != item.ids.get("offer_id"):
                raise ValueError(f"offerId {offer_id!r} does not belong to SKU {entry.get('sku')}")
            if offer_id in seen:
                raise ValueError(f"duplicate offerId {offer_id}")
            seen.add(offer_id)
            if "price" not in offer and "availableQuantity" not in offer:
                raise ValueError("each offer needs price and/or availableQuantity")
            if "availableQuantity" in offer:
                quantity = _quantity(offer["availableQuantity"])
            if "price" in offer:
                price = _price(offer["price"])
        return price, quantity

    def _take_revision(self, channel_sku: str) -> bool:
        per_day = int(self.limits.get("revisions", {}).get("per_day", 0))
        if per_day <= 0:
            return True
        key = (channel_sku, datetime.now(UTC).date().isoformat())  # the day in UTC
        used = self.revisions.get(key, 0)
        if used >= per_day:
            return False
        self.revisions[key] = used + 1
        return True

    def bulk_get(self, request: Request) -> Response:
        entries = self._requests(request)
        if len(entries) > MAX_BULK:
            raise self._refused(25727, f"The number of SKUs exceeds the maximum of {MAX_BULK}")
        skus = [str(entry.get("sku", "")) for entry in entries]
        if len(set(skus)) != len(skus):
            raise self._refused(25734, "Duplicate SKUs in the request")
        responses = []
        with self.lock:
            for sku in skus:
                item = self._item(sku)
                if item is None:
                    responses.append(
                        {
                            "statusCode": 404,
                            "sku": sku,
                            "errors": [ebay_error(25702, f"SKU {sku} is not available")],
                            "warnings": [],
                        }
                    )
                    continue
                responses.append(
                    {"statusCode": 200, "sku": sku, "inventoryItem": self._item_json(item)}
                )
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return Response.json(status, {"responses": responses})

    def list_items(self, request: Request) -> Response:
        limit = _int_arg(request, "limit", 25, 1, 200, error_id=25709)
        page = _int_arg(request, "offset", 0, 0, None, error_id=25709)
        with self.lock:
            items = sorted(self.catalog.items(), key=lambda i: self._channel_sku(i))
            window = items[page * limit : (page + 1) * limit]
            payload = {
                "total": len(items),
                "size": len(window),
                "limit": limit,
                "inventoryItems": [self._item_json(item) for item in window],
            }
        return Response.json(200, payload)

    def get_item(self, request: Request) -> Response:
        sku = unquote(request.params["sku"])
        with self.lock:
            item = self._item(sku)
            if item is None:
                raise self._bad_request(25702, f"SKU {sku} is not available", status=404)
            return Response.json(200, self._item_json(item))

    def get_offers(self, request: Request) -> Response:
        sku = request.arg("sku")
        if not sku:
            raise self._refused(25707, "Invalid sku: the sku query parameter is required")
        with self.lock:
            item = self._item(sku)
            if item is None or not item.ids.get("offer_id"):
                raise self._bad_request(25713, "This Offer is not available", status=404)
            offer = self._offer_json(item, self._marketplace(request))
        return Response.json(200, {"total": 1, "size": 1, "limit": 100, "offers": [offer]})

    # ------------------------------------------------------------------ publishing

    def bulk_replace_items(self, request: Request) -> Response:
        entries = self._requests(request)
        if len(entries) > MAX_BULK:
            raise self._refused(25002, f"A maximum of {MAX_BULK} requests is allowed per call")
        with self.lock:
            responses = [self._replace_item(entry) for entry in entries]
        status = 200 if all(r["statusCode"] in (200, 201) for r in responses) else 207
        return Response.json(status, {"responses": responses})

    def _replace_item(self, entry: Mapping[str, Any]) -> JsonDict:
        sku = str(entry.get("sku", ""))
        answer: JsonDict = {"sku": sku, "locale": entry.get("locale", "en_US"), "warnings": []}
        if self.faults.item_fails(sku):
            self.counters.record_fault("item")
            return {**answer, "statusCode": 400, "errors": [ebay_error(25709, "Invalid value")]}
        item = self._item(sku)
        product = dict(entry.get("product") or {})
        availability = (entry.get("availability") or {}).get("shipToLocationAvailability") or {}
        quantity = int(availability.get("quantity") or 0)  # a full replace: left out is 0
        barcode = next(iter(product.get("ean") or product.get("upc") or []), "")
        options = {
            str(name): str(values[0])
            for name, values in (product.get("aspects") or {}).items()
            if name != "Brand" and values
        }
        if item is None:
            item = CatalogItem(sku=sku, ids={"listing_sku": sku}, price=Decimal("0"), quantity=0)
            self.catalog.put(item)
            created = True
        else:
            created = False
        group = item.content.get("group", "")
        item.content.update(
            item_product=product,
            condition=entry.get("condition", "NEW"),
            options=options,
            barcode=str(barcode),
            product=f"group:{group}" if group else f"item:{sku}",
        )
        self.product_put(
            f"item:{sku}",
            {
                "title": product.get("title", ""),
                "description": product.get("description", ""),
                "images": list(product.get("imageUrls") or []),
                "vendor": product.get("brand", ""),
            },
        )
        self.write_quantity(item, quantity, via="bulkCreateOrReplaceInventoryItem")
        return {**answer, "statusCode": 201 if created else 200, "errors": []}

    def put_group(self, request: Request) -> Response:
        key = unquote(request.params["key"])
        body = request.json()
        with self.lock:
            skus = [str(s) for s in body.get("variantSKUs") or []]
            unknown = [s for s in skus if self._item(s) is None]
            if unknown:
                raise self._bad_request(25702, f"SKU {unknown[0]} is not available")
            self.product_put(
                f"group:{key}",
                {
                    "title": body.get("title", ""),
                    "description": body.get("description", ""),
                    "images": list(body.get("imageUrls") or []),
                    "variant_skus": skus,
                    "varies_by": body.get("variesBy") or {},
                },
            )
            for sku in skus:
                item = self._item(sku)
                if item is not None:
                    item.content.update(group=key, product=f"group:{key}")
        return Response(204, b"", {})

    def bulk_offers(self, request: Request) -> Response:
        entries = self._requests(request)
        if len(entries) > MAX_BULK:
            raise self._refused(25002, f"A maximum of {MAX_BULK} requests is allowed per call")
        with self.lock:
            responses = [self._create_offer(entry) for entry in entries]
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return Response.json(status, {"responses": responses})

    def _create_offer(self, entry: Mapping[str, Any]) -> JsonDict:
        sku = str(entry.get("sku", ""))
        answer: JsonDict = {
            "sku": sku,
            "marketplaceId": entry.get("marketplaceId", "EBAY_US"),
            "format": entry.get("format", "FIXED_PRICE"),
            "warnings": [],
        }
        item = self._item(sku)
        if item is None:
            error = ebay_error(25702, f"SKU {sku} is not available in the system")
            return {**answer, "statusCode": 404, "errors": [error]}
        if item.ids.get("offer_id"):
            error = ebay_error(25002, "Offer entity already exists")
            error["parameters"] = [{"name": "offerId", "value": item.ids["offer_id"]}]
            return {**answer, "statusCode": 400, "errors": [error]}
        offer_id = str(self.next_id())
        item.ids["offer_id"] = offer_id
        self.catalog.put(item)
        item.content["offer"] = {
            key: entry.get(key)
            for key in ("categoryId", "merchantLocationKey", "listingPolicies", "marketplaceId")
        }
        price = (entry.get("pricingSummary") or {}).get("price")
        if price:
            self.catalog.set_values(item.sku, price=_price(price))
        self.write_quantity(item, int(entry.get("availableQuantity") or 0), via="bulkCreateOffer")
        return {**answer, "statusCode": 200, "offerId": offer_id, "errors": []}

    def _publish_problems(self, item: CatalogItem) -> list[str]:
        """Why eBay would not publish this item's offer ([] when it would)."""
        offer = item.content.get("offer") or {}
        problems = []
        if not offer.get("categoryId"):
            problems.append("categoryId is missing")
        policies = offer.get("listingPolicies") or {}
        for key, known in PUBLISHING_SETTINGS.items():
            value = offer.get(key) if key == "merchantLocationKey" else policies.get(key)
            if value not in known:
                problems.append(f"{key} {value!r} is not one of the seller's")
        page = self.products.get(str(item.content.get("product", "")), {})
        if not page.get("title") or not page.get("description"):
            problems.append("title and description are required")
        if not page.get("images"):
            problems.append("at least one picture is required")
        return problems

    def _go_live(self, items: list[CatalogItem]) -> Response:
        problems = sorted({p for item in items for p in self._publish_problems(item)})
        if problems:
            raise self._bad_request(25002, "The offer cannot be published: " + "; ".join(problems))
        listing_id = next((i.ids["product_id"] for i in items if i.ids.get("product_id")), "")
        listing_id = listing_id or f"11{self.next_id():010d}"
        for item in items:
            item.ids["product_id"] = listing_id
            self.catalog.put(item)
        return Response.json(200, {"listingId": listing_id, "warnings": []})

    def publish_offer(self, request: Request) -> Response:
        offer_id = unquote(request.params["offer_id"])
        with self.lock:
            item = self.catalog.find_by_id("offer_id", offer_id)
            if item is None:
                raise self._bad_request(25713, "This Offer is not available", status=404)
            if item.content.get("group"):
                raise self._bad_request(
                    25002, "This offer is part of a group: publish it by inventory item group"
                )
            return self._go_live([item])

    def publish_group(self, request: Request) -> Response:
        body = request.json()
        key = str(body.get("inventoryItemGroupKey", ""))
        with self.lock:
            group = self.products.get(f"group:{key}")
            if group is None:
                raise self._bad_request(25705, f"The inventory item group {key} does not exist")
            items = [self._item(sku) for sku in group.get("variant_skus", [])]
            present = [i for i in items if i is not None]
            lacking = [i.sku for i in present if not i.ids.get("offer_id")]
            if lacking or len(present) != len(items):
                raise self._bad_request(25002, f"No offer for the group's SKUs {lacking}")
            return self._go_live(present)

    # ------------------------------------------------------------------ orders

    def get_orders(self, request: Request) -> Response:
        start, end = self._order_window(request.arg("filter"))
        limit = _int_arg(request, "limit", 50, 1, MAX_ORDER_LIMIT, error_id=31100)
        offset = _int_arg(request, "offset", 0, 0, None, error_id=31000)
        with self.lock:
            matching = [
                order
                for order in self.orders.all()
                if (start is None or order.updated_at >= start)
                and (end is None or order.updated_at <= end)
            ]
            window = matching[offset : offset + limit]
            self.mark_orders_seen(window)
            payload: JsonDict = {
                "href": self._orders_href(request, offset, limit),
                "total": len(matching),
                "limit": limit,
                "offset": offset,
                "orders": [self.render_order(order) for order in window],
                "warnings": [],
            }
        if offset + limit < len(matching):
            payload["next"] = self._orders_href(request, offset + limit, limit)
        if offset > 0:
            payload["prev"] = self._orders_href(request, max(0, offset - limit), limit)
        return Response.json(200, payload)

    def _orders_href(self, request: Request, offset: int, limit: int) -> str:
        query = {"limit": limit, "offset": offset}
        if request.arg("filter"):
            query["filter"] = request.arg("filter")
        return f"/ebay{FULFILLMENT}/order?{urlencode(query)}"

    def _order_window(self, raw: str) -> tuple[datetime | None, datetime | None]:
        if not raw:
            return None, None
        found = FILTER_RE.match(raw)
        if found is None:
            raise self._refused(30800, f"Invalid filter value {raw!r}")
        if found["field"] not in ("lastmodifieddate", "creationdate"):
            raise self._refused(30700, f"Invalid filter name {found['field']!r}")
        if found["field"] == "creationdate":
            raise self._bad_request(30700, "The sandbox filters on lastmodifieddate only")
        if not found["start"]:
            raise self._refused(30820, "Start date is missing")
        try:
            start = parse_iso(found["start"])
            end = parse_iso(found["end"]) if found["end"] else None
        except ValueError:
            raise self._refused(30810, "Invalid date format") from None
        now = datetime.now(UTC)
        if start < now - ORDER_WINDOW:
            raise self._refused(
                30830, "Time range between start date and end date must be within '2' years."
            )
        if start > now + timedelta(minutes=5):
            raise self._refused(30850, "The start date is in the future")
        return start, end

    def get_order(self, request: Request) -> Response:
        with self.lock:
            order = self._order(request.params["order_id"])
            return Response.json(200, self.render_order(order))

    def _order(self, order_id: str) -> SandboxOrder:
        order = self.orders.get(unquote(order_id))
        if order is None:
            raise ApiError(
                Response.json(
                    404,
                    {
                        "errors": [
                            ebay_error(
                                32100, f"Invalid order ID: {order_id}", domain="API_FULFILLMENT"
                            )
                        ]
                    },
                )
            )
        return order

    def create_fulfillment(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, Mapping):
            raise self._refused(32500, "Invalid request body")
        tracking = str(body.get("trackingNumber") or "")
        carrier = str(body.get("shippingCarrierCode") or "")
        if bool(tracking) != bool(carrier):
            raise self._refused(
                32400, "shippingCarrierCode and trackingNumber must be supplied together"
            )
        wanted = body.get("lineItems")
        if not isinstance(wanted, list) or not wanted:
            raise self._refused(32100, "lineItems is required")
        with self.lock:
            order = self._order(request.params["order_id"])
            if order.status not in ("paid", "pending"):
                raise self._bad_request(32700, f"The order is {order.status} and cannot be shipped")
            line_ids = {line.line_id for line in order.lines}
            requested = {
                str(entry.get("lineItemId")) for entry in wanted if isinstance(entry, Mapping)
            }
            unknown = requested - line_ids
            if unknown:
                raise self._bad_request(32100, f"Invalid lineItemId: {sorted(unknown)}")
            done = self.fulfilled_lines.setdefault(order.id, set())
            done.update(requested)
            fulfillment_id = str(self.next_id())
            if done >= line_ids:
                self.order_transition(order.id, "fulfil", tracking_number=tracking, carrier=carrier)
            else:
                order.updated_at = self.stamp()
        location = f"/ebay{FULFILLMENT}/order/{order.id}/shipping_fulfillment/{fulfillment_id}"
        return Response(201, b"", {"Location": location})

    def create_cancellation(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, Mapping) or not body.get("legacyOrderId"):
            raise self._refused(150, "legacyOrderId is required")
        reason = str(body.get("cancelReason") or "OUT_OF_STOCK_OR_CANNOT_FULFILL")
        with self.lock:
            order = self._order(str(body["legacyOrderId"]))
            if order.status not in ("pending", "paid"):
                reasons = [
                    "ORDER_ALREADY_SHIPPED"
                    if order.status != "cancelled"
                    else "ORDER_ALREADY_CANCELLED"
                ]
                return Response.json(
                    200, {"orderEligibilityResult": {"eligible": False, "failureReason": reasons}}
                )
            self.order_transition(order.id, "cancel", reason=reason)
            cancel_id = str(self.next_id())
        return Response.json(
            201, {"cancelId": cancel_id, "orderEligibilityResult": {"eligible": True}}
        )


# ---------------------------------------------------------------------- parsing


def _quantity(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"quantity must be a whole number >= 0, got {value!r}")
    return value


def _price(value: Any) -> Decimal:
    if not isinstance(value, Mapping) or "value" not in value:
        raise ValueError("price must be {value, currency}")
    price = to_decimal(value["value"])
    if price < 0:
        raise ValueError("price must be >= 0")
    return price


def _int_arg(
    request: Request,
    name: str,
    default: int,
    low: int,
    high: int | None,
    *,
    error_id: int,
) -> int:
    raw = request.arg(name)
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        message = f"Invalid value for {name}: {raw}"
        raise ApiError(
            Response.json(400, {"errors": [ebay_error(error_id, message)]}),
            refusal=f"{error_id} {message}",
        )
    return value


def _seeded_product(item: CatalogItem) -> JsonDict:
    product: JsonDict = {
        "title": " ".join([item.display_title, *item.options.values()])
        if item.product_title or item.title
        else f"Sandbox item {item.sku}"
    }
    if item.barcode:
        product[_barcode_kind(item.barcode)] = [item.barcode]
    if item.options:
        # eBay's contract types aspects as a string (a JSON object, encoded).
        product["aspects"] = json.dumps({k: [v] for k, v in item.options.items()})
    if item.image:
        product["imageUrls"] = [item.image]
    return product
