"""Orders from channels change stock exactly once (design §4).

An order's lines move through states by transitions; each transition's stock
effect is a StockMovement whose idempotency key is derived from (channel,
order, line, transition, location), so a delivery seen three times, out of
order, or also found by polling, applies once. The channel's updated_at (and
then the status rank) decides; a transition never moves backwards.

Last unit: an order is applied under its own row lock and the stock rows'
locks; a line that the channel's locations cannot cover is an oversell
conflict — the first order wins, the later one is flagged, alerted, every
channel is pushed the new (zero) quantity at once, and where the channel says
so the order is cancelled on its channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from inventory import services as stock
from inventory.locks import stock_levels_lock
from inventory.models import Location, MovementReason, Reservation, StockMovement, Variant
from synclog import services as synclog

from ..connectors.base import OrderData, OrderLineData
from ..dispatch import order_cancel_request_on_commit, order_fulfil_request_on_commit
from ..models import (
    Channel,
    ChannelListing,
    ChannelOrder,
    ChannelOrderLine,
    OrderStatus,
    SyncKind,
)
from ..sync.markers import listings_mark_dirty
from .customers import customer_match, normalise_email, normalise_phone

log = logging.getLogger(__name__)
Line = ChannelOrderLine.State
RANK: dict[str, int] = {
    OrderStatus.PENDING: 0,
    OrderStatus.PAID: 1,
    OrderStatus.FULFILLED: 2,
    OrderStatus.CANCELLED: 3,
    OrderStatus.REFUNDED: 4,
}
# Per units moved, the buckets a transition changes.
DeltasFor = Callable[[int], stock.Deltas]
# Line states from which nothing more happens.
FINAL = {Line.RELEASED, Line.RESTOCKED, Line.UNMATCHED, Line.OVERSOLD}


@dataclass
class OrderApplyResult:
    order: ChannelOrder
    created: bool
    stale: bool = False  # an older state than the one already applied: nothing done
    transitions: list[str] = field(default_factory=list)
    oversold_skus: list[str] = field(default_factory=list)
    unmatched_skus: list[str] = field(default_factory=list)


# --- lines ---------------------------------------------------------------------------------


def _variant_for(channel: Channel, line: OrderLineData) -> int | None:
    """By the channel's listing ids first, then by SKU (listing SKU, then master SKU)."""
    listings = ChannelListing.objects.filter(channel=channel)
    if line.external_variant_id:
        found = (
            listings.filter(external_variant_id=line.external_variant_id)
            .values_list("variant_id", flat=True)
            .first()
        )
        if found:
            return found
    if line.sku:
        found = (
            listings.filter(Q(listing_sku=line.sku) | Q(variant__sku=line.sku))
            .values_list("variant_id", flat=True)
            .first()
        )
        if found:
            return found
        return Variant.objects.filter(sku=line.sku).values_list("pk", flat=True).first()
    return None


def _create_lines(order: ChannelOrder, data: OrderData) -> list[str]:
    unmatched = []
    for line in data.lines:
        variant_id = _variant_for(order.channel, line)
        if variant_id is None:
            unmatched.append(line.sku or line.external_line_id)
        ChannelOrderLine.objects.create(
            order=order,
            external_line_id=line.external_line_id,
            sku=line.sku,
            variant_id=variant_id,
            quantity=max(0, int(line.quantity)),
            unit_price=line.unit_price,
            state=Line.OPEN if variant_id else Line.UNMATCHED,
        )
    return unmatched


# --- stock effects ---------------------------------------------------------------------------


def _key(order: ChannelOrder, line: ChannelOrderLine, transition: str, location_id: int) -> str:
    line_ref = f"{order.external_id}:{line.external_line_id}"
    return f"order:{order.channel_id}:{line_ref}:{transition}:{location_id}"


def _source(order: ChannelOrder) -> str:
    return f"channel:{order.channel_id}"


def _channel_location_ids(channel: Channel) -> list[int]:
    return list(
        channel.channel_locations.order_by("priority", "location_id").values_list(
            "location_id", flat=True
        )
    )


