"""Magento 2: publishing a product and pushing its content (REST, service contracts).

Product data is written in the default scope (``/rest/all/V1``: every store view)
whatever store view the channel reads prices from.

* A product of one variant without options: ``POST /V1/products`` a **simple**
  product (visible in catalog and search) with name, price, status, attribute set,
  website, ``description`` and the barcode in the channel's ``barcode_attribute``
  (Magento has none by default: then it is not sent).
* Otherwise a **configurable**: each option is one of the store's select
  attributes (``GET /V1/products/attributes/{code}``; a value it lacks is added with
  ``POST .../{code}/options``); each variant a simple product not visible on its own
  carrying its option values; the configurable (SKU = the product handle); its
  options (``POST /V1/configurable-products/{sku}/options``) and its children
  (``POST .../child``). Options and children it has already are left as they are,
  so publishing again completes what a failed publish left half done.
* Saving a product by SKU updates the one that exists (ProductRepository::save):
  publishing again does not make a second one. Quantities follow through the
  channel's source items (the MSI write quantity pushes use).
* Images: Magento's media API takes file contents, not URLs: none are sent.

Content pushes ``PUT /V1/products/{sku}`` (the fields given change): the
configurable's name and description, each variant's name, option values and barcode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from .base import (
    CONTENT_PRODUCT,
    CONTENT_VARIANT,
    ChannelConfig,
    ContentUpdate,
    ItemResult,
    ListingRef,
    ProductContent,
    PublishedVariant,
    PublishResult,
    QuantityUpdate,
    VariantContent,
)
from .errors import ConnectorError, FailureKind, PermanentError
from .http import HttpResult, item_result, ok_result
from .publish import with_quantities

VISIBLE = 4  # catalog, search
NOT_VISIBLE = 1  # a configurable's child
ENABLED = 1


class _Options(Protocol):
    attribute_set_id: int
    website_id: int
    option_attributes: tuple[tuple[str, str], ...]
    barcode_attribute: str


class _Transport(Protocol):
    """What the content calls need of the MagentoConnector they are mixed into."""

    config: ChannelConfig
    options: _Options

    def _call(self, method: str, url: str, **kwargs: Any) -> HttpResult: ...

    def _json(self, method: str, url: str, **kwargs: Any) -> Any: ...

    def push_quantities(self, items: Sequence[QuantityUpdate]) -> list[ItemResult]: ...


def _global_api(transport: _Transport) -> str:
    return f"{transport.config.base_url.rstrip('/')}/rest/all/V1"


def _attribute_code(transport: _Transport, option_name: str) -> str:
    return dict(transport.options.option_attributes).get(option_name, option_name.lower())


def _name(product: ProductContent, variant: VariantContent | None) -> str:
    if variant is None or not product.has_variants:
        return product.title
    return f"{product.title} - {variant.title or variant.options_label or variant.sku}"


class _Attributes:
    """The store's select attributes for the product's options: id and option ids."""

    def __init__(self, transport: _Transport, product: ProductContent) -> None:
        self.transport = transport
        self.codes = {name: _attribute_code(transport, name) for name in product.option_names}
        self.ids: dict[str, int] = {}
        self.values: dict[str, dict[str, str]] = {}  # code -> label -> option id
        for name, code in self.codes.items():
            wanted = {value for v in product.variants for n, value in v.options if n == name}
            self._load(code)
            missing = sorted(wanted - set(self.values[code]))
            for label in missing:
                self.transport._json(
                    "POST",
                    f"{self._url(code)}/options",
                    json={"option": {"label": label}},
                )
            if missing:  # the ids the new options got (the answer's form varies by version)
                self._load(code)

    def _url(self, code: str) -> str:
        return f"{_global_api(self.transport)}/products/attributes/{quote(code, safe='')}"

    def _load(self, code: str) -> None:
        try:
            data = self.transport._json("GET", self._url(code))
        except PermanentError as exc:
            raise PermanentError(
                f"Magento has no attribute {code!r} for the option: create it (a dropdown used "
                "by configurable products) or map the option in platform_config "
                f"option_attributes ({exc.message})",
                code="config",
            ) from exc
        self.ids[code] = int(data["attribute_id"])
        self.values[code] = {
            str(o["label"]): str(o["value"])
            for o in data.get("options") or []
            if isinstance(o, Mapping) and str(o.get("value") or "").strip()
        }

    def custom(self, variant: VariantContent) -> list[dict[str, Any]]:
        return [
            {"attribute_code": self.codes[name], "value": self.values[self.codes[name]][value]}
            for name, value in variant.options
            if name in self.codes
        ]


def _barcode(transport: _Transport, variant: VariantContent) -> list[dict[str, Any]]:
    code = transport.options.barcode_attribute
    return [{"attribute_code": code, "value": variant.barcode}] if code and variant.barcode else []


def _simple(
    transport: _Transport,
    product: ProductContent,
    variant: VariantContent,
    *,
    visibility: int,
    custom: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "sku": variant.channel_sku,
        "name": _name(product, variant),
        "type_id": "simple",
        "attribute_set_id": transport.options.attribute_set_id,
        "price": float(variant.price),
        "status": ENABLED,
        "visibility": visibility,
        "extension_attributes": {"website_ids": [transport.options.website_id]},
        "custom_attributes": [
            {"attribute_code": "description", "value": product.description},
            *custom,
            *_barcode(transport, variant),
        ],
    }


def _save(transport: _Transport, body: dict[str, Any]) -> str:
    """POST the product (created, or updated by its SKU); returns its entity id."""
    data = transport._json("POST", f"{_global_api(transport)}/products", json={"product": body})
    return str((data or {}).get("id") or "")


def _configurable(transport: _Transport, product: ProductContent) -> dict[str, Any]:
    return {
        "sku": product.handle,
        "name": product.title,
        "type_id": "configurable",
        "attribute_set_id": transport.options.attribute_set_id,
        "status": ENABLED,
        "visibility": VISIBLE,
        "extension_attributes": {"website_ids": [transport.options.website_id]},
        "custom_attributes": [{"attribute_code": "description", "value": product.description}],
    }


def _link(
    transport: _Transport, product: ProductContent, attributes: _Attributes, children: list[str]
) -> None:
    """The configurable's options and children it does not have yet."""
    base = f"{_global_api(transport)}/configurable-products/{quote(product.handle, safe='')}"
    present = {
        str(o.get("attribute_id")) for o in transport._json("GET", f"{base}/options/all") or []
    }
    for position, (name, code) in enumerate(attributes.codes.items()):
        if str(attributes.ids[code]) in present:
            continue
        values = [
            {"value_index": int(attributes.values[code][value])}
            for value in dict.fromkeys(
                v for variant in product.variants for n, v in variant.options if n == name
            )
        ]
        option = {
            "attribute_id": str(attributes.ids[code]),
            "label": name.capitalize(),
            "position": position,
            "values": values,
        }
        transport._json("POST", f"{base}/options", json={"option": option})
    linked = {str(c.get("sku")) for c in transport._json("GET", f"{base}/children") or []}
    for child in children:
        if child not in linked:
            transport._json("POST", f"{base}/child", json={"childSku": child})


