"""Amazon: publishing a product and pushing its content (Listings Items 2021-08-01).

Publishing is ``putListingsItem`` per SKU (``requirements: LISTING``): the listing's
attributes of the channel's product type (PRODUCT by default; the kept part of its
definition is sandbox/contracts/amazon_product-type-PRODUCT.json) - ``item_name``
(the title, with the options after a dash for a variant), ``brand`` (the vendor, or
platform_config ``brand``), ``product_description``, ``bullet_point`` (the
description's lines, at most five), ``item_type_keyword`` (platform_config, else the
product type), ``country_of_origin`` (platform_config, required), ``color`` (a
"color" option, else platform_config ``color``, default "Multicolor"),
``condition_type`` new_new, ``supplier_declared_dg_hz_regulation`` not_applicable,
the barcode as ``externally_assigned_product_identifier`` (UPC for 12 digits, EAN for
13, GTIN otherwise; without one, ``supplier_declared_has_product_identifier_exemption``),
the images as ``main_product_image_locator`` and ``other_product_image_locator_1..8``,
and the offer: ``purchasable_offer`` and ``fulfillment_availability``.

A product whose options are size and / or color becomes a variation family: a
parent SKU (the product handle; ``LISTING_PRODUCT_ONLY``, no offer) with
``parentage_level`` parent and ``variation_theme`` SIZE, COLOR or SIZE/COLOR, and
children pointing at it (``child_parent_sku_relationship``). Other options: each
variant is a listing of its own. A PUT replaces the listing whole, so publishing
again is harmless. ACCEPTED means queued: reconciliation confirms later.

Content pushes patch (``replace``) only what changed: title, description and bullet
points; the images; a variant's title and color. Amazon does not let a seller change
brand or the product identifier of a listing that exists, so neither is patched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from .base import (
    CONTENT_IMAGES,
    CONTENT_PRODUCT,
    CONTENT_VARIANT,
    ChannelConfig,
    ContentUpdate,
    ItemResult,
    ListingRef,
    ProductContent,
    PublishedVariant,
    PublishResult,
    VariantContent,
)
from .errors import FailureKind, PermanentError
from .http import HttpResult, body_snippet, item_result, ok_result

MAX_OTHER_IMAGES = 8
MAX_BULLETS = 5
SKU_MAX = 40
THEMES = {
    frozenset({"size"}): "SIZE",
    frozenset({"color"}): "COLOR",
    frozenset({"size", "color"}): "SIZE/COLOR",
}
COLOR_NAMES = frozenset({"color", "colour"})
TAGS = re.compile(r"<[^>]+>")


class _Transport(Protocol):
    """What the content calls need of the AmazonConnector they are mixed into."""

    config: ChannelConfig
    marketplace_id: str
    product_type: str

    def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> HttpResult: ...

    def _listing_path(self, channel_sku: str) -> str: ...

    def _price_patch(self, price: Any) -> dict[str, Any]: ...

    def _quantity_patch(self, quantity: int) -> dict[str, Any]: ...


def _option_key(name: str) -> str:
    key = name.strip().lower()
    return "color" if key in COLOR_NAMES else key


def theme(product: ProductContent) -> str:
    """The variation theme the product's options make ("" = no family)."""
    if len(product.variants) < 2:
        return ""
    return THEMES.get(frozenset(_option_key(n) for n in product.option_names), "")


def parent_sku(product: ProductContent) -> str:
    return product.handle[:SKU_MAX]