def _variant_id(line: ChannelOrderLine) -> int:
    """The line's variant id; only matched lines ever reach a stock transition."""
    if line.variant_id is None:
        raise ValueError(f"order line {line.pk} ({line.sku}) is not matched to a variant")
    return line.variant_id


def _variant(line: ChannelOrderLine) -> Variant:
    """The line's variant (see _variant_id)."""
    if line.variant is None:
        raise ValueError(f"order line {line.pk} ({line.sku}) is not matched to a variant")
    return line.variant


def _allocate(order: ChannelOrder, line: ChannelOrderLine) -> list[dict] | None:
    """Split the line over the channel's locations in priority order, under the
    stock row locks; None when they cannot cover it (oversell)."""
    location_ids = _channel_location_ids(order.channel)
    if not location_ids:
        return None
    variant_id = _variant_id(line)
    levels = stock_levels_lock([(variant_id, loc) for loc in location_ids])
    remaining, plan = line.quantity, []
    for loc in location_ids:
        take = min(remaining, max(0, levels[(variant_id, loc)].available))
        if take:
            plan.append({"location_id": loc, "quantity": take})
            remaining -= take
        if not remaining:
            return plan
    return None


def _taken_back(allocation: list[dict], units: int) -> list[int]:
    """Per allocation part, how many of the line's first ``units`` refunded units it
    gave back. Refunds take from the parts in allocation order, so the split of any
    cumulative count is fixed and a later refund only moves the difference."""
    split = []
    for part in allocation:
        take = min(units, part["quantity"])
        split.append(take)
        units -= take
    return split


def _move(
    order: ChannelOrder,
    line: ChannelOrderLine,
    transition: str,
    reason: str,
    deltas_for: DeltasFor,
    quantities: list[int] | None = None,
) -> None:
    """One movement per allocation part (``quantities``: per part, default the part's
    whole quantity); a part with nothing to move writes nothing."""
    locations = {
        loc.pk: loc
        for loc in Location.objects.filter(pk__in=[a["location_id"] for a in line.allocation])
    }
    if quantities is None:
        quantities = [part["quantity"] for part in line.allocation]
    for part, quantity in zip(line.allocation, quantities, strict=True):
        if not quantity:
            continue
        stock.stock_movement_apply(
            variant=_variant(line),
            location=locations[part["location_id"]],
            deltas=deltas_for(quantity),
            reason=reason,
            source=_source(order),
            source_ref=order.external_id,
            idempotency_key=_key(order, line, transition, part["location_id"]),
        )


def _remaining(line: ChannelOrderLine) -> list[int]:
    """Per allocation part, the units not yet refunded."""
    back = _taken_back(line.allocation, line.refunded_quantity)
    return [part["quantity"] - b for part, b in zip(line.allocation, back, strict=True)]


def _reserve(order: ChannelOrder, line: ChannelOrderLine) -> bool:
    plan = _allocate(order, line)
    if plan is None:
        return False
    expires = order.placed_at + timedelta(minutes=order.channel.reservation_minutes)
    locations = {
        loc.pk: loc for loc in Location.objects.filter(pk__in=[p["location_id"] for p in plan])
    }
    for part in plan:
        reservation = stock.reservation_create(
            variant=_variant(line),
            location=locations[part["location_id"]],
            quantity=part["quantity"],
            source=_source(order),
            source_ref=order.external_id,
            idempotency_key=_key(order, line, "reserve", part["location_id"]),
            expires_at=max(expires, order.placed_at),
        )
        part["reservation_id"] = reservation.pk
    line.allocation, line.state = plan, Line.RESERVED
    return True


def _commit(order: ChannelOrder, line: ChannelOrderLine) -> bool:
    if line.state == Line.RESERVED:
        for part in line.allocation:
            reservation = Reservation.objects.get(pk=part["reservation_id"])
            if reservation.status == Reservation.Status.ACTIVE:
                stock.reservation_commit(reservation_id=reservation.pk)
            elif reservation.status != Reservation.Status.COMMITTED:
                # The hold expired before payment: take the units again, if they are there.
                return _commit_fresh(order, line)
        line.state = Line.COMMITTED
        return True
    return _commit_fresh(order, line)


