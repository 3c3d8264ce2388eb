"""WooCommerce stand-in: the REST v3 endpoints pimsync uses.

Under ``/woocommerce/wp-json/wc/v3/``:

* ``POST products/batch`` and ``POST products/{parent}/variations/batch``:
  ``{"create": [...], "update": [...], "delete": [...]}`` with at most 100 items
  in total (else HTTP 413 ``woocommerce_rest_request_entity_too_large``);
  ``update`` of products and variations, ``create`` of variations (pimsync
  deletes nothing). Each item is processed alone and the response mirrors the
  request: the resource, or ``{"id": N, "error": {"code", "message", "data":
  {"status": 400}}}``. Fields: ``regular_price`` (string), ``sale_price``,
  ``stock_quantity`` (int, needs ``manage_stock``), ``manage_stock``, and the
  content: ``name``, ``description``, ``images`` (``[{src}]``, replaces the
  list), ``global_unique_id`` (barcode), ``attributes`` (a variable product's
  ``[{name, options, variation, visible}]``, a variation's ``[{name, option}]``:
  the option must be one its parent offers for variations), ``sku``.
* ``POST products`` (create a simple or variable product; a SKU already in use is
  refused with ``product_invalid_sku``) and ``PUT products/{id}`` (the fields
  given). A variable product is a parent without stock of its own; its
  variations are the catalog items.
* ``GET products?include=1,2&per_page=..&page=..`` (simple products; without
  ``include`` or ``sku`` also the variable parents, ``type: variable`` with their
  ``variations`` ids) and ``GET products/{parent}/variations?include=..``
  (per_page at most 100), ``orderby``/``order`` (the sandbox sorts by id either
  way), ``_fields=`` trims the objects. Products and variations carry ``name``,
  ``global_unique_id`` (GTIN/UPC/EAN/ISBN, WooCommerce 9.2+), ``attributes``
  and images.
* ``GET orders?modified_after=<ISO>&dates_are_gmt=true&orderby=modified&order=asc
  &per_page=..&page=..`` with ``X-WP-Total`` / ``X-WP-TotalPages`` / ``Link``;
  ``GET|PUT orders/{id}`` (``{"status": "cancelled" | "completed" | ...}``).
* ``GET webhooks``, ``POST webhooks`` (``topic``, ``delivery_url``, ``secret``,
  ``name``, ``status``) and ``PUT webhooks/{id}``: the webhooks registered
  through the API (the secret is write-only, as in WooCommerce).

Auth: HTTP Basic ``consumer_key:consumer_secret``, or the same two as query
parameters (for hosts that strip the Authorization header).

Every request is validated against sandbox/contracts/woocommerce_v3.json (the
routes, parameters and fields pimsync uses, written from the REST API v3
reference and WooCommerce's source): an unknown parameter or field, a wrong
type or ``per_page`` above 100 is refused with WordPress's ``rest_invalid_param``
(400, ``data.params`` naming each), an unknown route with ``rest_no_route``
(404), a batch over 100 items with 413; all are recorded in ``refusals``.
WordPress itself ignores unknown parameters and fields: refusing them is how
the sandbox catches a misspelt one.

Rate limit: WooCommerce core has none; the host (PHP workers, WAF) is the real
limit. The default here is a token bucket of 5 requests/s with a burst of 10:
a small managed host runs 2-4 PHP workers and a 100-item batch keeps one busy
for roughly half a second to a second, so about 5 batch calls per second is
what such a store sustains (the reference advises concurrency 2-4). Over the
limit the answer is 429 with ``Retry-After``. Injected 5xx faults answer with an
HTML error page, as hosts do.

Ids: a seeded row without ``group`` is a simple product (``product_id ==
variant_id``); rows sharing a ``group`` are variations of one variable product
(``product_id`` = parent id, ``variant_id`` = variation id).

Webhooks: ``order.created`` / ``order.updated`` with the order JSON and
``product.updated`` with the product JSON (a batch update or a console edit
saves the product; a checkout's stock change does not), signed in
``X-WC-Webhook-Signature`` = base64(HMAC-SHA256(secret, body)) after
WordPress's ``wp_specialchars_decode`` of the secret; the delivery id is a hash
of (webhook id, current second), so two deliveries in one second share it, as
in WooCommerce. A registered webhook is disabled after more than 5 consecutive
failed deliveries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from .contracts.openapi_contract import Problem
from .http import (
    ApiError,
    JsonDict,
    Request,
    Response,
    hmac_sha256_base64,
    money,
    parse_iso,
    to_decimal,
)
from .platform import SandboxPlatform
from .store import CatalogItem, SandboxOrder
from .webhooks import Subscription, WebhookRequest, WebhookTarget

API = r"/wp-json/wc/v3"
CONTRACT = "woocommerce_v3.json"
BATCH_LIMIT = 100
MAX_PER_PAGE = 100
SITE_URL = "http://woocommerce.sandbox.local/"
WEBHOOK_ID = "1"

STATUS_OF = {
    "pending": "pending",
    "paid": "processing",
    "fulfilled": "completed",
    "cancelled": "cancelled",
    "refunded": "refunded",
}
ACTION_FOR_STATUS = {
    "processing": "pay",
    "completed": "fulfil",
    "cancelled": "cancel",
    "refunded": "refund",
}
EVENT_TOPIC = {"created": "order.created"}
# Topics a webhook may have, and the hooks WooCommerce binds each to (class-wc-webhook.php).
TOPIC_HOOKS = {
    "order.created": ("woocommerce_new_order",),
    "order.updated": (
        "woocommerce_process_shop_order_meta",
        "woocommerce_api_edit_order",
        "woocommerce_order_edit_status",
        "woocommerce_order_status_changed",
    ),
    "order.deleted": ("wp_trash_post",),
    "product.created": (
        "woocommerce_process_product_meta",
        "woocommerce_new_product",
        "woocommerce_new_product_variation",
    ),
    "product.updated": (
        "woocommerce_process_product_meta",
        "woocommerce_update_product",
        "woocommerce_update_product_variation",
    ),
    "product.deleted": ("wp_trash_post",),
}


def wp_specialchars_decode(text: str) -> str:
    """WordPress's decode of the five HTML specials (ENT_QUOTES), done on secrets."""
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


