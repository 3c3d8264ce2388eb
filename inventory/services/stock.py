"""Stock movements: one delta to one StockLevel, adjustments, counts and transfers.

Stock rules (callers may rely on them; the bulk forms in bulk.py keep them too):
- a change is a delta written with F() under the StockLevel row lock, in one
  transaction with its ledger row (StockMovement);
- an idempotency key applies once: a repeat returns the first movement with
  ``created=False``; a repeat with a different payload raises IdempotencyConflict;
- rows are locked in primary-key order; the domain event fires inside the
  transaction;
- no bucket ever goes below zero, and units that are promised (reserve, sale,
  transfer) must be available; a physical fact (count, adjust, damage) may push
  *available* below zero because it records reality, never a bucket;
- an inactive location takes no new stock or promises, but what it already holds
  can still be settled (committed, shipped, released, returned): deactivating a
  location never fails the orders already allocated there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .. import events
from ..errors import IdempotencyConflict, InvalidMovement, UnknownLocation, UnknownSku
from ..locks import stock_levels_lock
from ..models import Location, MovementReason, StockLevel, StockMovement, Variant
from ._ledger import (
    BUCKETS,
    SETTLING_REASONS,
    Deltas,
    MovementResult,
    check_result,
    same_payload,
    validate_common,
)


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


def _existing_movement(
    key: str, variant_id: int, location_id: int, d: Deltas, reason: str
) -> StockMovement | None:
    existing = StockMovement.objects.filter(idempotency_key=key).first()
    if existing is not None and not same_payload(existing, variant_id, location_id, d, reason):
        raise IdempotencyConflict(
            f"Idempotency key {key!r} was already used for a different stock change"
        )
    return existing


def _write_locked(
    level: StockLevel,
    d: Deltas,
    *,
    reason: str,
    source: str,
    key: str,
    source_ref: str,
    note: str,
    user: User | None,
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
    user: User | None = None,
) -> MovementResult:
    """Apply one delta to one StockLevel with its ledger row, exactly once per key.

    Raises InvalidMovement (a bucket would go negative, bad input),
    InsufficientStock (a promising reason takes more than is available) or
    IdempotencyConflict; in every case nothing is written.
    """
    validate_common(reason, idempotency_key, source)
    if not location.is_active and reason not in SETTLING_REASONS:
        raise InvalidMovement(f"Location {location} is inactive")
    with transaction.atomic():
        level = stock_levels_lock([(variant.pk, location.pk)])[(variant.pk, location.pk)]
        level.location = location
        existing = _existing_movement(idempotency_key, variant.pk, location.pk, deltas, reason)
        if existing is not None:
            return MovementResult(existing, created=False)
        check_result(level, deltas, reason, variant.sku)
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
    user: User | None = None,
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
    user: User | None = None,
) -> MovementResult:
    """Record a cycle count: the delta to ``counted_on_hand`` is computed under the lock.

    A count that matches is still recorded (a zero movement), as audit evidence.
    A repeat of the key returns the first movement with ``created=False``.
    """
    if not isinstance(counted_on_hand, int) or counted_on_hand < 0:
        raise InvalidMovement("A counted quantity must be a whole number of 0 or more")
    validate_common(MovementReason.COUNT, idempotency_key, source)
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
        check_result(level, deltas, MovementReason.COUNT, variant.sku)
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
    user: User | None = None,
) -> TransferResult:
    """Move available units between locations: both legs or neither."""
    if from_location.pk == to_location.pk:
        raise InvalidMovement("A transfer needs two different locations")
    if not isinstance(quantity, int) or quantity <= 0:
        raise InvalidMovement("A transfer quantity must be a whole number above 0")
    if not to_location.is_active:
        raise InvalidMovement(f"Location {to_location} is inactive")
    out_key, in_key = f"{idempotency_key}:out", f"{idempotency_key}:in"
    validate_common(MovementReason.TRANSFER, out_key, source)
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
        check_result(src, out_d, MovementReason.TRANSFER, variant.sku)
        write = partial(
            _write_locked,
            reason=MovementReason.TRANSFER,
            source=source,
            source_ref=idempotency_key,
            note=note,
            user=user,
        )
        outbound = write(src, out_d, key=out_key)
        inbound = write(dst, in_d, key=in_key)
        events.publish_stock_changed(
            variant_ids=[variant.pk], location_ids=[from_location.pk, to_location.pk]
        )
        return TransferResult(outbound, inbound, created=True)


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
    user: User | None = None,
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