def _commit_fresh(order: ChannelOrder, line: ChannelOrderLine) -> bool:
    plan = _allocate(order, line)
    if plan is None:
        return False
    line.allocation = plan
    _move(order, line, "commit", MovementReason.SALE, lambda q: stock.Deltas(committed=q))
    line.state = Line.COMMITTED
    return True


def _ship(order: ChannelOrder, line: ChannelOrderLine) -> None:
    """Ships the units still committed (a unit refunded before shipping was released)."""
    _move(
        order,
        line,
        "ship",
        MovementReason.SHIP,
        lambda q: stock.Deltas(on_hand=-q, committed=-q),
        _remaining(line),
    )
    line.state = Line.SHIPPED


def _release(order: ChannelOrder, line: ChannelOrderLine) -> None:
    if line.state == Line.RESERVED:
        for part in line.allocation:
            reservation = Reservation.objects.get(pk=part["reservation_id"])
            if reservation.status == Reservation.Status.ACTIVE:
                stock.reservation_release(reservation_id=reservation.pk)
    elif line.state == Line.COMMITTED:
        _move(
            order,
            line,
            "release",
            MovementReason.RELEASE,
            lambda q: stock.Deltas(committed=-q),
            _remaining(line),
        )
    line.state = Line.RELEASED


def _returned_deltas(order: ChannelOrder, line: ChannelOrderLine) -> tuple[str, DeltasFor]:
    """Sellable only when the channel said the unit was restocked (or, unsaid, the
    channel's setting says so); otherwise back on hand as damaged."""
    sellable = (
        line.restock if line.restock is not None else order.channel.returns_restock == "sellable"
    )
    if sellable:
        return MovementReason.RETURN, lambda q: stock.Deltas(on_hand=q)
    return MovementReason.DAMAGE, lambda q: stock.Deltas(on_hand=q, damaged=q)


def _restock(order: ChannelOrder, line: ChannelOrderLine) -> None:
    """The whole order was refunded: the shipped units not returned yet come back."""
    reason, deltas_for = _returned_deltas(order, line)
    _move(order, line, "restock", reason, deltas_for, _remaining(line))
    line.state = Line.RESTOCKED


def _take_back_refunded(order: ChannelOrder, line: ChannelOrderLine, refunded: int) -> list[str]:
    """Units refunded on the channel while the rest of the order stands (a partial
    refund): a shipped unit is a return, restocked per reason; a unit not shipped yet
    is released. The channel's count is cumulative, so each newly refunded batch is
    one movement per location keyed by the new total, and a repeat moves nothing."""
    refunded = min(refunded, line.quantity)
    if refunded <= line.refunded_quantity or line.state not in (Line.COMMITTED, Line.SHIPPED):
        return []
    before = _taken_back(line.allocation, line.refunded_quantity)
    after = _taken_back(line.allocation, refunded)
    newly = [a - b for a, b in zip(after, before, strict=True)]
    if line.state == Line.SHIPPED:
        transition = f"return-{refunded}"
        reason, deltas_for = _returned_deltas(order, line)
        _move(order, line, transition, reason, deltas_for, newly)
        line.state = Line.RESTOCKED if refunded == line.quantity else line.state
    else:
        transition = f"release-{refunded}"
        _move(
            order,
            line,
            transition,
            MovementReason.RELEASE,
            lambda q: stock.Deltas(committed=-q),
            newly,
        )
        line.state = Line.RELEASED if refunded == line.quantity else line.state
    line.refunded_quantity = refunded
    return [transition]