def wc_error(status: int, code: str, message: str, **data: Any) -> Response:
    return Response.json(
        status, {"code": code, "message": message, "data": {"status": status, **data}}
    )


def gmt(dt: datetime) -> str:
    """WooCommerce's *_gmt format: no zone suffix, whole seconds."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class WooCommerceSandbox(SandboxPlatform):
    name = "woocommerce"
    default_limits: ClassVar[Mapping[str, Mapping[str, float]]] = {
        "default": {"rate": 5.0, "burst": 10.0}
    }
    default_credentials: ClassVar[Mapping[str, str]] = {
        "consumer_key": "ck_sandbox",
        "consumer_secret": "cs_sandbox",
    }
    contracts: ClassVar[Mapping[str, str]] = dict.fromkeys(
        (
            "products_batch",
            "variations_batch",
            "products_list",
            "variations_list",
            "product_create",
            "product_update",
            "orders_list",
            "order_get",
            "order_update",
            "webhooks_list",
            "webhook_create",
            "webhook_update",
        ),
        CONTRACT,
    )
    # WooCommerce disables a webhook after more than 5 consecutive failed deliveries.
    max_failed_deliveries = 5

    def __init__(self, **kwargs: Any) -> None:
        self._groups: dict[str, str] = {}
        super().__init__(**kwargs)

    def register_routes(self) -> None:
        self.add_route("POST", rf"{API}/products/batch", self.products_batch, name="products_batch")
        self.add_route(
            "POST",
            rf"{API}/products/(?P<parent>\d+)/variations/batch",
            self.variations_batch,
            name="variations_batch",
        )
        self.add_route("GET", rf"{API}/products", self.products_list, name="products_list")
        self.add_route("POST", rf"{API}/products", self.product_create, name="product_create")
        self.add_route(
            "PUT", rf"{API}/products/(?P<id>\d+)", self.product_update, name="product_update"
        )
        self.add_route(
            "GET",
            rf"{API}/products/(?P<parent>\d+)/variations",
            self.variations_list,
            name="variations_list",
        )
        self.add_route("GET", rf"{API}/orders", self.orders_list, name="orders_list")
        self.add_route("GET", rf"{API}/orders/(?P<id>\d+)", self.order_get, name="order_get")
        self.add_route("PUT", rf"{API}/orders/(?P<id>\d+)", self.order_update, name="order_update")
        self.add_route("GET", rf"{API}/webhooks", self.webhooks_list, name="webhooks_list")
        self.add_route("POST", rf"{API}/webhooks", self.webhook_create, name="webhook_create")
        self.add_route(
            "PUT", rf"{API}/webhooks/(?P<id>\d+)", self.webhook_update, name="webhook_update"
        )

    def assign_ids(self, sku: str, ids: Mapping[str, str], group: str) -> dict[str, str]:
        result = dict(ids)
        if group:
            with self.lock:
                if group not in self._groups:
                    self._groups[group] = str(self.next_id())
                result.setdefault("product_id", self._groups[group])
            result.setdefault("variant_id", str(self.next_id()))
        else:
            result.setdefault("variant_id", result.get("product_id") or str(self.next_id()))
            result.setdefault("product_id", result["variant_id"])
        return result

    def reset(self) -> None:
        super().reset()
        self._groups.clear()

    def dump_extra(self) -> JsonDict:
        return {"groups": dict(self._groups)}

    def load_extra(self, state: Mapping[str, Any]) -> None:
        self._groups = dict(state.get("groups", {}))

    # ---- errors, auth, limits

    def error_response(self, status: int, code: str, message: str) -> Response:
        if status >= 500:
            page = (
                f"<!DOCTYPE html><html><head><title>{status} Service Unavailable</title></head>"
                f"<body><h1>{status}</h1><p>The server is temporarily unable to service your "
                "request.</p></body></html>"
            )
            return Response.text(status, page, "text/html")
        if status == 401:
            return wc_error(
                401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources."
            )
        if status == 404 and code == "not_found":
            return wc_error(
                404, "rest_no_route", "No route was found matching the URL and request method."
            )
        return wc_error(status, code, message)

    def refusal_response(self, problems: Sequence[Problem], request: Request) -> Response:
        """WordPress's rest_invalid_param, one entry per parameter in ``data.params``."""
        params: dict[str, str] = {}
        for problem in problems:
            top = problem.path_parts[0] if problem.path_parts else problem.location
            detail = "".join(f"[{part}]" for part in problem.path_parts[1:])
            params.setdefault(top, f"{top}{detail} {problem.message}")
        names = ", ".join(params)
        return wc_error(400, "rest_invalid_param", f"Invalid parameter(s): {names}", params=params)

    def rate_limited_response(self, wait_seconds: float, request: Request) -> Response:
        response = wc_error(429, "too_many_requests", "Too many requests, slow down.")
        response.headers["Retry-After"] = str(max(1, math.ceil(wait_seconds)))
        return response

    def check_auth(self, request: Request) -> Response | None:
        key, secret = request.arg("consumer_key"), request.arg("consumer_secret")
        header = request.header("Authorization")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            key, _, secret = decoded.partition(":")
        expected = (self.credentials.get("consumer_key"), self.credentials.get("consumer_secret"))
        if key and (key, secret) == expected:
            return None
        return self.error_response(401, "", "")

    # ---- products

    def _product_json(self, item: CatalogItem) -> JsonDict:
        """A simple product or a variation; what pimsync published (``content``) is
        shown as sent, a seeded item from its seed (title, barcode, options, image)."""
        is_variation = item.ids["product_id"] != item.ids["variant_id"]
        in_stock = item.quantity > 0
        data: JsonDict = {
            "id": int(item.ids["variant_id"]),
            "sku": item.sku,
            "type": "variation" if is_variation else "simple",
            "parent_id": int(item.ids["product_id"]) if is_variation else 0,
            "price": money(item.price),
            "regular_price": money(item.compare_at_price or item.price),
            "sale_price": money(item.price) if item.compare_at_price is not None else "",
            "manage_stock": True,
            "stock_quantity": item.quantity,
            "stock_status": "instock" if in_stock else "outofstock",
            "date_modified_gmt": gmt(item.updated_at),
        }
        if item.content:
            data.update(self._published_fields(item))
        else:
            data.update(self._seeded_fields(item, is_variation))
        if is_variation:
            data.pop("type")
        return data

    def _published_fields(self, item: CatalogItem) -> JsonDict:
        product = self.products.get(item.ids["product_id"], {})
        return {
            "name": product.get("title") or item.content.get("title") or item.sku,
            "global_unique_id": item.content.get("barcode", ""),
            "attributes": [
                {"name": name, "option": value}
                for name, value in item.content.get("options", {}).items()
            ],
        }

    @staticmethod
    def _seeded_fields(item: CatalogItem, is_variation: bool) -> JsonDict:
        if is_variation:
            return {
                "name": item.title or item.sku,
                "global_unique_id": item.barcode,
                "attributes": [
                    {"id": 0, "name": name, "option": value} for name, value in item.options.items()
                ],
                "image": {"src": item.image} if item.image else None,
            }
        return {
            "name": item.display_title,
            "global_unique_id": item.barcode,
            "attributes": [
                {"id": 0, "name": name, "options": [value], "variation": False}
                for name, value in item.options.items()
            ],
            "images": [{"src": item.image}] if item.image else [],
        }

    def _seeded_parent_json(self, parent_id: str, children: list[CatalogItem]) -> JsonDict:
        """A seeded variable product: no price or stock of its own, its variations' ids."""
        names: dict[str, list[str]] = {}
        for child in children:
            for name, value in child.options.items():
                names.setdefault(name, [])
                if value not in names[name]:
                    names[name].append(value)
        return {
            "id": int(parent_id),
            "name": children[0].display_title if children else f"Product {parent_id}",
            "sku": "",
            "type": "variable",
            "parent_id": 0,
            "price": money(min(c.price for c in children)) if children else "",
            "manage_stock": False,
            "stock_quantity": None,
            "global_unique_id": "",
            "attributes": [
                {"id": 0, "name": name, "options": values, "variation": True}
                for name, values in names.items()
            ],
            "images": [],
            "variations": [int(c.ids["variant_id"]) for c in children],
        }

    def _batch(self, request: Request, parent: str | None) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise ApiError(wc_error(400, "rest_invalid_json", "Invalid JSON body passed."))
        total = sum(len(body.get(k) or []) for k in ("create", "update", "delete"))
        if total > BATCH_LIMIT:
            message = f"Unable to accept more than {BATCH_LIMIT} items for this request."
            raise ApiError(
                wc_error(413, "woocommerce_rest_request_entity_too_large", message),
                refusal=message,
            )
        result: JsonDict = {}
        if body.get("create") and parent is not None:
            result["create"] = [self._variation_create(row, parent) for row in body["create"]]
            body = {k: v for k, v in body.items() if k != "create"}
        if body.get("update"):
            result["update"] = [self._update_one(row, parent) for row in body["update"]]
        for verb in ("create", "delete"):
            if body.get(verb):
                result[verb] = [
                    self._item_error(
                        row.get("id", 0) if isinstance(row, dict) else row,
                        "woocommerce_rest_sandbox_unsupported",
                        f"The sandbox does not implement batch {verb}.",
                    )
                    for row in body[verb]
                ]
        return Response.json(200, result)

    def products_batch(self, request: Request) -> Response:
        return self._batch(request, None)

    def variations_batch(self, request: Request) -> Response:
        return self._batch(request, request.params["parent"])

    def _item_error(self, item_id: Any, code: str, message: str) -> JsonDict:
        return {"id": item_id, "error": {"code": code, "message": message, "data": {"status": 400}}}

    def _update_one(self, row: Any, parent: str | None) -> JsonDict:
        if not isinstance(row, dict) or "id" not in row:
            return self._item_error(0, "woocommerce_rest_product_invalid_id", "Invalid ID.")
        item_id = row["id"]
        with self.lock:
            item = self.catalog.find_by_id("variant_id", str(item_id))
            is_variation = item is not None and item.ids["product_id"] != item.ids["variant_id"]
            if item is None or (parent is None and is_variation):
                return self._item_error(
                    item_id, "woocommerce_rest_product_invalid_id", "Invalid ID."
                )
            if parent is not None and (not is_variation or item.ids["product_id"] != parent):
                return self._item_error(
                    item_id,
                    "woocommerce_rest_product_variation_invalid_id",
                    "Invalid variation ID.",
                )
            if self.faults.item_fails(item.sku):
                self.counters.record_fault("item")
                return self._item_error(
                    item_id, "woocommerce_rest_product_not_saved", "Could not save the product."
                )
            via = "products_batch" if parent is None else "variations_batch"
            problem = self._content_problem(item, row, parent)
            if problem:
                return self._item_error(item_id, "woocommerce_rest_invalid_attribute", problem)
            self._apply_content(item, row, parent)
            return self._apply_update(item, row, via=via)

    def _apply_update(self, item: CatalogItem, row: Mapping[str, Any], *, via: str) -> JsonDict:
        """regular_price/sale_price map onto (compare_at_price, price): with a sale,
        the sale price is what buyers pay and the regular price is the "was" price."""
        regular = item.compare_at_price if item.compare_at_price is not None else item.price
        sale = item.price if item.compare_at_price is not None else None
        try:
            if "regular_price" in row:
                regular = self._price_field(row, "regular_price")
            if "sale_price" in row:
                sale = None if row["sale_price"] == "" else self._price_field(row, "sale_price")
        except ValueError as exc:
            return self._item_error(row["id"], "rest_invalid_param", str(exc))
        quantity = None
        if "stock_quantity" in row:
            if row.get("manage_stock") is False:
                return self._item_error(
                    row["id"], "rest_invalid_param", "stock_quantity needs manage_stock."
                )
            if not isinstance(row["stock_quantity"], int):
                return self._item_error(
                    row["id"], "rest_invalid_param", "stock_quantity is not of type integer."
                )
            quantity = row["stock_quantity"]
        touches_price = "regular_price" in row or "sale_price" in row
        if touches_price:
            self.catalog.set_values(
                item.sku,
                price=sale if sale is not None else regular,
                compare_at_price=regular if sale is not None else None,
                clear_compare_at=sale is None,
            )
            self.counters.count_items("price", 1)
        if quantity is not None:
            self.write_quantity(item, quantity, via=via)
            self.counters.count_items("quantity", 1)
        # Saving a product fires product.updated, changed values or not.
        self.item_changed(item, price=touches_price, quantity=quantity is not None)
        return self._product_json(item)

    # ---- creating products (publishing) and their content

    def _parent_options(self, parent: str) -> dict[str, set[str]]:
        attributes = self.products.get(parent, {}).get("attributes", [])
        return {
            str(a.get("name")): {str(o) for o in a.get("options") or []}
            for a in attributes
            if a.get("variation")
        }

    def _content_problem(
        self, item: CatalogItem | None, row: Mapping[str, Any], parent: str | None
    ) -> str:
        sku = row.get("sku")
        if sku and (other := self.catalog.get(str(sku))) is not None and other is not item:
            return f"Invalid or duplicated SKU: {sku}."
        if parent is None or "attributes" not in row:
            return ""
        offered = self._parent_options(parent)
        for attribute in row["attributes"]:
            name, option = str(attribute["name"]), str(attribute["option"])
            if option not in offered.get(name, set()):
                return f"{name}: {option} is not an option of the parent product for variations."
        return ""

    def _apply_content(self, item: CatalogItem, row: Mapping[str, Any], parent: str | None) -> None:
        """A variation's or simple product's own content; a simple product's texts and
        images belong to its product record."""
        if "global_unique_id" in row:
            item.content["barcode"] = str(row["global_unique_id"])
        if "attributes" in row and parent is not None:
            item.content["options"] = {str(a["name"]): str(a["option"]) for a in row["attributes"]}
        if "sku" in row and row["sku"] and row["sku"] != item.sku:
            self.catalog.remove(item.sku)
            item.sku = str(row["sku"])
            self.catalog.put(item)
        if parent is None:
            self._product_fields(item.ids["product_id"], row)
        item.content.setdefault("product", item.ids["product_id"])

    def _product_fields(self, product_id: str, row: Mapping[str, Any]) -> None:
        fields: dict[str, Any] = {}
        for key, name in (("name", "title"), ("description", "description"), ("type", "type")):
            if key in row:
                fields[name] = row[key]
        if "images" in row:
            fields["images"] = [str(image["src"]) for image in row["images"]]
        if "attributes" in row:
            fields["attributes"] = list(row["attributes"])
            fields["options"] = [str(a["name"]) for a in row["attributes"]]
        if "sku" in row:
            fields["sku"] = row["sku"]
        if fields:
            self.product_put(product_id, fields)

    def product_create(self, request: Request) -> Response:
        row = request.json()
        with self.lock:
            sku = str(row.get("sku") or "")
            if sku and (self.catalog.get(sku) is not None or self._parent_by_sku(sku)):
                return wc_error(400, "product_invalid_sku", "Invalid or duplicated SKU.")
            product_id = str(self.next_id())
            self._product_fields(product_id, {"type": "simple", **row})
            if row.get("type", "simple") == "variable":
                return Response.json(201, self._parent_json(product_id))
            item = CatalogItem(
                sku=sku or f"woo-{product_id}",
                ids={"product_id": product_id, "variant_id": product_id},
                price=Decimal("0"),
                quantity=0,
                content={"product": product_id, "barcode": str(row.get("global_unique_id", ""))},
            )
            self.catalog.put(item)
            return Response.json(
                201, self._apply_update(item, {"id": int(product_id), **row}, via="product_create")
            )

    def product_update(self, request: Request) -> Response:
        product_id = request.params["id"]
        row = request.json()
        with self.lock:
            item = self.catalog.find_by_id("variant_id", product_id)
            if item is not None and item.ids["product_id"] == product_id:
                problem = self._content_problem(item, row, None)
                if problem:
                    return wc_error(400, "product_invalid_sku", problem)
                self._apply_content(item, row, None)
                return Response.json(
                    200,
                    self._apply_update(item, {"id": int(product_id), **row}, via="product_update"),
                )
            if product_id not in self.products:
                return wc_error(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
            sku = row.get("sku")
            if sku and (
                self.catalog.get(str(sku))
                or self._parent_by_sku(str(sku)) not in (None, product_id)
            ):
                return wc_error(400, "product_invalid_sku", "Invalid or duplicated SKU.")
            self._product_fields(product_id, row)
            return Response.json(200, self._parent_json(product_id))

    def _parent_by_sku(self, sku: str) -> str | None:
        for product_id, product in self.products.items():
            if product.get("type") == "variable" and product.get("sku") == sku:
                return product_id
        return None

    def _parent_json(self, product_id: str) -> JsonDict:
        product = self.products[product_id]
        children = [
            int(i.ids["variant_id"])
            for i in self.catalog.items()
            if i.ids["product_id"] == product_id and i.ids["variant_id"] != product_id
        ]
        return {
            "id": int(product_id),
            "name": product.get("title", ""),
            "type": "variable",
            "sku": product.get("sku", ""),
            "description": product.get("description", ""),
            "images": [{"src": src} for src in product.get("images", [])],
            "attributes": product.get("attributes", []),
            "variations": sorted(children),
            "price": "",
            "manage_stock": False,
            "stock_quantity": None,
        }

    def _variation_create(self, row: Any, parent: str) -> JsonDict:
        with self.lock:
            if self.products.get(parent, {}).get("type") != "variable":
                return self._item_error(0, "woocommerce_rest_product_invalid_id", "Invalid ID.")
            sku = str(row.get("sku") or "")
            problem = self._content_problem(None, row, parent)
            if problem:
                return self._item_error(0, "woocommerce_rest_invalid_attribute", problem)
            if self.faults.item_fails(sku):
                self.counters.record_fault("item")
                return self._item_error(0, "woocommerce_rest_product_not_saved", "Could not save.")
            variation_id = str(self.next_id())
            item = CatalogItem(
                sku=sku or f"woo-{variation_id}",
                ids={"product_id": parent, "variant_id": variation_id},
                price=Decimal("0"),
                quantity=0,
                content={"product": parent},
            )
            self.catalog.put(item)
            self._apply_content(item, row, parent)
            return self._apply_update(
                item, {"id": int(variation_id), **row}, via="variations_batch"
            )

    def _price_field(self, row: Mapping[str, Any], name: str) -> Decimal:
        value = row[name]
        if not isinstance(value, str):
            raise ValueError(f"{name} is not of type string.")
        price = to_decimal(value)
        if price < 0:
            raise ValueError(f"{name} must not be negative.")
        return price

    def _paged(
        self,
        request: Request,
        rows: Sequence[Any],
        render: Callable[[Any], JsonDict] | None = None,
    ) -> Response:
        """One page of ``rows`` (rendered with ``render`` when given: only the page's)."""
        per_page, page = self._paging(request)
        total = len(rows)
        pages = max(1, math.ceil(total / per_page)) if total else 0
        if total and page > pages:
            return wc_error(
                400,
                "rest_post_invalid_page_number",
                "The page number requested is larger than the number of pages available.",
            )
        chunk = list(rows[(page - 1) * per_page : page * per_page])
        if render is not None:
            chunk = [render(row) for row in chunk]
        fields = [f for f in request.arg("_fields").split(",") if f]
        if fields:
            chunk = [{k: v for k, v in row.items() if k in fields} for row in chunk]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)}
        links = []
        if page > 1:
            links.append(f'<{self._page_url(request, page - 1)}>; rel="prev"')
        if page < pages:
            links.append(f'<{self._page_url(request, page + 1)}>; rel="next"')
        if links:
            headers["Link"] = ", ".join(links)
        return Response.json(200, chunk, headers)

    def _page_url(self, request: Request, page: int) -> str:
        query = {k: v[0] for k, v in request.query.items() if k not in ("page", "consumer_secret")}
        query["page"] = str(page)
        pairs = "&".join(f"{k}={v}" for k, v in query.items())
        return f"{SITE_URL}wp-json/wc/v3{request.path.removeprefix('/wp-json/wc/v3')}?{pairs}"

    def _paging(self, request: Request) -> tuple[int, int]:
        try:
            per_page = int(request.arg("per_page", "10"))
            page = int(request.arg("page", "1"))
        except ValueError as exc:
            raise ApiError(wc_error(400, "rest_invalid_param", "Invalid parameter(s).")) from exc
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ApiError(
                wc_error(
                    400,
                    "rest_invalid_param",
                    "Invalid parameter(s): per_page",
                    params={
                        "per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"
                    },
                )
            )
        if page < 1:
            raise ApiError(wc_error(400, "rest_invalid_param", "Invalid parameter(s): page"))
        return per_page, page

    def _include(self, request: Request) -> list[str] | None:
        values = request.query.get("include", []) + request.query.get("include[]", [])
        if not values:
            return None
        return [part for value in values for part in value.split(",") if part]

    def products_list(self, request: Request) -> Response:
        """Simple products and variable parents (the parents only without ``sku`` or
        ``include``, which name sellable items), by id (``orderby=id``) or newest first."""
        include = self._include(request)
        sku = request.arg("sku")
        with self.lock:
            items = self.catalog.items()
            rows: list[tuple[int, Any]] = [
                (int(i.ids["variant_id"]), i)
                for i in items
                if i.ids["product_id"] == i.ids["variant_id"] and (not sku or i.sku == sku)
            ]
            if include is not None:
                wanted = set(include)
                rows = [r for r in rows if r[1].ids["variant_id"] in wanted]
            elif not sku:
                # Seeded variable products: their variations grouped under the parent.
                children: dict[str, list[CatalogItem]] = {}
                for item in items:
                    parent = item.ids["product_id"]
                    if parent != item.ids["variant_id"] and parent not in self.products:
                        children.setdefault(parent, []).append(item)
                for parent_id, members in children.items():
                    members.sort(key=lambda i: int(i.ids["variant_id"]))
                    rows.append((int(parent_id), (parent_id, members)))
            # Variable products created through the API (published by pimsync).
            rows += [
                (int(pid), pid)
                for pid, product in self.products.items()
                if product.get("type") == "variable"
                and (not sku or product.get("sku") == sku)
                and (include is None or pid in include)
            ]
            rows.sort(key=lambda r: r[0], reverse=self._newest_first(request))
            return self._paged(request, [r[1] for r in rows], self._render_product)

    def _render_product(self, row: Any) -> JsonDict:
        if isinstance(row, CatalogItem):
            return self._product_json(row)
        if isinstance(row, str):
            return self._parent_json(row)
        parent_id, members = row
        return self._seeded_parent_json(parent_id, members)

    def _newest_first(self, request: Request) -> bool:
        """WooCommerce lists newest first (orderby=date, order=desc) unless asked;
        the sandbox's ids grow with creation, so both orders go by id."""
        return request.arg("order", "desc") == "desc"

    def variations_list(self, request: Request) -> Response:
        parent = request.params["parent"]
        include = self._include(request)
        with self.lock:
            items = [
                i
                for i in self.catalog.items()
                if i.ids["product_id"] == parent and i.ids["variant_id"] != parent
            ]
            if include is not None:
                wanted = set(include)
                items = [i for i in items if i.ids["variant_id"] in wanted]
            items.sort(key=lambda i: int(i.ids["variant_id"]), reverse=self._newest_first(request))
            return self._paged(request, items, self._product_json)

    # ---- orders

    def render_order(self, order: SandboxOrder) -> JsonDict:
        paid = order.status in ("paid", "fulfilled", "refunded")
        return {
            "id": int(order.id),
            "parent_id": 0,
            "number": str(order.number),
            "order_key": f"wc_order_{order.id}",
            "status": STATUS_OF[order.status],
            "currency": order.currency,
            "date_created_gmt": gmt(order.created_at),
            "date_modified_gmt": gmt(order.updated_at),
            "date_paid_gmt": gmt(order.created_at) if paid else None,
            "date_completed_gmt": gmt(order.updated_at) if order.status == "fulfilled" else None,
            "total": money(order.total),
            "customer_id": 0,
            "billing": {"email": order.email, "phone": order.phone},
            "line_items": [
                {
                    "id": int(line.line_id),
                    "name": line.sku,
                    "product_id": int(line.ids.get("product_id") or 0),
                    "variation_id": (
                        int(line.ids["variant_id"])
                        if line.ids.get("variant_id") != line.ids.get("product_id")
                        else 0
                    ),
                    "quantity": line.quantity,
                    "subtotal": money(line.price * line.quantity),
                    "total": money(line.price * line.quantity),
                    "sku": line.sku,
                    "price": float(line.price),
                }
                for line in order.lines
            ],
            "refunds": [],
        }

    def orders_list(self, request: Request) -> Response:
        since_text = request.arg("modified_after")
        orders = self.orders.all()
        if since_text:
            try:
                since = parse_iso(since_text).replace(microsecond=0)
            except ValueError as exc:
                raise ApiError(
                    wc_error(400, "rest_invalid_param", "Invalid parameter(s): modified_after")
                ) from exc
            # WooCommerce stores whole seconds and the filter is exclusive.
            orders = [o for o in orders if o.updated_at.replace(microsecond=0) > since]
        if request.arg("order", "desc") == "desc":
            orders.reverse()
        per_page, page = self._paging(request)
        self.mark_orders_seen(orders[(page - 1) * per_page : page * per_page])
        return self._paged(request, [self.render_order(o) for o in orders])

    def order_get(self, request: Request) -> Response:
        order = self.orders.get(request.params["id"])
        if order is None:
            return wc_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return Response.json(200, self.render_order(order))

    def order_update(self, request: Request) -> Response:
        order = self.orders.get(request.params["id"])
        if order is None:
            return wc_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        body = request.json()
        status = body.get("status") if isinstance(body, dict) else None
        if status == STATUS_OF[order.status]:
            return Response.json(200, self.render_order(order))
        action = ACTION_FOR_STATUS.get(str(status))
        if action is None:
            return wc_error(400, "rest_invalid_param", f"Sandbox cannot set status {status!r}.")
        try:
            order = self.order_transition(order.id, action)
        except ValueError as exc:
            return wc_error(400, "woocommerce_rest_invalid_order_status", str(exc))
        self.emit_order_event(order, "updated")
        return Response.json(200, self.render_order(order))

    def order_webhook_topic(self, event: str) -> str | None:
        return EVENT_TOPIC.get(event, "order.updated")

    def item_webhooks(
        self, item: CatalogItem, *, price: bool, quantity: bool, cause: str
    ) -> list[tuple[str, bytes]]:
        """product.updated when a product or variation is saved (the REST API, the
        admin). A checkout's or cancellation's stock change is written directly
        (wc_update_product_stock) and fires no product.updated."""
        if cause in ("sale", "restock") or not (price or quantity):
            return []
        return [("product.updated", json.dumps(self._product_json(item)).encode())]

    def webhook_request(
        self, topic: str, body: bytes, target: WebhookTarget, *, stamp: datetime, subject: str
    ) -> WebhookRequest:
        webhook_id = target.webhook_id or WEBHOOK_ID
        # WooCommerce: wp_hash(webhook_id . time()) - unique only per second.
        delivery_id = hashlib.sha256(f"{webhook_id}{int(time.time())}".encode()).hexdigest()[:32]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7)",
            "X-WC-Webhook-Source": SITE_URL,
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": topic.split(".", 1)[0],
            "X-WC-Webhook-Event": topic.split(".", 1)[1],
            "X-WC-Webhook-Signature": hmac_sha256_base64(
                wp_specialchars_decode(target.secret), body
            ),
            "X-WC-Webhook-ID": webhook_id,
            "X-WC-Webhook-Delivery-ID": delivery_id,
        }
        return WebhookRequest(topic=topic, headers=headers, body=body, delivery_id=delivery_id)

    # ---- webhooks (the REST API's own resource)

    def _webhook_json(self, subscription: Subscription) -> JsonDict:
        resource, _, event = subscription.topic.partition(".")
        return {
            "id": int(subscription.id),
            "name": subscription.name,
            "status": subscription.status,
            "topic": subscription.topic,
            "resource": resource,
            "event": event,
            "hooks": list(TOPIC_HOOKS.get(subscription.topic, ())),
            "delivery_url": subscription.address,
            "date_created": gmt(subscription.created_at),
            "date_created_gmt": gmt(subscription.created_at),
            "date_modified": gmt(subscription.updated_at),
            "date_modified_gmt": gmt(subscription.updated_at),
        }

    def webhooks_list(self, request: Request) -> Response:
        status = request.arg("status", "all")
        with self.lock:
            found = sorted(self.subscriptions.values(), key=lambda sub: int(sub.id), reverse=True)
        rows = [self._webhook_json(sub) for sub in found if status in ("all", sub.status)]
        return self._paged(request, rows)

    def _webhook_fields(self, body: Mapping[str, Any]) -> dict[str, str]:
        """The writable fields of a webhook body (the contract checked their types)."""
        if "topic" in body and body["topic"] not in TOPIC_HOOKS:
            raise ApiError(
                wc_error(400, "woocommerce_rest_webhook_invalid_topic", "Webhook topic is invalid.")
            )
        # The subscription calls the delivery URL its address.
        return {
            ("address" if key == "delivery_url" else key): str(value) for key, value in body.items()
        }

    def webhook_create(self, request: Request) -> Response:
        body = request.json()
        fields = self._webhook_fields(body)
        subscription = self.subscription_add(
            topic=fields["topic"],
            address=fields["address"],
            secret=fields.get("secret", ""),
            name=fields.get("name", ""),
            status=fields.get("status", "active"),
        )
        return Response.json(201, self._webhook_json(subscription))

    def webhook_update(self, request: Request) -> Response:
        webhook_id = request.params["id"]
        if webhook_id not in self.subscriptions:
            return wc_error(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
        subscription = self.subscription_update(webhook_id, **self._webhook_fields(request.json()))
        return Response.json(200, self._webhook_json(subscription))
