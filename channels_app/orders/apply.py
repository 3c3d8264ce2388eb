"""Orders from channels change stock exactly once (design §4).

An order's lines move through states by transitions; each transition's stock
effect is a StockMovement whose idempotency key is derived from (channel,
order, line, transition, location), so a delivery seen three times, out of
order, or also found by polling, applies once. The channel's updated_at (and
then the status rank) decides; a transition never moves backwards.

Last unit: orders are applied under their own row locks and the stock rows'
locks; a line that the channel's active locations cannot cover is an oversell
conflict — the first order wins, the later one is flagged, alerted, every
channel is pushed the new (zero) quantity at once, and where the channel says
so the order is cancelled on its channel.

Many orders can share one transaction (a batch of inbound events, see
events.py): an OrderApplyScope reads what they share once and takes their locks
up front, always in the same order — orders, customers, reservations, stock rows,
each in key order — so two batches never wait on each other in a cycle. Each
order is then applied in its caller's savepoint (``stock_savepoint``); the new
orders are stored together (``OrderApplyScope.store_new``), and what their
success sets off (alerts, the forced zero push, a cancel on the channel) is
recorded once for the batch by ``order_effects_record``. One order on its own is
a batch of one (``order_apply`` without a scope).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from inventory import services as stock
from inventory.events import events_batched
from inventory.locks import stock_levels_held, stock_levels_lock
from inventory.models import Location, MovementReason, Reservation, StockMovement, Variant
from inventory.selectors import stock_sellable_compute
from synclog import services as synclog

from ..connectors.base import OrderData, OrderLineData
from ..models import (
    Channel,
    ChannelListing,
    ChannelOrder,
    ChannelOrderLine,
    Customer,
    OrderChannelCall,
    OrderStatus,
    SyncKind,
)
from ..selectors import channel_locations_active
from ..sync.markers import listings_mark_dirty
from .customers import Contact, customer_contact, customer_match, customers_match
from .on_channel import order_channel_calls_request, order_fulfil_request

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
# The line fields a transition changes (written when one of them did).
LINE_FIELDS = ("state", "allocation", "restock", "refunded_quantity")
OrderKey = tuple[int, str]  # (channel id, external order id)


@dataclass
class OrderApplyResult:
    order: ChannelOrder
    created: bool
    stale: bool = False  # an older state than the one already applied: nothing done
    transitions: list[str] = field(default_factory=list)
    oversold_skus: list[str] = field(default_factory=list)
    unmatched_skus: list[str] = field(default_factory=list)
    # What the order's success sets off, recorded once per batch (order_effects_record).
    oversold: list[tuple[int, str, int]] = field(default_factory=list)  # variant, sku, qty
    cancel_on_channel: bool = False
    # A new order's lines, stored with it by OrderApplyScope.store_new.
    new_lines: list[ChannelOrderLine] = field(default_factory=list)


class _Oversold(Exception):
    def __init__(self, line: ChannelOrderLine) -> None:
        super().__init__(line.sku)
        self.line = line


# --- the scope: what the orders of one transaction share --------------------------------------


class OrderApplyScope:
    """Look-ups read once and locks taken once for the orders of one transaction.

    Use inside ``transaction.atomic()``, ``stock_levels_held()`` and
    ``events_batched()`` (``order_scope()`` opens all three). ``prepare`` takes
    every lock the orders need up front; whatever it did not foresee (an
    order applied without ``prepare``, a location added meanwhile) is looked up
    and locked when first needed.
    """

    def __init__(self) -> None:
        self._channel_locations: dict[int, list[int]] = {}
        self._locations: dict[int, Location] = {}
        self._variants: dict[int, Variant] = {}
        self._variant_of: dict[tuple[int, str, str], int | None] = {}
        self._customers: dict[Contact, Customer | None] = {}
        self._missing: set[OrderKey] = set()  # known not to exist when prepared
        self._new: dict[OrderKey, OrderApplyResult] = {}  # applied, not stored yet

    # --- preparation ---------------------------------------------------------------------

    def prepare(self, items: Sequence[tuple[Channel, OrderData]]) -> None:
        """Lock what applying these orders will touch, in the one order every writer
        keeps (orders, customers, reservations, stock rows; each by key)."""
        if not items:
            return
        self.channel_locations_load({channel.pk for channel, _ in items})
        keys = {(channel.pk, data.external_id) for channel, data in items}
        existing = self._orders_lock(keys)
        self._missing |= keys - set(existing)
        lines = list(ChannelOrderLine.objects.filter(order_id__in=existing.values()))
        fresh = [(ch, d) for ch, d in items if (ch.pk, d.external_id) not in existing]
        self.customers_load(
            customer_contact(email=d.customer_email, phone=d.customer_phone) for _, d in fresh
        )
        held = [
            part["reservation_id"]
            for line in lines
            if line.state == Line.RESERVED
            for part in line.allocation
        ]
        if held:
            list(Reservation.objects.select_for_update().filter(pk__in=held).order_by("pk"))
        channel_of = {order_id: channel_id for (channel_id, _), order_id in existing.items()}
        pairs = {
            (line.variant_id, loc)
            for line in lines
            if line.variant_id is not None
            for loc in [
                *self._channel_locations[channel_of[line.order_id]],
                *(part["location_id"] for part in line.allocation),
            ]
        }
        for channel, data in fresh:
            for data_line in data.lines:
                variant_id = self.variant_id_for(channel, data_line)
                if variant_id is not None:
                    pairs.update((variant_id, loc) for loc in self._channel_locations[channel.pk])
        stock_levels_lock(pairs)
        self.variants_load({variant_id for variant_id, _ in pairs})
        self.locations_load({loc for _, loc in pairs})

    def _orders_lock(self, keys: set[OrderKey]) -> dict[OrderKey, int]:
        by_channel: dict[int, list[str]] = defaultdict(list)
        for channel_id, external_id in keys:
            by_channel[channel_id].append(external_id)
        wanted = Q()
        for channel_id, external_ids in by_channel.items():
            wanted |= Q(channel_id=channel_id, external_id__in=external_ids)
        rows = (
            ChannelOrder.objects.select_for_update()
            .filter(wanted)
            .order_by("pk")
            .values_list("channel_id", "external_id", "pk")
        )
        return {(channel_id, external_id): pk for channel_id, external_id, pk in rows}

    # --- cached look-ups -------------------------------------------------------------------

    def channel_locations_load(self, channel_ids: Iterable[int]) -> None:
        wanted = set(channel_ids) - set(self._channel_locations)
        if wanted:
            self._channel_locations.update(channel_locations_active(wanted))

    def channel_location_ids(self, channel: Channel) -> list[int]:
        """The channel's active locations by priority: where its orders take units."""
        self.channel_locations_load([channel.pk])
        return self._channel_locations[channel.pk]

    def locations_load(self, location_ids: Iterable[int]) -> None:
        wanted = set(location_ids) - set(self._locations)
        if wanted:
            self._locations.update(Location.objects.in_bulk(wanted))

    def location(self, location_id: int) -> Location:
        self.locations_load([location_id])
        return self._locations[location_id]

    def variants_load(self, variant_ids: Iterable[int]) -> None:
        wanted = set(variant_ids) - set(self._variants)
        if wanted:
            self._variants.update(Variant.objects.in_bulk(wanted))

    def variant(self, line: ChannelOrderLine) -> Variant:
        """The line's variant; only matched lines ever reach a stock transition."""
        if line.variant_id is None:
            raise ValueError(f"order line {line.pk} ({line.sku}) is not matched to a variant")
        self.variants_load([line.variant_id])
        return self._variants[line.variant_id]

    def variant_id_for(self, channel: Channel, line: OrderLineData) -> int | None:
        key = (channel.pk, line.external_variant_id, line.sku)
        if key not in self._variant_of:
            self._variant_of[key] = _variant_for(channel, line)
        return self._variant_of[key]

    def customers_load(self, contacts: Iterable[Contact]) -> None:
        wanted = {c for c in contacts if any(c)} - set(self._customers)
        if wanted:
            self._customers.update(customers_match(wanted))

    def customer(self, data: OrderData) -> Customer | None:
        contact = customer_contact(email=data.customer_email, phone=data.customer_phone)
        if contact in self._customers:
            return self._customers[contact]
        # Not prepared: matched (maybe created) inside the caller's savepoint, so it
        # is not remembered — a rolled-back savepoint takes a new customer with it.
        return customer_match(email=contact[0], phone=contact[1])

    def order_lock(self, channel: Channel, external_id: str) -> ChannelOrder | None:
        """The stored order, locked; None when it does not exist yet."""
        if (channel.pk, external_id) in self._new:
            raise RuntimeError(f"order {external_id} was applied but not stored: store_new first")
        if (channel.pk, external_id) in self._missing:
            return None
        order = (
            ChannelOrder.objects.select_for_update()
            .filter(channel=channel, external_id=external_id)
            .first()
        )
        if order is not None:
            order.channel = channel  # the caller's instance: no query to reach it again
        return order

    # --- new orders: stored together ------------------------------------------------------

    def accept(self, result: OrderApplyResult) -> None:
        """The order was applied and its savepoint kept: a new one is stored with the
        others by store_new (one insert for the orders, one for their lines)."""
        if result.created and result.order.pk is None:
            self._new[(result.order.channel_id, result.order.external_id)] = result

    def is_new_unstored(self, channel: Channel, external_id: str) -> bool:
        return (channel.pk, external_id) in self._new

    def store_new(self) -> None:
        """Insert the accepted new orders and their lines. Outside any order's
        savepoint: an order created meanwhile by another transaction fails the
        whole batch (IntegrityError), whose events are then applied one by one."""
        if not self._new:
            return
        results = list(self._new.values())
        self._new.clear()
        orders = [r.order for r in results]
        ChannelOrder.objects.bulk_create(orders)
        lines = []
        for result in results:
            for line in result.new_lines:
                line.order = result.order
                lines.append(line)
        ChannelOrderLine.objects.bulk_create(lines)
        self._missing -= {(o.channel_id, o.external_id) for o in orders}


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


