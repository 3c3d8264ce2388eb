"""WooCommerce: publishing a product and pushing its content (REST API v3).

* A product of one variant without options is a **simple** product: ``POST
  products`` with name, description, SKU, ``global_unique_id`` (the barcode:
  WooCommerce 9.2+), regular / sale price, stock and ``images`` (``[{src}]``: the
  store downloads them).
* Otherwise a **variable** product (``POST products`` with the options as
  ``attributes`` ``[{name, options, variation: true, visible: true}]`` and the
  product handle as its SKU) and its variations (``POST
  products/{id}/variations/batch`` ``create``, 100 per call), each with SKU,
  barcode, prices, stock and ``attributes`` ``[{name, option}]``.
* Publishing twice makes nothing twice: the product is looked up by its SKU first
  (``GET products?sku=``) and updated (``PUT products/{id}``) when it exists, and so
  are variations by theirs (``GET products/{id}/variations``).
* Content pushes: a simple product's name, description, barcode (and images when
  they changed) through ``products/batch`` ``update``; a variable product's through
  ``PUT products/{id}`` and, when a variant's options / barcode changed, its
  variations through ``variations/batch`` ``update``. WooCommerce reports each item
  of a batch on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .base import (
    CONTENT_IMAGES,
    CONTENT_VARIANT,
    ContentUpdate,
    ItemResult,
    ListingRef,
    ProductContent,
    PublishedVariant,
    PublishResult,
    VariantContent,
)
from .errors import ConnectorError, FailureKind, PermanentError
from .http import HttpResult, body_snippet, item_result, ok_result

BATCH_LIMIT = 100


class _Transport(Protocol):
    """What the content calls need of the WooCommerceConnector they are mixed into."""

    def _json(self, method: str, path: str, **kwargs: Any) -> tuple[Any, HttpResult]: ...


def _money(value: Any) -> str:
    return f"{value:.2f}"


def _prices(variant: VariantContent) -> dict[str, Any]:
    compare_at = variant.compare_at_price
    if compare_at is not None and compare_at > variant.price:
        return {"regular_price": _money(compare_at), "sale_price": _money(variant.price)}
    return {"regular_price": _money(variant.price), "sale_price": ""}


def _stock(variant: VariantContent) -> dict[str, Any]:
    return {"manage_stock": True, "stock_quantity": max(0, variant.quantity)}


def _images(product: ProductContent) -> list[dict[str, str]]:
    return [{"src": url} for url in product.image_urls]


def _texts(product: ProductContent) -> dict[str, Any]:
    return {"name": product.title, "description": product.description}


def _attributes(product: ProductContent) -> list[dict[str, Any]]:
    options: dict[str, list[str]] = {name: [] for name in product.option_names}
    for variant in product.variants:
        for name, value in _variant_options(product, variant):
            options.setdefault(name, [])
            if value not in options[name]:
                options[name].append(value)
    return [
        {"name": name, "position": position, "visible": True, "variation": True, "options": values}
        for position, (name, values) in enumerate(options.items())
    ]


def _variant_options(product: ProductContent, variant: VariantContent) -> list[tuple[str, str]]:
    if product.option_names:
        return list(variant.options)
    return [("Variant", variant.title or variant.sku)]  # variants told apart by title or SKU


def _variation_content(product: ProductContent, variant: VariantContent) -> dict[str, Any]:
    return {
        "sku": variant.channel_sku,
        "global_unique_id": variant.barcode,
        "attributes": [
            {"name": name, "option": value} for name, value in _variant_options(product, variant)
        ],
    }


def _simple_body(product: ProductContent, variant: VariantContent) -> dict[str, Any]:
    body = {
        **_texts(product),
        "type": "simple",
        "status": "publish",
        "sku": variant.channel_sku,
        "global_unique_id": variant.barcode,
        **_prices(variant),
        **_stock(variant),
    }
    if product.image_urls:
        body["images"] = _images(product)
    return body


def _parent_body(product: ProductContent) -> dict[str, Any]:
    body = {
        **_texts(product),
        "type": "variable",
        "status": "publish",
        "sku": product.handle,
        "attributes": _attributes(product),
    }
    if product.image_urls:
        body["images"] = _images(product)
    return body


def _product_id(data: Any, result: HttpResult) -> str:
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), int):
        raise PermanentError(
            f"product answer without an id: {body_snippet(result.body)}",
            code="unexpected_response",
            status=result.status,
        )
    return str(data["id"])


def _existing_id(transport: _Transport, sku: str) -> str:
    """The id of the product with this SKU ("" when none)."""
    data, _ = transport._json("GET", "products", params={"sku": sku, "_fields": "id,sku"})
    for row in data if isinstance(data, list) else []:
        if isinstance(row, Mapping) and row.get("sku") == sku and isinstance(row.get("id"), int):
            return str(row["id"])
    return ""


def _existing_variations(transport: _Transport, parent: str) -> dict[str, str]:
    """SKU -> variation id of the parent's variations (100 per page)."""
    found: dict[str, str] = {}
    page = 1
    while True:
        params = {"per_page": "100", "page": str(page), "_fields": "id,sku"}
        data, result = transport._json("GET", f"products/{parent}/variations", params=params)
        for row in data if isinstance(data, list) else []:
            if isinstance(row, Mapping) and row.get("sku"):
                found[str(row["sku"])] = str(row.get("id"))
        if page >= int(result.headers.get("X-WP-TotalPages", "1") or 1):
            return found
        page += 1


