"""Shopify: publishing a product and pushing its content, with ``productSet`` (2026-01).

``productSet(identifier:, input:, synchronous: true)`` is Shopify's mutation for a
product kept in sync from an external source: the fields given replace what the
product has, list fields (``productOptions``, ``variants``, ``files``) replace the
whole list, fields left out are not touched. pimsync uses it both ways:

* publish: the whole product - title, ``descriptionHtml``, vendor, type, handle,
  status ACTIVE, ``productOptions`` (a product without options gets Shopify's own
  "Title" / "Default Title"), every variant with ``optionValues``, SKU, barcode,
  price, compare-at price and a tracked inventory item, and the images as ``files``
  by URL (Shopify downloads them). The identifier is the product id once known,
  else the handle: publishing again after a lost answer updates the product made
  the first time instead of making a second one. The quantities follow in one
  ``inventorySetQuantities`` at the channel's location (productSet's own
  ``inventoryQuantities`` are taken for variants being created only, so a second
  publish of the same product would be refused).
* content push: the identifier is the product id; the texts always, ``files`` only
  when the images changed (Shopify would download them again), ``productOptions``
  and every variant pimsync keeps there (with their ids) only when a variant's
  options, barcode or title changed - a variant left out of ``variants`` would be
  deleted.

The mutation is all or nothing: a userError naming a variant fails that variant and
the others are reported as not applied; any other userError fails them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
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
    QuantityUpdate,
    VariantContent,
)
from .errors import ConnectorError, FailureKind, PermanentError, RetryableError
from .http import item_result, ok_result
from .publish import with_quantities

MAX_VARIANTS = 250  # productSet in synchronous mode; every input array is capped at 250
PRODUCT_SET_COST = 10
DEFAULT_OPTION = ("Title", "Default Title")  # Shopify's option of a product without options
RETRYABLE_CODES = frozenset({"JOB_ERROR"})

PRODUCT_SET_MUTATION = """
mutation SetProduct($identifier: ProductSetIdentifiers, $input: ProductSetInput!,
                    $synchronous: Boolean) {
  productSet(identifier: $identifier, input: $input, synchronous: $synchronous) {
    product { id handle variants(first: 250) { nodes { id sku inventoryItem { id } } } }
    userErrors { code field message }
  }
}
"""


class _Transport(Protocol):
    """What the content calls need of the ShopifyConnector they are mixed into."""

    location_id: str

    def execute(
        self,
        query: str,
        variables: Mapping[str, Any],
        *,
        cost: float = 1.0,
        max_pace: float | None = None,
    ) -> Any: ...

    def push_quantities(self, items: Sequence[QuantityUpdate]) -> list[ItemResult]: ...


def option_values(product: ProductContent, variant: VariantContent) -> list[dict[str, str]]:
    if product.option_names:
        return [{"optionName": name, "name": value} for name, value in variant.options]
    if len(product.variants) > 1:  # variants without options: told apart by title or SKU
        return [{"optionName": "Variant", "name": variant.title or variant.sku}]
    return [{"optionName": DEFAULT_OPTION[0], "name": DEFAULT_OPTION[1]}]


def product_options(product: ProductContent) -> list[dict[str, Any]]:
    names: dict[str, list[str]] = {}
    for variant in product.variants:
        for value in option_values(product, variant):
            values = names.setdefault(value["optionName"], [])
            if value["name"] not in values:
                values.append(value["name"])
    return [
        {"name": name, "position": position, "values": [{"name": v} for v in values]}
        for position, (name, values) in enumerate(names.items(), start=1)
    ]


def _texts(product: ProductContent) -> dict[str, Any]:
    return {
        "title": product.title,
        "descriptionHtml": product.description,
        "vendor": product.vendor,
        "productType": product.product_type,
    }


def _files(product: ProductContent) -> list[dict[str, str]]:
    return [
        {"originalSource": url, "contentType": "IMAGE", "alt": product.title}
        for url in product.image_urls
    ]


def _variant_content(product: ProductContent, variant: VariantContent) -> dict[str, Any]:
    row: dict[str, Any] = {
        "optionValues": option_values(product, variant),
        "sku": variant.channel_sku,
        "barcode": variant.barcode or None,
    }
    if variant.listing.variant_id:
        row["id"] = variant.listing.variant_id
    return row


def _variant_to_publish(product: ProductContent, variant: VariantContent) -> dict[str, Any]:
    row = _variant_content(product, variant)
    compare_at = variant.compare_at_price
    row.update(
        price=f"{variant.price:.2f}",
        compareAtPrice=None if compare_at is None else f"{compare_at:.2f}",
        inventoryItem={"sku": variant.channel_sku, "tracked": True},
    )
    return row


def _identifier(product: ProductContent) -> dict[str, str]:
    return {"id": product.product_ref} if product.product_ref else {"handle": product.handle}


def _user_error(error: Any) -> ConnectorError:
    code = str(error.get("code") or "USER_ERROR") if isinstance(error, Mapping) else "USER_ERROR"
    message = str(error.get("message", "")) if isinstance(error, Mapping) else str(error)
    if code in RETRYABLE_CODES:
        return RetryableError(message, code=code, status=200)
    return PermanentError(message, code=code, status=200)


def _variant_position(error: Any) -> int | None:
    """The variant a userError names (field ["input", "variants", "<n>", ...])."""
    field = error.get("field") if isinstance(error, Mapping) else None
    if isinstance(field, list) and len(field) > 2 and field[:2] == ["input", "variants"]:
        try:
            return int(field[2])
        except (TypeError, ValueError):
            return None
    return None


def _refusals(errors: Sequence[Any], skus: Sequence[str]) -> dict[str, ConnectorError]:
    """SKU -> why it was not applied, for a productSet answered with userErrors."""
    named: dict[str, ConnectorError] = {}
    for error in errors:
        position = _variant_position(error)
        if position is not None and 0 <= position < len(skus):
            named.setdefault(skus[position], _user_error(error))
    if not named:
        whole = _user_error(errors[0])
        return dict.fromkeys(skus, whole)
    others = PermanentError(
        "not applied: Shopify refused another variant of the product", code="BATCH_REJECTED"
    )
    return {sku: named.get(sku, others) for sku in skus}


def _product_set(
    transport: _Transport, product: ProductContent, data_input: dict[str, Any]
) -> tuple[Mapping[str, Any], list[Any]]:
    """Run productSet; (the product it answered, its userErrors)."""
    variables = {"identifier": _identifier(product), "input": data_input, "synchronous": True}
    data = transport.execute(PRODUCT_SET_MUTATION, variables, cost=PRODUCT_SET_COST)
    payload = data.get("productSet")
    if not isinstance(payload, Mapping):
        raise PermanentError("productSet missing in the response", code="unexpected_response")
    errors = list(payload.get("userErrors") or [])
    answered = payload.get("product")
    return (answered if isinstance(answered, Mapping) else {}), errors


class ShopifyContent:
    """publish_product / push_content of ShopifyConnector (see the module docstring)."""

    def publish_product(self: _Transport, product: ProductContent) -> PublishResult:
        if len(product.variants) > MAX_VARIANTS:
            raise PermanentError(
                f"{len(product.variants)} variants: productSet takes {MAX_VARIANTS} at most",
                code="too_many_variants",
            )
        if not self.location_id:
            raise PermanentError("platform_config.location_id is not set", code="config")
        data_input = {
            **_texts(product),
            "handle": product.handle,
            "status": "ACTIVE",
            "productOptions": product_options(product),
            "variants": [_variant_to_publish(product, v) for v in product.variants],
        }
        if product.image_urls:
            data_input["files"] = _files(product)
        answered, errors = _product_set(self, product, data_input)
        skus = [v.channel_sku for v in product.variants]
        if errors or not answered:
            refused = _refusals(errors, skus) if errors else {}
            missing = PermanentError("productSet answered no product", code="unexpected_response")
            return PublishResult(
                "",
                [
                    PublishedVariant(
                        v.sku, v.listing, item_result(v.sku, refused.get(v.channel_sku, missing))
                    )
                    for v in product.variants
                ],
            )
        product_id = str(answered.get("id") or "")
        nodes = (answered.get("variants") or {}).get("nodes") or []
        by_sku = {str(n.get("sku")): n for n in nodes if isinstance(n, Mapping)}
        published = []
        for variant in product.variants:
            node = by_sku.get(variant.channel_sku)
            if node is None:
                result = ItemResult(
                    variant.sku,
                    FailureKind.PERMANENT,
                    "not_confirmed",
                    "not in the product's variants",
                )
                published.append(PublishedVariant(variant.sku, variant.listing, result))
                continue
            ref = ListingRef(
                sku=variant.sku,
                listing_sku=variant.channel_sku,
                product_id=product_id,
                variant_id=str(node.get("id") or ""),
                inventory_item_id=str((node.get("inventoryItem") or {}).get("id") or ""),
            )
            published.append(
                PublishedVariant(variant.sku, ref, ok_result(variant.sku, http_status=200))
            )
        return PublishResult(product_id, with_quantities(self.push_quantities, product, published))

    def push_content(self: _Transport, items: Sequence[ContentUpdate]) -> list[ItemResult]:
        results: list[ItemResult | None] = [None] * len(items)
        by_product: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            if item.listing.product_id:
                by_product.setdefault(item.listing.product_id, []).append(index)
            else:
                results[index] = ItemResult(
                    item.listing.sku, FailureKind.PERMANENT, "missing_id", "no product id"
                )
        for product_id, indexes in by_product.items():
            group = [items[i] for i in indexes]
            for index, outcome in zip(indexes, _push_product(self, product_id, group), strict=True):
                results[index] = outcome
        return [r for r in results if r is not None]


def _push_product(
    transport: _Transport, product_id: str, group: Sequence[ContentUpdate]
) -> list[ItemResult]:
    """One productSet with what changed of one product; a result per item."""
    product = replace(group[0].product, product_ref=product_id)
    changed = frozenset().union(*(item.changed for item in group))
    data_input = _texts(product)
    if CONTENT_IMAGES in changed:
        data_input["files"] = _files(product)
    if CONTENT_VARIANT in changed:
        data_input["productOptions"] = product_options(product)
        data_input["variants"] = [_variant_content(product, v) for v in product.variants]
    try:
        _, errors = _product_set(transport, product, data_input)
    except ConnectorError as exc:
        return [item_result(item.listing.sku, exc) for item in group]
    refused = _refusals(errors, [v.channel_sku for v in product.variants]) if errors else {}
    return [
        item_result(item.listing.sku, refused[item.listing.channel_sku])
        if item.listing.channel_sku in refused
        else ok_result(item.listing.sku, http_status=200)
        for item in group
    ]
