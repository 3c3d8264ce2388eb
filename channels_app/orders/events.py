"""Inbound order events: processing in batches, and the sweeper (design §4).

Every order change a channel reports, by webhook or found by polling, is first
an InboundEvent row, then processed on one path: parse, then
``apply.order_apply``. A channel's inventory or product webhook is stored and
applied the same way; its values are compared with pimsync's by
``sync.edits.webhook_edits_check`` (channel-side edits seen at once). Storing
comes first, so nothing received is lost while the broker or the workers are
down; the sweeper processes what no task picked up and retries failures with
backoff.

Events are applied in batches, one transaction each: the batch claims pending
events (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent
workers take disjoint batches; SQLite serialises whole transactions), parses
them, locks every row they will touch once and in key order (orders, customers,
holds, stock rows; apply.OrderApplyScope), then applies each order in arrival
order in a savepoint of its own. A hot SKU's stock row is thus locked once per
batch instead of once per order, and two batches never deadlock. One bad order
fails only itself: its savepoint rolls back and the failure is recorded on its
event (attempts + 1, error, retried with backoff, failed for good with an alert
after PIMSYNC_WEBHOOK_MAX_ATTEMPTS). An event row stays locked until its outcome
is written and only a pending event is touched, so an event is applied at most
once however many tasks, sweeps or admin clicks reach it. Applying the same
order state twice (a webhook and the poll that finds the same change) is
harmless: order_apply dedupes at the transition level.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from inventory.locks import stock_savepoint
from pimsync.backoff import backoff_elapsed
from synclog.services import alert_raise, alert_resolve

from ..connectors.base import Connector, ListingEdit, OrderData, OrderLineData
from ..connectors.errors import ConnectorError, FailureKind, PermanentError
from ..connectors.http import parse_timestamp
from ..models import Channel, InboundEvent
from ..sync.connection import channel_connector
from ..sync.edits import webhook_edits_check
from .apply import (
    OrderApplyResult,
    OrderApplyScope,
    order_apply,
    order_effects_record,
    order_scope,
)

log = logging.getLogger(__name__)

Status = InboundEvent.Status
Source = InboundEvent.Source

# A task or sweep works in bounded slices so one run never outlives its time
# limit by much; what is left waits for the next task or sweep.
SWEEP_BATCH = 500
SWEEP_TIME_BUDGET_SECONDS = 20.0
DRAIN_TIME_BUDGET_SECONDS = 60.0
ERROR_MAX_CHARS = 2000


# --- poll events carry the normalised order as JSON ------------------------------------------


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # Decimal and anything else a platform's raw payload may hold


def order_skus(order: OrderData | None) -> list[str]:
    """The SKUs an order event touches, stored with the event: while it is pending
    no increase of them is pushed to its channel."""
    return sorted({line.sku for line in order.lines if line.sku}) if order else []


def order_data_to_json(order: OrderData) -> str:
    """The body of a poll event: OrderData as JSON (money as strings, ISO times)."""
    payload = {f.name: getattr(order, f.name) for f in fields(OrderData)}
    payload["lines"] = [asdict(line) for line in order.lines]
    payload["raw"] = dict(order.raw)
    return json.dumps(payload, default=_json_default, sort_keys=True, separators=(",", ":"))


def order_data_from_json(text: str) -> OrderData:
    """The inverse of order_data_to_json; PermanentError when the body is unreadable."""
    try:
        data = json.loads(text)
        lines = [
            OrderLineData(
                external_line_id=str(line["external_line_id"]),
                sku=str(line["sku"]),
                quantity=int(line["quantity"]),
                unit_price=Decimal(str(line["unit_price"])),
                external_variant_id=str(line.get("external_variant_id") or ""),
                external_product_id=str(line.get("external_product_id") or ""),
                restock=line.get("restock"),
            )
            for line in data["lines"]
        ]
        return OrderData(
            external_id=str(data["external_id"]),
            name=str(data["name"]),
            status=str(data["status"]),
            financial_status=str(data["financial_status"]),
            fulfillment_status=str(data["fulfillment_status"]),
            currency=str(data["currency"]),
            total=Decimal(str(data["total"])),
            updated_at=parse_timestamp(str(data["updated_at"])),
            created_at=parse_timestamp(str(data["created_at"])),
            lines=lines,
            customer_email=str(data.get("customer_email") or ""),
            customer_phone=str(data.get("customer_phone") or ""),
            raw=dict(data.get("raw") or {}),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise PermanentError(f"unreadable poll event: {exc}", code="bad_poll_event") from exc


# --- processing in batches ----------------------------------------------------------------------


@dataclass
class _Parsed:
    event: InboundEvent
    order: OrderData | None = None  # None: a topic that carries no order
    edits: Sequence[ListingEdit] = ()  # the listing values an inventory/product webhook reports
    error: Exception | None = None


@dataclass
class _Outcomes:
    """What happened to each claimed event, written at the end of the batch."""

    now: datetime
    status: dict[int, str] = field(default_factory=dict)
    order_ids: dict[int, str] = field(default_factory=dict)  # event id -> external order id
    results: list[OrderApplyResult] = field(default_factory=list)


def _claim(
    event_ids: Sequence[int], *, fresh: bool, due_at: datetime | None, limit: int, wait: bool
) -> list[InboundEvent]:
    """Lock up to ``limit`` pending events, oldest first, skipping any another
    worker holds (or, ``wait``, waiting for it to finish with them): these ids,
    plus (``fresh``) events no worker has tried yet, or (``due_at``) the events
    due then (inbound_events_due)."""
    wanted = Q(pk__in=list(event_ids))
    if fresh:
        wanted |= Q(attempts=0)
    source = inbound_events_due(now=due_at) if due_at is not None else InboundEvent.objects
    if due_at is not None:
        wanted = Q()
    events = list(
        source.select_for_update(skip_locked=not wait, of=("self",))
        .filter(wanted, status=Status.PENDING)
        .order_by("received_at", "pk")[:limit]
    )
    # One Channel per channel (its credentials are decrypted once), not one per event.
    channels = Channel.objects.in_bulk({event.channel_id for event in events})
    for event in events:
        event.channel = channels[event.channel_id]
    return events


def _contents(
    event: InboundEvent, connectors: dict[int, Connector]
) -> tuple[OrderData | None, Sequence[ListingEdit]]:
    """The order an event reports and the listing values it reports (a channel's
    inventory or product webhook); either may be absent."""
    if event.source == Source.POLL:
        return order_data_from_json(event.raw_body), ()
    if event.channel_id not in connectors:
        connectors[event.channel_id] = channel_connector(event.channel)
    parsed = connectors[event.channel_id].parse_webhook(
        event.headers, event.raw_body.encode("utf-8")
    )
    return parsed.order, parsed.edits


def _parse_all(events: list[InboundEvent]) -> list[_Parsed]:
    connectors: dict[int, Connector] = {}
    parsed = []
    for event in events:
        try:
            order, edits = _contents(event, connectors)
            parsed.append(_Parsed(event, order=order, edits=edits))
        except Exception as exc:  # recorded on the event like any failure to apply it
            parsed.append(_Parsed(event, error=exc))
    return parsed


def _event_apply(
    scope: OrderApplyScope, item: _Parsed, now: datetime
) -> tuple[OrderApplyResult | None, bool]:
    """Apply the event's order and compare the listing values it reports; returns
    the order's result and whether any of its values concerned a listing."""
    if item.error is not None:
        raise item.error
    result = (
        order_apply(
            channel=item.event.channel, data=item.order, source=item.event.source, scope=scope
        )
        if item.order is not None
        else None
    )
    listed = False
    if item.edits:
        compared = webhook_edits_check(
            channel=item.event.channel,
            edits=item.edits,
            delivery_id=item.event.delivery_id,
            received_at=item.event.received_at,
            now=now,
        )
        listed = compared.total() - compared["unlisted"] > 0
    return result, listed