# --- stock effects ---------------------------------------------------------------------------


def _key(order: ChannelOrder, line: ChannelOrderLine, transition: str, location_id: int) -> str:
    line_ref = f"{order.external_id}:{line.external_line_id}"
    return f"order:{order.channel_id}:{line_ref}:{transition}:{location_id}"


def _source(order: ChannelOrder) -> str:
    return f"channel:{order.channel_id}"


def _allocate(
    scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine, quantity: int
) -> list[dict] | None:
    """Split ``quantity`` units of the line over the channel's active locations in
    priority order, under the stock row locks, taking what each location can sell
    (never below 0: the same clamp as channel ATP); None when they cannot cover it
    (oversell). Plans only: nothing is written."""
    location_ids = scope.channel_location_ids(order.channel)
    if not location_ids:
        return None
    variant_id = scope.variant(line).pk
    levels = stock_levels_lock([(variant_id, loc) for loc in location_ids])
    remaining, plan = quantity, []
    for loc in location_ids:
        take = min(remaining, stock_sellable_compute(levels[(variant_id, loc)].available))
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
    scope: OrderApplyScope,
    order: ChannelOrder,
    line: ChannelOrderLine,
    transition: str,
    reason: str,
    deltas_for: DeltasFor,
    parts: Sequence[tuple[int, int]],
) -> None:
    """One movement per (location, units) part; a part with nothing to move writes
    nothing."""
    for location_id, quantity in parts:
        if not quantity:
            continue
        stock.stock_movement_apply(
            variant=scope.variant(line),
            location=scope.location(location_id),
            deltas=deltas_for(quantity),
            reason=reason,
            source=_source(order),
            source_ref=order.external_id,
            idempotency_key=_key(order, line, transition, location_id),
        )


