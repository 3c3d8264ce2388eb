"""Reservations: units held for a placed-but-unpaid order or a checkout, until
paid (committed), cancelled (released) or past their expiry (expired).

Each step is a stock movement with an idempotency key derived from the
reservation and the step, so a repeat applies once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..errors import IdempotencyConflict, InvalidMovement, InvalidTransition
from ..locks import reservation_lock
from ..models import Location, MovementReason, Reservation, Variant
from ._ledger import Deltas
from .stock import stock_movement_apply


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
    """Hold available units; a repeat of the key returns the first reservation.

    A repeat is the same request: the same variant, location, quantity and source
    (its expiry may differ, as "60 minutes from now" does on a retry). The key
    used for a different hold raises IdempotencyConflict and changes nothing.
    """
    if not isinstance(quantity, int) or quantity <= 0:
        raise InvalidMovement("A reservation needs a quantity above 0")
    if expires_at is None:
        minutes = settings.PIMSYNC_RESERVATION_DEFAULT_MINUTES
        expires_at = timezone.now() + timedelta(minutes=minutes)
    request = (variant.pk, location.pk, quantity, source)
    existing = Reservation.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return _same_reservation(existing, request)
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
        return _same_reservation(existing, request)


def _same_reservation(existing: Reservation, request: tuple[int, int, int, str]) -> Reservation:
    held = (existing.variant_id, existing.location_id, existing.quantity, existing.source)
    if held != request:
        raise IdempotencyConflict(
            f"Idempotency key {existing.idempotency_key!r} was already used for a different "
            "reservation"
        )
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
    deltas_for: Callable[[int], Deltas],
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