class _Attributes:
    """The listing attributes of one product on one marketplace."""

    def __init__(self, transport: _Transport, product: ProductContent) -> None:
        self.transport = transport
        self.product = product
        self.options = transport.config.platform_config
        self.marketplace = transport.marketplace_id
        self.language = str(self.options.get("language_tag", "en_US"))

    def text(self, value: str) -> list[dict[str, Any]]:
        return [{"value": value, "language_tag": self.language, "marketplace_id": self.marketplace}]

    def plain(self, value: Any) -> list[dict[str, Any]]:
        return [{"value": value, "marketplace_id": self.marketplace}]

    def title(self, variant: VariantContent | None) -> str:
        if variant is None or not self.product.has_variants:
            return self.product.title
        return f"{self.product.title} - {variant.title or variant.options_label or variant.sku}"

    def bullets(self) -> list[str]:
        lines = [line.strip() for line in TAGS.sub("\n", self.product.description).splitlines()]
        return [line for line in lines if line][:MAX_BULLETS] or [self.product.title]

    def color(self, variant: VariantContent | None) -> str:
        for name, value in variant.options if variant else ():
            if _option_key(name) == "color":
                return value
        return str(self.options.get("color", "Multicolor"))

    def texts(self, variant: VariantContent | None) -> dict[str, Any]:
        return {
            "item_name": self.text(self.title(variant)),
            "product_description": self.text(self.product.description),
            "bullet_point": [entry for line in self.bullets() for entry in self.text(line)],
        }

    def images(self) -> dict[str, Any]:
        urls = list(self.product.image_urls)
        found: dict[str, Any] = {}
        if urls:
            found["main_product_image_locator"] = [
                {"media_location": urls[0], "marketplace_id": self.marketplace}
            ]
        for n, url in enumerate(urls[1 : MAX_OTHER_IMAGES + 1], start=1):
            found[f"other_product_image_locator_{n}"] = [
                {"media_location": url, "marketplace_id": self.marketplace}
            ]
        return found

    def identifier(self, variant: VariantContent) -> dict[str, Any]:
        code = variant.barcode
        if not code:
            return {"supplier_declared_has_product_identifier_exemption": self.plain(True)}
        kind = {12: "upc", 13: "ean"}.get(len(code), "gtin")
        entry = {"type": kind, "value": code, "marketplace_id": self.marketplace}
        return {"externally_assigned_product_identifier": [entry]}

    def base(self, variant: VariantContent | None) -> dict[str, Any]:
        brand = self.product.vendor or str(self.options.get("brand", ""))
        keyword = str(self.options.get("item_type_keyword") or self.product.product_type)
        country = str(self.options.get("country_of_origin", ""))
        missing = [
            name
            for name, value in (
                ("brand (the product's vendor)", brand),
                ("item_type_keyword (or the product type)", keyword),
                ("country_of_origin", country),
            )
            if not value
        ]
        if missing:
            raise PermanentError(
                f"Amazon requires {', '.join(missing)}: set them on the product or in the "
                "channel's platform_config",
                code="config",
            )
        return {
            **self.texts(variant),
            "brand": self.text(brand),
            "item_type_keyword": self.plain(keyword.lower().replace(" ", "-")),
            "country_of_origin": self.plain(country),
            "supplier_declared_dg_hz_regulation": self.plain("not_applicable"),
            "color": self.text(self.color(variant)),
            "condition_type": self.plain("new_new"),
            **self.images(),
        }

    def family(self, parent: str, *, role: str) -> dict[str, Any]:
        relation: dict[str, Any] = {
            "child_relationship_type": "variation",
            "marketplace_id": self.marketplace,
        }
        if role == "child":
            relation["parent_sku"] = parent
        return {
            "parentage_level": self.plain(role),
            "child_parent_sku_relationship": [relation],
            "variation_theme": [{"name": theme(self.product)}],
        }

    def listing(self, variant: VariantContent, parent: str) -> dict[str, Any]:
        # The price patch's offer without "audience": the product type definition has
        # no such field (its default, ALL, is what the offer gets).
        offer = [
            {k: v for k, v in entry.items() if k != "audience"}
            for entry in self.transport._price_patch(variant.price)["value"]
        ]
        quantity = self.transport._quantity_patch(variant.quantity)["value"]
        attributes = {
            **self.base(variant),
            **self.identifier(variant),
            "purchasable_offer": offer,
            "fulfillment_availability": quantity,
        }
        if parent:
            attributes.update(self.family(parent, role="child"))
        return attributes


def _put(
    transport: _Transport, sku: str, requirements: str, attributes: dict[str, Any]
) -> ItemResult:
    result = transport._call(
        "putListingsItem",
        "PUT",
        transport._listing_path(sku),
        params={"marketplaceIds": transport.marketplace_id},
        json={
            "productType": transport.product_type,
            "requirements": requirements,
            "attributes": attributes,
        },
    )
    return _submission(sku, result)