def _advance_line(order: ChannelOrder, line: ChannelOrderLine, target: str) -> list[str]:
    """Move one line towards the order's target status; returns transitions done.
    Raises _Oversold when the units are not there."""
    done: list[str] = []
    if line.state in FINAL:
        return done
    if target == OrderStatus.PENDING and line.state == Line.OPEN:
        if not _reserve(order, line):
            raise _Oversold(line)
        done.append("reserve")
    elif target in (OrderStatus.PAID, OrderStatus.FULFILLED):
        if line.state in (Line.OPEN, Line.RESERVED):
            if not _commit(order, line):
                raise _Oversold(line)
            done.append("commit")
        if target == OrderStatus.FULFILLED and line.state == Line.COMMITTED:
            _ship(order, line)
            done.append("ship")
    elif target == OrderStatus.CANCELLED:
        if line.state in (Line.OPEN, Line.RESERVED, Line.COMMITTED):
            _release(order, line)
            done.append("release")
    elif target == OrderStatus.REFUNDED:
        if line.state == Line.SHIPPED:
            _restock(order, line)
            done.append("restock")
        elif line.state in (Line.OPEN, Line.RESERVED, Line.COMMITTED):
            _release(order, line)
            done.append("release")
    return done


class _Oversold(Exception):
    def __init__(self, line: ChannelOrderLine) -> None:
        super().__init__(line.sku)
        self.line = line


# --- the service -------------------------------------------------------------------------------


def _is_newer(order: ChannelOrder, data: OrderData) -> bool:
    if data.updated_at != order.channel_updated_at:
        return data.updated_at > order.channel_updated_at
    return RANK.get(data.status, -1) > RANK.get(order.status, -1)


def _lock_or_create(channel: Channel, data: OrderData, source: str) -> tuple[ChannelOrder, bool]:
    existing = (
        ChannelOrder.objects.select_for_update()
        .filter(channel=channel, external_id=data.external_id)
        .first()
    )
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            order = ChannelOrder.objects.create(
                channel=channel,
                external_id=data.external_id,
                name=data.name[:120],
                status=OrderStatus.PENDING,
                financial_status=data.financial_status[:40],
                fulfillment_status=(data.fulfillment_status or "")[:40],
                currency=(data.currency or "")[:3],
                total=data.total,
                customer_email=normalise_email(data.customer_email or ""),
                customer_phone=normalise_phone(data.customer_phone or ""),
                customer=customer_match(email=data.customer_email, phone=data.customer_phone),
                placed_at=data.created_at,
                # Before any state: the first delivery always applies.
                channel_updated_at=data.created_at - timedelta(microseconds=1),
                raw=dict(data.raw),
                first_seen_via=source,
                seen_via_webhook=source == "webhook",
            )
    except IntegrityError:
        # Another worker created it first; wait for its lock and go on from there.
        return ChannelOrder.objects.select_for_update().get(
            channel=channel, external_id=data.external_id
        ), False
    return order, True


def order_apply(*, channel: Channel, data: OrderData, source: str) -> OrderApplyResult:
    """Import or update one order and apply its stock effects exactly once.

    Safe to call any number of times with the same or older data, in any order,
    concurrently: the order row lock serialises one order, the stock row locks
    serialise the last unit. Unknown SKUs become unmatched lines (alerted),
    never an error.
    """
    with transaction.atomic():
        order, created = _lock_or_create(channel, data, source)
        result = OrderApplyResult(order=order, created=created)
        if created:
            result.unmatched_skus = _create_lines(order, data)
        if source == "webhook" and not order.seen_via_webhook:
            order.seen_via_webhook = True
            order.save(update_fields=["seen_via_webhook"])
        if not created and not _is_newer(order, data):
            result.stale = True
            return result
        _apply_target(order, data, result)
    for sku in result.unmatched_skus:
        synclog.alert_raise(
            kind="unmatched_sku",
            channel_id=channel.pk,
            sku=sku[:100],
            message=f"Order {order.name or order.external_id} on {channel} has SKU {sku!r}, "
            "which matches no listing or variant; its stock was not changed.",
        )
    return result


