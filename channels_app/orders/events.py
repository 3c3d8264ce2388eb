"""Inbound order events: processing and the sweeper (design §4).

Every order change a channel reports, by webhook or found by polling, is first
an InboundEvent row, then processed on one path: parse, then
``apply.order_apply``. A channel's inventory or product webhook is stored and
processed the same way; its values are compared with pimsync's by
``sync.edits.webhook_edits_check`` (channel-side edits seen at once).
Storing comes first, so nothing received is lost while the broker or the
workers are down; the sweeper processes what no task picked up and retries
failures with backoff. Processing locks the event row and only
touches a pending event, so an event is applied at most once however many
tasks, sweeps or admin clicks reach it. Applying the same order state twice
(a webhook and the poll that finds the same change) is harmless: order_apply
dedupes at the transition level.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from pimsync.backoff import backoff_elapsed
from synclog.services import alert_raise, alert_resolve

from ..connectors.base import ListingEdit, OrderData, OrderLineData
from ..connectors.errors import ConnectorError, FailureKind, PermanentError
from ..connectors.http import parse_timestamp
from ..models import InboundEvent
from ..sync.connection import channel_connector
from ..sync.edits import webhook_edits_check
from .apply import order_apply

log = logging.getLogger(__name__)

Status = InboundEvent.Status
Source = InboundEvent.Source

# The sweeper works in bounded slices so one run never outlives its beat interval
# by much; what is left waits for the next run.
SWEEP_BATCH = 500
SWEEP_TIME_BUDGET_SECONDS = 20.0
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


# --- processing ---------------------------------------------------------------------------------


def _contents(event: InboundEvent) -> tuple[OrderData | None, Sequence[ListingEdit]]:
    """The order an event reports and the listing values it reports (a channel's
    inventory or product webhook); either may be absent."""
    if event.source == Source.POLL:
        return order_data_from_json(event.raw_body), ()
    parsed = channel_connector(event.channel).parse_webhook(
        event.headers, event.raw_body.encode("utf-8")
    )
    return parsed.order, parsed.edits


def inbound_event_process(event_id: int) -> str | None:
    """Apply one pending event; returns its new status, or None when it was not
    pending (already done, or another worker holds it).

    The event row stays locked until the outcome is written, so two callers never
    apply it twice. The order is applied in a savepoint: a failure rolls back
    every stock effect of this attempt and is recorded on the event (attempts + 1,
    error). A permanent error (unreadable body) fails the event at once; others
    are retried by the sweeper until PIMSYNC_WEBHOOK_MAX_ATTEMPTS, then the
    event fails for good and a ``repeated_failure`` alert opens.
    """
    now = timezone.now()
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
        try:
            with transaction.atomic():
                order, edits = _contents(event)
                if order is not None:
                    order_apply(channel=event.channel, data=order, source=event.source)
                compared = (
                    webhook_edits_check(
                        channel=event.channel,
                        edits=edits,
                        delivery_id=event.delivery_id,
                        received_at=event.received_at,
                        now=now,
                    )
                    if edits
                    else Counter()
                )
        except Exception as exc:  # whatever failed, the event must record it and stay findable
            return _record_failure(event, exc, now)
        listed = compared.total() - compared["unlisted"]
        event.status = Status.PROCESSED if order is not None or listed else Status.IGNORED
        event.processed_at = now
        event.error = ""
        if order is not None and not event.external_order_id:
            event.external_order_id = order.external_id[:120]
        event.save(
            update_fields=["status", "attempts", "processed_at", "error", "external_order_id"]
        )
        return event.status


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
    message per event); returns how many were taken. Bounded in count and time."""
    ids = list(inbound_events_due(now=now).values_list("pk", flat=True)[:limit])
    started = time.monotonic()
    taken = 0
    for event_id in ids:
        if time.monotonic() - started > SWEEP_TIME_BUDGET_SECONDS:
            break
        if inbound_event_process(event_id) is not None:
            taken += 1
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
    outcomes: Counter[str] = Counter(
        inbound_event_process(event_id) or "skipped" for event_id in ids
    )
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
