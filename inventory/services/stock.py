"""Every write to catalog prices and stock goes through here.

Stock rules (callers may rely on them):
- a change is a delta written with F() under the StockLevel row lock, in one
  transaction with its ledger row (StockMovement);
- an idempotency key applies once: a repeat returns the first movement with
  ``created=False``; a repeat with a different payload raises IdempotencyConflict;
- rows are locked in primary-key order; the domain event fires inside the
  transaction;
- no bucket ever goes below zero, and units that are promised (reserve, sale,
  transfer) must be available; a physical fact (count, adjust, damage) may push
  *available* below zero because it records reality, never a bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from .. import events
from ..errors import (
    BulkMovementRejected,
    IdempotencyConflict,
    InsufficientStock,
    InvalidMovement,
    InvalidTransition,
    UnknownLocation,
    UnknownSku,
)
from ..locks import reservation_lock, stock_levels_lock
from ..models import (
    MONEY_LIMIT,
    Location,
    MovementReason,
    Product,
    Reservation,
    StockLevel,
    StockMovement,
    Variant,
)

BUCKETS = ("on_hand", "committed", "reserved", "damaged")
# Reasons that promise units to someone: they may not take more than is available.
PROMISING_REASONS = frozenset(
    {MovementReason.RESERVE, MovementReason.SALE, MovementReason.TRANSFER}
)
PRICE_FIELDS = ("price", "compare_at_price", "map_price")


@dataclass(frozen=True)
class Deltas:
    on_hand: int = 0
    committed: int = 0
    reserved: int = 0
    damaged: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidMovement(f"{f.name} must be a whole number, got {value!r}")

    @property
    def is_zero(self) -> bool:
        return not any(getattr(self, b) for b in BUCKETS)

    @property
    def available(self) -> int:
        return self.on_hand - self.committed - self.reserved - self.damaged


@dataclass(frozen=True)
class MovementResult:
    movement: StockMovement
    created: bool  # False: the key had already been applied, nothing changed


@dataclass(frozen=True)
class TransferResult:
    outbound: StockMovement
    inbound: StockMovement
    created: bool


# --- lookups ---------------------------------------------------------------------------


def variant_get_by_sku(sku: str) -> Variant:
    try:
        return Variant.objects.get(sku=sku)
    except Variant.DoesNotExist:
        raise UnknownSku(f"Unknown SKU {sku!r}") from None


def location_get_by_code(code: str) -> Location:
    try:
        return Location.objects.get(code=code)
    except Location.DoesNotExist:
        raise UnknownLocation(f"Unknown location {code!r}") from None


# --- stock movements ---------------------------------------------------------------------


def _same_payload(
    m: StockMovement, variant_id: int, location_id: int, d: Deltas, reason: str
) -> bool:
    return (
        m.variant_id == variant_id
        and m.location_id == location_id
        and m.reason == reason
        and (m.delta_on_hand, m.delta_committed, m.delta_reserved, m.delta_damaged)
        == (d.on_hand, d.committed, d.reserved, d.damaged)
    )


def _existing_movement(
    key: str, variant_id: int, location_id: int, d: Deltas, reason: str
) -> StockMovement | None:
    existing = StockMovement.objects.filter(idempotency_key=key).first()
    if existing is not None and not _same_payload(existing, variant_id, location_id, d, reason):
        raise IdempotencyConflict(
            f"Idempotency key {key!r} was already used for a different stock change"
        )
    return existing


def _check_result(level: StockLevel, d: Deltas, reason: str, sku: str) -> None:
    if reason in PROMISING_REASONS and d.available < 0 and level.available + d.available < 0:
        raise InsufficientStock(
            [
                f"{sku} at {level.location}: needs {-d.available}, "
                f"{max(level.available, 0)} available"
            ]
        )
    after = {b: getattr(level, b) + getattr(d, b) for b in BUCKETS}
    negative = [f"{b} would be {v}" for b, v in after.items() if v < 0]
    if negative:
        raise InvalidMovement(
            f"{sku} at {level.location}: {', '.join(negative)}; stock buckets cannot be negative"
        )


def _write_locked(
    level: StockLevel,
    d: Deltas,
    *,
    reason: str,
    source: str,
    key: str,
    source_ref: str,
    note: str,
    user: AbstractBaseUser | None,
) -> StockMovement:
    """Insert the ledger row, then move the buckets with F(); caller holds the lock."""
    movement = StockMovement.objects.create(
        variant_id=level.variant_id,
        location_id=level.location_id,
        delta_on_hand=d.on_hand,
        delta_committed=d.committed,
        delta_reserved=d.reserved,
        delta_damaged=d.damaged,
        reason=reason,
        source=source,
        source_ref=source_ref,
        idempotency_key=key,
        note=note,
        on_hand_after=level.on_hand + d.on_hand,
        available_after=level.available + d.available,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    if not d.is_zero:
        StockLevel.objects.filter(pk=level.pk).update(
            on_hand=F("on_hand") + d.on_hand,
            committed=F("committed") + d.committed,
            reserved=F("reserved") + d.reserved,
            damaged=F("damaged") + d.damaged,
            updated_at=timezone.now(),
        )
        for b in BUCKETS:
            setattr(level, b, getattr(level, b) + getattr(d, b))
    return movement


def _validate_common(reason: str, key: str, source: str) -> None:
    if reason not in MovementReason.values:
        raise InvalidMovement(f"Unknown reason {reason!r}")
    if not key or len(key) > 255:
        raise InvalidMovement("An idempotency key of 1 to 255 characters is required")
    if not source:
        raise InvalidMovement("A source is required")


def stock_movement_apply(
    *,
    variant: Variant,
    location: Location,
    deltas: Deltas,
    reason: str,
    source: str,
    idempotency_key: str,
    source_ref: str = "",
    note: str = "",
    user: AbstractBaseUser | None = None,
) -> MovementResult:
    """Apply one delta to one StockLevel with its ledger row, exactly once per key.

    Raises InvalidMovement (a bucket would go negative, bad input),
    InsufficientStock (a promising reason takes more than is available) or
    IdempotencyConflict; in every case nothing is written.
    """
    _validate_common(reason, idempotency_key, source)
    if not location.is_active:
        raise InvalidMovement(f"Location {location} is inactive")
    with transaction.atomic():
        level = stock_levels_lock([(variant.pk, location.pk)])[(variant.pk, location.pk)]
        level.location = location
        existing = _existing_movement(idempotency_key, variant.pk, location.pk, deltas, reason)
        if existing is not None:
            return MovementResult(existing, created=False)
        _check_result(level, deltas, reason, variant.sku)
        try:
            with transaction.atomic():
                movement = _write_locked(
                    level,
                    deltas,
                    reason=reason,
                    source=source,
                    key=idempotency_key,
                    source_ref=source_ref,
                    note=note,
                    user=user,
                )
        except IntegrityError:
            # The same key won a race on another StockLevel's lock.
            existing = _existing_movement(idempotency_key, variant.pk, location.pk, deltas, reason)
            if existing is None:
                raise
            return MovementResult(existing, created=False)
        events.publish_stock_changed(variant_ids=[variant.pk], location_ids=[location.pk])
        return MovementResult(movement, created=True)


def stock_movement_apply_for_sku(*, sku: str, location_code: str, **kwargs: Any) -> MovementResult:
    """stock_movement_apply addressed by SKU and location code (API, imports)."""
    return stock_movement_apply(
        variant=variant_get_by_sku(sku), location=location_get_by_code(location_code), **kwargs
    )


def stock_adjust(
    *,
    variant: Variant,
    location: Location,
    quantity: int,
    reason: str,
    source: str,
    idempotency_key: str,
    note: str = "",
    user: AbstractBaseUser | None = None,
) -> MovementResult:
    """Change on_hand by ``quantity`` (receive, return, adjust, ...); damage moves
    units into the damaged bucket instead (they stay on hand but are not sellable)."""
    if quantity == 0:
        raise InvalidMovement("An adjustment of 0 changes nothing")
    if reason == MovementReason.DAMAGE:
        deltas = Deltas(damaged=quantity)
    else:
        deltas = Deltas(on_hand=quantity)
    return stock_movement_apply(
        variant=variant,
        location=location,
        deltas=deltas,
        reason=reason,
        source=source,
        idempotency_key=idempotency_key,
        note=note,
        user=user,
    )


def stock_count(
    *,
    variant: Variant,
    location: Location,
    counted_on_hand: int,
    source: str,
    idempotency_key: str,
    source_ref: str = "",
    note: str = "",
    user: AbstractBaseUser | None = None,
) -> MovementResult:
    """Record a cycle count: the delta to ``counted_on_hand`` is computed under the lock.

    A count that matches is still recorded (a zero movement), as audit evidence.
    A repeat of the key returns the first movement with ``created=False``.
    """
    if not isinstance(counted_on_hand, int) or counted_on_hand < 0:
        raise InvalidMovement("A counted quantity must be a whole number of 0 or more")
    _validate_common(MovementReason.COUNT, idempotency_key, source)
    with transaction.atomic():
        level = stock_levels_lock([(variant.pk, location.pk)])[(variant.pk, location.pk)]
        level.location = location
        previous = StockMovement.objects.filter(idempotency_key=idempotency_key).first()
        if previous is not None:
            if previous.variant_id != variant.pk or previous.location_id != location.pk:
                raise IdempotencyConflict(
                    f"Idempotency key {idempotency_key!r} was already used for another count"
                )
            return MovementResult(previous, created=False)
        deltas = Deltas(on_hand=counted_on_hand - level.on_hand)
        _check_result(level, deltas, MovementReason.COUNT, variant.sku)
        movement = _write_locked(
            level,
            deltas,
            reason=MovementReason.COUNT,
            source=source,
            key=idempotency_key,
            source_ref=source_ref,
            note=note,
            user=user,
        )
        events.publish_stock_changed(variant_ids=[variant.pk], location_ids=[location.pk])
        return MovementResult(movement, created=True)


def stock_transfer(
    *,
    variant: Variant,
    from_location: Location,
    to_location: Location,
    quantity: int,
    source: str,
    idempotency_key: str,
    note: str = "",
    user: AbstractBaseUser | None = None,
) -> TransferResult:
    """Move available units between locations: both legs or neither."""
    if from_location.pk == to_location.pk:
        raise InvalidMovement("A transfer needs two different locations")
    if not isinstance(quantity, int) or quantity <= 0:
        raise InvalidMovement("A transfer quantity must be a whole number above 0")
    if not to_location.is_active:
        raise InvalidMovement(f"Location {to_location} is inactive")
    out_key, in_key = f"{idempotency_key}:out", f"{idempotency_key}:in"
    _validate_common(MovementReason.TRANSFER, out_key, source)
    out_d, in_d = Deltas(on_hand=-quantity), Deltas(on_hand=quantity)
    with transaction.atomic():
        levels = stock_levels_lock([(variant.pk, from_location.pk), (variant.pk, to_location.pk)])
        src, dst = levels[(variant.pk, from_location.pk)], levels[(variant.pk, to_location.pk)]
        src.location, dst.location = from_location, to_location
        prior_out = _existing_movement(
            out_key, variant.pk, from_location.pk, out_d, MovementReason.TRANSFER
        )
        prior_in = _existing_movement(
            in_key, variant.pk, to_location.pk, in_d, MovementReason.TRANSFER
        )
        if prior_out is not None and prior_in is not None:
            return TransferResult(prior_out, prior_in, created=False)
        _check_result(src, out_d, MovementReason.TRANSFER, variant.sku)
        common = {
            "reason": MovementReason.TRANSFER,
            "source": source,
            "source_ref": idempotency_key,
            "note": note,
            "user": user,
        }
        outbound = _write_locked(src, out_d, key=out_key, **common)
        inbound = _write_locked(dst, in_d, key=in_key, **common)
        events.publish_stock_changed(
            variant_ids=[variant.pk], location_ids=[from_location.pk, to_location.pk]
        )
        return TransferResult(outbound, inbound, created=True)


# --- reservations ---------------------------------------------------------------------------


def reservation_create(
    *,
    variant: Variant,
    location: Location,
    quantity: int,
    source: str,
    idempotency_key: str,
    source_ref: str = "",
    expires_at: datetime | None = None,
) -> Reservation:
    """Hold available units; a repeat of the key returns the first reservation."""
    if not isinstance(quantity, int) or quantity <= 0:
        raise InvalidMovement("A reservation needs a quantity above 0")
    if expires_at is None:
        minutes = settings.PIMSYNC_RESERVATION_DEFAULT_MINUTES
        expires_at = timezone.now() + timedelta(minutes=minutes)
    existing = Reservation.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    try:
        return _reservation_insert(
            variant=variant,
            location=location,
            quantity=quantity,
            source=source,
            source_ref=source_ref,
            idempotency_key=idempotency_key,
            expires_at=expires_at,
        )
    except IntegrityError:
        # A concurrent request with the same key inserted first.
        existing = Reservation.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing


def _reservation_insert(
    *,
    variant: Variant,
    location: Location,
    quantity: int,
    source: str,
    source_ref: str,
    idempotency_key: str,
    expires_at: datetime,
) -> Reservation:
    with transaction.atomic():
        reservation = Reservation.objects.create(
            variant=variant,
            location=location,
            quantity=quantity,
            source=source,
            source_ref=source_ref,
            idempotency_key=idempotency_key,
            expires_at=expires_at,
        )
        stock_movement_apply(
            variant=variant,
            location=location,
            deltas=Deltas(reserved=quantity),
            reason=MovementReason.RESERVE,
            source=source,
            source_ref=source_ref,
            idempotency_key=f"reservation:{reservation.pk}:reserve",
        )
        return reservation


def _reservation_close(
    reservation_id: int,
    *,
    target: str,
    deltas_for: Any,
    reason: str,
    now: datetime | None = None,
) -> Reservation:
    with transaction.atomic():
        reservation = reservation_lock(reservation_id)
        if reservation.status == target:
            return reservation
        if reservation.status != Reservation.Status.ACTIVE:
            raise InvalidTransition(
                f"Reservation {reservation.pk} is {reservation.status}, cannot become {target}"
            )
        stock_movement_apply(
            variant=reservation.variant,
            location=reservation.location,
            deltas=deltas_for(reservation.quantity),
            reason=reason,
            source=reservation.source,
            source_ref=reservation.source_ref,
            idempotency_key=f"reservation:{reservation.pk}:{target}",
        )
        reservation.status = target
        reservation.closed_at = now or timezone.now()
        reservation.save(update_fields=["status", "closed_at"])
        return reservation


def reservation_commit(*, reservation_id: int) -> Reservation:
    """Paid: reserved units become committed. Idempotent; raises InvalidTransition
    when the reservation was already released or expired."""
    return _reservation_close(
        reservation_id,
        target=Reservation.Status.COMMITTED,
        deltas_for=lambda q: Deltas(reserved=-q, committed=q),
        reason=MovementReason.COMMIT,
    )


def reservation_release(*, reservation_id: int) -> Reservation:
    """Cancelled: reserved units become available again. Idempotent."""
    return _reservation_close(
        reservation_id,
        target=Reservation.Status.RELEASED,
        deltas_for=lambda q: Deltas(reserved=-q),
        reason=MovementReason.RELEASE,
    )


def reservation_expire_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Release every active reservation past its expiry; returns how many expired.

    Each reservation expires in its own transaction so one failure does not
    hold back the rest, and a reservation committed meanwhile is left alone.
    """
    now = now or timezone.now()
    due = list(
        Reservation.objects.filter(status=Reservation.Status.ACTIVE, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:limit]
    )
    expired = 0
    for pk in due:
        try:
            _reservation_close(
                pk,
                target=Reservation.Status.EXPIRED,
                deltas_for=lambda q: Deltas(reserved=-q),
                reason=MovementReason.RELEASE,
                now=now,
            )
        except InvalidTransition:
            continue
        expired += 1
    return expired


