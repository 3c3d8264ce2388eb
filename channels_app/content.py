"""What a channel should show of a pimsync product: the content DTOs built from the
catalog, and a digest per part of it.

A listing remembers the digests it was last pushed with (ChannelListing.
last_pushed_content); comparing them with the current ones tells which parts of the
content changed - the product's texts, its images, the variant's options / barcode /
title - so a push sends only those (connectors re-send images only when they changed:
the platforms download them again each time).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from inventory.models import Product, Variant

from .connectors.base import (
    CONTENT_IMAGES,
    CONTENT_PARTS,
    CONTENT_PRODUCT,
    CONTENT_VARIANT,
    ContentUpdate,
    ListingRef,
    ProductContent,
    VariantContent,
)
from .models import Channel, ChannelListing
from .selectors import channel_atp_bulk, channel_price_bulk


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def option_names(variants: Sequence[Variant]) -> tuple[str, ...]:
    """The product's option names in the order they first appear (variants by pk)."""
    names: list[str] = []
    for variant in sorted(variants, key=lambda v: v.pk or 0):
        for name in variant.options or {}:
            if str(name) not in names:
                names.append(str(name))
    return tuple(names)


def _options(variant: Variant, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    values = variant.options or {}
    return tuple((name, str(values[name])) for name in names if values.get(name) not in (None, ""))


def content_parts(product: Product, variant: Variant, names: tuple[str, ...]) -> dict[str, str]:
    """The digest of each content part of one listing's variant."""
    return {
        CONTENT_PRODUCT: _digest(
            [product.title, product.description, product.vendor, product.product_type]
        ),
        CONTENT_IMAGES: _digest(list(product.image_urls or [])),
        CONTENT_VARIANT: _digest([names, _options(variant, names), variant.barcode, variant.title]),
    }


def changed_parts(listing: ChannelListing, current: Mapping[str, str]) -> frozenset[str]:
    """Which parts differ from what the listing was last pushed (all, never pushed)."""
    last = listing.last_pushed_content or {}
    return frozenset(part for part in CONTENT_PARTS if last.get(part) != current[part])


def _listing_ids(listing: ChannelListing | None, variant: Variant) -> ListingRef:
    if listing is None:
        return ListingRef(sku=variant.sku)
    return ListingRef(
        sku=variant.sku,
        listing_sku=listing.listing_sku,
        product_id=listing.external_product_id,
        variant_id=listing.external_variant_id,
        inventory_item_id=listing.inventory_item_id,
        offer_id=listing.offer_id,
    )


def product_content(
    *,
    product: Product,
    variants: Sequence[Variant],
    listings: Mapping[int, ChannelListing],
    prices: Mapping[int, Decimal] | None = None,
    quantities: Mapping[int, int] | None = None,
    product_ref: str = "",
) -> ProductContent:
    """``product`` with ``variants`` as one channel should show it; ``listings`` (by
    variant id) give the channel's ids of those already listed, ``prices`` and
    ``quantities`` what it is told (0 when not given: a content push sends neither)."""
    names = option_names(variants)
    return ProductContent(
        handle=product.handle,
        title=product.title,
        description=product.description,
        vendor=product.vendor,
        product_type=product.product_type,
        image_urls=tuple(str(url) for url in product.image_urls or []),
        option_names=names,
        variants=tuple(
            VariantContent(
                sku=v.sku,
                channel_sku=(listings[v.pk].listing_sku if v.pk in listings else "") or v.sku,
                title=v.title,
                options=_options(v, names),
                barcode=v.barcode,
                price=(prices or {}).get(v.pk, v.price),
                compare_at_price=v.compare_at_price,
                quantity=(quantities or {}).get(v.pk, 0),
                listing=_listing_ids(listings.get(v.pk), v),
            )
            for v in sorted(variants, key=lambda v: v.sku)
        ),
        product_ref=product_ref,
    )


def product_content_to_publish(
    *, channel: Channel, product: Product, variants: Sequence[Variant], product_ref: str = ""
) -> ProductContent:
    """The product as it is published: every given variant with the price and ATP the
    channel is to be told now, and the ids of those it lists already."""
    ids = [v.pk for v in variants]
    listings = {
        lst.variant_id: lst
        for lst in ChannelListing.objects.filter(channel=channel, variant_id__in=ids)
    }
    return product_content(
        product=product,
        variants=variants,
        listings=listings,
        prices=channel_price_bulk(channel=channel, variant_ids=ids),
        quantities=channel_atp_bulk(channel=channel, variant_ids=ids),
        product_ref=product_ref,
    )


def content_updates(
    *, channel: Channel, listings: Iterable[ChannelListing], forced: Iterable[int] = ()
) -> dict[int, ContentUpdate]:
    """listing id -> its content push: the product with every listing pimsync keeps the
    content of on this channel (a platform that syncs a product whole, Shopify's
    productSet, must name every variant), and the parts changed since the last push
    (every part for the listings in ``forced``)."""
    listings = list(listings)
    product_ids = {lst.variant.product_id for lst in listings}
    siblings: dict[int, list[ChannelListing]] = defaultdict(list)
    for sibling in ChannelListing.objects.filter(
        channel=channel,
        sync_content=True,
        is_enabled=True,
        variant__product_id__in=product_ids,
    ).select_related("variant__product"):
        siblings[sibling.variant.product_id].append(sibling)
    for listing in listings:  # the listings asked for are in their product even if disabled
        group = siblings[listing.variant.product_id]
        if all(s.pk != listing.pk for s in group):
            group.append(listing)
    forced_ids = set(forced)
    updates: dict[int, ContentUpdate] = {}
    for product_id, group in siblings.items():
        product = group[0].variant.product
        variants = [s.variant for s in group]
        content = product_content(
            product=product,
            variants=variants,
            listings={s.variant_id: s for s in group},
            product_ref=next((s.external_product_id for s in group if s.external_product_id), ""),
        )
        names = content.option_names
        for listing in listings:
            if listing.variant.product_id != product_id:
                continue
            parts = content_parts(product, listing.variant, names)
            changed = (
                frozenset(CONTENT_PARTS)
                if listing.pk in forced_ids
                else changed_parts(listing, parts)
            )
            updates[listing.pk] = ContentUpdate(
                listing=_listing_ids(listing, listing.variant), product=content, changed=changed
            )
    return updates


def listing_content_parts(listing: ChannelListing, content: ProductContent) -> dict[str, str]:
    """The digests to remember after ``listing`` was pushed (or published) ``content``."""
    return content_parts(listing.variant.product, listing.variant, content.option_names)
