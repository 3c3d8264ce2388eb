"""Shopify connector: GraphQL Admin API, version per channel (default 2026-01).

Transport: ``POST {base_url}/admin/api/{version}/graphql.json`` with
``X-Shopify-Access-Token`` (credentials["access_token"]). The version is the
channel's platform_config["api_version"], default ``shopify_versions.DEFAULT_VERSION``
(2026-01, the first with ``changeFromQuantity`` and the schema pimsync's
documents are checked against: sandbox/contracts/shopify_2026-01.graphql).
Shopify supports a version for 12 months; shopify_versions.py holds the dates
and the channel admin warns before the one in use is retired. Our payloads also
fit 2026-04 (``changeFromQuantity`` key always present, ``@idempotent`` sent).

* Quantities: ``inventorySetQuantities`` ("available" at
  platform_config["location_id"]), <= 250 rows per call, compare-and-set with
  ``changeFromQuantity`` = QuantityUpdate.expected_quantity (null = no check),
  ``@idempotent(key:)`` per call. The mutation is all or nothing: rows named in
  userErrors fail permanently (e.g. CHANGE_FROM_QUANTITY_STALE) and the other
  rows are sent once more without them.
* Prices: ``productVariantsBulkUpdate`` per product (ListingRef.product_id),
  <= 250 variants per call, ``allowPartialUpdates: true`` so one bad variant
  does not block its siblings.
* Read-back: ``nodes(ids:)`` over variant ids, 250 per query (cost 1 + 3/id),
  waiting up to ``READ_MAX_PACE_SECONDS`` for the cost bucket between queries.
* Catalog import: ``productVariants(first:, after:, sortKey: ID)`` with the variant's
  sku, barcode, title, selected options, price, product title and the "available"
  quantity at the channel's location; ``CATALOG_PAGE_MAX`` (249) variants per query
  keeps the requested cost (2 + 4 per variant) under 1000 points. A whole catalogue
  is cost-bound: the read waits for the bucket between queries.
* Orders: ``orders(query: "updated_at:>='<hwm>'", sortKey: UPDATED_AT)`` with
  cursor pagination. The filter is inclusive because Shopify's timestamps have
  whole seconds: the orders of the high-water-mark second come again and are
  deduplicated downstream, none is lost.
* Throttling: every call spends its requested query cost in points from the
  channel's shared budget (``HttpClient.request(cost=...)``), and every answer's
  ``extensions.cost`` goes back to it (``ChannelConfig.rate_report``): the points
  not charged return and the bucket follows the shop's throttleStatus
  (channels_app/sync/connection.py). A THROTTLED error (HTTP 200 or 429,
  detected from the body) is retryable with the wait (requested -
  currentlyAvailable) / restoreRate. Between the calls of one batch the connector
  also waits (at most ``max_pace_seconds``, default 2 s) when the last throttle
  status it saw says the next call would be throttled; a longer wait is handed
  back to the caller as a retryable result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .base import (
    CatalogItem,
    CatalogPage,
    ChannelConfig,
    ConnectionCheck,
    CostReport,
    ItemResult,
    ListingEdit,
    ListingRef,
    ListingState,
    OrderData,
    OrderLineData,
    OrdersPage,
    PriceUpdate,
    QuantityUpdate,
    Subscription,
    WebhookEvent,
)
from .errors import AuthError, ConnectorError, FailureKind, PermanentError, RetryableError
from .http import (
    HttpClient,
    HttpResult,
    body_snippet,
    decode_page_cursor,
    encode_page_cursor,
    error_results,
    header,
    item_result,
    ok_result,
    parse_timestamp,
)
from .shopify_content import ShopifyContent
from .shopify_versions import (
    DEFAULT_VERSION,
    api_version_problem,
    channel_api_version,
    version_status,
)

logger = logging.getLogger(__name__)

API_VERSION = DEFAULT_VERSION
MAX_INPUT = 250  # every Shopify input array
# nodes(ids:) per query: the 250-item input cap; requested cost 1 + 3 * 250 = 751 <= 1000.
READ_BATCH = MAX_INPUT
# A read of the whole catalogue is cost-bound: waiting for the bucket between its
# queries is the fastest way through, so reads pace longer than pushes.
READ_MAX_PACE_SECONDS = 30.0
MUTATION_COST = 10
# orders(first: 10) { lineItems(first: 30) } requests 2 + 10 * (3 + 30) = 332 points. Pages
# of 30 (992 points, the most under 1000) read a backlog no faster - 33 points an order
# either way, cost-bound - but each one, polled every few seconds for held pushes, put
# about a second of debt in the shared bucket in front of any zero sold meanwhile.
ORDERS_PAGE_MAX = 10
LINES_PER_ORDER = 30
DEFAULT_MAX_PACE_SECONDS = 2.0

QUANTITIES_MUTATION = """
mutation SetQuantities($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) @idempotent(key: "%s") {
    inventoryAdjustmentGroup { id changes { name delta quantityAfterChange item { id } } }
    userErrors { code field message }
  }
}
"""

PRICES_MUTATION = """
mutation UpdatePrices($productId: ID!, $variants: [ProductVariantsBulkInput!]!,
                      $allowPartialUpdates: Boolean) {
  productVariantsBulkUpdate(productId: $productId, variants: $variants,
                            allowPartialUpdates: $allowPartialUpdates) {
    productVariants { id price compareAtPrice }
    userErrors { code field message }
  }
}
"""

# productVariants(first: N) { product, inventoryItem { inventoryLevel } } requests
# 2 + N * 4 points (one per object: variant, product, inventory item, level).
CATALOG_NODE_COST = 4
CATALOG_PAGE_MAX = (1000 - 2) // CATALOG_NODE_COST

CATALOG_QUERY = """
query CatalogPage($first: Int!, $after: String, $locationId: ID!) {
  productVariants(first: $first, after: $after, sortKey: ID) {
    nodes {
      id sku barcode title price
      selectedOptions { name value }
      product { id title }
      inventoryItem {
        id
        inventoryLevel(locationId: $locationId) {
          quantities(names: ["available"]) { name quantity }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

READ_QUERY = """
query ReadVariants($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    ... on ProductVariant {
      id sku price compareAtPrice
      inventoryItem {
        id
        inventoryLevel(locationId: $locationId) {
          quantities(names: ["available"]) { name quantity }
        }
      }
    }
  }
}
"""

LINE_FIELDS = """
        nodes {
          id sku quantity currentQuantity
          originalUnitPriceSet { shopMoney { amount currencyCode } }
          variant { id product { id } }
        }
        pageInfo { hasNextPage endCursor }
"""

ORDERS_QUERY = """
query OrdersSince($first: Int!, $after: String, $query: String) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes {
      id legacyResourceId name email phone createdAt updatedAt cancelledAt
      displayFinancialStatus displayFulfillmentStatus currencyCode
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: LINES_FIRST) {LINE_FIELDS}
    }
    pageInfo { hasNextPage endCursor }
  }
}
""".replace("LINES_FIRST", str(LINES_PER_ORDER)).replace("LINE_FIELDS", LINE_FIELDS)

ORDER_LINES_QUERY = """
query OrderLines($id: ID!, $after: String) {
  order(id: $id) {
    lineItems(first: LINES_FIRST, after: $after) {LINE_FIELDS}
  }
}
""".replace("LINES_FIRST", str(MAX_INPUT)).replace("LINE_FIELDS", LINE_FIELDS)

FULFILLMENT_ORDERS_QUERY = """
query FulfillmentOrders($id: ID!) {
  order(id: $id) { id fulfillmentOrders(first: 10) { nodes { id status } } }
}
"""

FULFIL_MUTATION = """
mutation Fulfil($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}
"""

# 2026-01 orderCancel: the refund is described by refundMethod (there is no
# ``refund`` argument); the cancellation itself runs as a job.
CANCEL_MUTATION = """
mutation Cancel($orderId: ID!, $reason: OrderCancelReason!, $restock: Boolean!,
                $notifyCustomer: Boolean, $refundMethod: OrderCancelRefundMethodInput,
                $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, restock: $restock,
              notifyCustomer: $notifyCustomer, refundMethod: $refundMethod,
              staffNote: $staffNote) {
    job { id done }
    orderCancelUserErrors { code field message }
  }
}
"""
STAFF_NOTE_MAX_CHARS = 255

SHOP_QUERY = "query Shop { shop { name myshopifyDomain } }"

# The topics pimsync reads: order changes, and the two that carry values edited in the
# store's admin (or changed by a sale, or by pimsync's own writes: the receiver decides).
TOPIC_ENUMS = {
    "orders/create": "ORDERS_CREATE",
    "orders/paid": "ORDERS_PAID",
    "orders/cancelled": "ORDERS_CANCELLED",
    "orders/fulfilled": "ORDERS_FULFILLED",
    "orders/updated": "ORDERS_UPDATED",
    "inventory_levels/update": "INVENTORY_LEVELS_UPDATE",
    "products/update": "PRODUCTS_UPDATE",
}
TOPIC_NAMES = {enum: name for name, enum in TOPIC_ENUMS.items()}
SUBSCRIPTIONS_PAGE = 50
SUBSCRIPTION_FIELDS = "id topic uri"

SUBSCRIPTIONS_QUERY = f"""
query WebhookSubscriptions($first: Int!, $after: String, $topics: [WebhookSubscriptionTopic!]) {{
  webhookSubscriptions(first: $first, after: $after, topics: $topics) {{
    nodes {{ {SUBSCRIPTION_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

SUBSCRIBE_MUTATION = f"""
mutation Subscribe($topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!) {{
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {{
    webhookSubscription {{ {SUBSCRIPTION_FIELDS} }}
    userErrors {{ field message }}
  }}
}}
"""

RESUBSCRIBE_MUTATION = f"""
mutation Resubscribe($id: ID!, $subscription: WebhookSubscriptionInput!) {{
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $subscription) {{
    webhookSubscription {{ {SUBSCRIPTION_FIELDS} }}
    userErrors {{ field message }}
  }}
}}
"""

# GraphQL top-level error codes that are not the caller's fault.
RETRYABLE_CODES = {"THROTTLED", "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}
AUTH_CODES = {"ACCESS_DENIED", "UNAUTHORIZED", "FORBIDDEN"}
RETRYABLE_USER_ERRORS = {"IDEMPOTENCY_CONCURRENT_REQUEST", "SERVICE_UNAVAILABLE"}


@dataclass(frozen=True)
class ThrottleStatus:
    maximum: float
    available: float
    restore_rate: float
    seen_at: float  # time.monotonic() when read

    def available_now(self, now: float) -> float:
        return min(self.maximum, self.available + (now - self.seen_at) * self.restore_rate)


# refund_line_items[].restock_type values that put the unit back into sellable stock;
# "no_restock" (e.g. a damaged return) does not.
RESTOCK_TYPES = frozenset({"return", "cancel", "legacy_restock"})


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _refund_line_items(refunds: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(line item id, refund line item) over an order's refunds, skipping junk."""
    for refund in refunds if isinstance(refunds, list) else []:
        items = refund.get("refund_line_items") if isinstance(refund, Mapping) else None
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, Mapping):
                continue
            line_id = str(item.get("line_item_id") or (item.get("line_item") or {}).get("id") or "")
            if line_id:
                yield line_id, item


def refund_restock_by_line(refunds: Any) -> dict[str, bool]:
    """line item id -> whether its refunded units were restocked, from an order's refunds.

    A line refunded several times counts as restocked if any refund restocked it.
    """
    restocked: dict[str, bool] = {}
    for line_id, item in _refund_line_items(refunds):
        if kind := str(item.get("restock_type") or "").lower():
            restocked[line_id] = restocked.get(line_id, False) or kind in RESTOCK_TYPES
    return restocked


def refund_quantity_by_line(refunds: Any) -> dict[str, int]:
    """line item id -> units refunded so far, summed over an order's refunds."""
    refunded: dict[str, int] = {}
    for line_id, item in _refund_line_items(refunds):
        try:
            quantity = int(item.get("quantity") or 0)
        except (TypeError, ValueError):
            continue
        if quantity > 0:
            refunded[line_id] = refunded.get(line_id, 0) + quantity
    return refunded


def refunded_units(quantity: int, current_quantity: Any, summed_refunds: int) -> int:
    """Units of a line taken off the order so far. Shopify's ``current_quantity`` /
    ``currentQuantity`` (quantity after refunds and edits, API 2024-01+) is the
    reliable figure; summing refund line items is the fallback without it."""
    if isinstance(current_quantity, int) and not isinstance(current_quantity, bool):
        return max(0, quantity - current_quantity)
    return summed_refunds


def order_gid(external_id: str) -> str:
    return external_id if external_id.startswith("gid://") else f"gid://shopify/Order/{external_id}"


def gid_tail(value: Any) -> str:
    return str(value).rsplit("/", 1)[-1] if value not in (None, "") else ""


def variant_gid(value: Any) -> str:
    if value in (None, ""):
        return ""
    text = str(value)
    return text if text.startswith("gid://") else f"gid://shopify/ProductVariant/{text}"


def product_gid(value: Any) -> str:
    if value in (None, ""):
        return ""
    text = str(value)
    return text if text.startswith("gid://") else f"gid://shopify/Product/{text}"


def decimal_or_none(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def normalise_status(*, cancelled: bool, financial: str, fulfillment: str) -> str:
    """pending | paid | cancelled | fulfilled | refunded from Shopify's own values."""
    if cancelled:
        return "cancelled"
    if financial in ("refunded", "voided"):
        return "refunded" if financial == "refunded" else "cancelled"
    if fulfillment == "fulfilled":
        return "fulfilled"
    if financial in ("paid", "partially_refunded", "partially_paid"):
        return "paid"
    return "pending"


def cancel_reason_enum(reason: str) -> str:
    text = reason.lower()
    for needle, enum in (
        ("oversell", "INVENTORY"),
        ("inventory", "INVENTORY"),
        ("stock", "INVENTORY"),
        ("fraud", "FRAUD"),
        ("customer", "CUSTOMER"),
        ("declined", "DECLINED"),
        ("staff", "STAFF"),
    ):
        if needle in text:
            return enum
    return "OTHER"


class ShopifyConnector(ShopifyContent):
    platform = "shopify"
    max_price_batch = MAX_INPUT
    max_quantity_batch = MAX_INPUT
    webhook_topics = tuple(TOPIC_ENUMS)

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self.api_version = channel_api_version(config.platform_config)
        self.location_id = str(config.platform_config.get("location_id") or "")
        self.max_pace_seconds = float(
            config.platform_config.get("max_pace_seconds", DEFAULT_MAX_PACE_SECONDS)
        )
        base = config.base_url.rstrip("/")
        self.endpoint = f"{base}/admin/api/{self.api_version}/graphql.json"
        self.http = HttpClient(
            config,
            headers={
                "X-Shopify-Access-Token": config.credentials.get("access_token", ""),
                "Content-Type": "application/json",
            },
        )
        self.throttle: ThrottleStatus | None = None
        self._sleep: Callable[[float], None] = time.sleep
        self._clock: Callable[[], float] = time.monotonic

    # ------------------------------------------------------------------ transport

    def _batch_limit(self) -> int:
        cap = self.config.batch_size
        return max(1, min(MAX_INPUT, cap)) if cap else MAX_INPUT

    def _pace(self, cost: float, max_pace: float | None = None) -> RetryableError | None:
        """Wait until ``cost`` points are free, or say how long the caller must wait."""
        status = self.throttle
        if status is None:
            return None
        available = status.available_now(self._clock())
        if available >= cost or status.restore_rate <= 0:
            return None
        wait = (cost - available) / status.restore_rate
        if wait > (self.max_pace_seconds if max_pace is None else max_pace):
            return RetryableError(
                f"cost bucket low ({available:.0f} of {status.maximum:.0f} points)",
                code="THROTTLED",
                retry_after=wait,
            )
        self._sleep(wait)
        return None

    def _remember_cost(self, payload: Any) -> dict[str, Any]:
        """Store extensions.cost.throttleStatus; returns extensions.cost (maybe empty)."""
        if not isinstance(payload, Mapping):
            return {}
        cost = (payload.get("extensions") or {}).get("cost")
        if not isinstance(cost, Mapping):
            return {}
        status = cost.get("throttleStatus")
        if isinstance(status, Mapping):
            try:
                self.throttle = ThrottleStatus(
                    maximum=float(status["maximumAvailable"]),
                    available=float(status["currentlyAvailable"]),
                    restore_rate=float(status["restoreRate"]),
                    seen_at=self._clock(),
                )
            except (KeyError, TypeError, ValueError):
                logger.warning("shopify: unreadable throttleStatus %s", status)
        return dict(cost)

    def _report_cost(self, requested: float, cost: Mapping[str, Any]) -> None:
        """Tell the shared bucket what Shopify charged and says is left (nothing to tell
        without ``extensions.cost``: an answer that never reached Shopify's API)."""
        report = self.config.rate_report
        if report is None or not cost:
            return
        status = cost.get("throttleStatus")
        status = status if isinstance(status, Mapping) else {}
        report(
            CostReport(
                requested=requested,
                actual=_number(cost.get("actualQueryCost")),
                available=_number(status.get("currentlyAvailable")),
                restore_rate=_number(status.get("restoreRate")),
                maximum=_number(status.get("maximumAvailable")),
            )
        )

    def _throttle_wait(self, cost: Mapping[str, Any]) -> float | None:
        status = cost.get("throttleStatus")
        if not isinstance(status, Mapping):
            return None
        try:
            needed = float(cost.get("requestedQueryCost") or MUTATION_COST)
            available = float(status["currentlyAvailable"])
            rate = float(status["restoreRate"])
        except (KeyError, TypeError, ValueError):
            return None
        return max(0.0, (needed - available) / rate) if rate > 0 else None

    def _hint(self, result: HttpResult) -> float | None:
        """Wait for a 429/5xx without Retry-After, from the body's throttle status."""
        return self._throttle_wait(self._remember_cost(result.data))

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any],
        *,
        cost: float = 1.0,
        max_pace: float | None = None,
    ) -> Any:
        """Run one GraphQL operation; returns ``data`` or raises a ConnectorError."""
        paced = self._pace(cost, max_pace)
        if paced is not None:
            raise paced
        result = self.http.post(
            self.endpoint,
            json={"query": query, "variables": dict(variables)},
            retry_after_hint=self._hint,
            cost=cost,  # points, from the channel's shared cost bucket
        )
        payload = result.data
        cost_info = self._remember_cost(payload)
        self._report_cost(cost, cost_info)
        errors = payload.get("errors") if isinstance(payload, Mapping) else None
        if result.error is not None:
            # The body may still say THROTTLED (some responses use HTTP 429).
            if self._graphql_codes(errors) & {"THROTTLED"}:
                raise RetryableError(
                    "THROTTLED (HTTP 429)",
                    code="THROTTLED",
                    status=result.status,
                    retry_after=result.error.retry_after or self._throttle_wait(cost_info),
                )
            raise result.error
        if not isinstance(payload, Mapping):
            raise PermanentError(
                f"unexpected GraphQL response: {body_snippet(result.body)}",
                code="unexpected_response",
                status=result.status,
            )
        if errors:
            raise self._graphql_error(errors, cost_info, result)
        data = payload.get("data")
        if not isinstance(data, Mapping):
            raise PermanentError(
                f"GraphQL response without data: {body_snippet(result.body)}",
                code="unexpected_response",
                status=result.status,
            )
        return data

    @staticmethod
    def _graphql_codes(errors: Any) -> set[str]:
        if not isinstance(errors, list):
            return set()
        return {
            str((e.get("extensions") or {}).get("code", ""))
            for e in errors
            if isinstance(e, Mapping)
        }

    def _graphql_error(
        self, errors: Any, cost: Mapping[str, Any], result: HttpResult
    ) -> ConnectorError:
        codes = self._graphql_codes(errors)
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            message = str(errors[0].get("message", ""))
        else:
            message = body_snippet(json.dumps(errors, default=str))
        code = next(iter(sorted(codes - {""})), "graphql_error")
        if "THROTTLED" in codes:
            return RetryableError(
                "THROTTLED",
                code="THROTTLED",
                status=result.status,
                retry_after=self._throttle_wait(cost),
            )
        if codes & RETRYABLE_CODES:
            return RetryableError(message, code=code, status=result.status)
        if codes & AUTH_CODES:
            return AuthError(message, code=code, status=result.status)
        return PermanentError(message, code=code, status=result.status)

    # ------------------------------------------------------------------ quantities

    def push_quantities(self, items: Sequence[QuantityUpdate]) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(items)
        if not self.location_id:
            error = PermanentError("platform_config.location_id is not set", code="config")
            return error_results([i.listing.sku for i in items], error)
        sendable = []
        for index, update in enumerate(items):
            if update.listing.inventory_item_id:
                sendable.append(index)
            else:
                results[index] = ItemResult(
                    update.listing.sku, FailureKind.PERMANENT, "missing_id", "no inventory item id"
                )
        self._run_chunks(
            self._chunks(sendable),
            lambda chunk: self._set_quantities(items, chunk, results),
            lambda i: items[i].listing.sku,
            results,
        )
        return [r for r in results if r is not None]

    def _chunks(self, indexes: list[int]) -> list[list[int]]:
        size = self._batch_limit()
        return [indexes[i : i + size] for i in range(0, len(indexes), size)]

    @staticmethod
    def _run_chunks(
        chunks: list[list[int]],
        send: Callable[[list[int]], None],
        sku_of: Callable[[int], str],
        results: list[ItemResult | None],
    ) -> None:
        """Send chunk after chunk; after a retryable/auth failure the rest is not sent."""
        for position, chunk in enumerate(chunks):
            try:
                send(chunk)
            except ConnectorError as exc:
                for index in chunk:
                    results[index] = item_result(sku_of(index), exc)
                if exc.kind not in (FailureKind.RETRYABLE, FailureKind.AUTH):
                    continue
                # The bucket is empty or the channel is down: sending more only burns cost.
                skipped = type(exc)(
                    f"not sent: {exc.message}",
                    code=exc.code,
                    status=exc.status,
                    retry_after=exc.retry_after,
                )
                for rest in chunks[position + 1 :]:
                    for index in rest:
                        results[index] = item_result(sku_of(index), skipped)
                return

    def _set_quantities(
        self, items: Sequence[QuantityUpdate], chunk: list[int], results: list[ItemResult | None]
    ) -> None:
        pending = list(chunk)
        # All or nothing: rows named in userErrors are dropped and the rest sent once more.
        for _attempt in range(2):
            key = str(uuid.uuid4())
            rows = [
                {
                    "inventoryItemId": items[i].listing.inventory_item_id,
                    "locationId": self.location_id,
                    "quantity": items[i].quantity,
                    "changeFromQuantity": items[i].expected_quantity,
                }
                for i in pending
            ]
            variables = {
                "input": {
                    "name": "available",
                    "reason": "correction",
                    "referenceDocumentUri": f"gid://pimsync/SyncBatch/{key}",
                    "quantities": rows,
                }
            }
            data = self.execute(QUANTITIES_MUTATION % key, variables, cost=MUTATION_COST)
            payload = data.get("inventorySetQuantities")
            if not isinstance(payload, Mapping):
                raise PermanentError(
                    f"inventorySetQuantities missing in response: {body_snippet(json.dumps(data))}",
                    code="unexpected_response",
                )
            errors = payload.get("userErrors") or []
            if not errors:
                for i in pending:
                    results[i] = ok_result(items[i].listing.sku, http_status=200)
                return
            failed = self._map_user_errors(errors, ("input", "quantities"), len(pending))
            if failed is None:
                # Not attributable to a row: every row of the call failed the same way.
                error = self._user_error(errors[0])
                for i in pending:
                    results[i] = item_result(items[i].listing.sku, error)
                return
            for position, error_row in failed.items():
                results[pending[position]] = item_result(
                    items[pending[position]].listing.sku, self._user_error(error_row)
                )
            pending = [i for pos, i in enumerate(pending) if pos not in failed]
            if not pending:
                return
        for i in pending:
            results[i] = ItemResult(
                items[i].listing.sku,
                FailureKind.RETRYABLE,
                "BATCH_REJECTED",
                "not applied: the batch was rejected twice for other rows",
            )

    @staticmethod
    def _map_user_errors(
        errors: Sequence[Any], prefix: tuple[str, ...], size: int
    ) -> dict[int, Mapping[str, Any]] | None:
        """{row position: userError} when every error names a row, else None."""
        mapped: dict[int, Mapping[str, Any]] = {}
        for error in errors:
            field = error.get("field") if isinstance(error, Mapping) else None
            if not isinstance(field, list) or len(field) <= len(prefix):
                return None
            if tuple(str(f) for f in field[: len(prefix)]) != prefix:
                return None
            try:
                position = int(field[len(prefix)])
            except (TypeError, ValueError):
                return None
            if not 0 <= position < size:
                return None
            mapped.setdefault(position, error)
        return mapped

    @staticmethod
    def _user_error(error: Any) -> ConnectorError:
        code = (
            str(error.get("code") or "USER_ERROR") if isinstance(error, Mapping) else "USER_ERROR"
        )
        message = str(error.get("message", "")) if isinstance(error, Mapping) else str(error)
        if code in RETRYABLE_USER_ERRORS:
            return RetryableError(message, code=code, status=200)
        return PermanentError(message, code=code, status=200)

    # ------------------------------------------------------------------ prices

    def push_prices(self, items: Sequence[PriceUpdate]) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(items)
        by_product: dict[str, list[int]] = {}
        for index, update in enumerate(items):
            listing = update.listing
            if not (listing.product_id and listing.variant_id):
                results[index] = ItemResult(
                    listing.sku, FailureKind.PERMANENT, "missing_id", "no product or variant id"
                )
                continue
            by_product.setdefault(listing.product_id, []).append(index)
        chunks = [chunk for indexes in by_product.values() for chunk in self._chunks(indexes)]
        self._run_chunks(
            chunks,
            lambda chunk: self._update_prices(items, chunk, results),
            lambda i: items[i].listing.sku,
            results,
        )
        return [r for r in results if r is not None]

    def _update_prices(
        self, items: Sequence[PriceUpdate], chunk: list[int], results: list[ItemResult | None]
    ) -> None:
        variants = []
        for i in chunk:
            update = items[i]
            compare_at = update.compare_at_price
            variants.append(
                {
                    "id": update.listing.variant_id,
                    "price": f"{update.price:.2f}",
                    "compareAtPrice": None if compare_at is None else f"{compare_at:.2f}",
                }
            )
        variables = {
            "productId": items[chunk[0]].listing.product_id,
            "variants": variants,
            "allowPartialUpdates": True,
        }
        data = self.execute(PRICES_MUTATION, variables, cost=MUTATION_COST)
        payload = data.get("productVariantsBulkUpdate")
        if not isinstance(payload, Mapping):
            raise PermanentError(
                f"productVariantsBulkUpdate missing in response: {body_snippet(json.dumps(data))}",
                code="unexpected_response",
            )
        errors = payload.get("userErrors") or []
        failed = self._map_user_errors(errors, ("variants",), len(chunk)) if errors else {}
        if failed is None:
            error = self._user_error(errors[0])
            for i in chunk:
                results[i] = item_result(items[i].listing.sku, error)
            return
        saved = {
            str(v.get("id")) for v in payload.get("productVariants") or [] if isinstance(v, Mapping)
        }
        for position, i in enumerate(chunk):
            sku = items[i].listing.sku
            if position in failed:
                results[i] = item_result(sku, self._user_error(failed[position]))
            elif items[i].listing.variant_id in saved:
                results[i] = ok_result(sku, http_status=200)
            else:
                results[i] = ItemResult(
                    sku,
                    FailureKind.PERMANENT,
                    "not_confirmed",
                    "variant missing from productVariants in the response",
                    http_status=200,
                )

    # ------------------------------------------------------------------ read

    def read_listings(self, listings: Sequence[ListingRef]) -> list[ListingState]:
        states: list[ListingState | None] = [None] * len(listings)
        indexes = []
        for index, listing in enumerate(listings):
            if listing.variant_id:
                indexes.append(index)
            else:
                states[index] = ListingState(listing.sku, None, None, found=False)
        for start in range(0, len(indexes), READ_BATCH):
            chunk = indexes[start : start + READ_BATCH]
            try:
                self._read_chunk(listings, chunk, states)
            except ConnectorError as exc:
                for i in chunk:
                    sku = listings[i].sku
                    states[i] = ListingState(
                        sku, None, None, found=False, error=item_result(sku, exc)
                    )
        return [s for s in states if s is not None]

    def _read_chunk(
        self, listings: Sequence[ListingRef], chunk: list[int], states: list[ListingState | None]
    ) -> None:
        ids = [listings[i].variant_id for i in chunk]
        variables = {"ids": ids, "locationId": self.location_id}
        data = self.execute(
            READ_QUERY, variables, cost=1 + 3 * len(ids), max_pace=READ_MAX_PACE_SECONDS
        )
        nodes = data.get("nodes")
        if not isinstance(nodes, list) or len(nodes) != len(ids):
            raise PermanentError(
                f"nodes() answered {body_snippet(json.dumps(nodes, default=str))}",
                code="unexpected_response",
            )
        for i, node in zip(chunk, nodes, strict=True):
            sku = listings[i].sku
            if not isinstance(node, Mapping):
                states[i] = ListingState(sku, None, None, found=False)
                continue
            states[i] = ListingState(sku, decimal_or_none(node.get("price")), self._available(node))

    @staticmethod
    def _available(node: Mapping[str, Any]) -> int | None:
        level = (node.get("inventoryItem") or {}).get("inventoryLevel")
        if not isinstance(level, Mapping):
            return None
        for quantity in level.get("quantities") or []:
            if isinstance(quantity, Mapping) and quantity.get("name") == "available":
                value = quantity.get("quantity")
                return int(value) if isinstance(value, int) else None
        return None

    # ------------------------------------------------------------------ catalog

    def catalog_page(self, cursor: str | None, *, page_size: int = 100) -> CatalogPage:
        first = max(1, min(page_size, CATALOG_PAGE_MAX))
        variables = {"first": first, "after": cursor or None, "locationId": self.location_id}
        data = self.execute(
            CATALOG_QUERY,
            variables,
            cost=2 + CATALOG_NODE_COST * first,
            max_pace=READ_MAX_PACE_SECONDS,
        )
        connection = data.get("productVariants")
        if not isinstance(connection, Mapping) or not isinstance(connection.get("nodes"), list):
            raise PermanentError(
                f"productVariants() answered {body_snippet(json.dumps(connection, default=str))}",
                code="unexpected_response",
            )
        items = [self._catalog_item(node) for node in connection["nodes"]]
        info = connection.get("pageInfo") or {}
        more = bool(info.get("hasNextPage")) and bool(info.get("endCursor"))
        return CatalogPage(items=items, next_cursor=str(info["endCursor"]) if more else None)

    def _catalog_item(self, node: Any) -> CatalogItem:
        if not isinstance(node, Mapping) or not node.get("id"):
            raise PermanentError(f"variant node is {node!r}", code="unexpected_response")
        product = node.get("product") or {}
        options = {
            str(o.get("name")): str(o.get("value"))
            for o in node.get("selectedOptions") or []
            if isinstance(o, Mapping) and o.get("name") and o.get("value") is not None
        }
        title = str(node.get("title") or "")
        return CatalogItem(
            key=str(node["id"]),
            sku=str(node.get("sku") or ""),
            # Shopify names a variant of a product without options "Default Title".
            title="" if title == "Default Title" else title,
            product_title=str(product.get("title") or ""),
            barcode=str(node.get("barcode") or ""),
            options=options,
            price=decimal_or_none(node.get("price")),
            quantity=self._available(node),
            product_id=str(product.get("id") or ""),
            variant_id=str(node["id"]),
            inventory_item_id=str((node.get("inventoryItem") or {}).get("id") or ""),
        )

    # ------------------------------------------------------------------ orders

    def orders_since(self, cursor: str | None, *, page_size: int = 100) -> OrdersPage:
        state = decode_page_cursor(cursor) if cursor else None
        if state is None:
            since = cursor or ""
            state = {"since": since, "after": None, "hwm": since}
        first = max(1, min(page_size, ORDERS_PAGE_MAX))
        since = str(state.get("since") or "")
        if since:
            parse_timestamp(since)  # reject an unreadable cursor before calling
        variables = {
            "first": first,
            "after": state.get("after"),
            "query": f"updated_at:>='{since}'" if since else None,
        }
        data = self.execute(ORDERS_QUERY, variables, cost=2 + first * (3 + LINES_PER_ORDER))
        connection = data.get("orders")
        if not isinstance(connection, Mapping) or not isinstance(connection.get("nodes"), list):
            raise PermanentError(
                f"orders() answered {body_snippet(json.dumps(connection, default=str))}",
                code="unexpected_response",
            )
        orders = [self._order_from_graphql(node) for node in connection["nodes"]]
        hwm = str(state.get("hwm") or "")
        for order in orders:
            stamp = order.raw.get("updatedAt", "")
            if stamp and (not hwm or parse_timestamp(stamp) > parse_timestamp(hwm)):
                hwm = stamp
        page_info = connection.get("pageInfo") or {}
        next_cursor = None
        if page_info.get("hasNextPage") and page_info.get("endCursor"):
            next_cursor = encode_page_cursor(
                {"since": since, "after": page_info["endCursor"], "hwm": hwm}
            )
        return OrdersPage(orders=orders, next_cursor=next_cursor, high_water_mark=hwm or None)

    def _order_from_graphql(self, node: Any) -> OrderData:
        if not isinstance(node, Mapping):
            raise PermanentError(f"order node is {node!r}", code="unexpected_response")
        try:
            line_nodes = list(node["lineItems"]["nodes"])
            page_info = node["lineItems"].get("pageInfo") or {}
            if page_info.get("hasNextPage"):
                line_nodes += self._more_lines(str(node["id"]), page_info.get("endCursor"))
            lines = [self._line_from_graphql(line) for line in line_nodes]
            financial = str(node.get("displayFinancialStatus") or "").lower()
            fulfillment = str(node.get("displayFulfillmentStatus") or "unfulfilled").lower()
            money = node["totalPriceSet"]["shopMoney"]
            return OrderData(
                external_id=str(node.get("legacyResourceId") or gid_tail(node["id"])),
                name=str(node.get("name") or ""),
                status=normalise_status(
                    cancelled=bool(node.get("cancelledAt")),
                    financial=financial,
                    fulfillment=fulfillment,
                ),
                financial_status=financial,
                fulfillment_status=fulfillment,
                currency=str(node.get("currencyCode") or money.get("currencyCode") or ""),
                total=Decimal(str(money["amount"])),
                updated_at=parse_timestamp(str(node["updatedAt"])),
                created_at=parse_timestamp(str(node["createdAt"])),
                lines=lines,
                customer_email=str(node.get("email") or ""),
                customer_phone=str(node.get("phone") or ""),
                raw=dict(node),
            )
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise PermanentError(
                f"unreadable order {body_snippet(json.dumps(node, default=str))}: {exc}",
                code="unexpected_response",
            ) from exc

    def _more_lines(self, order_id: str, after: Any) -> list[Any]:
        lines: list[Any] = []
        while True:
            data = self.execute(
                ORDER_LINES_QUERY, {"id": order_id, "after": after}, cost=2 + MAX_INPUT
            )
            connection = (data.get("order") or {}).get("lineItems") or {}
            lines += list(connection.get("nodes") or [])
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return lines
            after = info.get("endCursor")

    @staticmethod
    def _line_from_graphql(line: Mapping[str, Any]) -> OrderLineData:
        variant = line.get("variant") or {}
        return OrderLineData(
            external_line_id=gid_tail(line["id"]),
            sku=str(line.get("sku") or ""),
            quantity=int(line["quantity"]),
            unit_price=Decimal(str(line["originalUnitPriceSet"]["shopMoney"]["amount"])),
            external_variant_id=str(variant.get("id") or ""),
            external_product_id=str((variant.get("product") or {}).get("id") or ""),
            # Polling reads no refund line items (query cost); restock stays unsaid.
            refunded_quantity=refunded_units(int(line["quantity"]), line.get("currentQuantity"), 0),
        )

    @staticmethod
    def order_from_rest(payload: Mapping[str, Any]) -> OrderData:
        """An order webhook body (the REST representation) as OrderData."""
        financial = str(payload.get("financial_status") or "").lower()
        fulfillment = str(payload.get("fulfillment_status") or "unfulfilled").lower()
        restocked = refund_restock_by_line(payload.get("refunds"))
        refunded = refund_quantity_by_line(payload.get("refunds"))
        lines = [
            OrderLineData(
                external_line_id=str(line["id"]),
                sku=str(line.get("sku") or ""),
                quantity=int(line["quantity"]),
                unit_price=Decimal(str(line["price"])),
                external_variant_id=variant_gid(line.get("variant_id")),
                external_product_id=product_gid(line.get("product_id")),
                restock=restocked.get(str(line["id"])),
                refunded_quantity=refunded_units(
                    int(line["quantity"]),
                    line.get("current_quantity"),
                    refunded.get(str(line["id"]), 0),
                ),
            )
            for line in payload.get("line_items") or []
        ]
        customer = payload.get("customer") or {}
        return OrderData(
            external_id=str(payload["id"]),
            name=str(payload.get("name") or ""),
            status=normalise_status(
                cancelled=bool(payload.get("cancelled_at")),
                financial=financial,
                fulfillment=fulfillment,
            ),
            financial_status=financial,
            fulfillment_status=fulfillment,
            currency=str(payload.get("currency") or ""),
            total=Decimal(str(payload.get("total_price") or "0")),
            updated_at=parse_timestamp(str(payload["updated_at"])),
            created_at=parse_timestamp(str(payload.get("created_at") or payload["updated_at"])),
            lines=lines,
            customer_email=str(payload.get("email") or customer.get("email") or ""),
            customer_phone=str(payload.get("phone") or ""),
            raw=dict(payload),
        )

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """base64(HMAC-SHA256(secret, raw body)) against X-Shopify-Hmac-Sha256, constant time."""
        secret = self.config.webhook_secret
        given = header(headers, "X-Shopify-Hmac-Sha256")
        if not secret or not given:
            return False
        digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()
        expected = base64.b64encode(digest)
        return hmac.compare_digest(expected, given.strip().encode())

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEvent:
        topic = header(headers, "X-Shopify-Topic")
        try:
            payload = json.loads(raw_body)
        except ValueError as exc:
            raise PermanentError(
                f"webhook body is not JSON: {body_snippet(raw_body)}", code="malformed_json"
            ) from exc
        if not isinstance(payload, Mapping):
            raise PermanentError(
                f"webhook body is {body_snippet(raw_body)}", code="unexpected_body"
            )
        triggered = header(headers, "X-Shopify-Triggered-At")
        order = None
        edits: list[ListingEdit] = []
        try:
            if topic.startswith("orders/"):
                order = self.order_from_rest(payload)
            elif topic == "inventory_levels/update":
                edits = self.inventory_level_edits(payload)
            elif topic == "products/update":
                edits = self.product_price_edits(payload)
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise PermanentError(
                f"unreadable {topic} webhook: {exc}: {body_snippet(raw_body)}",
                code="unexpected_body",
            ) from exc
        return WebhookEvent(
            delivery_id=header(headers, "X-Shopify-Webhook-Id")
            or header(headers, "X-Shopify-Event-Id"),
            topic=topic,
            occurred_at=parse_timestamp(triggered) if triggered else None,
            order=order,
            payload=dict(payload),
            edits=edits,
        )

    def inventory_level_edits(self, payload: Mapping[str, Any]) -> list[ListingEdit]:
        """``available`` of one item at one location: an edit only at the location whose
        quantity pimsync sets (an untracked item sends ``available: null``)."""
        available = payload.get("available")
        if not isinstance(available, int) or isinstance(available, bool):
            return []
        if gid_tail(payload["location_id"]) != gid_tail(self.location_id):
            return []
        item = f"gid://shopify/InventoryItem/{gid_tail(payload['inventory_item_id'])}"
        return [ListingEdit(kind="quantity", value=Decimal(available), inventory_item_id=item)]

    @staticmethod
    def product_price_edits(payload: Mapping[str, Any]) -> list[ListingEdit]:
        """Each variant's price. The variants' ``inventory_quantity`` is the total over
        every location, not the level pimsync sets: quantities come from
        inventory_levels/update."""
        return [
            ListingEdit(
                kind="price",
                value=Decimal(str(variant["price"])),
                variant_id=variant_gid(variant["id"]),
                sku=str(variant.get("sku") or ""),
            )
            for variant in payload.get("variants") or []
            if isinstance(variant, Mapping) and variant.get("price") not in (None, "")
        ]

    # ------------------------------------------------------------------ webhook subscriptions

    def webhook_subscriptions(self) -> list[Subscription]:
        """This app's subscriptions of pimsync's topics (the API lists no other app's)."""
        found: list[Subscription] = []
        after = None
        while True:
            variables = {
                "first": SUBSCRIPTIONS_PAGE,
                "after": after,
                "topics": list(TOPIC_ENUMS.values()),
            }
            data = self.execute(SUBSCRIPTIONS_QUERY, variables, cost=2 + SUBSCRIPTIONS_PAGE)
            connection = data.get("webhookSubscriptions") or {}
            found += [
                self._subscription(node)
                for node in connection.get("nodes") or []
                if isinstance(node, Mapping) and node.get("topic") in TOPIC_NAMES
            ]
            info = connection.get("pageInfo") or {}
            if not (info.get("hasNextPage") and info.get("endCursor")):
                return found
            after = info["endCursor"]

    def webhook_subscribe(self, topic: str, address: str) -> Subscription:
        variables = {
            "topic": TOPIC_ENUMS[topic],
            "subscription": {"uri": address, "format": "JSON"},
        }
        data = self.execute(SUBSCRIBE_MUTATION, variables, cost=MUTATION_COST)
        return self._subscription_payload(data.get("webhookSubscriptionCreate"))

    def webhook_subscription_repair(self, subscription: Subscription, address: str) -> Subscription:
        variables = {
            "id": subscription.external_id,
            "subscription": {"uri": address, "format": "JSON"},
        }
        data = self.execute(RESUBSCRIBE_MUTATION, variables, cost=MUTATION_COST)
        return self._subscription_payload(data.get("webhookSubscriptionUpdate"))

    def _subscription_payload(self, payload: Any) -> Subscription:
        if not isinstance(payload, Mapping):
            raise PermanentError(
                "no subscription payload in the answer", code="unexpected_response"
            )
        errors = payload.get("userErrors") or []
        if errors:
            raise self._user_error(errors[0])
        node = payload.get("webhookSubscription")
        if not isinstance(node, Mapping):
            raise PermanentError("no webhookSubscription in the answer", code="unexpected_response")
        return self._subscription(node)

    @staticmethod
    def _subscription(node: Mapping[str, Any]) -> Subscription:
        topic = str(node.get("topic") or "")
        return Subscription(
            topic=TOPIC_NAMES.get(topic, topic),
            address=str(node.get("uri") or ""),
            external_id=str(node.get("id") or ""),
            ours=True,  # the Admin API lists only this app's subscriptions
        )

    # ------------------------------------------------------------------ order actions

    def cancel_order(self, external_order_id: str, *, reason: str = "") -> ItemResult:
        variables: dict[str, Any] = {
            "orderId": order_gid(external_order_id),
            "reason": cancel_reason_enum(reason),
            "restock": True,
            "notifyCustomer": True,
            # Refund what was paid the way it was paid (not as store credit).
            "refundMethod": {"originalPaymentMethodsRefund": True},
            "staffNote": f"pimsync: {reason or 'cancelled'}"[:STAFF_NOTE_MAX_CHARS],
        }
        try:
            data = self.execute(CANCEL_MUTATION, variables, cost=MUTATION_COST)
        except ConnectorError as exc:
            return item_result(external_order_id, exc)
        payload = data.get("orderCancel") or {}
        errors = payload.get("orderCancelUserErrors") or []
        if errors:
            return item_result(external_order_id, self._user_error(errors[0]))
        return ok_result(external_order_id, http_status=200)

    def fulfil_order(
        self, external_order_id: str, *, tracking_number: str = "", carrier: str = ""
    ) -> ItemResult:
        try:
            data = self.execute(
                FULFILLMENT_ORDERS_QUERY, {"id": order_gid(external_order_id)}, cost=13
            )
            order = data.get("order")
            if not isinstance(order, Mapping):
                raise PermanentError(f"order {external_order_id} not found", code="not_found")
            open_ids = [
                node["id"]
                for node in (order.get("fulfillmentOrders") or {}).get("nodes") or []
                if isinstance(node, Mapping) and node.get("status") in ("OPEN", "IN_PROGRESS")
            ]
            if not open_ids:
                raise PermanentError(
                    f"order {external_order_id} has no open fulfillment order", code="not_open"
                )
            fulfillment: dict[str, Any] = {
                "lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": i} for i in open_ids],
                "notifyCustomer": True,
            }
            if tracking_number:
                fulfillment["trackingInfo"] = {
                    "number": tracking_number,
                    "company": carrier or None,
                }
            data = self.execute(FULFIL_MUTATION, {"fulfillment": fulfillment}, cost=MUTATION_COST)
        except ConnectorError as exc:
            return item_result(external_order_id, exc)
        payload = data.get("fulfillmentCreate") or {}
        errors = payload.get("userErrors") or []
        if errors:
            return item_result(external_order_id, self._user_error(errors[0]))
        return ok_result(external_order_id, http_status=200)

    def test_connection(self) -> ConnectionCheck:
        try:
            data = self.execute(SHOP_QUERY, {}, cost=1)
        except ConnectorError as exc:
            return ConnectionCheck(False, f"{exc.kind.value}: {exc.message}")
        shop = data.get("shop") or {}
        if not self.location_id:
            return ConnectionCheck(False, "connected, but platform_config.location_id is not set")
        name = shop.get("name") or shop.get("myshopifyDomain") or "shop"
        status = version_status(self.api_version, today=datetime.now(UTC).date())
        return ConnectionCheck(True, f"connected to {name} ({status.message})")


# --------------------------------------------------------------------------- settings checks


def platform_config_problems(raw: Any) -> list[str]:
    """What is wrong with a Shopify channel's platform_config ([] when nothing):
    an api_version Shopify never released (a retired one only warns)."""
    if not isinstance(raw, Mapping):
        return ["platform_config: a JSON object"]
    problem = api_version_problem(raw)
    return [problem] if problem else []


def credentials_problems(credentials: Any) -> list[str]:
    """Nothing is checked before the connection test (which says what it found)."""
    return []