# --- catalog -------------------------------------------------------------------------------


def _clean_or_raise(obj: Any) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        raise InvalidMovement(
            "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        ) from exc


def variant_save(*, variant: Variant, changed_fields: Iterable[str] | None = None) -> Variant:
    """Validate and save a new or edited variant; a price change fires the event.

    ``changed_fields`` is what the caller changed (the admin's form knows); when
    omitted the stored row is compared.
    """
    with transaction.atomic():
        if variant.pk is None:
            variant.full_clean()
            variant.save()
            events.publish_price_changed(variant_ids=[variant.pk])
            return variant
        if changed_fields is None:
            before = Variant.objects.filter(pk=variant.pk).values(*PRICE_FIELDS).first() or {}
            price_changed = any(before.get(f) != getattr(variant, f) for f in PRICE_FIELDS)
        else:
            price_changed = bool(set(changed_fields) & set(PRICE_FIELDS))
        variant.full_clean()
        variant.save()
        if price_changed:
            events.publish_price_changed(variant_ids=[variant.pk])
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
    if value.as_tuple().exponent < -2:
        return f"{field} may have at most 2 decimal places"
    if value >= MONEY_LIMIT:
        return f"{field} must be below {MONEY_LIMIT:,.0f}"
    return None


# Rows per UPDATE statement: 2 parameters per row and field plus 1 per row for the
# id list stays far below SQLite's (32,766) and PostgreSQL's (65,535) limits.
PRICE_UPDATE_BATCH = 1000


def _variants_update_columns(
    values: dict[int, dict[str, Any]], names: list[str], now: datetime
) -> None:
    """One ``UPDATE … SET col = CASE id WHEN … END`` per batch of ``values`` (id -> field -> value).

    Django's bulk_update resolves a Q object per row and field (about 2 ms a
    row: 20 s for a 10,000-row price file); this writes the same values
    with plain SQL. Column names come from the model, values are parameters.
    """
    meta, qn = Variant._meta, connection.ops.quote_name
    fields = [meta.get_field(name) for name in names]
    stamp = meta.get_field("updated_at")
    pk = qn(meta.pk.column)
    ids = sorted(values)
    for start in range(0, len(ids), PRICE_UPDATE_BATCH):
        batch = ids[start : start + PRICE_UPDATE_BATCH]
        assignments, params = [], []
        for f in fields:
            when = f"WHEN %s THEN CAST(%s AS {f.db_type(connection)})"
            assignments.append(f"{qn(f.column)} = CASE {pk} {' '.join([when] * len(batch))} END")
            for variant_id in batch:
                value = f.get_db_prep_save(values[variant_id][f.name], connection)
                params += [variant_id, value]
        assignments.append(f"{qn(stamp.column)} = %s")
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
    product.full_clean()
    product.save()
    return product


OPERATION_REASONS = {
    "receive": MovementReason.RECEIVE,
    "adjust": MovementReason.ADJUST,
    "return": MovementReason.RETURN,
    "damage": MovementReason.DAMAGE,
}


def stock_operation_apply(
    *,
    variant: Variant,
    location: Location,
    operation: str,
    quantity: int,
    note: str,
    idempotency_key: str,
    source: str,
    user: AbstractBaseUser | None = None,
) -> MovementResult:
    """One operation a person picks in a form: receive/adjust/return/damage by
    ``quantity``, or ``count`` to set on-hand to ``quantity``."""
    if not note.strip():
        raise InvalidMovement("A reason is required for a stock change")
    if operation == "count":
        return stock_count(
            variant=variant,
            location=location,
            counted_on_hand=quantity,
            source=source,
            idempotency_key=idempotency_key,
            note=note,
            user=user,
        )
    if operation not in OPERATION_REASONS:
        raise InvalidMovement(f"Unknown operation {operation!r}")
    return stock_adjust(
        variant=variant,
        location=location,
        quantity=quantity,
        reason=OPERATION_REASONS[operation],
        source=source,
        idempotency_key=idempotency_key,
        note=note,
        user=user,
    )


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
    location.full_clean()
    location.save()
    return location


# --- many movements at once -------------------------------------------------------------


@dataclass(frozen=True)
class MovementSpec:
    """One movement of a bulk request, already resolved to ids."""

    variant_id: int
    location_id: int
    deltas: Deltas
    reason: str
    idempotency_key: str
    note: str = ""
    source_ref: str = ""


def _bulk_precheck(specs: Sequence[MovementSpec], source: str) -> dict[int, list[str]]:
    errors: dict[int, list[str]] = {}
    first_row_of: dict[str, int] = {}
    for row, spec in enumerate(specs):
        try:
            _validate_common(spec.reason, spec.idempotency_key, source)
        except InvalidMovement as exc:
            errors.setdefault(row, []).append(exc.message)
        # A count that matches is still recorded (audit evidence), as in stock_count.
        if spec.deltas.is_zero and spec.reason != MovementReason.COUNT:
            errors.setdefault(row, []).append("A movement of 0 changes nothing")
        twin = first_row_of.setdefault(spec.idempotency_key, row)
        if twin != row:
            errors.setdefault(row, []).append(
                f"Idempotency key {spec.idempotency_key!r} is also used by row {twin}"
            )
    return errors


def _movements_by_key(keys: list[str]) -> dict[str, StockMovement]:
    found: dict[str, StockMovement] = {}
    for start in range(0, len(keys), 2000):
        chunk = keys[start : start + 2000]
        found.update(
            (m.idempotency_key, m) for m in StockMovement.objects.filter(idempotency_key__in=chunk)
        )
    return found


def _bulk_levels_update(levels: dict[tuple[int, int], StockLevel], moved: dict) -> None:
    """Every bucket moved by its delta (``bucket = bucket + delta``), 1,000 levels a
    statement: ``WITH moved(id, …) AS (VALUES …) UPDATE … FROM moved``.

    Django's bulk_update writes one CASE WHEN per row and column, which the database
    evaluates row by row: 20,000 levels took half a minute on PostgreSQL. A join on
    the VALUES list is linear. PostgreSQL and SQLite (3.33+) both speak it.
    """
    ops = connection.ops
    table = ops.quote_name(StockLevel._meta.db_table)
    stamp = ops.adapt_datetimefield_value(timezone.now())
    deltas = [f"d_{b}" for b in BUCKETS]
    assignments = ", ".join(
        [
            f"{ops.quote_name(b)} = {table}.{ops.quote_name(b)} + moved.{d}"
            for b, d in zip(BUCKETS, deltas, strict=True)
        ]
        + [f"{ops.quote_name('updated_at')} = %s"]
    )
    # Typed parameters: PostgreSQL would otherwise read the VALUES columns as text.
    row_sql = "(CAST(%s AS BIGINT)" + ", CAST(%s AS INTEGER)" * len(BUCKETS) + ")"
    rows = [(levels[pair].pk, *(d[b] for b in BUCKETS)) for pair, d in moved.items()]
    head = f"WITH moved (id, {', '.join(deltas)}) AS (VALUES "
    # Only quoted model names and parameter markers are formatted in.
    tail = f") UPDATE {table} SET {assignments} FROM moved WHERE {table}.id = moved.id"  # noqa: S608
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            cursor.execute(
                head + ", ".join([row_sql] * len(chunk)) + tail,
                [p for row in chunk for p in row] + [stamp],
            )


def stock_movements_apply_bulk(
    *,
    specs: Sequence[MovementSpec],
    source: str,
    user: AbstractBaseUser | None = None,
) -> list[MovementResult]:
    """Apply many movements in one transaction: all of them or none.

    Each movement follows stock_movement_apply's rules (ledger row with its own
    idempotency key and balances-after, buckets never negative, promising
    reasons limited to what is available — in the order given, so two rows on
    one SKU see each other), but with bulk queries: rows locked in pk order,
    ledger rows inserted together, levels moved with F() in a few UPDATEs, one
    domain event. A key applied before with the same payload is returned with
    ``created=False``. Raises BulkMovementRejected naming every failing row;
    then nothing is written.
    """
    errors = _bulk_precheck(specs, source)
    if errors:
        raise BulkMovementRejected(errors)
    if not specs:
        return []
    with transaction.atomic():
        levels = stock_levels_lock({(s.variant_id, s.location_id) for s in specs})
        prior = _movements_by_key([s.idempotency_key for s in specs])
        return _bulk_apply_locked(specs, levels, prior, source=source, user=user)


def _bulk_apply_locked(
    specs: Sequence[MovementSpec],
    levels: dict[tuple[int, int], StockLevel],
    prior: dict[str, StockMovement],
    *,
    source: str,
    user: AbstractBaseUser | None,
) -> list[MovementResult]:
    """stock_movements_apply_bulk once its levels are locked and the movements already
    stored under its keys (``prior``) are known; raises BulkMovementRejected."""
    locations = Location.objects.in_bulk({s.location_id for s in specs})
    skus = dict(
        Variant.objects.filter(pk__in={s.variant_id for s in specs}).values_list("pk", "sku")
    )
    for spec in specs:
        levels[(spec.variant_id, spec.location_id)].location = locations[spec.location_id]
    errors: dict[int, list[str]] = {}
    results: list[MovementResult | None] = [None] * len(specs)
    new: list[tuple[int, StockMovement]] = []
    moved: dict[tuple[int, int], dict[str, int]] = {}
    for row, spec in enumerate(specs):
        pair = (spec.variant_id, spec.location_id)
        existing = prior.get(spec.idempotency_key)
        if existing is not None:
            if _same_payload(existing, *pair, spec.deltas, spec.reason):
                results[row] = MovementResult(existing, created=False)
            else:
                errors[row] = [
                    f"Idempotency key {spec.idempotency_key!r} was already used for a "
                    "different stock change"
                ]
            continue
        level = levels[pair]
        if not level.location.is_active:
            errors[row] = [f"Location {level.location} is inactive"]
            continue
        try:
            _check_result(level, spec.deltas, spec.reason, skus[spec.variant_id])
        except (InsufficientStock, InvalidMovement) as exc:
            errors[row] = [exc.message]
            continue
        total = moved.setdefault(pair, dict.fromkeys(BUCKETS, 0))
        for b in BUCKETS:
            step = getattr(spec.deltas, b)
            setattr(level, b, getattr(level, b) + step)
            total[b] += step
        new.append((row, _ledger_row(level, spec, source=source, user=user)))
    if errors:
        raise BulkMovementRejected(errors)
    StockMovement.objects.bulk_create([m for _, m in new], batch_size=1000)
    for row, movement in new:
        results[row] = MovementResult(movement, created=True)
    if moved:
        _bulk_levels_update(levels, moved)
        events.publish_stock_changed(
            variant_ids={v for v, _ in moved}, location_ids={loc for _, loc in moved}
        )
    return [r for r in results if r is not None]


@dataclass(frozen=True)
class CountSpec:
    """One cycle count of a bulk request, already resolved to ids."""

    variant_id: int
    location_id: int
    counted_on_hand: int
    idempotency_key: str
    note: str = ""
    source_ref: str = ""


def stock_counts_apply_bulk(
    *,
    counts: Sequence[CountSpec],
    source: str,
    user: AbstractBaseUser | None = None,
) -> list[MovementResult]:
    """Record many cycle counts in one transaction: all of them or none.

    stock_count's rules in bulk: each delta to the counted quantity is computed
    under the row lock (so stock that moved since the sheet was printed is
    counted, not double-counted), a matching count is still a zero movement, and
    a key applied before returns its first movement with ``created=False``.
    Raises BulkMovementRejected naming every failing row (indices into
    ``counts``); then nothing is written.
    """
    errors = {
        row: ["A counted quantity must be a whole number of 0 or more"]
        for row, c in enumerate(counts)
        if not isinstance(c.counted_on_hand, int) or c.counted_on_hand < 0
    }
    if errors:
        raise BulkMovementRejected(errors)
    with transaction.atomic():
        levels = stock_levels_lock({(c.variant_id, c.location_id) for c in counts})
        prior = _movements_by_key([c.idempotency_key for c in counts])
        results: dict[int, MovementResult] = {}
        specs: list[MovementSpec] = []
        spec_rows: list[int] = []
        for row, c in enumerate(counts):
            existing = prior.get(c.idempotency_key)
            if existing is None:
                specs.append(_count_movement_spec(c, levels[(c.variant_id, c.location_id)]))
                spec_rows.append(row)
            elif (existing.variant_id, existing.location_id) == (c.variant_id, c.location_id):
                results[row] = MovementResult(existing, created=False)
            else:
                errors[row] = [
                    f"Idempotency key {c.idempotency_key!r} was already used for another count"
                ]
        errors |= {spec_rows[row]: m for row, m in _bulk_precheck(specs, source).items()}
        if errors:
            raise BulkMovementRejected(errors)
        try:
            # Every stored key is in `results` already: none of these has a prior movement.
            applied = _bulk_apply_locked(specs, levels, {}, source=source, user=user)
        except BulkMovementRejected as exc:
            raise BulkMovementRejected(
                {spec_rows[row]: messages for row, messages in exc.row_errors.items()}
            ) from None
    results.update(zip(spec_rows, applied, strict=True))
    return [results[row] for row in range(len(counts))]


def _count_movement_spec(count: CountSpec, level: StockLevel) -> MovementSpec:
    return MovementSpec(
        variant_id=count.variant_id,
        location_id=count.location_id,
        deltas=Deltas(on_hand=count.counted_on_hand - level.on_hand),
        reason=MovementReason.COUNT,
        idempotency_key=count.idempotency_key,
        note=count.note,
        source_ref=count.source_ref,
    )


def _ledger_row(
    level: StockLevel, spec: MovementSpec, *, source: str, user: AbstractBaseUser | None
) -> StockMovement:
    """The ledger row of a movement already applied to ``level`` in memory."""
    d = spec.deltas
    return StockMovement(
        variant_id=spec.variant_id,
        location_id=spec.location_id,
        delta_on_hand=d.on_hand,
        delta_committed=d.committed,
        delta_reserved=d.reserved,
        delta_damaged=d.damaged,
        reason=spec.reason,
        source=source,
        source_ref=spec.source_ref,
        idempotency_key=spec.idempotency_key,
        note=spec.note,
        on_hand_after=level.on_hand,
        available_after=level.available,
        created_by=user if user is not None and user.is_authenticated else None,
    )