class MagentoContent:
    """publish_product / push_content of MagentoConnector (see the module docstring)."""

    def publish_product(self: _Transport, product: ProductContent) -> PublishResult:
        if not product.has_variants:
            variant = product.variants[0]
            entity = _save(self, _simple(self, product, variant, visibility=VISIBLE, custom=[]))
            ref = ListingRef(sku=variant.sku, listing_sku=variant.channel_sku, variant_id=entity)
            published = [
                PublishedVariant(variant.sku, ref, ok_result(variant.sku, http_status=200))
            ]
            return PublishResult(
                variant.channel_sku, with_quantities(self.push_quantities, product, published)
            )
        attributes = _Attributes(self, product)
        published = []
        for variant in product.variants:
            body = _simple(
                self, product, variant, visibility=NOT_VISIBLE, custom=attributes.custom(variant)
            )
            try:
                entity = _save(self, body)
                result = ok_result(variant.sku, http_status=200)
            except ConnectorError as exc:
                if exc.kind is not FailureKind.PERMANENT:  # the rest would fail the same way
                    raise
                entity, result = "", item_result(variant.sku, exc)
            ref = ListingRef(
                sku=variant.sku,
                listing_sku=variant.channel_sku,
                product_id=product.handle,
                variant_id=entity,
            )
            published.append(PublishedVariant(variant.sku, ref, result))
        _save(self, _configurable(self, product))
        created = [p.listing.channel_sku for p in published if p.result.ok]
        _link(self, product, attributes, created)
        return PublishResult(
            product.handle, with_quantities(self.push_quantities, product, published)
        )

    def push_content(self: _Transport, items: Sequence[ContentUpdate]) -> list[ItemResult]:
        results: list[ItemResult] = []
        parents_done: dict[str, ConnectorError | None] = {}
        attributes: dict[str, _Attributes] = {}
        for item in items:
            product, parent = item.product, item.listing.product_id
            try:
                if parent and parent not in parents_done and CONTENT_PRODUCT in item.changed:
                    body = {
                        "name": product.title,
                        "custom_attributes": [
                            {"attribute_code": "description", "value": product.description}
                        ],
                    }
                    _put(self, parent, body)
                    parents_done[parent] = None
                custom = [{"attribute_code": "description", "value": product.description}]
                if CONTENT_VARIANT in item.changed and product.option_names:
                    if product.handle not in attributes:
                        attributes[product.handle] = _Attributes(self, product)
                    custom += attributes[product.handle].custom(item.variant)
                custom += _barcode(self, item.variant)
                _put(
                    self,
                    item.listing.channel_sku,
                    {"name": _name(product, item.variant), "custom_attributes": custom},
                )
            except ConnectorError as exc:
                results.append(item_result(item.listing.sku, exc))
                continue
            results.append(ok_result(item.listing.sku, http_status=200))
        return results


def _put(transport: _Transport, sku: str, fields: dict[str, Any]) -> None:
    url = f"{_global_api(transport)}/products/{quote(sku, safe='')}"
    transport._json("PUT", url, json={"product": {"sku": sku, **fields}})