def _apply_claimed(scope: OrderApplyScope, parsed: list[_Parsed], outcomes: _Outcomes) -> None:
    """Each event in arrival order, in a savepoint of its own."""
    for item in parsed:
        event = item.event
        if item.order is not None and scope.is_new_unstored(event.channel, item.order.external_id):
            scope.store_new()  # an earlier event of this batch created the order
        try:
            with stock_savepoint():
                result, listed = _event_apply(scope, item, outcomes.now)
        except Exception as exc:  # whatever failed, the event must record it and stay findable
            event.attempts += 1
            outcomes.status[event.pk] = _record_failure(event, exc, outcomes.now)
            continue
        if result is None:
            outcomes.status[event.pk] = Status.PROCESSED if listed else Status.IGNORED
            continue
        scope.accept(result)
        outcomes.status[event.pk] = Status.PROCESSED
        outcomes.results.append(result)
        if not event.external_order_id:
            outcomes.order_ids[event.pk] = result.order.external_id[:120]


def _outcomes_write(outcomes: _Outcomes) -> None:
    """One UPDATE per outcome for the events that succeeded (failures were written
    as they happened)."""
    for status in (Status.PROCESSED, Status.IGNORED):
        ids = [pk for pk, outcome in outcomes.status.items() if outcome == status]
        if ids:
            InboundEvent.objects.filter(pk__in=ids).update(
                status=status, attempts=F("attempts") + 1, processed_at=outcomes.now, error=""
            )
    for event_id, external_id in outcomes.order_ids.items():
        InboundEvent.objects.filter(pk=event_id).update(external_order_id=external_id)