def _save_product(transport: _Transport, product_id: str, body: dict[str, Any]) -> str:
    if product_id:
        data, result = transport._json("PUT", f"products/{product_id}", json=body)
    else:
        data, result = transport._json("POST", "products", json=body)
    return _product_id(data, result)


def _item_result(sku: str, row: Any) -> tuple[ItemResult, str]:
    """A batch item's answer: (result, the id it names)."""
    if not isinstance(row, Mapping):
        return ItemResult(sku, FailureKind.PERMANENT, "unexpected_response", "no answer"), ""
    error = row.get("error")
    if isinstance(error, Mapping):
        data = error.get("data")
        status = data.get("status") if isinstance(data, Mapping) else 400
        return (
            ItemResult(
                sku,
                FailureKind.RETRYABLE
                if status == 429 or int(status or 400) >= 500
                else FailureKind.PERMANENT,
                str(error.get("code") or status),
                str(error.get("message") or ""),
                http_status=int(status or 400),
            ),
            "",
        )
    return ok_result(sku, http_status=200), str(row.get("id") or "")


def _batch(
    transport: _Transport, path: str, verb: str, rows: list[tuple[str, dict[str, Any]]]
) -> dict[str, tuple[ItemResult, str]]:
    """SKU -> (result, id) of a batch of one verb, 100 items per call."""
    answers: dict[str, tuple[ItemResult, str]] = {}
    for start in range(0, len(rows), BATCH_LIMIT):
        chunk = rows[start : start + BATCH_LIMIT]
        data, _ = transport._json("POST", path, json={verb: [body for _, body in chunk]})
        answered = data.get(verb) if isinstance(data, Mapping) else None
        for position, (sku, _) in enumerate(chunk):
            row = (
                answered[position]
                if isinstance(answered, list) and position < len(answered)
                else None
            )
            answers[sku] = _item_result(sku, row)
    return answers