def _parts(
    line: ChannelOrderLine, quantities: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """(location, units) per allocation part: ``quantities`` per part, default the
    part's whole quantity."""
    if quantities is None:
        quantities = [part["quantity"] for part in line.allocation]
    return [(part["location_id"], q) for part, q in zip(line.allocation, quantities, strict=True)]


def _remaining(line: ChannelOrderLine) -> list[int]:
    """Per allocation part, the units not yet refunded."""
    back = _taken_back(line.allocation, line.refunded_quantity)
    return [part["quantity"] - b for part, b in zip(line.allocation, back, strict=True)]


def _holds(line: ChannelOrderLine) -> dict[int, Reservation]:
    ids = [part["reservation_id"] for part in line.allocation]
    return Reservation.objects.in_bulk(ids)


def _reserve(scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine) -> bool:
    plan = _allocate(scope, order, line, line.quantity)
    if plan is None:
        return False
    expires = order.placed_at + timedelta(minutes=order.channel.reservation_minutes)
    for part in plan:
        reservation = stock.reservation_create(
            variant=scope.variant(line),
            location=scope.location(part["location_id"]),
            quantity=part["quantity"],
            source=_source(order),
            source_ref=order.external_id,
            idempotency_key=_key(order, line, "reserve", part["location_id"]),
            expires_at=max(expires, order.placed_at),
        )
        part["reservation_id"] = reservation.pk
    line.allocation, line.state = plan, Line.RESERVED
    return True


def _merged(parts: Iterable[dict]) -> list[dict]:
    """Allocation parts with one part per location (quantities added, first part's
    order and hold kept): every later transition keys one movement per location."""
    by_location: dict[int, dict] = {}
    for part in parts:
        if part["location_id"] in by_location:
            by_location[part["location_id"]]["quantity"] += part["quantity"]
        else:
            by_location[part["location_id"]] = dict(part)
    return list(by_location.values())


def _commit(scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine) -> bool:
    """Paid: held units become committed. Where a hold lapsed (expired or released
    before payment), only its units are taken afresh, if they are there; a hold still
    active is committed, never taken a second time. Everything is planned before the
    first write, so a line that cannot be covered changes nothing."""
    if line.state != Line.RESERVED:
        return _commit_fresh(scope, order, line)
    holds = _holds(line)
    live = {Reservation.Status.ACTIVE, Reservation.Status.COMMITTED}
    kept = [p for p in line.allocation if holds[p["reservation_id"]].status in live]
    lapsed = line.quantity - sum(p["quantity"] for p in kept)
    fresh = _allocate(scope, order, line, lapsed) if lapsed else []
    if fresh is None:
        return False
    for part in kept:
        if holds[part["reservation_id"]].status == Reservation.Status.ACTIVE:
            stock.reservation_commit(reservation_id=part["reservation_id"])
    _sell(scope, order, line, fresh)
    line.allocation, line.state = _merged([*kept, *fresh]), Line.COMMITTED
    return True


def _commit_fresh(scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine) -> bool:
    plan = _allocate(scope, order, line, line.quantity)
    if plan is None:
        return False
    _sell(scope, order, line, plan)
    line.allocation, line.state = plan, Line.COMMITTED
    return True


def _sell(
    scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine, plan: list[dict]
) -> None:
    """Commit units taken with no hold: one sale movement per planned location."""
    _move(
        scope,
        order,
        line,
        "commit",
        MovementReason.SALE,
        lambda q: stock.Deltas(committed=q),
        [(part["location_id"], part["quantity"]) for part in plan],
    )


def _ship(scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine) -> None:
    """Ships the units still committed (a unit refunded before shipping was released)."""
    _move(
        scope,
        order,
        line,
        "ship",
        MovementReason.SHIP,
        lambda q: stock.Deltas(on_hand=-q, committed=-q),
        _parts(line, _remaining(line)),
    )
    line.state = Line.SHIPPED


def _release_holds(line: ChannelOrderLine) -> None:
    for reservation in _holds(line).values():
        if reservation.status == Reservation.Status.ACTIVE:
            stock.reservation_release(reservation_id=reservation.pk)


def _release(scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine) -> None:
    if line.state == Line.RESERVED:
        _release_holds(line)
    elif line.state == Line.COMMITTED:
        _move(
            scope,
            order,
            line,
            "release",
            MovementReason.RELEASE,
            lambda q: stock.Deltas(committed=-q),
            _parts(line, _remaining(line)),
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


def _restock(scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine) -> None:
    """The whole order was refunded: the shipped units not returned yet come back."""
    reason, deltas_for = _returned_deltas(order, line)
    _move(scope, order, line, "restock", reason, deltas_for, _parts(line, _remaining(line)))
    line.state = Line.RESTOCKED


def _take_back_refunded(
    scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine, refunded: int
) -> list[str]:
    """Units refunded on the channel while the rest of the order stands (a partial
    refund): a shipped unit is a return, restocked per reason; a unit not shipped yet
    is released. The channel's count is cumulative, so each newly refunded batch is
    one movement per location keyed by the new total, and a repeat moves nothing."""
    refunded = min(refunded, line.quantity)
    if refunded <= line.refunded_quantity or line.state not in (Line.COMMITTED, Line.SHIPPED):
        return []
    before = _taken_back(line.allocation, line.refunded_quantity)
    after = _taken_back(line.allocation, refunded)
    newly = _parts(line, [a - b for a, b in zip(after, before, strict=True)])
    if line.state == Line.SHIPPED:
        transition = f"return-{refunded}"
        reason, deltas_for = _returned_deltas(order, line)
        _move(scope, order, line, transition, reason, deltas_for, newly)
        line.state = Line.RESTOCKED if refunded == line.quantity else line.state
    else:
        transition = f"release-{refunded}"
        _move(
            scope,
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


def _advance_line(
    scope: OrderApplyScope, order: ChannelOrder, line: ChannelOrderLine, target: str
) -> list[str]:
    """Move one line towards the order's target status; returns transitions done.
    Raises _Oversold when the units are not there — always before the line wrote
    anything (allocation plans first), so an oversold line leaves nothing to undo."""
    done: list[str] = []
    if line.state in FINAL:
        return done
    if target == OrderStatus.PENDING and line.state == Line.OPEN:
        if not _reserve(scope, order, line):
            raise _Oversold(line)
        done.append("reserve")
    elif target in (OrderStatus.PAID, OrderStatus.FULFILLED):
        if line.state in (Line.OPEN, Line.RESERVED):
            if not _commit(scope, order, line):
                raise _Oversold(line)
            done.append("commit")
        if target == OrderStatus.FULFILLED and line.state == Line.COMMITTED:
            _ship(scope, order, line)
            done.append("ship")
    elif target == OrderStatus.CANCELLED:
        if line.state in (Line.OPEN, Line.RESERVED, Line.COMMITTED):
            _release(scope, order, line)
            done.append("release")
    elif target == OrderStatus.REFUNDED:
        if line.state == Line.SHIPPED:
            _restock(scope, order, line)
            done.append("restock")
        elif line.state in (Line.OPEN, Line.RESERVED, Line.COMMITTED):
            _release(scope, order, line)
            done.append("release")
    return done


# --- the service -------------------------------------------------------------------------------


def _is_newer(order: ChannelOrder, data: OrderData) -> bool:
    if data.updated_at != order.channel_updated_at:
        return data.updated_at > order.channel_updated_at
    return RANK.get(data.status, -1) > RANK.get(order.status, -1)


def _new_order(
    scope: OrderApplyScope, channel: Channel, data: OrderData, source: str
) -> tuple[ChannelOrder, list[ChannelOrderLine], list[str]]:
    """The order and its lines as first seen, not saved yet; and the unmatched SKUs."""
    order = ChannelOrder(
        channel=channel,
        external_id=data.external_id,
        name=data.name[:120],
        status=OrderStatus.PENDING,
        financial_status=data.financial_status[:40],
        fulfillment_status=(data.fulfillment_status or "")[:40],
        currency=(data.currency or "")[:3],
        total=data.total,
        customer=scope.customer(data),
        placed_at=data.created_at,
        # Before any state: the first delivery always applies.
        channel_updated_at=data.created_at - timedelta(microseconds=1),
        raw=dict(data.raw),
        first_seen_via=source,
        seen_via_webhook=source == "webhook",
    )
    order.customer_email, order.customer_phone = customer_contact(
        email=data.customer_email, phone=data.customer_phone
    )
    lines, unmatched = [], []
    for data_line in data.lines:
        variant_id = scope.variant_id_for(channel, data_line)
        if variant_id is None:
            unmatched.append(data_line.sku or data_line.external_line_id)
        lines.append(
            ChannelOrderLine(
                order=order,
                external_line_id=data_line.external_line_id,
                sku=data_line.sku,
                variant_id=variant_id,
                quantity=max(0, int(data_line.quantity)),
                unit_price=data_line.unit_price,
                state=Line.OPEN if variant_id else Line.UNMATCHED,
            )
        )
    return order, lines, unmatched


def order_apply(
    *,
    channel: Channel,
    data: OrderData,
    source: str,
    scope: OrderApplyScope | None = None,
) -> OrderApplyResult:
    """Import or update one order and apply its stock effects exactly once.

    Safe to call any number of times with the same or older data, in any order,
    concurrently: the order row lock serialises one order, the stock row locks
    serialise the last unit. Unknown SKUs become unmatched lines (alerted),
    never an error.

    Without ``scope`` the order is applied in a transaction of its own, with its
    alerts and pushes. With the ``scope`` of a batch it is applied inside the
    caller's transaction, which must hold a savepoint for it (``stock_savepoint``)
    and record the effects of the orders that succeeded (``order_effects_record``).
    A new order is not stored yet: the caller accepts the result once its savepoint
    is kept (``scope.accept``) and stores the new orders together (``store_new``).
    """
    if scope is None:
        try:
            return _order_apply_alone(channel, data, source)
        except IntegrityError:
            # Created by another transaction since this one looked: now it is an update.
            return _order_apply_alone(channel, data, source)
    order = scope.order_lock(channel, data.external_id)
    if order is None:
        order, lines, unmatched = _new_order(scope, channel, data, source)
        result = OrderApplyResult(
            order=order, created=True, unmatched_skus=unmatched, new_lines=lines
        )
        _apply_target(scope, order, lines, data, result)
        return result
    result = OrderApplyResult(order=order, created=False)
    if source == "webhook" and not order.seen_via_webhook:
        order.seen_via_webhook = True
        order.save(update_fields=["seen_via_webhook"])
    if not _is_newer(order, data):
        result.stale = True
        return result
    lines = list(order.lines.order_by("pk"))
    _apply_target(scope, order, lines, data, result)
    order.save()
    return result


def _order_apply_alone(channel: Channel, data: OrderData, source: str) -> OrderApplyResult:
    with order_scope() as scope:
        scope.prepare([(channel, data)])
        result = order_apply(channel=channel, data=data, source=source, scope=scope)
        scope.accept(result)
        scope.store_new()
        order_effects_record([result])
    return result


def _apply_target(
    scope: OrderApplyScope,
    order: ChannelOrder,
    lines: list[ChannelOrderLine],
    data: OrderData,
    result: OrderApplyResult,
) -> None:
    """Every line towards the order's new status, then the order's own fields.
    Stored lines whose state changed are saved; new ones are the caller's."""
    target = data.status if data.status in RANK else OrderStatus.PENDING
    restock_said = {d.external_line_id: d.restock for d in data.lines if d.restock is not None}
    refunded = {d.external_line_id: d.refunded_quantity for d in data.lines}
    for line in lines:
        before = [getattr(line, name) for name in LINE_FIELDS]
        line.restock = restock_said.get(line.external_line_id, line.restock)
        try:
            result.transitions += _advance_line(scope, order, line, target)
            result.transitions += _take_back_refunded(
                scope, order, line, refunded.get(line.external_line_id, 0)
            )
        except _Oversold:
            _flag_oversold(order, line, result)
        if line.pk is not None and [getattr(line, name) for name in LINE_FIELDS] != before:
            line.save(update_fields=list(LINE_FIELDS))
    order.status = target
    order.financial_status = data.financial_status[:40]
    order.fulfillment_status = (data.fulfillment_status or "")[:40]
    order.channel_updated_at = data.updated_at
    order.total = data.total
    order.raw = dict(data.raw)
    order.has_unmatched_lines = any(line.state == Line.UNMATCHED for line in lines)


def _flag_oversold(order: ChannelOrder, line: ChannelOrderLine, result: OrderApplyResult) -> None:
    """The units are not there: the line is a conflict. Holds it still has (a paid
    order whose expired hold could not be replaced) go back at once."""
    if line.state == Line.RESERVED:
        _release_holds(line)
    line.state = Line.OVERSOLD
    order.is_oversold = True
    result.oversold_skus.append(line.sku)
    if line.variant_id is not None:
        result.oversold.append((line.variant_id, line.sku, line.quantity))
    result.cancel_on_channel = result.cancel_on_channel or order.channel.cancel_oversold_orders


@contextmanager
def order_scope() -> Iterator[OrderApplyScope]:
    """A transaction for applying orders: stock rows locked in it stay held
    (``stock_levels_held``), the stock events of its writes are published once at
    the end (``events_batched``), and the OrderApplyScope its orders share."""
    with transaction.atomic(), stock_levels_held(), events_batched():
        yield OrderApplyScope()


def order_effects_record(results: Iterable[OrderApplyResult]) -> None:
    """What applied orders set off, once for all of them (inside their transaction):
    one oversell alert per channel and SKU counting every losing order, one forced
    quantity push (the truth, usually 0) of every oversold SKU on every channel,
    cancels on the channels that ask for them, and unmatched-SKU alerts."""
    results = list(results)
    losers: dict[tuple[int, str], list[tuple[ChannelOrder, int]]] = defaultdict(list)
    forced: set[int] = set()
    for result in results:
        for variant_id, sku, quantity in result.oversold:
            losers[(result.order.channel_id, sku)].append((result.order, quantity))
            forced.add(variant_id)
    for (channel_id, sku), lost in sorted(losers.items()):
        synclog.alert_raise(
            kind="oversell",
            channel_id=channel_id,
            sku=sku[:100],
            severity="critical",
            message=_oversell_message(sku, lost),
            occurrences=len(lost),
        )
    if forced:
        # Every channel must show the truth (0) at once: forced, so no threshold or
        # interval holds it back.
        listings_mark_dirty(
            ChannelListing.objects.filter(variant_id__in=sorted(forced)),
            kinds=[SyncKind.QUANTITY],
            forced=True,
            urgent=True,
        )
    order_channel_calls_request(
        order_ids=[r.order.pk for r in results if r.cancel_on_channel],
        kind=OrderChannelCall.Kind.CANCEL,
        payload={"reason": "oversold"},
    )
    unmatched = sorted(
        {
            (r.order.channel_id, sku, _label(r.order), str(r.order.channel))
            for r in results
            for sku in r.unmatched_skus
        }
    )
    for channel_id, sku, label, channel_name in unmatched:
        synclog.alert_raise(
            kind="unmatched_sku",
            channel_id=channel_id,
            sku=sku[:100],
            message=f"Order {label} on {channel_name} has SKU {sku!r}, "
            "which matches no listing or variant; its stock was not changed.",
        )


def _label(order: ChannelOrder) -> str:
    return order.name or order.external_id


def _oversell_message(sku: str, lost: list[tuple[ChannelOrder, int]]) -> str:
    order, quantity = lost[0]
    if len(lost) == 1:
        return (
            f"Order {_label(order)} on {order.channel} wants {quantity} of {sku}, which "
            "another channel already sold; it was not applied."
        )
    named = ", ".join(_label(o) for o, _ in lost[:5]) + (", …" if len(lost) > 5 else "")
    return (
        f"{len(lost)} orders on {order.channel} ({named}) want {sku}, which another channel "
        "already sold; they were not applied."
    )


def order_stock_effects(order: ChannelOrder) -> QuerySet[StockMovement]:
    """The ledger rows this order caused, for the admin's order page."""
    return (
        StockMovement.objects.filter(source=_source(order), source_ref=order.external_id)
        .select_related("variant", "location")
        .order_by("created_at", "pk")
    )


def order_mark_shipped(*, order: ChannelOrder, tracking_number: str = "", carrier: str = "") -> int:
    """Ship an order from pimsync: the ship movements now, and the channel is told
    after commit, retried until it confirms (on_channel). Returns the number of
    lines shipped.

    Idempotent: the ship keys are the ones a later 'fulfilled' delivery from
    the channel would use, so that delivery changes nothing twice."""
    with order_scope() as scope:
        order = ChannelOrder.objects.select_for_update().select_related("channel").get(pk=order.pk)
        if order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED):
            raise ValueError(f"Order {order.name or order.external_id} is {order.status}")
        shipped = 0
        for line in order.lines.order_by("pk"):
            if line.state in (Line.OPEN, Line.RESERVED) and _commit(scope, order, line):
                line.save(update_fields=["state", "allocation"])
            if line.state == Line.COMMITTED:
                _ship(scope, order, line)
                line.save(update_fields=["state"])
                shipped += 1
        order.status = OrderStatus.FULFILLED
        order.save(update_fields=["status", "updated_at"])
        order_fulfil_request(order=order, tracking_number=tracking_number, carrier=carrier)
    return shipped


def orders_oversell_settle(*, orders: QuerySet[ChannelOrder]) -> int:
    """Ops settled these orders' oversell conflicts (restocked, substituted, told
    the customer): the oversell alerts close at the next health evaluation once
    no unsettled conflict is left for that SKU on that channel. Returns how many
    orders were settled now."""
    return orders.filter(is_oversold=True, oversell_resolved_at__isnull=True).update(
        oversell_resolved_at=timezone.now()
    )