def _submission(sku: str, result: HttpResult) -> ItemResult:
    """A putListingsItem / patchListingsItem answer: ACCEPTED without ERROR issues is ok."""
    if result.error is not None:
        return item_result(sku, result.error)
    data = result.data if isinstance(result.data, Mapping) else {}
    errors = [i for i in data.get("issues") or [] if str(i.get("severity")) == "ERROR"]
    if data.get("status") == "ACCEPTED" and not errors:
        return ok_result(sku, http_status=result.status)
    first = errors[0] if errors else {}
    return ItemResult(
        sku,
        FailureKind.PERMANENT,
        str(first.get("code") or data.get("status") or "unexpected_response"),
        str(first.get("message") or body_snippet(result.body)),
        http_status=result.status,
    )


def _patch(transport: _Transport, sku: str, attributes: Mapping[str, Any]) -> ItemResult:
    patches = [
        {"op": "replace", "path": f"/attributes/{name}", "value": value}
        for name, value in attributes.items()
    ]
    result = transport._call(
        "patchListingsItem",
        "PATCH",
        transport._listing_path(sku),
        params={"marketplaceIds": transport.marketplace_id},
        json={"productType": transport.product_type, "patches": patches},
    )
    return _submission(sku, result)


class AmazonContent:
    """publish_product / push_content of AmazonConnector (see the module docstring)."""

    def publish_product(self: _Transport, product: ProductContent) -> PublishResult:
        attributes = _Attributes(self, product)
        parent = parent_sku(product) if theme(product) else ""
        if parent:
            # The parent groups its children: no offer, no product identifier of its own.
            parent_attributes = {
                **attributes.base(None),
                **attributes.family(parent, role="parent"),
                "skip_offer": attributes.plain(True),
                "supplier_declared_has_product_identifier_exemption": attributes.plain(True),
            }
            done = _put(self, parent, "LISTING_PRODUCT_ONLY", parent_attributes)
            if not done.ok:
                return PublishResult(
                    "",
                    [
                        PublishedVariant(v.sku, v.listing, replace(done, sku=v.sku))
                        for v in product.variants
                    ],
                )
        published = []
        for variant in product.variants:
            result = _put(self, variant.channel_sku, "LISTING", attributes.listing(variant, parent))
            ref = ListingRef(sku=variant.sku, listing_sku=variant.channel_sku, product_id=parent)
            published.append(PublishedVariant(variant.sku, ref, replace(result, sku=variant.sku)))
        return PublishResult(parent or product.variants[0].channel_sku, published)

    def push_content(self: _Transport, items: Sequence[ContentUpdate]) -> list[ItemResult]:
        results: list[ItemResult] = []
        parents_done: dict[str, ItemResult] = {}
        for item in items:
            attributes = _Attributes(self, item.product)
            parent = item.listing.product_id
            if parent and parent not in parents_done:
                parents_done[parent] = _push_parent(self, attributes, item, parent)
            own = _push_listing(self, attributes, item)
            parent_result = parents_done.get(parent) if parent else None
            if own.ok and parent_result is not None and not parent_result.ok:
                own = replace(parent_result, sku=item.listing.sku)
            results.append(own)
        return results


def _changed_attributes(
    attributes: _Attributes, changed: frozenset[str], variant: VariantContent | None
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if CONTENT_PRODUCT in changed:
        found.update(attributes.texts(variant))
    if CONTENT_IMAGES in changed:
        found.update(attributes.images())
    if CONTENT_VARIANT in changed and variant is not None:
        found["item_name"] = attributes.text(attributes.title(variant))
        found["color"] = attributes.text(attributes.color(variant))
    return found


def _push_parent(
    transport: _Transport, attributes: _Attributes, item: ContentUpdate, parent: str
) -> ItemResult:
    changed = _changed_attributes(attributes, item.changed - {CONTENT_VARIANT}, None)
    if not changed:
        return ok_result(parent)
    return _patch(transport, parent, changed)


def _push_listing(
    transport: _Transport, attributes: _Attributes, item: ContentUpdate
) -> ItemResult:
    changed = _changed_attributes(attributes, item.changed, item.variant)
    if not changed:
        return ok_result(item.listing.sku)
    return replace(_patch(transport, item.listing.channel_sku, changed), sku=item.listing.sku)
