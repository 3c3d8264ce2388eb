"""WooCommerce connector: REST API v3 ({base_url}/wp-json/wc/v3/...).

* Auth: HTTP Basic ``consumer_key:consumer_secret`` (credentials), which
  WooCommerce accepts over HTTPS. Hosts that strip the Authorization header
  need the keys as query parameters instead: set
  platform_config["auth_in_query"] = true (the keys are redacted from logs).
  Plain-HTTP shops would need OAuth 1.0a, which pimsync does not speak;
  test_connection says so.
* Writes: ``POST products/batch`` (simple products) and
  ``POST products/{parent}/variations/batch`` (one parent per call), at most 100
  items per call in total (WooCommerce answers 413 beyond). A ListingRef whose
  product_id is empty or equal to variant_id is a simple product; otherwise
  product_id is the parent and variant_id the variation. Each item of the
  response mirrors the request and may carry its own ``error``: every item is
  checked and reported per SKU.
* Prices: ``regular_price`` as a string; a compare-at price above the price
  becomes ``regular_price`` with the price as ``sale_price`` (Woo's "was"
  price), otherwise ``sale_price`` is cleared. Quantities: ``stock_quantity``
  with ``manage_stock: true``. Both are last-write-wins (no compare-and-set).
* Read-back: ``GET products?include=..`` / ``products/{parent}/variations?include=..``
  with per_page 100.
* Catalog import: ``GET products?orderby=id&order=asc&per_page=100&page=N`` for
  simple products, and for each variable product found there
  ``GET products/{id}/variations`` (100 per page): one call per catalog page, the
  variable parents still to visit travel in the cursor. Barcodes come from
  ``global_unique_id`` (WooCommerce 9.2+: "GTIN, UPC, EAN or ISBN"; absent on older
  stores), options from the variations' ``attributes`` (and a simple product's
  single-valued ones).
* Orders: ``GET orders?modified_after=..&dates_are_gmt=true&orderby=modified
  &order=asc&per_page=..&page=..``, paging by ``X-WP-TotalPages``. WooCommerce
  stores whole seconds and the filter is exclusive, so the query starts one
  second before the high-water mark; repeats are deduplicated downstream.
* Pacing: core WooCommerce has no rate limit (the host is the limit). With
  platform_config["requests_per_second"] (and optional "burst") the connector
  paces its own calls; a 429 is retryable with its Retry-After either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

from .base import (
    CatalogItem,
    CatalogPage,
    ChannelConfig,
    ConnectionCheck,
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
from .errors import ConnectorError, FailureKind, PermanentError
from .http import (
    HttpClient,
    HttpResult,
    TokenBucket,
    body_snippet,
    decode_page_cursor,
    encode_page_cursor,
    error_for_kind,
    header,
    item_result,
    ok_result,
    parse_timestamp,
)
from .woocommerce_content import WooCommerceContent

logger = logging.getLogger(__name__)

BATCH_LIMIT = 100  # items per batch call, create + update + delete together
PER_PAGE_MAX = 100
STATUS = {
    "pending": "pending",
    "on-hold": "pending",
    "failed": "pending",
    "checkout-draft": "pending",
    "processing": "paid",
    "completed": "fulfilled",
    "cancelled": "cancelled",
    "refunded": "refunded",
}
READ_FIELDS = "id,sku,price,regular_price,sale_price,manage_stock,stock_quantity"
CATALOG_FIELDS = (
    "id,name,sku,type,price,manage_stock,stock_quantity,global_unique_id,attributes,images,"
    "variations"
)
VARIATION_FIELDS = "id,name,sku,price,manage_stock,stock_quantity,global_unique_id,attributes,image"
# The topics pimsync reads: order changes, and product.updated, which WooCommerce sends
# when a product or variation is saved (its admin, the REST API: pimsync's own writes
# too) - not for the stock a checkout takes (that is a direct stock update).
WEBHOOK_TOPICS = ("order.created", "order.updated", "product.updated")
WEBHOOK_FIELDS = "id,name,status,topic,delivery_url"
# What marks a webhook as pimsync's in a store's list (people and plugins add others).
WEBHOOK_NAME_PREFIX = "pimsync"


def wp_specialchars_decode(text: str) -> str:
    """WordPress decodes these entities (ENT_QUOTES) in the secret before signing."""
    for entity, char in (
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", '"'),
        ("&#039;", "'"),
        ("&#39;", "'"),
        ("&amp;", "&"),
    ):
        text = text.replace(entity, char)
    return text


def is_simple(listing: ListingRef) -> bool:
    return not listing.product_id or listing.product_id == listing.variant_id


def item_error(sku: str, error: Mapping[str, Any]) -> ItemResult:
    """A per-item ``error`` object of a batch response, classified by its status."""
    data = error.get("data")
    status = data.get("status") if isinstance(data, Mapping) else None
    if not isinstance(status, int):
        status = 400
    if status in (401, 403):
        kind = FailureKind.AUTH
    elif status == 429 or status >= 500:
        kind = FailureKind.RETRYABLE
    else:
        kind = FailureKind.PERMANENT
    return ItemResult(
        sku=sku,
        kind=kind,
        code=str(error.get("code") or status),
        message=str(error.get("message") or ""),
        http_status=status,
    )


def money(value: Decimal) -> str:
    return f"{value:.2f}"


class WooCommerceConnector(WooCommerceContent):
    platform = "woocommerce"
    max_price_batch = BATCH_LIMIT
    max_quantity_batch = BATCH_LIMIT
    webhook_topics = WEBHOOK_TOPICS

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        self.api = config.base_url.rstrip("/") + "/wp-json/wc/v3"
        key = config.credentials.get("consumer_key", "")
        secret = config.credentials.get("consumer_secret", "")
        self.auth_in_query = bool(config.platform_config.get("auth_in_query", False))
        headers = {"Content-Type": "application/json"}
        self._auth_params: dict[str, str] = {}
        if self.auth_in_query:
            self._auth_params = {"consumer_key": key, "consumer_secret": secret}
        else:
            token = base64.b64encode(f"{key}:{secret}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self.http = HttpClient(config, headers=headers, extra_secrets=[key, secret])
        rate = float(config.platform_config.get("requests_per_second") or 0)
        burst = float(config.platform_config.get("burst") or max(rate, 1.0))
        self.pacer = TokenBucket(rate, burst)

    # ------------------------------------------------------------------ transport

    def _call(self, method: str, path: str, **kwargs: Any) -> HttpResult:
        self.pacer.acquire()
        params = {**kwargs.pop("params", {}), **self._auth_params}
        result = self.http.request(method, f"{self.api}/{path}", params=params or None, **kwargs)
        if result.status == 429:
            self.pacer.drain()
        return result

    def _json(self, method: str, path: str, **kwargs: Any) -> tuple[Any, HttpResult]:
        result = self._call(method, path, **kwargs)
        return result.unwrap(), result

    def _batch_limit(self) -> int:
        cap = self.config.batch_size
        return max(1, min(BATCH_LIMIT, cap)) if cap else BATCH_LIMIT

    def _groups(
        self, listings: Sequence[ListingRef], indexes: list[int]
    ) -> list[tuple[str, list[int]]]:
        """(batch path, item indexes) with at most the batch limit per entry."""
        by_path: dict[str, list[int]] = {}
        for index in indexes:
            listing = listings[index]
            path = (
                "products/batch"
                if is_simple(listing)
                else f"products/{listing.product_id}/variations/batch"
            )
            by_path.setdefault(path, []).append(index)
        size = self._batch_limit()
        return [
            (path, members[i : i + size])
            for path, members in by_path.items()
            for i in range(0, len(members), size)
        ]

    # ------------------------------------------------------------------ writes

    def push_prices(self, items: Sequence[PriceUpdate]) -> list[ItemResult]:
        def body(update: PriceUpdate) -> dict[str, Any]:
            compare_at = update.compare_at_price
            if compare_at is not None and compare_at > update.price:
                return {"regular_price": money(compare_at), "sale_price": money(update.price)}
            return {"regular_price": money(update.price), "sale_price": ""}

        return self._push([i.listing for i in items], [body(i) for i in items])

    def push_quantities(self, items: Sequence[QuantityUpdate]) -> list[ItemResult]:
        bodies = [{"manage_stock": True, "stock_quantity": int(i.quantity)} for i in items]
        return self._push([i.listing for i in items], bodies)

    def _push(
        self, listings: Sequence[ListingRef], bodies: Sequence[dict[str, Any]]
    ) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(listings)
        sendable = []
        for index, listing in enumerate(listings):
            if listing.variant_id.isdigit() and (
                is_simple(listing) or listing.product_id.isdigit()
            ):
                sendable.append(index)
            else:
                results[index] = ItemResult(
                    listing.sku, FailureKind.PERMANENT, "missing_id", "no numeric WooCommerce id"
                )
        groups = self._groups(listings, sendable)
        for position, (path, chunk) in enumerate(groups):
            try:
                self._send_batch(path, chunk, listings, bodies, results)
            except ConnectorError as exc:
                for index in chunk:
                    results[index] = item_result(listings[index].sku, exc)
                if exc.kind in (FailureKind.RETRYABLE, FailureKind.AUTH):
                    # Throttled or down: the remaining calls would fail the same way.
                    skipped = error_for_kind(
                        exc.kind,
                        f"not sent: {exc.message}",
                        code=exc.code,
                        status=exc.status,
                        retry_after=exc.retry_after,
                    )
                    for _, rest in groups[position + 1 :]:
                        for index in rest:
                            results[index] = item_result(listings[index].sku, skipped)
                    break
        return [r for r in results if r is not None]

    def _send_batch(
        self,
        path: str,
        chunk: list[int],
        listings: Sequence[ListingRef],
        bodies: Sequence[dict[str, Any]],
        results: list[ItemResult | None],
    ) -> None:
        update = [{"id": int(listings[i].variant_id), **bodies[i]} for i in chunk]
        data, result = self._json("POST", path, json={"update": update})
        answered = data.get("update") if isinstance(data, Mapping) else None
        if not isinstance(answered, list):
            raise PermanentError(
                f"batch response without an update list: {body_snippet(result.body)}",
                code="unexpected_response",
                status=result.status,
            )
        for position, index in enumerate(chunk):
            sku = listings[index].sku
            row = answered[position] if position < len(answered) else None
            results[index] = self._batch_item(sku, int(listings[index].variant_id), row)

    @staticmethod
    def _batch_item(sku: str, item_id: int, row: Any) -> ItemResult:
        if not isinstance(row, Mapping):
            return ItemResult(
                sku, FailureKind.PERMANENT, "unexpected_response", f"no result for id {item_id}"
            )
        error = row.get("error")
        if isinstance(error, Mapping):
            return item_error(sku, error)
        if row.get("id") != item_id:
            return ItemResult(
                sku,
                FailureKind.PERMANENT,
                "unexpected_response",
                f"result for id {row.get('id')!r} where {item_id} was sent",
            )
        return ok_result(sku, http_status=200)

    # ------------------------------------------------------------------ read

    def read_listings(self, listings: Sequence[ListingRef]) -> list[ListingState]:
        states: list[ListingState | None] = [None] * len(listings)
        indexes = []
        for index, listing in enumerate(listings):
            if listing.variant_id.isdigit():
                indexes.append(index)
            else:
                states[index] = ListingState(listing.sku, None, None, found=False)
        for path, chunk in self._groups(listings, indexes):
            list_path = path.removesuffix("/batch")
            try:
                self._read_chunk(list_path, chunk, listings, states)
            except ConnectorError as exc:
                for i in chunk:
                    sku = listings[i].sku
                    states[i] = ListingState(
                        sku, None, None, found=False, error=item_result(sku, exc)
                    )
        return [s for s in states if s is not None]

    def _read_chunk(
        self,
        path: str,
        chunk: list[int],
        listings: Sequence[ListingRef],
        states: list[ListingState | None],
    ) -> None:
        ids = [listings[i].variant_id for i in chunk]
        params = {
            "include": ",".join(ids),
            "per_page": str(min(PER_PAGE_MAX, len(ids))),
            "_fields": READ_FIELDS,
        }
        data, result = self._json("GET", path, params=params)
        if not isinstance(data, list):
            raise PermanentError(
                f"expected a list of products: {body_snippet(result.body)}",
                code="unexpected_response",
                status=result.status,
            )
        by_id = {str(row.get("id")): row for row in data if isinstance(row, Mapping)}
        for i in chunk:
            sku = listings[i].sku
            row = by_id.get(listings[i].variant_id)
            if row is None:
                states[i] = ListingState(sku, None, None, found=False)
                continue
            states[i] = ListingState(sku, self._price(row), self._stock(row))

    @staticmethod
    def _price(row: Mapping[str, Any]) -> Decimal | None:
        for key in ("price", "sale_price", "regular_price"):
            value = row.get(key)
            if value not in (None, ""):
                try:
                    return Decimal(str(value))
                except InvalidOperation:
                    return None
        return None

    @staticmethod
    def _stock(row: Mapping[str, Any]) -> int | None:
        value = row.get("stock_quantity")
        if row.get("manage_stock") is False or not isinstance(value, int):
            return None
        return value

    # ------------------------------------------------------------------ catalog

    def catalog_page(self, cursor: str | None, *, page_size: int = 100) -> CatalogPage:
        """One call: the next page of variations of a variable product met earlier,
        else the next page of products (by id)."""
        state = decode_page_cursor(cursor) if cursor else None
        state = state or {"page": 1, "parents": [], "vpage": 1}
        per_page = max(1, min(page_size, PER_PAGE_MAX))
        parents: list[list[str]] = [list(p) for p in state.get("parents") or []]
        if parents:
            return self._variations_page(state, parents, per_page)
        page = int(state.get("page") or 1)
        rows, result = self._rows("products", page, per_page, CATALOG_FIELDS)
        items = []
        for row in rows:
            if row.get("type") == "variable":
                parents.append([str(row.get("id")), str(row.get("name") or "")])
            elif row.get("type", "simple") == "simple":
                items.append(self._catalog_item(row, parent=None))
        more_products = page < self._total_pages(result)
        next_state = {"page": page + 1 if more_products else 0, "parents": parents, "vpage": 1}
        return CatalogPage(items=items, next_cursor=self._next_cursor(next_state))

    def _variations_page(
        self, state: Mapping[str, Any], parents: list[list[str]], per_page: int
    ) -> CatalogPage:
        parent_id, parent_name = parents[0]
        vpage = int(state.get("vpage") or 1)
        path = f"products/{parent_id}/variations"
        rows, result = self._rows(path, vpage, per_page, VARIATION_FIELDS)
        items = [self._catalog_item(row, parent=(parent_id, parent_name)) for row in rows]
        if vpage < self._total_pages(result):
            next_state = {**state, "vpage": vpage + 1}
        else:
            next_state = {**state, "parents": parents[1:], "vpage": 1}
        return CatalogPage(items=items, next_cursor=self._next_cursor(next_state))

    @staticmethod
    def _next_cursor(state: Mapping[str, Any]) -> str | None:
        if not state.get("page") and not state.get("parents"):
            return None
        return encode_page_cursor(state)

    def _rows(
        self, path: str, page: int, per_page: int, fields: str
    ) -> tuple[list[Mapping[str, Any]], HttpResult]:
        """One page of a product list, oldest id first (stable while the store changes)."""
        params = {
            "orderby": "id",
            "order": "asc",
            "per_page": str(per_page),
            "page": str(page),
            "_fields": fields,
        }
        data, result = self._json("GET", path, params=params)
        if not isinstance(data, list):
            raise PermanentError(
                f"expected a list: {body_snippet(result.body)}",
                code="unexpected_response",
                status=result.status,
            )
        return [row for row in data if isinstance(row, Mapping)], result

    @staticmethod
    def _total_pages(result: HttpResult) -> int:
        try:
            return int(result.headers.get("X-WP-TotalPages", "0"))
        except ValueError:
            return 0

    def _catalog_item(
        self, row: Mapping[str, Any], *, parent: tuple[str, str] | None
    ) -> CatalogItem:
        item_id = str(row.get("id") or "")
        if not item_id:
            raise PermanentError(f"product without id: {row!r}"[:300], code="unexpected_response")
        if parent is None:
            # A simple product's attributes with one value describe it ("Size: M").
            options: dict[str, str] = {
                str(a.get("name")): str(a["options"][0])
                for a in row.get("attributes") or []
                if isinstance(a, Mapping)
                and a.get("name")
                and isinstance(a.get("options"), list)
                and len(a["options"]) == 1
            }
            image = next(iter(row.get("images") or []), None)
        else:
            options = {
                str(a.get("name")): str(a.get("option"))
                for a in row.get("attributes") or []
                if isinstance(a, Mapping) and a.get("name") and a.get("option") not in (None, "")
            }
            image = row.get("image")
        name = str(row.get("name") or "")
        return CatalogItem(
            key=item_id,
            sku=str(row.get("sku") or ""),
            title=name if parent is not None else "",
            product_title=parent[1] if parent is not None else name,
            barcode=str(row.get("global_unique_id") or ""),
            options=options,
            price=self._price(row),
            quantity=self._stock(row),
            product_id=parent[0] if parent is not None else item_id,
            variant_id=item_id,
            image_url=str(image.get("src") or "") if isinstance(image, Mapping) else "",
        )

    # ------------------------------------------------------------------ orders

    def orders_since(self, cursor: str | None, *, page_size: int = 100) -> OrdersPage:
        state = decode_page_cursor(cursor) if cursor else None
        if state is None:
            state = {"since": cursor or "", "page": 1, "hwm": cursor or ""}
        since = str(state.get("since") or "")
        page = int(state.get("page") or 1)
        params: dict[str, str] = {
            "orderby": "modified",
            "order": "asc",
            "per_page": str(max(1, min(page_size, PER_PAGE_MAX))),
            "page": str(page),
            "dates_are_gmt": "true",
        }
        if since:
            # Exclusive filter on whole seconds: start one second early, lose nothing.
            start = parse_timestamp(since) - timedelta(seconds=1)
            params["modified_after"] = start.strftime("%Y-%m-%dT%H:%M:%S")
        data, result = self._json("GET", "orders", params=params)
        if not isinstance(data, list):
            raise PermanentError(
                f"expected a list of orders: {body_snippet(result.body)}",
                code="unexpected_response",
                status=result.status,
            )
        orders = [self.order_from_json(row) for row in data]
        hwm = str(state.get("hwm") or "")
        for order in orders:
            if not hwm or order.updated_at > parse_timestamp(hwm):
                hwm = order.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            total_pages = int(result.headers.get("X-WP-TotalPages", "0"))
        except ValueError:
            total_pages = 0
        next_cursor = None
        if page < total_pages:
            next_cursor = encode_page_cursor({"since": since, "page": page + 1, "hwm": hwm})
        return OrdersPage(orders=orders, next_cursor=next_cursor, high_water_mark=hwm or None)

    @staticmethod
    def order_from_json(row: Any) -> OrderData:
        """One order resource (REST list item or webhook body) as OrderData."""
        if not isinstance(row, Mapping):
            raise PermanentError(f"order is {row!r}", code="unexpected_response")
        try:
            status = str(row["status"])
            lines = [WooCommerceConnector._line(line) for line in row.get("line_items") or []]
            billing = row.get("billing") or {}
            modified = row.get("date_modified_gmt") or row["date_modified"]
            created = row.get("date_created_gmt") or row.get("date_created") or modified
            return OrderData(
                external_id=str(row["id"]),
                name=str(row.get("number") or row["id"]),
                status=STATUS.get(status, "pending"),
                financial_status=status,
                fulfillment_status="fulfilled" if status == "completed" else "unfulfilled",
                currency=str(row.get("currency") or ""),
                total=Decimal(str(row.get("total") or "0")),
                updated_at=parse_timestamp(str(modified)),
                created_at=parse_timestamp(str(created)),
                lines=lines,
                customer_email=str(billing.get("email") or ""),
                customer_phone=str(billing.get("phone") or ""),
                raw=dict(row),
            )
        except (KeyError, TypeError, ValueError, InvalidOperation, ConnectorError) as exc:
            raise PermanentError(
                f"unreadable order {body_snippet(json.dumps(row, default=str))}: {exc}",
                code="unexpected_response",
            ) from exc

    @staticmethod
    def _line(line: Mapping[str, Any]) -> OrderLineData:
        quantity = int(line["quantity"])
        # subtotal is an exact decimal string; "price" is a float in the JSON.
        subtotal = line.get("subtotal")
        if subtotal not in (None, "") and quantity:
            unit = (Decimal(str(subtotal)) / quantity).quantize(Decimal("0.01"))
        else:
            unit = Decimal(str(line.get("price") or "0"))
        product_id = str(line.get("product_id") or "")
        variation_id = line.get("variation_id") or 0
        return OrderLineData(
            external_line_id=str(line["id"]),
            sku=str(line.get("sku") or ""),
            quantity=quantity,
            unit_price=unit,
            external_variant_id=str(variation_id) if variation_id else product_id,
            external_product_id=product_id,
        )

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """base64(HMAC-SHA256(secret, raw body)) against X-WC-Webhook-Signature."""
        secret = self.config.webhook_secret
        given = header(headers, "X-WC-Webhook-Signature")
        if not secret or not given:
            return False
        key = wp_specialchars_decode(secret).encode()
        expected = base64.b64encode(hmac.new(key, raw_body, hashlib.sha256).digest())
        return hmac.compare_digest(expected, given.strip().encode())

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEvent:
        """The delivery id is X-WC-Webhook-Delivery-ID plus a hash of the body: WooCommerce
        derives the id from (webhook id, current second), so two deliveries in one
        second share it."""
        topic = header(headers, "X-WC-Webhook-Topic")
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
        order = None
        edits: list[ListingEdit] = []
        resource = header(headers, "X-WC-Webhook-Resource") or topic.split(".", 1)[0]
        if resource == "order" and "status" in payload:
            order = self.order_from_json(payload)
        elif topic == "product.updated":
            edits = self.product_edits(payload)
        body_hash = hashlib.sha256(raw_body).hexdigest()[:16]
        delivery = header(headers, "X-WC-Webhook-Delivery-ID")
        return WebhookEvent(
            delivery_id=f"{delivery}:{body_hash}" if delivery else body_hash,
            topic=topic,
            occurred_at=order.updated_at if order else None,
            order=order,
            payload=dict(payload),
            edits=edits,
        )

    @classmethod
    def product_edits(cls, payload: Mapping[str, Any]) -> list[ListingEdit]:
        """A saved product or variation (the same body as GET products/<id>): its price
        and, when WooCommerce manages its stock, its quantity. A variable product's
        parent matches no listing (pimsync lists its variations)."""
        item_id = payload.get("id")
        if not isinstance(item_id, int) or isinstance(item_id, bool):
            raise PermanentError(
                f"product webhook without an id: {item_id!r}", code="unexpected_body"
            )
        found = {"variant_id": str(item_id), "sku": str(payload.get("sku") or "")}
        edits = []
        if (price := cls._price(payload)) is not None:
            edits.append(ListingEdit(kind="price", value=price, **found))
        if (stock := cls._stock(payload)) is not None:
            edits.append(ListingEdit(kind="quantity", value=Decimal(stock), **found))
        return edits

    # ------------------------------------------------------------------ webhook subscriptions

    def webhook_subscriptions(self) -> list[Subscription]:
        """The store's webhooks of pimsync's topics (every page; a store also holds
        webhooks people and plugins made)."""
        found: list[Subscription] = []
        page = 1
        while True:
            params = {"per_page": str(PER_PAGE_MAX), "page": str(page), "_fields": WEBHOOK_FIELDS}
            data, result = self._json("GET", "webhooks", params=params)
            if not isinstance(data, list):
                raise PermanentError(
                    f"expected a list of webhooks: {body_snippet(result.body)}",
                    code="unexpected_response",
                    status=result.status,
                )
            found += [
                self._subscription(row)
                for row in data
                if isinstance(row, Mapping) and row.get("topic") in WEBHOOK_TOPICS
            ]
            try:
                pages = int(result.headers.get("X-WP-TotalPages", "1"))
            except ValueError:
                pages = 1
            if page >= pages:
                return found
            page += 1

    def webhook_subscribe(self, topic: str, address: str) -> Subscription:
        body = {
            "name": f"{WEBHOOK_NAME_PREFIX} {topic}",
            "topic": topic,
            "delivery_url": address,
            "secret": self.config.webhook_secret,
            "status": "active",
        }
        data, result = self._json("POST", "webhooks", json=body)
        return self._saved_subscription(data, result)

    def webhook_subscription_repair(self, subscription: Subscription, address: str) -> Subscription:
        """New address, the channel's current secret (WooCommerce never shows the stored
        one) and active again (WooCommerce disables a webhook after 5 failed deliveries)."""
        if not subscription.external_id.isdigit():
            raise PermanentError(f"bad webhook id {subscription.external_id!r}", code="bad_id")
        body = {"delivery_url": address, "secret": self.config.webhook_secret, "status": "active"}
        data, result = self._json("PUT", f"webhooks/{subscription.external_id}", json=body)
        return self._saved_subscription(data, result)

    def _saved_subscription(self, data: Any, result: HttpResult) -> Subscription:
        if not isinstance(data, Mapping) or "id" not in data:
            raise PermanentError(
                f"expected the saved webhook: {body_snippet(result.body)}",
                code="unexpected_response",
                status=result.status,
            )
        return self._subscription(data)

    @staticmethod
    def _subscription(row: Mapping[str, Any]) -> Subscription:
        name = str(row.get("name") or "")
        return Subscription(
            topic=str(row.get("topic") or ""),
            address=str(row.get("delivery_url") or ""),
            external_id=str(row.get("id") or ""),
            active=row.get("status") == "active",
            name=name,
            ours=name.lower().startswith(WEBHOOK_NAME_PREFIX),
        )

    # ------------------------------------------------------------------ order actions

    def _set_status(self, external_order_id: str, body: dict[str, Any]) -> ItemResult:
        if not external_order_id.isdigit():
            return ItemResult(
                external_order_id, FailureKind.PERMANENT, "bad_id", "not a numeric id"
            )
        try:
            data, result = self._json("PUT", f"orders/{external_order_id}", json=body)
        except ConnectorError as exc:
            return item_result(external_order_id, exc)
        if not isinstance(data, Mapping) or data.get("status") != body["status"]:
            return ItemResult(
                external_order_id,
                FailureKind.PERMANENT,
                "unexpected_response",
                f"status not confirmed: {body_snippet(result.body)}",
                http_status=result.status,
            )
        return ok_result(external_order_id, http_status=result.status)

    def cancel_order(self, external_order_id: str, *, reason: str = "") -> ItemResult:
        body: dict[str, Any] = {"status": "cancelled"}
        if reason:
            body["customer_note"] = f"Cancelled: {reason}"
        return self._set_status(external_order_id, body)

    def fulfil_order(
        self, external_order_id: str, *, tracking_number: str = "", carrier: str = ""
    ) -> ItemResult:
        body: dict[str, Any] = {"status": "completed"}
        if tracking_number:
            # Core WooCommerce has no tracking field; keep it as order meta.
            body["meta_data"] = [
                {"key": "_pimsync_tracking_number", "value": tracking_number},
                {"key": "_pimsync_carrier", "value": carrier},
            ]
        return self._set_status(external_order_id, body)

    def test_connection(self) -> ConnectionCheck:
        parsed = urlparse(self.config.base_url)
        loopback = parsed.hostname in ("127.0.0.1", "localhost", "::1")
        if parsed.scheme != "https" and not loopback:
            return ConnectionCheck(
                False, "WooCommerce needs HTTPS for key auth (plain HTTP would need OAuth 1.0a)"
            )
        try:
            data, _ = self._json("GET", "products", params={"per_page": "1", "_fields": "id"})
        except ConnectorError as exc:
            return ConnectionCheck(False, f"{exc.kind.value}: {exc.message}")
        if not isinstance(data, list):
            return ConnectionCheck(False, "unexpected answer to GET products")
        return ConnectionCheck(True, "connected to WooCommerce REST API v3")
