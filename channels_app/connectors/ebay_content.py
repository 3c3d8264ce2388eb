"""eBay: publishing a product and pushing its content (Sell Inventory API v1).

Publishing, in eBay's order (Sell Inventory v1.18.4, trimmed in sandbox/contracts/):

1. ``bulkCreateOrReplaceInventoryItem`` (25 SKUs per call): each variant's
   inventory item - product title, description, ``aspects`` (the options, and
   Brand = vendor), ``imageUrls``, ``ean`` / ``upc`` (the barcode: 12 digits = UPC,
   otherwise EAN), ``condition`` and the ship-to-home quantity.
2. A product with variants: ``createOrReplaceInventoryItemGroup`` keyed by the
   product handle - title, description, images, the variants' SKUs and
   ``variesBy.specifications`` (each option with its values).
3. ``bulkCreateOffer`` (25 per call): a fixed-price offer per SKU on the channel's
   marketplace with price, quantity, ``categoryId``, business policies and
   ``merchantLocationKey`` from the channel's platform_config (eBay needs them to
   publish; docs/publishing.md). An offer the SKU already has (a publish after a
   lost answer) is found with ``getOffers`` and reused.
4. ``publishOffer`` (one variant) or ``publishOfferByInventoryItemGroup``: the
   listing goes live; its listing id is the product's id on the channel.

Content pushes: eBay's inventory item is replaced whole (``createOrReplace``; a
field left out is deleted), so the items are read first (``bulkGetInventoryItem``)
and written back with new product data and everything else as read - quantity
included. A quantity push racing this read-modify-write can only leave eBay
showing fewer units than pimsync's (the listing shows the smaller of the item's and
the offer's quantity, and the offer is not touched), never more. A product with
variants has its group replaced too. eBay updates the live listing itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from .base import (
    ChannelConfig,
    ContentUpdate,
    ItemResult,
    ListingRef,
    ProductContent,
    PublishedVariant,
    PublishResult,
    VariantContent,
)
from .errors import ConnectorError, FailureKind, PermanentError
from .http import HttpResult, item_result, ok_result

MAX_BULK = 25
LOCALE = "en_US"
CONTENT_LANGUAGE = {"Content-Language": "en-US"}
# What a publish needs from platform_config (eBay refuses to publish without them).
PUBLISH_SETTINGS = (
    "category_id",
    "fulfillment_policy_id",
    "payment_policy_id",
    "return_policy_id",
    "merchant_location_key",
)
RETRYABLE_ERROR_IDS = frozenset({"25001", "25025"})
# What of an inventory item read back is written again around the new product data
# (InventoryItemWithSkuLocale's writable fields).
KEPT_ITEM_FIELDS = (
    "availability",
    "condition",
    "conditionDescription",
    "conditionDescriptors",
    "packageWeightAndSize",
)


class _Transport(Protocol):
    """What the content calls need of the EbayConnector they are mixed into."""

    config: ChannelConfig
    inventory_url: str
    marketplace_id: str
    currency: str

    def _call(self, method: str, url: str, **kwargs: Any) -> HttpResult: ...


def _aspects(product: ProductContent, variant: VariantContent | None) -> dict[str, list[str]]:
    aspects: dict[str, list[str]] = {}
    if product.vendor:
        aspects["Brand"] = [product.vendor]
    if variant is not None:
        for name, value in variant.options:
            aspects[name.capitalize()] = [value]
    return aspects


def _product(product: ProductContent, variant: VariantContent) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": product.title[:80],  # eBay's title limit
        "description": product.description,
        "aspects": _aspects(product, variant),
        "imageUrls": list(product.image_urls),
    }
    if product.vendor:
        body["brand"] = product.vendor
    if variant.barcode:
        body["upc" if len(variant.barcode) == 12 else "ean"] = [variant.barcode]
    return body


def _group(product: ProductContent) -> dict[str, Any]:
    specifications: dict[str, list[str]] = {}
    for variant in product.variants:
        for name, value in variant.options:
            values = specifications.setdefault(name.capitalize(), [])
            if value not in values:
                values.append(value)
    return {
        "title": product.title[:80],
        "description": product.description,
        "imageUrls": list(product.image_urls),
        "aspects": _aspects(product, None),
        "variantSKUs": [v.channel_sku for v in product.variants],
        "variesBy": {
            "aspectsImageVariesBy": [],
            "specifications": [{"name": n, "values": v} for n, v in specifications.items()],
        },
    }


def _answer(sku: str, answer: Mapping[str, Any] | None) -> ItemResult:
    """One SKU's outcome from a bulk call's per-item status (2xx = done)."""
    if answer is None:
        return ItemResult(sku, FailureKind.PERMANENT, "missing_response", "eBay said nothing of it")
    status = answer.get("statusCode")
    if isinstance(status, int) and 200 <= status < 300:
        return ok_result(sku, http_status=status)
    errors = [e for e in answer.get("errors") or [] if isinstance(e, Mapping)]
    first = errors[0] if errors else {}
    code = str(first.get("errorId", "")) or str(status)
    message = str(first.get("longMessage") or first.get("message") or f"statusCode {status}")
    if code in RETRYABLE_ERROR_IDS or (isinstance(status, int) and status >= 500):
        kind = FailureKind.RETRYABLE
    else:
        kind = FailureKind.PERMANENT
    return ItemResult(
        sku, kind, code, message, http_status=status if isinstance(status, int) else None
    )


def _bulk(
    transport: _Transport, path: str, requests: list[dict[str, Any]], *, headers: Mapping[str, str]
) -> dict[str, Mapping[str, Any]]:
    """Channel SKU -> its per-item answer, 25 requests per call."""
    answers: dict[str, Mapping[str, Any]] = {}
    for start in range(0, len(requests), MAX_BULK):
        chunk = requests[start : start + MAX_BULK]
        result = transport._call(
            "POST", f"{transport.inventory_url}/{path}", json={"requests": chunk}, headers=headers
        )
        data = result.unwrap()
        for answer in (data or {}).get("responses") or []:
            if isinstance(answer, Mapping):
                answers[str(answer.get("sku", ""))] = answer
    return answers


def _settings(config: ChannelConfig) -> dict[str, str]:
    options = config.platform_config
    missing = [key for key in PUBLISH_SETTINGS if not options.get(key)]
    if missing:
        raise PermanentError(
            f"platform_config lacks {', '.join(missing)}: eBay publishes an offer only with a "
            "category, the seller's business policies and an inventory location",
            code="config",
        )
    return {key: str(options[key]) for key in PUBLISH_SETTINGS}


def _offer(
    transport: _Transport, variant: VariantContent, settings: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "sku": variant.channel_sku,
        "marketplaceId": transport.marketplace_id,
        "format": "FIXED_PRICE",
        "availableQuantity": max(0, variant.quantity),
        "categoryId": settings["category_id"],
        "merchantLocationKey": settings["merchant_location_key"],
        "listingPolicies": {
            "fulfillmentPolicyId": settings["fulfillment_policy_id"],
            "paymentPolicyId": settings["payment_policy_id"],
            "returnPolicyId": settings["return_policy_id"],
        },
        "pricingSummary": {
            "price": {"value": f"{variant.price:.2f}", "currency": transport.currency}
        },
    }


def _existing_offer(transport: _Transport, channel_sku: str) -> str:
    result = transport._call(
        "GET",
        f"{transport.inventory_url}/offer",
        params={"sku": channel_sku, "marketplace_id": transport.marketplace_id},
    )
    if result.status == 404:
        return ""
    for offer in (result.unwrap() or {}).get("offers") or []:
        if offer.get("marketplaceId", transport.marketplace_id) == transport.marketplace_id:
            return str(offer.get("offerId") or "")
    return ""


def _publish_listing(transport: _Transport, product: ProductContent, offer_id: str) -> str:
    """Make the listing live; returns its listing id."""
    if product.has_variants:
        body = {"inventoryItemGroupKey": product.handle, "marketplaceId": transport.marketplace_id}
        result = transport._call(
            "POST", f"{transport.inventory_url}/offer/publish_by_inventory_item_group", json=body
        )
    else:
        result = transport._call("POST", f"{transport.inventory_url}/offer/{offer_id}/publish")
    return str((result.unwrap() or {}).get("listingId") or "")


def _put_group(transport: _Transport, product: ProductContent) -> None:
    transport._call(
        "PUT",
        f"{transport.inventory_url}/inventory_item_group/{product.handle}",
        json=_group(product),
        headers=CONTENT_LANGUAGE,
    ).unwrap()


def _offers(
    transport: _Transport,
    product: ProductContent,
    settings: Mapping[str, str],
    outcome: dict[str, ItemResult],
) -> tuple[dict[str, str], set[str]]:
    """SKU -> offer id for the variants whose item was saved (created, or found), and
    the SKUs whose offer was found rather than created."""
    pending = [v for v in product.variants if outcome[v.sku].ok]
    offers = {v.sku: v.listing.offer_id for v in pending if v.listing.offer_id}
    new = [v for v in pending if v.sku not in offers]
    reused: set[str] = set()
    answers = _bulk(
        transport,
        "bulk_create_offer",
        [_offer(transport, v, settings) for v in new],
        headers=CONTENT_LANGUAGE,
    )
    for variant in new:
        answer = answers.get(variant.channel_sku)
        result = _answer(variant.sku, answer)
        if result.ok and answer is not None:
            offers[variant.sku] = str(answer.get("offerId") or "")
            continue
        existing = _existing_offer(transport, variant.channel_sku)
        if existing:  # made by an earlier publish whose answer was lost
            offers[variant.sku] = existing
            reused.add(variant.sku)
        else:
            outcome[variant.sku] = result
    return offers, reused


class EbayContent:
    """publish_product / push_content of EbayConnector (see the module docstring)."""

    def publish_product(self: _Transport, product: ProductContent) -> PublishResult:
        settings = _settings(self.config)
        items = [
            {
                "sku": v.channel_sku,
                "locale": LOCALE,
                "product": _product(product, v),
                "condition": str(self.config.platform_config.get("condition", "NEW")),
                "availability": {"shipToLocationAvailability": {"quantity": max(0, v.quantity)}},
            }
            for v in product.variants
        ]
        created = _bulk(
            self, "bulk_create_or_replace_inventory_item", items, headers=CONTENT_LANGUAGE
        )
        outcome = {v.sku: _answer(v.sku, created.get(v.channel_sku)) for v in product.variants}
        if product.has_variants and any(r.ok for r in outcome.values()):
            _put_group(self, product)
        offers, reused = _offers(self, product, settings, outcome)
        live = [v for v in product.variants if outcome[v.sku].ok]
        listing_id = _publish_listing(self, product, offers.get(live[0].sku, "")) if live else ""
        published = []
        for variant in product.variants:
            ref = ListingRef(
                sku=variant.sku,
                listing_sku=variant.channel_sku,
                product_id=listing_id,
                offer_id=offers.get(variant.sku, ""),
            )
            # An offer made earlier keeps the price and quantity it had: the pushes set them.
            fresh = not variant.listing.offer_id and variant.sku not in reused
            published.append(PublishedVariant(variant.sku, ref, outcome[variant.sku], fresh))
        return PublishResult(listing_id, published)

    def push_content(self: _Transport, items: Sequence[ContentUpdate]) -> list[ItemResult]:
        by_product: dict[str, list[int]] = {}
        for index, item in enumerate(items):
            by_product.setdefault(item.product.handle, []).append(index)
        results: list[ItemResult | None] = [None] * len(items)
        for indexes in by_product.values():
            group = [items[i] for i in indexes]
            try:
                outcome = _replace_items(self, group)
                if group[0].product.has_variants:
                    _put_group(self, group[0].product)
            except ConnectorError as exc:
                outcome = [item_result(item.listing.sku, exc) for item in group]
            for index, result in zip(indexes, outcome, strict=True):
                results[index] = result
        return [r for r in results if r is not None]


def _replace_items(transport: _Transport, group: Sequence[ContentUpdate]) -> list[ItemResult]:
    """Read the items, put the new product data in, write them back whole."""
    skus = [item.listing.channel_sku for item in group]
    current = _bulk(
        transport, "bulk_get_inventory_item", [{"sku": sku} for sku in skus], headers={}
    )
    requests, results = [], {}
    for item in group:
        sku = item.listing.channel_sku
        answer = current.get(sku)
        read = _answer(item.listing.sku, answer)
        record = answer.get("inventoryItem") if answer is not None else None
        if not read.ok or not isinstance(record, Mapping):
            results[sku] = (
                read
                if not read.ok
                else ItemResult(
                    item.listing.sku, FailureKind.PERMANENT, "not_found", "no inventory item"
                )
            )
            continue
        replaced = {key: record[key] for key in KEPT_ITEM_FIELDS if key in record}
        replaced["product"] = _product(item.product, item.variant)
        requests.append({"sku": sku, "locale": record.get("locale") or LOCALE, **replaced})
    written = _bulk(
        transport, "bulk_create_or_replace_inventory_item", requests, headers=CONTENT_LANGUAGE
    )
    for request in requests:
        results[request["sku"]] = _answer(request["sku"], written.get(request["sku"]))
    # Reported under pimsync's SKU (the channel's may differ).
    return [replace(results[item.listing.channel_sku], sku=item.listing.sku) for item in group]