def inbound_events_apply(
    *,
    event_ids: Sequence[int] = (),
    fresh: bool = False,
    due_at: datetime | None = None,
    limit: int | None = None,
    wait: bool = False,
) -> dict[int, str]:
    """Claim and apply one batch of pending events (see the module doc); returns
    the new status of each event taken. Events another worker holds, or that are
    not pending, are left alone (absent from the answer).

    Which events: ``event_ids``; with ``fresh`` also the oldest events no worker
    has tried yet; with ``due_at`` the events due for a (re)try at that time
    instead. At most ``limit`` (PIMSYNC_INBOUND_BATCH_SIZE) in one transaction.
    ``wait``: an event another worker holds is waited for instead of skipped, so
    when this returns every one of ``event_ids`` has been applied by someone.
    """
    limit = limit or settings.PIMSYNC_INBOUND_BATCH_SIZE
    outcomes = _Outcomes(now=timezone.now())
    claimed: list[int] = []
    try:
        with order_scope() as scope:
            events = _claim(event_ids, fresh=fresh, due_at=due_at, limit=limit, wait=wait)
            claimed += [event.pk for event in events]
            if not events:
                return {}
            parsed = _parse_all(events)
            scope.prepare([(p.event.channel, p.order) for p in parsed if p.order is not None])
            _apply_claimed(scope, parsed, outcomes)
            scope.store_new()
            order_effects_record(outcomes.results)
            _outcomes_write(outcomes)
    except Exception as exc:
        if not claimed:
            raise  # nothing was taken (the database is away): the sweeper tries again
        return _batch_failed(claimed, exc, outcomes.now)
    return outcomes.status


def _batch_failed(claimed: list[int], exc: Exception, now: datetime) -> dict[int, str]:
    """The batch as a whole failed (a lock wait the database ended, a look-up that
    broke) and nothing of it was written: each event goes again alone, so a poison
    event fails only itself — and alone, it records its failure."""
    if len(claimed) == 1:
        log.warning("inbound event %s failed before its order was applied: %s", claimed[0], exc)
        status = _failure_record_alone(claimed[0], exc, now)
        return {} if status is None else {claimed[0]: status}
    log.warning("inbound batch of %s events failed, each alone now: %s", len(claimed), exc)
    outcomes: dict[int, str] = {}
    for event_id in claimed:
        outcomes.update(inbound_events_apply(event_ids=[event_id]))
    return outcomes


def _failure_record_alone(event_id: int, exc: Exception, now: datetime) -> str | None:
    with transaction.atomic():
        event = (
            InboundEvent.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("channel")
            .filter(pk=event_id, status=Status.PENDING)
            .first()
        )
        if event is None:
            return None
        event.attempts += 1
        return _record_failure(event, exc, now)


def inbound_events_process(event_ids: Sequence[int] = ()) -> int:
    """The work of an inbound task: these events and any other never-tried pending
    ones, oldest first, batch after batch until none is left (or the time budget
    is spent; the next task or the sweeper goes on). Returns how many events this
    run applied. A task whose events another worker already took just helps
    with the rest, so a burst of small tasks still makes full batches."""
    started = time.monotonic()
    limit = settings.PIMSYNC_INBOUND_BATCH_SIZE
    taken = 0
    while True:
        outcomes = inbound_events_apply(event_ids=event_ids, fresh=True, limit=limit)
        taken += len(outcomes)
        event_ids = ()
        if len(outcomes) < limit or time.monotonic() - started > DRAIN_TIME_BUDGET_SECONDS:
            return taken


def inbound_event_process(event_id: int) -> str | None:
    """Apply one pending event; returns its new status, or None when it was not
    pending (already done, or another worker holds it)."""
    return inbound_events_apply(event_ids=[event_id]).get(event_id)