def _apply_target(order: ChannelOrder, data: OrderData, result: OrderApplyResult) -> None:
    target = data.status if data.status in RANK else OrderStatus.PENDING
    lines = list(order.lines.select_related("variant").order_by("pk"))
    restock_said = {d.external_line_id: d.restock for d in data.lines if d.restock is not None}
    refunded = {d.external_line_id: d.refunded_quantity for d in data.lines}
    for line in lines:
        line.restock = restock_said.get(line.external_line_id, line.restock)
        try:
            with transaction.atomic():
                result.transitions += _advance_line(order, line, target)
                result.transitions += _take_back_refunded(
                    order, line, refunded.get(line.external_line_id, 0)
                )
                line.save(update_fields=["state", "allocation", "restock", "refunded_quantity"])
        except _Oversold:
            _flag_oversold(order, line, result)
    order.status = target
    order.financial_status = data.financial_status[:40]
    order.fulfillment_status = (data.fulfillment_status or "")[:40]
    order.channel_updated_at = data.updated_at
    order.total = data.total
    order.raw = dict(data.raw)
    order.has_unmatched_lines = any(line.state == Line.UNMATCHED for line in lines)
    order.save()


def _flag_oversold(order: ChannelOrder, line: ChannelOrderLine, result: OrderApplyResult) -> None:
    line.state = Line.OVERSOLD
    line.save(update_fields=["state"])
    order.is_oversold = True
    result.oversold_skus.append(line.sku)
    synclog.alert_raise(
        kind="oversell",
        channel_id=order.channel_id,
        sku=line.sku[:100],
        severity="critical",
        message=f"Order {order.name or order.external_id} on {order.channel} wants {line.quantity} "
        f"of {line.sku}, which another channel already sold; it was not applied.",
    )
    # Every channel must show the truth (0) at once: forced, so no threshold or
    # interval holds it back.
    listings_mark_dirty(
        ChannelListing.objects.filter(variant_id=_variant_id(line)),
        kinds=[SyncKind.QUANTITY],
        forced=True,
        urgent=True,
    )
    if order.channel.cancel_oversold_orders:
        order_cancel_request_on_commit(order.pk)


def order_stock_effects(order: ChannelOrder) -> QuerySet[StockMovement]:
    """The ledger rows this order caused, for the admin's order page."""
    return (
        StockMovement.objects.filter(source=_source(order), source_ref=order.external_id)
        .select_related("variant", "location")
        .order_by("created_at", "pk")
    )


def order_mark_shipped(*, order: ChannelOrder, tracking_number: str = "", carrier: str = "") -> int:
    """Ship an order from pimsync: the ship movements now, and the channel is told
    after commit (logged like any push). Returns the number of lines shipped.

    Idempotent: the ship keys are the ones a later 'fulfilled' delivery from
    the channel would use, so that delivery changes nothing twice."""
    with transaction.atomic():
        order = ChannelOrder.objects.select_for_update().select_related("channel").get(pk=order.pk)
        if order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
            raise ValueError(f"Order {order.name or order.external_id} is {order.status}")
        shipped = 0
        for line in order.lines.select_related("variant").order_by("pk"):
            if line.state in (Line.OPEN, Line.RESERVED) and _commit(order, line):
                line.save(update_fields=["state", "allocation"])
            if line.state == Line.COMMITTED:
                _ship(order, line)
                line.save(update_fields=["state"])
                shipped += 1
        order.status = OrderStatus.FULFILLED
        order.save(update_fields=["status", "updated_at"])
        order_fulfil_request_on_commit(order.pk, tracking_number, carrier)
    return shipped


def orders_oversell_settle(*, orders: QuerySet[ChannelOrder]) -> int:
    """Ops settled these orders' oversell conflicts (restocked, substituted, told
    the customer): the oversell alerts close at the next health evaluation once
    no unsettled conflict is left for that SKU on that channel. Returns how many
    orders were settled now."""
    from django.utils import timezone

    return orders.filter(is_oversold=True, oversell_resolved_at__isnull=True).update(
        oversell_resolved_at=timezone.now()
    )
