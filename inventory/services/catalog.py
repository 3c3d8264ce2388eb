"""Catalog writes: products, variants and their prices, locations.

A price change fires the price event inside the writing transaction, so every
channel listing of the variant is marked for a push with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone

from .. import events
from ..errors import InvalidMovement, UnknownSku
from ..models import MONEY_LIMIT, Location, Product, Variant

PRICE_FIELDS = ("price", "compare_at_price", "map_price")
VARIANT_CONTENT_FIELDS = Variant.CONTENT_FIELDS
PRODUCT_CONTENT_FIELDS = Product.CONTENT_FIELDS


def variant_save(*, variant: Variant, changed_fields: Iterable[str] | None = None) -> Variant:
    """Validate and save a new or edited variant; a price change fires the price
    event, (de)activating it the sellable event (channels then show 0, or its
    stock again), a change of its options, barcode or title the content event.

    ``changed_fields`` is what the caller changed (the admin's form knows); when
    omitted the stored row is compared.
    """
    with transaction.atomic():
        if variant.pk is None:
            variant.full_clean()
            variant.save()
            events.publish_price_changed(variant_ids=[variant.pk])
            return variant
        watched = (*PRICE_FIELDS, "is_active", *VARIANT_CONTENT_FIELDS)
        if changed_fields is None:
            before = Variant.objects.filter(pk=variant.pk).values(*watched).first() or {}
            changed = {f for f in watched if f in before and before[f] != getattr(variant, f)}
        else:
            changed = set(changed_fields)
        variant.full_clean()
        variant.save()
        if changed & set(PRICE_FIELDS):
            events.publish_price_changed(variant_ids=[variant.pk])
        if "is_active" in changed:
            events.publish_sellable_changed(variant_ids=[variant.pk])
        if changed & set(VARIANT_CONTENT_FIELDS):
            events.publish_content_changed(variant_ids=[variant.pk])
        return variant


def variant_set_prices(*, prices: dict[int, Decimal]) -> int:
    """Set many variants' prices in one transaction with one event; returns rows changed."""
    return len(variant_set_price_fields(changes={pk: {"price": p} for pk, p in prices.items()}))


def _money_error(field: str, value: object) -> str | None:
    if value is None:
        return None if field != "price" else "price is required"
    if not isinstance(value, Decimal) or not value.is_finite():
        return f"{field} must be a decimal number, got {value!r}"
    if value < 0:
        return f"{field} must be 0 or more"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        return f"{field} may have at most 2 decimal places"
    if value >= MONEY_LIMIT:
        return f"{field} must be below {MONEY_LIMIT:,.0f}"
    return None


# Rows per UPDATE statement: 2 parameters per row and field plus 1 per row for the
# id list stays far below SQLite's (32,766) and PostgreSQL's (65,535) limits.
PRICE_UPDATE_BATCH = 1000


def _concrete_field(name: str) -> Field:
    field = Variant._meta.get_field(name)
    if not isinstance(field, Field) or field.column is None:
        raise TypeError(f"Variant.{name} is not a column")
    return field


def _column(field: Field) -> str:
    return str(field.column)


def _variants_update_columns(
    values: dict[int, dict[str, Any]], names: list[str], now: datetime
) -> None:
    """One ``UPDATE … SET col = CASE id WHEN … END`` per batch of ``values`` (id -> field -> value).

    Django's bulk_update resolves a Q object per row and field (about 2 ms a
    row: 20 s for a 10,000-row price file); this writes the same values
    with plain SQL. Column names come from the model, values are parameters.
    """
    meta, qn = Variant._meta, connection.ops.quote_name
    fields = [_concrete_field(name) for name in names]
    stamp = _concrete_field("updated_at")
    pk = qn(_column(_concrete_field("id")))
    ids = sorted(values)
    for start in range(0, len(ids), PRICE_UPDATE_BATCH):
        batch = ids[start : start + PRICE_UPDATE_BATCH]
        assignments, params = [], []
        for f in fields:
            when = f"WHEN %s THEN CAST(%s AS {f.db_type(connection)})"
            assignments.append(f"{qn(_column(f))} = CASE {pk} {' '.join([when] * len(batch))} END")
            for variant_id in batch:
                value = f.get_db_prep_save(values[variant_id][f.name], connection)
                params += [variant_id, value]
        assignments.append(f"{qn(_column(stamp))} = %s")
        params += [stamp.get_db_prep_save(now, connection), *batch]
        in_list = ", ".join(["%s"] * len(batch))
        # Identifiers come from the model's meta; every value is a parameter.
        sql = f"UPDATE {qn(meta.db_table)} SET {', '.join(assignments)} WHERE {pk} IN ({in_list})"  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def variant_set_price_fields(*, changes: dict[int, dict[str, Decimal | None]]) -> list[int]:
    """Set price, compare_at_price and/or map_price of many variants, all or nothing.

    ``changes`` maps a variant id to the fields to set (None clears compare-at or
    MAP). Rows are locked in pk order in one transaction; variants whose values
    really change are written with one bulk update and announced with one
    price event (so every channel listing of theirs is marked for a push).
    Returns the ids of the changed variants, in pk order. Raises InvalidMovement
    (a bad value or field name) or UnknownSku (a variant no longer exists);
    nothing is written then.
    """
    if not changes:
        return []
    used = sorted({f for values in changes.values() for f in values})
    unknown = [f for f in used if f not in PRICE_FIELDS]
    if unknown:
        raise InvalidMovement(f"Not price fields: {', '.join(unknown)}")
    for variant_id, values in changes.items():
        for field, value in values.items():
            error = _money_error(field, value)
            if error:
                raise InvalidMovement(f"Variant {variant_id}: {error}")
    with transaction.atomic():
        current = {
            row[0]: dict(zip(used, row[1:], strict=True))
            for row in Variant.objects.select_for_update()
            .filter(pk__in=changes)
            .order_by("pk")
            .values_list("pk", *used)
        }
        if len(current) != len(changes):
            missing = sorted(set(changes) - set(current))
            raise UnknownSku(f"{len(missing)} variant(s) no longer exist (ids {missing[:10]})")
        changed = {
            pk: current[pk] | values
            for pk, values in changes.items()
            if any(current[pk][f] != value for f, value in values.items())
        }
        _variants_update_columns(changed, used, timezone.now())
        if changed:
            events.publish_price_changed(variant_ids=list(changed))
        return sorted(changed)


def product_save(*, product: Product) -> Product:
    """Save a product; archiving or restoring it fires the sellable event for its
    variants (channels show 0 while it is archived), a change of what channels show
    of it (title, description, vendor, type, images) the content event."""
    with transaction.atomic():
        before = (
            Product.objects.filter(pk=product.pk).values("status", *PRODUCT_CONTENT_FIELDS).first()
            if product.pk
            else None
        )
        product.full_clean()
        product.save()
        if before is None:
            return product
        variant_ids = list(product.variants.values_list("pk", flat=True))
        archived = Product.Status.ARCHIVED
        if (before["status"] == archived) != (product.status == archived):
            events.publish_sellable_changed(variant_ids=variant_ids)
        if any(before[f] != getattr(product, f) for f in PRODUCT_CONTENT_FIELDS):
            events.publish_content_changed(variant_ids=variant_ids)
    return product


def product_delete(*, product: Product) -> None:
    """Delete a product and its variants; refused (ProtectedError) once any of its
    variants has stock history or orders."""
    with transaction.atomic():
        product.delete()


def variant_delete(*, variant: Variant) -> None:
    """Delete a variant; refused (ProtectedError) once it has stock history or
    orders — deactivate it instead."""
    with transaction.atomic():
        variant.delete()


def location_save(*, location: Location) -> Location:
    """Validate and save a location. Activating or deactivating it changes what
    every channel fed by it can sell, so the stock event fires for each variant
    stocked there (in this transaction): their channels are pushed the new ATP."""
    with transaction.atomic():
        was_active = (
            Location.objects.filter(pk=location.pk).values_list("is_active", flat=True).first()
            if location.pk is not None
            else None
        )
        location.full_clean()
        location.save()
        if was_active is not None and was_active != location.is_active:
            variant_ids = location.stock_levels.values_list("variant_id", flat=True)
            events.publish_stock_changed(variant_ids=list(variant_ids), location_ids=[location.pk])
        return location