class WooCommerceContent:
    """publish_product / push_content of WooCommerceConnector (see the module docstring)."""

    def publish_product(self: _Transport, product: ProductContent) -> PublishResult:
        if not product.has_variants:
            variant = product.variants[0]
            known = variant.listing.variant_id or _existing_id(self, variant.channel_sku)
            product_id = _save_product(self, known, _simple_body(product, variant))
            ref = ListingRef(
                sku=variant.sku,
                listing_sku=variant.channel_sku,
                product_id=product_id,
                variant_id=product_id,
            )
            return PublishResult(
                product_id,
                [PublishedVariant(variant.sku, ref, ok_result(variant.sku, http_status=200))],
            )
        known = product.product_ref or _existing_id(self, product.handle)
        parent = _save_product(self, known, _parent_body(product))
        existing = _existing_variations(self, parent) if known else {}
        creates, updates = [], []
        for variant in product.variants:
            body = {**_variation_content(product, variant), **_prices(variant), **_stock(variant)}
            variation_id = variant.listing.variant_id or existing.get(variant.channel_sku, "")
            if variation_id:
                updates.append((variant.sku, {"id": int(variation_id), **body}))
            else:
                creates.append((variant.sku, body))
        path = f"products/{parent}/variations/batch"
        answers = {**_batch(self, path, "create", creates), **_batch(self, path, "update", updates)}
        published = []
        for variant in product.variants:
            result, variation_id = answers[variant.sku]
            ref = ListingRef(
                sku=variant.sku,
                listing_sku=variant.channel_sku,
                product_id=parent,
                variant_id=variation_id,
            )
            published.append(PublishedVariant(variant.sku, ref, result))
        return PublishResult(parent, published)

    def push_content(self: _Transport, items: Sequence[ContentUpdate]) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(items)
        simple: list[int] = []
        variable: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            listing = item.listing
            if not listing.variant_id.isdigit():
                results[index] = ItemResult(
                    listing.sku, FailureKind.PERMANENT, "missing_id", "no WooCommerce id"
                )
            elif not listing.product_id or listing.product_id == listing.variant_id:
                simple.append(index)
            else:
                variable.setdefault(listing.product_id, []).append(index)
        if simple:
            for index, outcome in zip(
                simple, _push_simple(self, [items[i] for i in simple]), strict=True
            ):
                results[index] = outcome
        for parent, indexes in variable.items():
            group = [items[i] for i in indexes]
            for index, outcome in zip(indexes, _push_variable(self, parent, group), strict=True):
                results[index] = outcome
        return [r for r in results if r is not None]


def _push_simple(transport: _Transport, group: Sequence[ContentUpdate]) -> list[ItemResult]:
    rows = []
    for item in group:
        product, variant = item.product, item.variant
        body: dict[str, Any] = {
            "id": int(item.listing.variant_id),
            **_texts(product),
            "global_unique_id": variant.barcode,
        }
        if CONTENT_IMAGES in item.changed:
            body["images"] = _images(product)
        rows.append((item.listing.sku, body))
    try:
        answers = _batch(transport, "products/batch", "update", rows)
    except ConnectorError as exc:
        return [item_result(item.listing.sku, exc) for item in group]
    return [answers[item.listing.sku][0] for item in group]


def _push_variable(
    transport: _Transport, parent: str, group: Sequence[ContentUpdate]
) -> list[ItemResult]:
    product = group[0].product
    changed = frozenset().union(*(item.changed for item in group))
    body: dict[str, Any] = _texts(product)
    if CONTENT_IMAGES in changed:
        body["images"] = _images(product)
    if CONTENT_VARIANT in changed:
        body["attributes"] = _attributes(product)
    try:
        transport._json("PUT", f"products/{parent}", json=body)
        if CONTENT_VARIANT not in changed:
            return [ok_result(item.listing.sku, http_status=200) for item in group]
        rows = [
            (
                item.listing.sku,
                {"id": int(item.listing.variant_id), **_variation_content(product, item.variant)},
            )
            for item in group
        ]
        answers = _batch(transport, f"products/{parent}/variations/batch", "update", rows)
    except ConnectorError as exc:
        return [item_result(item.listing.sku, exc) for item in group]
    return [answers[item.listing.sku][0] for item in group]
