"""Shopify stand-in: the GraphQL Admin API operations pimsync sends.

``POST /shopify/admin/api/{version}/graphql.json`` with ``X-Shopify-Access-Token``.
Every document and its variables are first validated against the Admin API
2026-01 schema as far as pimsync uses it (sandbox/contracts/shopify_2026-01.graphql):
an unknown field or argument, a missing required argument or a variable of the
wrong shape is answered as Shopify answers it (HTTP 200, ``errors`` with
``extensions.code`` ``undefinedField``, ``argumentNotAccepted``,
``missingRequiredArguments``, ``INVALID_VARIABLE`` …) and recorded in
``refusals``. A valid document is dispatched on its root field, reads its inputs
from ``variables`` (pimsync always sends inputs as variables), and the handler's
data is projected through the schema, so the answer holds exactly the selected
fields. The operations:

* ``inventorySetQuantities`` (absolute "available" at a location, with 2026-01
  ``changeFromQuantity`` compare-and-set and ``@idempotent(key:)``; all or
  nothing: any userError means nothing was applied),
* ``productVariantsBulkUpdate`` (one product per call; ``allowPartialUpdates``
  applies the valid variants and reports the others),
* ``productSet(identifier:, input:, synchronous:)`` (publishing and content: a
  product found by ``identifier.id`` or ``handle``, else created; the fields given
  replace the product's, ``productOptions`` / ``variants`` / ``files`` replace the
  whole list - a variant left out is deleted; variants are matched by ``id``, else
  by SKU; a new variant starts at quantity 0; all or nothing: any userError and
  nothing is saved). Simplification: a SKU names one variant in
  the sandbox (Shopify itself allows duplicate SKUs): a SKU of another product is
  refused.
* ``nodes(ids:)`` over ProductVariant ids (price + available at a location),
* ``productVariants(first:, after:, sortKey: ID)`` (the whole catalog, by variant
  id; cost 2 + 4 per variant: variant, product, inventory item, level),
* ``orders(first:, after:, query: "updated_at:>'…'", sortKey: UPDATED_AT)``,
* ``order(id:) { fulfillmentOrders }``, ``orderCancel``, ``fulfillmentCreate``,
* ``shop { name }`` (connection test),
* ``webhookSubscriptions(first:, after:, topics:)``, ``webhookSubscriptionCreate``
  and ``webhookSubscriptionUpdate`` (``webhookSubscription: {uri, format}``;
  HTTPS addresses, plain HTTP on loopback too).

Rate limit: a leaky bucket of query cost (``limits["cost"]``): maximum 1000
points (the bucket size seen in real responses; current docs do not publish it)
restored at 100 points/s (the Standard plan). A query may not request more
than 1000 points. Costs follow Shopify's rules in simplified form: a mutation
costs 10; ``nodes`` 1 + 3 per id; ``orders`` 2 + first * (3 + lineItems
first). The requested cost must be free before a query runs and the unused
part is refunded. When it is not free the answer is HTTP 200 with
``errors[0].extensions.code == "THROTTLED"`` and ``extensions.cost`` (set the
attribute ``throttle_http_status = 429`` to answer 429 instead).
Every input array is capped at 250 items.

Ids: products ``gid://shopify/Product/N``, variants
``gid://shopify/ProductVariant/N``, inventory items ``gid://shopify/InventoryItem/N``;
seeded rows with the same ``group`` share one product. The one location is
``gid://shopify/Location/1``. The sandbox implements 2026-01 semantics whatever
version the path names. Webhooks: REST JSON signed with ``X-Shopify-Hmac-Sha256``
= base64(HMAC-SHA256(secret, body)) — the console target's secret, or for the
subscriptions registered through the API the app's client secret
(``credentials["client_secret"]``, default ``shpss_sandbox``); orders/* carry the
REST order, ``inventory_levels/update`` a level (sent for every change: API
writes, console edits, sales), ``products/update`` the REST product with every
variant (sent for price changes, one per product).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .contracts import contract_path
from .contracts.graphql_contract import GraphQLContract, load_contract
from .http import (
    ApiError,
    JsonDict,
    Request,
    Response,
    Route,
    hmac_sha256_base64,
    iso,
    money,
    parse_iso,
    to_decimal,
)
from .platform import SandboxPlatform
from .ratelimit import CostBucket, CostStatus
from .store import CatalogItem, SandboxOrder
from .webhooks import Subscription, WebhookRequest, WebhookTarget

API_VERSION = "2026-01"
SCHEMA_FILE = "shopify_2026-01.graphql"
SHOP_DOMAIN = "pimsync-sandbox.myshopify.com"
LOCATION_ID = "gid://shopify/Location/1"
MAX_INPUT = 250
MAX_QUERY_COST = 1000
MUTATION_COST = 10
NODE_COST = 3
# productVariants: one point per object of each node (variant, product, inventory
# item, inventory level) on top of the connection's 2.
CATALOG_NODE_COST = 4

# Webhook topic per order event (what Shopify sends for each transition).
TOPICS = {
    "created": "orders/create",
    "paid": "orders/paid",
    "cancelled": "orders/cancelled",
    "fulfilled": "orders/fulfilled",
    "refunded": "orders/updated",
    "updated": "orders/updated",
}
FINANCIAL = {
    "pending": "pending",
    "paid": "paid",
    "cancelled": "voided",
    "fulfilled": "paid",
    "refunded": "refunded",
}
CANCEL_REASONS = {"CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"}
# Webhooks registered through the API are signed with the app's client secret (the
# "API secret key" of a custom app), not with a secret given at registration.
CLIENT_SECRET = "shpss_sandbox"  # noqa: S105 - the sandbox's own, documented in docs/sandbox.md
# The WebhookSubscriptionTopic values the sandbox delivers, and their header names.
SUBSCRIPTION_TOPICS = {
    "ORDERS_CREATE": "orders/create",
    "ORDERS_PAID": "orders/paid",
    "ORDERS_CANCELLED": "orders/cancelled",
    "ORDERS_FULFILLED": "orders/fulfilled",
    "ORDERS_UPDATED": "orders/updated",
    "INVENTORY_LEVELS_UPDATE": "inventory_levels/update",
    "PRODUCTS_UPDATE": "products/update",
}
TOPIC_ENUM = {name: enum for enum, name in SUBSCRIPTION_TOPICS.items()}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
ADDRESS_FIELD = ["webhookSubscription", "callbackUrl"]
UPDATED_AT_FILTER = re.compile(r"updated_at:(>=|>)?'?([0-9T:.+\-Z]+)'?")
LINE_FIRST = re.compile(r"lineItems\(\s*first:\s*(\d+)")


def gid(kind: str, number: int | str) -> str:
    return f"gid://shopify/{kind}/{number}"


def gid_number(value: str) -> str:
    return str(value).rsplit("/", 1)[-1]


def user_error(code: str, field: list[str], message: str) -> JsonDict:
    return {"code": code, "field": field, "message": message}


class ShopifySandbox(SandboxPlatform):
    name = "shopify"
    default_limits: ClassVar[Mapping[str, Mapping[str, float]]] = {
        "cost": {"maximum": 1000.0, "restore_rate": 100.0}
    }
    default_credentials: ClassVar[Mapping[str, str]] = {
        "access_token": "shpat_sandbox",
        "client_secret": CLIENT_SECRET,
    }

    def __init__(self, **kwargs: Any) -> None:
        self._cost_bucket = CostBucket(1000, 100)
        self._idempotency: dict[str, tuple[str, JsonDict]] = {}
        self._idem_lock = threading.Lock()
        self._groups: dict[str, str] = {}
        # Sources disagree whether THROTTLED comes with HTTP 200 or 429; tests flip this.
        self.throttle_http_status = 200
        super().__init__(**kwargs)

    # ---- setup

    def register_routes(self) -> None:
        self.add_route(
            "POST",
            r"/admin/api/(?P<version>[\w-]+)/graphql\.json",
            self.graphql,
            name="graphql",
            limit_key=None,  # cost-based, checked inside graphql()
        )

    def on_limits_changed(self) -> None:
        spec = self.limits.get("cost", {})
        self._cost_bucket = CostBucket(
            spec.get("maximum", 1000.0), spec.get("restore_rate", 100.0), self.clock
        )

    def drain_limits(self) -> None:
        """Empty the cost bucket (the bench measures steady state this way)."""
        self._cost_bucket.try_take(self._cost_bucket.status().currently_available)

    def assign_ids(self, sku: str, ids: Mapping[str, str], group: str) -> dict[str, str]:
        result = dict(ids)
        if "product_id" not in result:
            key = group or f"sku:{sku}"
            with self.lock:
                if key not in self._groups:
                    self._groups[key] = gid("Product", self.next_id())
                result["product_id"] = self._groups[key]
        result.setdefault("variant_id", gid("ProductVariant", self.next_id()))
        result.setdefault("inventory_item_id", gid("InventoryItem", self.next_id()))
        return result

    def reset(self) -> None:
        super().reset()
        with self._idem_lock:
            self._idempotency.clear()
        self._groups.clear()

    def dump_extra(self) -> JsonDict:
        return {"groups": dict(self._groups)}

    def load_extra(self, state: Mapping[str, Any]) -> None:
        self._groups = dict(state.get("groups", {}))

    # ---- errors and auth

    def error_response(self, status: int, code: str, message: str) -> Response:
        if status == 401:
            text = "[API] Invalid API key or access token (unrecognized login or wrong password)"
            return Response.json(401, {"errors": text})
        if status >= 500:
            return Response.json(status, {"errors": "Internal Server Error"})
        return Response.json(status, {"errors": message})

    def check_auth(self, request: Request) -> Response | None:
        token = request.header("X-Shopify-Access-Token")
        if token and token == self.credentials.get("access_token"):
            return None
        return self.error_response(401, "unauthorized", "")

    # ---- GraphQL entry point

    @property
    def contract(self) -> GraphQLContract:
        return load_contract(contract_path(SCHEMA_FILE))

    def validate_request(self, request: Request, route: Route) -> None:
        """The document and its variables against the 2026-01 schema, refused as Shopify does."""
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise ApiError(
                Response.json(400, {"errors": {"query": "Required parameter missing"}}),
                refusal="no query",
            )
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise ApiError(
                Response.json(400, {"errors": {"variables": "must be an object"}}),
                refusal="variables is not an object",
            )
        checked = self.contract.check(body["query"], variables, body.get("operationName"))
        if not checked.ok:
            raise ApiError(
                Response.json(200, {"errors": checked.errors}),
                refusal=[str(e["message"]) for e in checked.errors],
            )
        request.contract = checked

    def graphql(self, request: Request) -> Response:
        body = request.json()
        query: str = body["query"]
        variables = body.get("variables") or {}
        operation, cost = self._operation(query, variables)
        if cost > MAX_QUERY_COST:
            return self._graphql_errors(
                f"Query cost is {cost}, which exceeds the single query max cost limit "
                f"({MAX_QUERY_COST}).",
                "MAX_COST_EXCEEDED",
                cost,
            )
        granted, status = self._cost_bucket.try_take(cost)
        if not granted:
            return self._throttled(cost, status)
        try:
            data, actual = operation(query, variables)
        except ApiError:
            self._cost_bucket.refund(cost)
            raise
        status = self._cost_bucket.refund(cost - actual)
        payload: JsonDict = {"data": data}
        if request.contract is not None:
            payload["data"], problems = self.contract.project(request.contract, data)
            if problems:  # the sandbox's data does not fit the schema: a sandbox bug, shown
                payload["errors"] = problems
                self.record_answer_problems(request, [str(p["message"]) for p in problems])
        payload["extensions"] = {"cost": self._cost(cost, actual, status)}
        return Response.json(200, payload)

    def _operation(self, query: str, variables: Mapping[str, Any]) -> tuple[Any, int]:
        if "webhookSubscriptionCreate" in query:
            return self._subscription_create, MUTATION_COST
        if "webhookSubscriptionUpdate" in query:
            return self._subscription_update, MUTATION_COST
        if re.search(r"\bwebhookSubscriptions\s*\(", query):
            return self._subscriptions, 2 + int(variables.get("first") or 0)
        if "inventorySetQuantities" in query:
            return self._inventory_set, MUTATION_COST
        if "productVariantsBulkUpdate" in query:
            return self._variants_bulk_update, MUTATION_COST
        if "productSet" in query:
            variants = (variables.get("input") or {}).get("variants") or []
            self._check_input_size(variants, "variants")
            return self._product_set, MUTATION_COST
        if "orderCancel" in query:
            return self._order_cancel, MUTATION_COST
        if "fulfillmentCreate" in query:
            return self._fulfillment_create, MUTATION_COST
        if re.search(r"\bproductVariants\s*\(", query):
            first = int(variables.get("first") or 0)
            return self._product_variants, 2 + CATALOG_NODE_COST * first
        if re.search(r"\bnodes\s*\(", query):
            ids = variables.get("ids") or []
            self._check_input_size(ids, "ids")
            return self._nodes, 1 + NODE_COST * len(ids)
        if re.search(r"\borders\s*\(", query):
            first = int(variables.get("first") or 0)
            found = LINE_FIRST.search(query)
            line_first = int(found.group(1)) if found else 0
            return self._orders, 2 + first * (3 + line_first)
        if re.search(r"\border\s*\(", query):
            if "lineItems" in query:
                found = LINE_FIRST.search(query)
                return self._order_line_items, 2 + (int(found.group(1)) if found else 0)
            return self._order_fulfillment_orders, 3
        if re.search(r"\bshop\s*\{", query):
            return self._shop, 1
        raise ApiError(
            Response.json(
                200,
                {"errors": [{"message": "sandbox: unsupported operation", "extensions": {}}]},
            )
        )

    def _graphql_errors(self, message: str, code: str, cost: int) -> Response:
        payload = {
            "errors": [
                {
                    "message": message,
                    "extensions": {"code": code, "cost": cost, "maxCost": MAX_QUERY_COST},
                }
            ]
        }
        return Response.json(200, payload)

    def _cost(self, requested: int, actual: int | None, status: CostStatus) -> JsonDict:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": status.maximum_available,
                "currentlyAvailable": round(status.currently_available, 3),
                "restoreRate": status.restore_rate,
            },
        }

    def rate_limited_response(self, wait_seconds: float, request: Request) -> Response:
        """An injected throttle (fault) answers exactly like a real one."""
        return self._throttled(MUTATION_COST, self._cost_bucket.status(), real=False)

    def _throttled(self, cost: int, status: CostStatus, *, real: bool = True) -> Response:
        if real:
            self.counters.record_rate_limited()
        http_status = self.throttle_http_status
        payload = {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
            ],
            "extensions": {"cost": self._cost(cost, None, status)},
        }
        return Response.json(http_status, payload)

    def _check_input_size(self, items: Any, name: str) -> None:
        if not isinstance(items, list):
            raise ApiError(self._variable_error(f"{name} must be a list"))
        if len(items) > MAX_INPUT:
            message = (
                f"The input array size of {len(items)} is greater than the maximum "
                f"allowed of {MAX_INPUT}."
            )
            raise ApiError(
                Response.json(
                    200,
                    {
                        "errors": [
                            {
                                "message": message,
                                "extensions": {"code": "MAX_INPUT_SIZE_EXCEEDED"},
                            }
                        ]
                    },
                )
            )

    def _variable_error(self, message: str) -> Response:
        return Response.json(
            200,
            {"errors": [{"message": message, "extensions": {"code": "INVALID_VARIABLE"}}]},
        )

    # ---- inventorySetQuantities

    def _inventory_set(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        spec = variables.get("input")
        if not isinstance(spec, dict):
            raise ApiError(
                self._variable_error(
                    "Variable $input of type InventorySetQuantitiesInput! "
                    "was provided invalid value"
                )
            )
        quantities = spec.get("quantities")
        self._check_input_size(quantities, "quantities")
        key_match = re.search(r"@idempotent\(\s*key:\s*\"([^\"]+)\"", query)
        key = key_match.group(1) if key_match else (variables.get("idempotencyKey") or "")
        fingerprint = json.dumps(spec, sort_keys=True, default=str)
        if key:
            with self._idem_lock:
                seen = self._idempotency.get(key)
            if seen is not None:
                if seen[0] != fingerprint:
                    return self._isq_payload(
                        None,
                        [
                            user_error(
                                "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                                ["input"],
                                "The same idempotency key cannot be used with different "
                                "operation parameters.",
                            )
                        ],
                    ), MUTATION_COST
                return seen[1], MUTATION_COST
        payload = self._apply_inventory_set(spec, quantities)
        if key:
            with self._idem_lock:
                self._idempotency[key] = (fingerprint, payload)
        return payload, MUTATION_COST

    def _isq_payload(self, group: JsonDict | None, errors: list[JsonDict]) -> JsonDict:
        return {"inventorySetQuantities": {"inventoryAdjustmentGroup": group, "userErrors": errors}}

    def _apply_inventory_set(self, spec: Mapping[str, Any], quantities: list[Any]) -> JsonDict:
        if spec.get("name") not in ("available", "on_hand"):
            error = user_error(
                "INVALID_NAME",
                ["input", "name"],
                "The quantity name must be either 'available' or 'on_hand'.",
            )
            return self._isq_payload(None, [error])
        with self.lock:
            errors: list[JsonDict] = []
            planned: list[tuple[CatalogItem, int, str]] = []
            for index, row in enumerate(quantities):
                error, item, quantity = self._check_quantity_row(index, row)
                if error is not None:
                    errors.append(error)
                elif item is not None:
                    planned.append((item, quantity, str(row["locationId"])))
            if errors:
                # All or nothing: one bad row and nothing is written.
                return self._isq_payload(None, errors)
            changes = []
            for item, quantity, location in planned:
                delta = quantity - item.quantity
                self.write_quantity(item, quantity, via="inventorySetQuantities")
                if delta:
                    self.item_changed(item, quantity=True)
                changes.append(
                    {
                        "name": spec["name"],
                        "delta": delta,
                        "quantityAfterChange": quantity,
                        "item": {"id": item.ids["inventory_item_id"], "sku": item.sku},
                        "location": {"id": location},
                    }
                )
            self.counters.count_items("quantity", len(planned))
        group = {
            "id": gid("InventoryAdjustmentGroup", self.next_id()),
            "reason": spec.get("reason", ""),
            "referenceDocumentUri": spec.get("referenceDocumentUri"),
            "changes": changes,
        }
        return self._isq_payload(group, [])

    def _check_quantity_row(
        self, index: int, row: Any
    ) -> tuple[JsonDict | None, CatalogItem | None, int]:
        path = ["input", "quantities", str(index)]
        if not isinstance(row, dict):
            return user_error("INVALID_INVENTORY_ITEM", path, "Invalid row."), None, 0
        item = self.catalog.find_by_id("inventory_item_id", str(row.get("inventoryItemId", "")))
        if item is None:
            message = "The specified inventory item could not be found."
            return (
                user_error("INVALID_INVENTORY_ITEM", [*path, "inventoryItemId"], message),
                None,
                0,
            )
        if row.get("locationId") != LOCATION_ID:
            message = "The specified location could not be found."
            return user_error("INVALID_LOCATION", [*path, "locationId"], message), None, 0
        quantity = row.get("quantity")
        if not isinstance(quantity, int) or quantity < 0:
            message = "The quantity can't be negative."
            return user_error("INVALID_QUANTITY_NEGATIVE", [*path, "quantity"], message), None, 0
        if quantity > 1_000_000_000:
            message = "The total quantity can't be higher than 1,000,000,000."
            return user_error("INVALID_QUANTITY_TOO_HIGH", [*path, "quantity"], message), None, 0
        expected = row.get("changeFromQuantity")
        if expected is not None and expected != item.quantity:
            message = "The changeFromQuantity value does not match persisted value."
            return (
                user_error("CHANGE_FROM_QUANTITY_STALE", [*path, "changeFromQuantity"], message),
                None,
                0,
            )
        if self.faults.item_fails(item.sku):
            self.counters.record_fault("item")
            message = "The specified inventory item is not stocked at the location."
            return (
                user_error("ITEM_NOT_STOCKED_AT_LOCATION", [*path, "locationId"], message),
                None,
                0,
            )
        return None, item, quantity

    # ---- productVariantsBulkUpdate

    def _variants_bulk_update(
        self, query: str, variables: Mapping[str, Any]
    ) -> tuple[JsonDict, int]:
        variants = variables.get("variants")
        self._check_input_size(variants, "variants")
        product_id = str(variables.get("productId", ""))
        partial = bool(variables.get("allowPartialUpdates", False))
        with self.lock:
            errors: list[JsonDict] = []
            planned: list[tuple[CatalogItem, Decimal | None, JsonDict]] = []
            for index, row in enumerate(variants):
                path = ["variants", str(index)]
                item = self.catalog.find_by_id("variant_id", str(row.get("id", "")))
                if item is None or item.ids.get("product_id") != product_id:
                    errors.append(
                        user_error(
                            "PRODUCT_VARIANT_DOES_NOT_EXIST",
                            [*path, "id"],
                            "Product variant does not exist",
                        )
                    )
                    continue
                try:
                    price = to_decimal(row["price"]) if "price" in row else None
                except ValueError:
                    errors.append(user_error("INVALID_INPUT", [*path, "price"], "Price is invalid"))
                    continue
                if price is not None and price < 0:
                    errors.append(
                        user_error(
                            "GREATER_THAN_OR_EQUAL_TO",
                            [*path, "price"],
                            "Price must be greater than or equal to 0",
                        )
                    )
                    continue
                if self.faults.item_fails(item.sku):
                    self.counters.record_fault("item")
                    errors.append(
                        user_error("INVALID_INPUT", [*path, "price"], "Price could not be saved")
                    )
                    continue
                planned.append((item, price, row))
            if errors and not partial:
                return self._pvbu_payload(product_id, [], errors), MUTATION_COST
            updated = []
            for item, price, row in planned:
                compare_at = row.get("compareAtPrice")
                self.catalog.set_values(
                    item.sku,
                    price=price,
                    compare_at_price=None if compare_at is None else to_decimal(compare_at),
                    clear_compare_at="compareAtPrice" in row and compare_at is None,
                )
                updated.append(self._variant_json(item))
            self.counters.count_items("price", len(planned))
            if planned:
                # One products/update for the product, carrying every variant.
                self.item_changed(planned[0][0], price=True)
        return self._pvbu_payload(product_id, updated, errors), MUTATION_COST

    def _pvbu_payload(
        self, product_id: str, variants: list[JsonDict], errors: list[JsonDict]
    ) -> JsonDict:
        product = {"id": product_id} if variants or not errors else None
        return {
            "productVariantsBulkUpdate": {
                "product": product,
                "productVariants": variants if variants else ([] if product else None),
                "userErrors": errors,
            }
        }

    def _variant_json(self, item: CatalogItem) -> JsonDict:
        return {
            "__typename": "ProductVariant",
            "id": item.ids["variant_id"],
            "sku": item.sku,
            "barcode": item.content.get("barcode") or None,
            "price": money(item.price),
            "compareAtPrice": money(item.compare_at_price),
            "product": {"id": item.ids["product_id"]},
            "inventoryItem": {
                "id": item.ids["inventory_item_id"],
                "inventoryLevel": {
                    "location": {"id": LOCATION_ID},
                    "quantities": [{"name": "available", "quantity": item.quantity}],
                },
            },
        }

    # ---- productSet

    def _product_set(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        spec = variables.get("input") or {}
        identifier = variables.get("identifier") or {}
        with self.lock:
            product_id, errors = self._set_target(identifier)
            variants = spec.get("variants")
            if not errors and variants is not None:
                errors = self._set_variant_errors(product_id, spec, variants)
            if errors:
                return {"productSet": {"product": None, "userErrors": errors}}, MUTATION_COST
            product_id = product_id or gid("Product", self.next_id())
            handle = str(spec.get("handle") or identifier.get("handle") or "")
            self._set_product_fields(product_id, handle, spec)
            if variants is not None:
                self._set_variants(product_id, variants)
            members = self._product_items(product_id)
        product = {
            "id": product_id,
            "handle": self.products[product_id].get("handle", ""),
            "variants": {"nodes": [self._variant_json(i) for i in members]},
        }
        return {"productSet": {"product": product, "userErrors": []}}, MUTATION_COST

    def _product_items(self, product_id: str) -> list[CatalogItem]:
        return [i for i in self.catalog.items() if i.ids.get("product_id") == product_id]

    def _set_target(self, identifier: Mapping[str, Any]) -> tuple[str, list[JsonDict]]:
        """The product productSet writes ("" = a new one), or why it cannot."""
        if identifier.get("id"):
            product_id = str(identifier["id"])
            if product_id in self.products or self._product_items(product_id):
                return product_id, []
            error = user_error(
                "PRODUCT_DOES_NOT_EXIST", ["identifier", "id"], "Product does not exist"
            )
            return "", [error]
        handle = str(identifier.get("handle") or "")
        for product_id, product in self.products.items():
            if handle and product.get("handle") == handle:
                return product_id, []
        return "", []

    def _set_variant_errors(
        self, product_id: str, spec: Mapping[str, Any], variants: list[Any]
    ) -> list[JsonDict]:
        options = spec.get("productOptions")
        if not options:
            return [
                user_error(
                    "PRODUCT_OPTIONS_INPUT_MISSING",
                    ["input", "productOptions"],
                    "Product options input is required when updating variants.",
                )
            ]
        declared = {
            str(o.get("name")): {str(v.get("name")) for v in o.get("values") or []} for o in options
        }
        errors: list[JsonDict] = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for index, row in enumerate(variants):
            path = ["input", "variants", str(index)]
            values = tuple(
                sorted((str(v.get("optionName")), str(v.get("name"))) for v in row["optionValues"])
            )
            if any(name not in declared or value not in declared[name] for name, value in values):
                errors.append(
                    user_error(
                        "OPTION_VALUE_DOES_NOT_EXIST",
                        [*path, "optionValues"],
                        "Option value does not exist in the product options.",
                    )
                )
            elif values in seen:
                errors.append(
                    user_error(
                        "DUPLICATED_OPTION_VALUE",
                        [*path, "optionValues"],
                        "Duplicated option values across variants.",
                    )
                )
            seen.add(values)
            errors += self._set_variant_row_errors(product_id, row, path)
        return errors

    def _set_variant_row_errors(
        self, product_id: str, row: Mapping[str, Any], path: list[str]
    ) -> list[JsonDict]:
        sku = str(row.get("sku") or "")
        existing = self.catalog.get(sku) if sku else None
        if row.get("id") and self.catalog.find_by_id("variant_id", str(row["id"])) is None:
            return [
                user_error(
                    "PRODUCT_VARIANT_DOES_NOT_EXIST", [*path, "id"], "Variant does not exist"
                )
            ]
        if existing is not None and existing.ids.get("product_id") not in (product_id, None):
            return [user_error("INVALID_VARIANT", [*path, "sku"], f"SKU {sku} is taken")]
        if self.faults.item_fails(sku):
            self.counters.record_fault("item")
            return [user_error("INVALID_VARIANT", [*path], "Variant could not be saved")]
        return []

    def _set_product_fields(self, product_id: str, handle: str, spec: Mapping[str, Any]) -> None:
        fields: dict[str, Any] = {"id": product_id}
        if handle:
            fields["handle"] = handle
        for key, name in (
            ("title", "title"),
            ("descriptionHtml", "description"),
            ("vendor", "vendor"),
            ("productType", "product_type"),
            ("status", "status"),
        ):
            if key in spec:
                fields[name] = spec[key]
        if "files" in spec:
            fields["images"] = [str(f.get("originalSource")) for f in spec["files"] or []]
        if "productOptions" in spec:
            fields["options"] = [str(o.get("name")) for o in spec["productOptions"] or []]
        self.product_put(product_id, fields)

    def _set_variants(self, product_id: str, variants: list[Any]) -> None:
        kept: set[str] = set()
        for row in variants:
            item = (
                self.catalog.find_by_id("variant_id", str(row["id"])) if row.get("id") else None
            ) or self.catalog.get(str(row.get("sku") or ""))
            sku = str(row.get("sku") or (item.sku if item else f"gid-{self.next_id()}"))
            ids = dict(item.ids) if item else {}
            ids.setdefault("product_id", product_id)
            ids.setdefault("variant_id", gid("ProductVariant", self.next_id()))
            ids.setdefault("inventory_item_id", gid("InventoryItem", self.next_id()))
            compare_at = row.get("compareAtPrice", item.compare_at_price if item else None)
            fresh = CatalogItem(
                sku=sku,
                ids=ids,
                price=to_decimal(row["price"])
                if row.get("price")
                else (item.price if item else Decimal("0")),
                quantity=item.quantity if item else 0,
                compare_at_price=None if compare_at is None else to_decimal(compare_at),
                content={
                    "product": product_id,
                    "options": {str(v["optionName"]): str(v["name"]) for v in row["optionValues"]},
                    "barcode": str(row.get("barcode") or ""),
                },
            )
            if item is not None and item.sku != sku:
                self.catalog.remove(item.sku)
            self.catalog.put(fresh)
            kept.add(sku)
        for gone in [i.sku for i in self._product_items(product_id) if i.sku not in kept]:
            self.catalog.remove(gone)
        self.counters.count_items("variant", len(variants))

    # ---- reads

    def _nodes(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        ids = [str(i) for i in variables.get("ids") or []]
        location = variables.get("locationId", LOCATION_ID)
        nodes: list[JsonDict | None] = []
        for node_id in ids:
            item = self.catalog.find_by_id("variant_id", node_id)
            if item is None:
                nodes.append(None)
                continue
            data = self._variant_json(item)
            if location != LOCATION_ID:
                data["inventoryItem"]["inventoryLevel"] = None
            nodes.append(data)
        found = sum(1 for n in nodes if n is not None)
        return {"nodes": nodes}, 1 + NODE_COST * found

    def _product_variants(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        """productVariants(first:, after:, sortKey: ID): every variant, by id."""
        first = int(variables.get("first") or 0)
        if not 0 < first <= MAX_INPUT:
            raise ApiError(self._variable_error("first must be between 1 and 250"))
        after = variables.get("after")
        start = 0
        if after:
            try:
                start = int(base64.urlsafe_b64decode(str(after).encode()).decode())
            except ValueError as exc:
                raise ApiError(self._variable_error("Invalid cursor.")) from exc
        location = variables.get("locationId", LOCATION_ID)
        with self.lock:
            ordered = sorted(
                (i for i in self.catalog.items() if int(gid_number(i.ids["variant_id"])) > start),
                key=lambda i: int(gid_number(i.ids["variant_id"])),
            )
            page = ordered[:first]
            nodes = [self._catalog_node(item, location) for item in page]
        end = _line_cursor(int(gid_number(page[-1].ids["variant_id"]))) if page else None
        data = {
            "productVariants": {
                "nodes": nodes,
                "pageInfo": {"hasNextPage": len(ordered) > first, "endCursor": end},
            }
        }
        return data, 2 + CATALOG_NODE_COST * len(nodes)

    def _catalog_node(self, item: CatalogItem, location: Any) -> JsonDict:
        data = self._variant_json(item)
        data["title"] = " / ".join(item.options.values()) or item.title or "Default Title"
        data["barcode"] = item.barcode or None
        data["selectedOptions"] = [{"name": k, "value": v} for k, v in item.options.items()]
        data["product"]["title"] = item.display_title
        if location != LOCATION_ID:
            data["inventoryItem"]["inventoryLevel"] = None
        return data

    def _orders(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        first = int(variables.get("first") or 0)
        if not 0 < first <= MAX_INPUT:
            raise ApiError(self._variable_error("first must be between 1 and 250"))
        since, inclusive = self._updated_filter(str(variables.get("query") or ""))
        # Shopify's updated_at has whole seconds, and so does its search filter.
        orders = [
            o
            for o in self.orders.all()
            if since is None
            or _second(o.updated_at) > since
            or (inclusive and _second(o.updated_at) == since)
        ]
        after = variables.get("after")
        if after:
            stamp, order_id = self._decode_cursor(str(after))
            orders = [o for o in orders if (o.updated_at, int(o.id)) > (stamp, int(order_id))]
        page = orders[:first]
        self.mark_orders_seen(page)
        found = LINE_FIRST.search(query)
        line_first = int(found.group(1)) if found else 0
        nodes = [self._order_node(o, line_first) for o in page]
        edges_cursor = self._encode_cursor(page[-1]) if page else None
        actual = 2 + sum(3 + min(len(o.lines), line_first) for o in page)
        data = {
            "orders": {
                "nodes": nodes,
                "pageInfo": {"hasNextPage": len(orders) > first, "endCursor": edges_cursor},
            }
        }
        return data, actual

    def _updated_filter(self, text: str) -> tuple[Any, bool]:
        found = UPDATED_AT_FILTER.search(text)
        if not found:
            return None, False
        try:
            return _second(parse_iso(found.group(2))), found.group(1) == ">="
        except ValueError as exc:
            raise ApiError(self._variable_error(f"invalid updated_at filter: {text}")) from exc

    def _encode_cursor(self, order: SandboxOrder) -> str:
        raw = json.dumps({"u": order.updated_at.isoformat(), "id": order.id})
        return base64.urlsafe_b64encode(raw.encode()).decode()

    def _decode_cursor(self, cursor: str) -> tuple[Any, str]:
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
            return parse_iso(data["u"]), str(data["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiError(
                self._variable_error("Invalid cursor for current pagination sort.")
            ) from exc

    def _order_node(self, order: SandboxOrder, line_first: int) -> JsonDict:
        fulfilled = order.status == "fulfilled"
        return {
            "id": gid("Order", order.id),
            "legacyResourceId": order.id,
            "name": f"#{order.number}",
            "email": order.email or None,
            "phone": order.phone or None,
            "createdAt": iso(order.created_at),
            "updatedAt": iso(order.updated_at),
            "cancelledAt": iso(order.updated_at) if order.status == "cancelled" else None,
            "cancelReason": order.cancel_reason.upper() or None,
            "displayFinancialStatus": FINANCIAL[order.status].upper(),
            "displayFulfillmentStatus": "FULFILLED" if fulfilled else "UNFULFILLED",
            "currencyCode": order.currency,
            "totalPriceSet": {
                "shopMoney": {"amount": money(order.total), "currencyCode": order.currency}
            },
            "lineItems": {
                "nodes": [
                    self._line_json(order, i) for i in range(min(line_first, len(order.lines)))
                ],
                "pageInfo": {
                    "hasNextPage": len(order.lines) > line_first,
                    "endCursor": _line_cursor(min(line_first, len(order.lines))),
                },
            },
        }

    def _line_json(self, order: SandboxOrder, index: int) -> JsonDict:
        line = order.lines[index]
        return {
            "id": gid("LineItem", line.line_id),
            "sku": line.sku,
            "quantity": line.quantity,
            "currentQuantity": line.quantity,  # the sandbox removes no units
            "originalUnitPriceSet": {
                "shopMoney": {"amount": money(line.price), "currencyCode": order.currency}
            },
            "variant": {
                "id": line.ids.get("variant_id"),
                "product": {"id": line.ids.get("product_id")},
            },
        }

    def _order_line_items(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        order = self.orders.get(gid_number(str(variables.get("id", ""))))
        if order is None:
            return {"order": None}, 1
        found = LINE_FIRST.search(query)
        first = int(found.group(1)) if found else 0
        after = variables.get("after")
        start = int(base64.urlsafe_b64decode(str(after).encode()).decode()) if after else 0
        end = min(len(order.lines), start + first)
        nodes = [self._line_json(order, i) for i in range(start, end)]
        page_info = {"hasNextPage": end < len(order.lines), "endCursor": _line_cursor(end)}
        data = {
            "order": {
                "id": gid("Order", order.id),
                "lineItems": {"nodes": nodes, "pageInfo": page_info},
            }
        }
        return data, 2 + len(nodes)

    def _shop(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        return {"shop": {"name": "pimsync sandbox", "myshopifyDomain": SHOP_DOMAIN}}, 1

    def _order_fulfillment_orders(
        self, query: str, variables: Mapping[str, Any]
    ) -> tuple[JsonDict, int]:
        order = self.orders.get(gid_number(str(variables.get("id", ""))))
        if order is None:
            return {"order": None}, 1
        status = "CLOSED" if order.status in ("fulfilled", "cancelled") else "OPEN"
        nodes = [{"id": gid("FulfillmentOrder", order.id), "status": status}]
        return {"order": {"id": gid("Order", order.id), "fulfillmentOrders": {"nodes": nodes}}}, 3

    # ---- order mutations

    def _order_cancel(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        order_id = gid_number(str(variables.get("orderId", "")))
        reason = str(variables.get("reason", "OTHER"))
        errors: list[JsonDict] = []
        if reason not in CANCEL_REASONS:
            errors.append(user_error("INVALID", ["reason"], f"Invalid reason {reason}"))
        elif self.orders.get(order_id) is None:
            errors.append(user_error("NOT_FOUND", ["orderId"], "Order does not exist"))
        else:
            try:
                order = self.order_transition(order_id, "cancel", reason=reason.lower())
            except ValueError as exc:
                errors.append(user_error("INVALID", ["orderId"], str(exc)))
            else:
                self.emit_order_event(order, "cancelled")
        job = None if errors else {"id": gid("Job", uuid.uuid4()), "done": True}
        payload = {"job": job, "orderCancelUserErrors": errors, "userErrors": errors}
        return {"orderCancel": payload}, MUTATION_COST

    def _fulfillment_create(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        spec = variables.get("fulfillment") or {}
        groups = spec.get("lineItemsByFulfillmentOrder") or []
        errors: list[JsonDict] = []
        fulfilled: list[SandboxOrder] = []
        for index, group in enumerate(groups):
            order = self.orders.get(gid_number(str(group.get("fulfillmentOrderId", ""))))
            if order is None:
                errors.append(
                    user_error(
                        "NOT_FOUND",
                        ["fulfillment", "lineItemsByFulfillmentOrder", str(index)],
                        "Fulfillment order does not exist.",
                    )
                )
                continue
            tracking = spec.get("trackingInfo") or {}
            try:
                fulfilled.append(
                    self.order_transition(
                        order.id,
                        "fulfil",
                        tracking_number=str(tracking.get("number") or ""),
                        carrier=str(tracking.get("company") or ""),
                    )
                )
            except ValueError as exc:
                errors.append(user_error("INVALID", ["fulfillment"], str(exc)))
        if not groups:
            errors.append(user_error("BLANK", ["fulfillment"], "No fulfillment orders given."))
        for order in fulfilled:
            self.emit_order_event(order, "fulfilled")
        fulfillment = (
            {"id": gid("Fulfillment", self.next_id()), "status": "SUCCESS"}
            if fulfilled and not errors
            else None
        )
        return {
            "fulfillmentCreate": {"fulfillment": fulfillment, "userErrors": errors}
        }, MUTATION_COST

    # ---- orders as Shopify renders them (webhooks)

    def render_order(self, order: SandboxOrder) -> JsonDict:
        """The REST representation Shopify sends in order webhooks."""
        return {
            "id": int(order.id),
            "admin_graphql_api_id": gid("Order", order.id),
            "name": f"#{order.number}",
            "order_number": order.number,
            "email": order.email or None,
            "phone": order.phone or None,
            "created_at": iso(order.created_at),
            "updated_at": iso(order.updated_at),
            "financial_status": FINANCIAL[order.status],
            "fulfillment_status": "fulfilled" if order.status == "fulfilled" else None,
            "cancelled_at": iso(order.updated_at) if order.status == "cancelled" else None,
            "cancel_reason": order.cancel_reason or None,
            "currency": order.currency,
            "total_price": money(order.total),
            "customer": {"id": 207119551, "email": order.email or None},
            "line_items": [
                {
                    "id": int(line.line_id),
                    "admin_graphql_api_id": gid("LineItem", line.line_id),
                    "variant_id": _int_or_none(gid_number(line.ids.get("variant_id", ""))),
                    "product_id": _int_or_none(gid_number(line.ids.get("product_id", ""))),
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "current_quantity": line.quantity,
                    "price": money(line.price),
                }
                for line in order.lines
            ],
            "refunds": [],
        }

    def order_webhook_topic(self, event: str) -> str | None:
        return TOPICS.get(event, "orders/updated")

    def subscription_secret(self, subscription: Subscription) -> str:
        return self.credentials.get("client_secret") or CLIENT_SECRET

    def new_subscription_id(self) -> str:
        return gid("WebhookSubscription", self.next_id())

    def item_webhooks(
        self, item: CatalogItem, *, price: bool, quantity: bool, cause: str
    ) -> list[tuple[str, bytes]]:
        """inventory_levels/update for a level's change whatever caused it (a sale
        too); products/update, with every variant of the product, for a price."""
        found: list[tuple[str, bytes]] = []
        if quantity:
            found.append(("inventory_levels/update", json.dumps(self._level_json(item)).encode()))
        if price:
            found.append(("products/update", json.dumps(self._product_rest(item)).encode()))
        return found

    def _level_json(self, item: CatalogItem) -> JsonDict:
        item_number = gid_number(item.ids["inventory_item_id"])
        location_number = gid_number(LOCATION_ID)
        return {
            "inventory_item_id": _int_or_none(item_number),
            "location_id": _int_or_none(location_number),
            "available": item.quantity,
            "updated_at": iso(item.updated_at),
            "admin_graphql_api_id": (
                f"gid://shopify/InventoryLevel/{location_number}?inventory_item_id={item_number}"
            ),
        }

    def _product_rest(self, item: CatalogItem) -> JsonDict:
        """The REST product Shopify sends in products/update (the variants pimsync reads)."""
        product_id = item.ids["product_id"]
        variants = sorted(
            (i for i in self.catalog.items() if i.ids.get("product_id") == product_id),
            key=lambda i: i.ids["variant_id"],
        )
        return {
            "id": _int_or_none(gid_number(product_id)),
            "admin_graphql_api_id": product_id,
            "title": item.sku,
            "updated_at": iso(item.updated_at),
            "variants": [
                {
                    "id": _int_or_none(gid_number(v.ids["variant_id"])),
                    "admin_graphql_api_id": v.ids["variant_id"],
                    "product_id": _int_or_none(gid_number(product_id)),
                    "sku": v.sku,
                    "price": money(v.price),
                    "compare_at_price": money(v.compare_at_price),
                    "inventory_item_id": _int_or_none(gid_number(v.ids["inventory_item_id"])),
                    "inventory_quantity": v.quantity,
                    "updated_at": iso(v.updated_at),
                }
                for v in variants
            ],
        }

    def webhook_request(
        self, topic: str, body: bytes, target: WebhookTarget, *, stamp: datetime, subject: str
    ) -> WebhookRequest:
        delivery_id = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": hmac_sha256_base64(target.secret, body),
            "X-Shopify-Shop-Domain": SHOP_DOMAIN,
            "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Webhook-Id": delivery_id,
            "X-Shopify-Event-Id": str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{subject}/{topic}/{stamp.isoformat()}")
            ),
            "X-Shopify-Triggered-At": stamp.isoformat().replace("+00:00", "Z"),
        }
        return WebhookRequest(topic=topic, headers=headers, body=body, delivery_id=delivery_id)

    # ---- webhook subscriptions (Admin API)

    def _subscription_node(self, subscription: Subscription) -> JsonDict:
        return {
            "__typename": "WebhookSubscription",
            "id": subscription.id,
            "topic": TOPIC_ENUM.get(subscription.topic, subscription.topic),
            "uri": subscription.address,
            "format": "JSON",
            "createdAt": iso(subscription.created_at),
            "updatedAt": iso(subscription.updated_at),
        }

    def _subscriptions(self, query: str, variables: Mapping[str, Any]) -> tuple[JsonDict, int]:
        first = int(variables.get("first") or 0)
        if not 0 < first <= MAX_INPUT:
            raise ApiError(self._variable_error("first must be between 1 and 250"))
        topics = variables.get("topics")
        wanted = {SUBSCRIPTION_TOPICS.get(str(t), "") for t in topics} if topics else None
        with self.lock:
            found = sorted(self.subscriptions.values(), key=lambda sub: sub.created_at)
        found = [sub for sub in found if wanted is None or sub.topic in wanted]
        after = variables.get("after")
        start = int(base64.urlsafe_b64decode(str(after).encode()).decode()) if after else 0
        page = found[start : start + first]
        end = start + len(page)
        data = {
            "webhookSubscriptions": {
                "nodes": [self._subscription_node(sub) for sub in page],
                "pageInfo": {"hasNextPage": end < len(found), "endCursor": _line_cursor(end)},
            }
        }
        return data, 2 + len(page)

    def _uri_problem(self, uri: str) -> str:
        """Shopify takes HTTPS callback URLs (the sandbox also takes plain HTTP on loopback,
        where the demo and the tests run)."""
        parts = urlsplit(uri)
        if parts.scheme == "https" and parts.hostname:
            return ""
        if parts.scheme == "http" and parts.netloc.rsplit(":", 1)[0] in LOOPBACK_HOSTS:
            return ""
        if not parts.scheme:
            return "Address is invalid"
        return f"Address protocol {parts.scheme}:// is not supported"

    def _subscription_payload(
        self, name: str, subscription: Subscription | None, errors: list[JsonDict]
    ) -> JsonDict:
        node = self._subscription_node(subscription) if subscription is not None else None
        return {name: {"webhookSubscription": node, "userErrors": errors}}

    def _subscription_refused(
        self, name: str, field: list[str], message: str
    ) -> tuple[JsonDict, int]:
        error = {"field": field, "message": message}
        return self._subscription_payload(name, None, [error]), MUTATION_COST

    def _subscription_create(
        self, query: str, variables: Mapping[str, Any]
    ) -> tuple[JsonDict, int]:
        name = "webhookSubscriptionCreate"
        topic = SUBSCRIPTION_TOPICS.get(str(variables.get("topic", "")))
        uri = str((variables.get("subscription") or {}).get("uri") or "")
        if topic is None:
            return self._subscription_refused(
                name, ["topic"], f"The sandbox does not deliver {variables.get('topic')}"
            )
        if problem := self._uri_problem(uri):
            return self._subscription_refused(name, ADDRESS_FIELD, problem)
        with self.lock:
            taken = any(
                sub.topic == topic and sub.address == uri for sub in self.subscriptions.values()
            )
        if taken:
            return self._subscription_refused(
                name, ADDRESS_FIELD, "Address for this topic has already been taken"
            )
        subscription = self.subscription_add(topic=topic, address=uri)
        return self._subscription_payload(name, subscription, []), MUTATION_COST

    def _subscription_update(
        self, query: str, variables: Mapping[str, Any]
    ) -> tuple[JsonDict, int]:
        name = "webhookSubscriptionUpdate"
        uri = str((variables.get("subscription") or {}).get("uri") or "")
        subscription_id = str(variables.get("id", ""))
        if subscription_id not in self.subscriptions:
            return self._subscription_refused(name, ["id"], "Webhook subscription does not exist")
        if problem := self._uri_problem(uri):
            return self._subscription_refused(name, ADDRESS_FIELD, problem)
        subscription = self.subscription_update(subscription_id, address=uri)
        return self._subscription_payload(name, subscription, []), MUTATION_COST


def _line_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode()


def _second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def _int_or_none(value: str) -> int | None:
    return int(value) if value.isdigit() else None
