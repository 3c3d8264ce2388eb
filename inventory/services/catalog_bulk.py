"""Many products and variants created at once, all or nothing (the catalog import
creates what a channel sells and pimsync does not know yet)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils.text import slugify

from .. import events
from ..errors import BulkMovementRejected
from ..models import MONEY_LIMIT, Product, Variant

TITLE_MAX = Product._meta.get_field("title").max_length or 255
SKU_MAX = Variant._meta.get_field("sku").max_length or 100
BARCODE_MAX = Variant._meta.get_field("barcode").max_length or 64
HANDLE_MAX = Product._meta.get_field("handle").max_length or 255
BATCH = 500


@dataclass(frozen=True)
class VariantSpec:
    sku: str
    price: Decimal
    title: str = ""
    barcode: str = ""
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductSpec:
    title: str
    variants: Sequence[VariantSpec]
    vendor: str = ""
    product_type: str = ""


def _variant_problems(spec: VariantSpec) -> list[str]:
    problems = []
    if not spec.sku.strip():
        problems.append("SKU is empty")
    elif len(spec.sku) > SKU_MAX:
        problems.append(f"SKU is longer than {SKU_MAX} characters")
    if len(spec.barcode) > BARCODE_MAX:
        problems.append(f"barcode is longer than {BARCODE_MAX} characters")
    exponent = spec.price.as_tuple().exponent
    if not spec.price.is_finite() or spec.price < 0 or spec.price >= MONEY_LIMIT:
        problems.append("price must be 0 or more")
    elif isinstance(exponent, int) and exponent < -2:
        problems.append("price may have at most 2 decimal places")
    return problems


def _problems(products: Sequence[ProductSpec]) -> dict[int, list[str]]:
    """Problems by variant position (products' variants counted in order)."""
    errors: dict[int, list[str]] = {}
    seen: dict[str, int] = {}
    position = 0
    skus = [v.sku for p in products for v in p.variants]
    taken = set(Variant.objects.filter(sku__in=skus).values_list("sku", flat=True))
    for product in products:
        for spec in product.variants:
            problems = _variant_problems(spec)
            if not product.title.strip():
                problems.append("the product has no title")
            if spec.sku in taken:
                problems.append(f"SKU {spec.sku} exists in pimsync already")
            if spec.sku in seen:
                problems.append(f"SKU {spec.sku} is also variant {seen[spec.sku]}")
            seen.setdefault(spec.sku, position)
            if problems:
                errors[position] = problems
            position += 1
    return errors


def _handles(titles: Sequence[str]) -> list[str]:
    """A unique handle per title: its slug, numbered (-2, -3, ...) while taken."""
    bases = [(slugify(t)[: HANDLE_MAX - 8] or "product") for t in titles]
    numbers = [1] * len(bases)
    handles: list[str] = []
    while True:
        handles = [b if n == 1 else f"{b}-{n}" for b, n in zip(bases, numbers, strict=True)]
        taken = set(
            Product.objects.filter(handle__in=set(handles)).values_list("handle", flat=True)
        )
        seen: set[str] = set()
        clash = False
        for i, handle in enumerate(handles):
            if handle in taken or handle in seen:
                numbers[i] += 1
                clash = True
            seen.add(handle)
        if not clash:
            return handles


def products_create_bulk(*, products: Sequence[ProductSpec]) -> dict[str, int]:
    """Create the products and their variants in one transaction; returns
    {sku: variant id}. Every variant is checked first (SKU free and unique, price,
    lengths); any problem raises BulkMovementRejected naming each failing variant
    by its position, and nothing is created. New variants have no stock; the price
    event fires for them (their listings, once made, push the price)."""
    errors = _problems(products)
    if errors:
        raise BulkMovementRejected(errors)
    if not products:
        return {}
    with transaction.atomic():
        handles = _handles([p.title for p in products])
        rows = [
            Product(
                title=p.title[:TITLE_MAX],
                handle=handle,
                vendor=p.vendor,
                product_type=p.product_type,
            )
            for p, handle in zip(products, handles, strict=True)
        ]
        created = Product.objects.bulk_create(rows, batch_size=BATCH)
        if created and created[0].pk is None:
            by_handle = dict(Product.objects.filter(handle__in=handles).values_list("handle", "pk"))
            for product in created:
                product.pk = by_handle[product.handle]
        variants = [
            Variant(
                product_id=product.pk,
                sku=spec.sku,
                title=spec.title[:TITLE_MAX],
                options=dict(spec.options),
                price=spec.price,
                barcode=spec.barcode,
            )
            for product, p in zip(created, products, strict=True)
            for spec in p.variants
        ]
        Variant.objects.bulk_create(variants, batch_size=BATCH)
        ids = dict(
            Variant.objects.filter(sku__in=[v.sku for v in variants]).values_list("sku", "pk")
        )
        events.publish_price_changed(variant_ids=ids.values())
    return ids