def _record_failure(event: InboundEvent, exc: Exception, now: datetime) -> str:
    permanent = isinstance(exc, ConnectorError) and exc.kind is FailureKind.PERMANENT
    final = permanent or event.attempts >= settings.PIMSYNC_WEBHOOK_MAX_ATTEMPTS
    event.error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_CHARS]
    event.status = Status.FAILED if final else Status.PENDING
    event.processed_at = now if final else None
    event.save(update_fields=["status", "attempts", "processed_at", "error"])
    log.warning(
        "inbound event %s (channel %s, %s %s) failed, attempt %s%s: %s",
        event.pk,
        event.channel.slug,
        event.source,
        event.delivery_id,
        event.attempts,
        " (for good)" if final else "",
        event.error,
        exc_info=not isinstance(exc, ConnectorError),
    )
    if final:
        alert_raise(
            kind="repeated_failure",
            channel_id=event.channel_id,
            sku="",
            message=f"Inbound {event.source} event {event.delivery_id} "
            f"(order {event.external_order_id or '?'}) failed after {event.attempts} "
            f"attempt(s): {event.error[:300]}. Fix the cause, then re-process it in the admin.",
        )
    return event.status


def _retry_delay(attempts: int) -> float:
    """Seconds after receipt before retry number ``attempts``: the whole backoff
    steps so far (BASE * (2^n - 1); no jitter, so the sweeper can query it)."""
    return backoff_elapsed(attempts, base=settings.PIMSYNC_WEBHOOK_RETRY_BASE_SECONDS, cap=math.inf)


def inbound_events_due(*, now: datetime | None = None) -> QuerySet[InboundEvent]:
    """Pending events no task took within the grace period, and failed attempts
    whose backoff (counted from receipt) has passed; oldest first."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.PIMSYNC_WEBHOOK_SWEEP_GRACE_SECONDS)
    due = Q(attempts=0, received_at__lte=now - grace)
    for attempts in range(1, settings.PIMSYNC_WEBHOOK_MAX_ATTEMPTS):
        due |= Q(
            attempts=attempts, received_at__lte=now - timedelta(seconds=_retry_delay(attempts))
        )
    return InboundEvent.objects.filter(due, status=Status.PENDING).order_by("received_at", "pk")


def inbound_sweep(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> int:
    """Process due pending events (the recovery path that needs no broker
    message per event) in batches; returns how many were taken. Bounded in
    count and time."""
    now = now or timezone.now()
    started = time.monotonic()
    taken = 0
    while taken < limit and time.monotonic() - started <= SWEEP_TIME_BUDGET_SECONDS:
        batch = min(settings.PIMSYNC_INBOUND_BATCH_SIZE, limit - taken)
        outcomes = inbound_events_apply(due_at=now, limit=batch)
        taken += len(outcomes)
        if len(outcomes) < batch:
            break
    if taken:
        log.info("inbound sweep processed %s event(s)", taken)
    return taken


def inbound_events_reprocess(*, events: QuerySet[InboundEvent]) -> Counter[str]:
    """Run failed events again now, with a fresh set of attempts; returns the
    outcomes by status. A channel left with no failed event has its
    ``repeated_failure`` alert resolved."""
    ids = list(
        events.filter(status=Status.FAILED)
        .order_by("received_at", "pk")
        .values_list("pk", flat=True)
    )
    InboundEvent.objects.filter(pk__in=ids, status=Status.FAILED).update(
        status=Status.PENDING, attempts=0, processed_at=None
    )
    done: dict[int, str] = {}
    size = settings.PIMSYNC_INBOUND_BATCH_SIZE
    for start in range(0, len(ids), size):
        done.update(inbound_events_apply(event_ids=ids[start : start + size]))
    outcomes: Counter[str] = Counter(done.get(event_id, "skipped") for event_id in ids)
    channel_ids = set(InboundEvent.objects.filter(pk__in=ids).values_list("channel_id", flat=True))
    still_failing = set(
        InboundEvent.objects.filter(channel_id__in=channel_ids, status=Status.FAILED).values_list(
            "channel_id", flat=True
        )
    )
    for channel_id in channel_ids - still_failing:
        # sku="": only the inbound alert; order fulfilment failures name their SKUs.
        alert_resolve(kind="repeated_failure", channel_id=channel_id, sku="")
    return outcomes
