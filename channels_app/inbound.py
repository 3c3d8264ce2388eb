"""Inbound order events: processing, the sweeper, and the polling fallback (design §4).

Every order change a channel reports, by webhook or found by polling, is first
an InboundEvent row, then processed on one path: parse, then
``orders.order_apply``. Storing comes first, so nothing received is lost while
the broker or the workers are down; the sweeper processes what no task picked
up and retries failures with backoff. Processing locks the event row and only
touches a pending event, so an event is applied at most once however many
tasks, sweeps or admin clicks reach it. Applying the same order state twice
(a webhook and the poll that finds the same change) is harmless: order_apply
dedupes at the transition level.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from synclog.services import alert_raise, alert_resolve

from .connectors.base import OrderData, OrderLineData, OrdersPage
from .connectors.errors import ConnectorError, FailureKind, PermanentError
from .connectors.http import decode_page_cursor, format_timestamp, parse_timestamp
from .models import Channel, ChannelOrder, ChannelSyncState, InboundEvent
from .orders import order_apply
from .sync.connection import channel_connector
from .sync.enqueue import channel_sync_state

log = logging.getLogger(__name__)

Status = InboundEvent.Status
Source = InboundEvent.Source

# The sweeper works in bounded slices so one run never outlives its beat interval
# by much; what is left waits for the next run.
SWEEP_BATCH = 500
SWEEP_TIME_BUDGET_SECONDS = 20.0
# A poll run stops paging after this long and hands the rest to a follow-up task
# (well inside channel_poll_task's time limit).
POLL_TIME_BUDGET_SECONDS = 240.0
ERROR_MAX_CHARS = 2000


# --- enqueueing ------------------------------------------------------------------------------


def inbound_event_enqueue(event_id: int) -> bool:
    """Ask a worker to process the event. Never raises and never hangs for long:
    with the broker down the event stays pending and the sweeper takes it."""
    from .tasks import inbound_event_process_task

    try:
        inbound_event_process_task.apply_async(args=[event_id], retry=False)
    except Exception as exc:  # any broker failure: the stored event is the source of truth
        log.warning(
            "inbound event %s not enqueued (%s); the sweeper will process it", event_id, exc
        )
        return False
    return True


def inbound_events_enqueue(event_ids: list[int]) -> bool:
    """One task message for several events; never raises (see inbound_event_enqueue)."""
    from .tasks import inbound_events_process_task

    try:
        inbound_events_process_task.apply_async(args=[event_ids], retry=False)
    except Exception as exc:  # any broker failure: the stored events are the source of truth
        log.warning(
            "%s inbound event(s) not enqueued (%s); the sweeper will process them",
            len(event_ids),
            exc,
        )
        return False
    return True


class EnqueueBatcher:
    """Collects one web process's new event ids and sends them as one task per window.

    A Celery publish costs a web process more CPU than verifying and storing the
    delivery; at hundreds of deliveries a second, one message per few milliseconds
    keeps ingestion cheap for at most ``window`` seconds of added latency. Nothing
    depends on the message: ids lost with a dying process are left pending, and the
    sweeper processes them after its grace period.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._ids: list[int] = []
        self._thread_pid: int | None = None

    def add(self, event_id: int) -> None:
        with self._lock:
            self._ids.append(event_id)
            if self._thread_pid != os.getpid():  # first use, or a forked child (no threads)
                self._thread_pid = os.getpid()
                threading.Thread(target=self._run, name="inbound-enqueue", daemon=True).start()
        self._wake.set()

    def flush(self) -> int:
        """Send what is waiting now; returns how many ids were sent."""
        with self._lock:
            ids, self._ids = self._ids, []
            self._wake.clear()
        if ids:
            inbound_events_enqueue(ids)
        return len(ids)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.window)
            self.flush()


_batcher: EnqueueBatcher | None = None
_batcher_lock = threading.Lock()


def _enqueue_batcher() -> EnqueueBatcher:
    global _batcher
    with _batcher_lock:
        if _batcher is None:
            _batcher = EnqueueBatcher(settings.PIMSYNC_INBOUND_ENQUEUE_WINDOW_MS / 1000)
            atexit.register(_batcher.flush)
        return _batcher


def inbound_event_enqueue_soon(event_id: int) -> None:
    """Enqueue at once, or with the next batch when batching is on (web processes)."""
    if settings.PIMSYNC_INBOUND_ENQUEUE_WINDOW_MS <= 0:
        inbound_event_enqueue(event_id)
    else:
        _enqueue_batcher().add(event_id)


def inbound_event_enqueue_on_commit(event_id: int) -> None:
    # partial, not a lambda: a caller's loop would hand every lambda the last id (B023).
    transaction.on_commit(partial(inbound_event_enqueue_soon, event_id))


def channel_poll_request(
    channel_id: int, *, resume_cursor: str | None = None, resume_hwm: str = ""
) -> bool:
    """Enqueue one poll of the channel (or the continuation of a long one); never raises."""
    from .tasks import channel_poll_task

    kwargs = {"resume_cursor": resume_cursor, "resume_hwm": resume_hwm} if resume_cursor else {}
    try:
        channel_poll_task.apply_async(args=[channel_id], kwargs=kwargs, retry=False)
    except Exception as exc:  # a broker failure must not break the caller; beat asks again
        log.warning("poll of channel %s not enqueued (%s)", channel_id, exc)
        return False
    return True


# --- poll events carry the normalised order as JSON ------------------------------------------


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)  # Decimal and anything else a platform's raw payload may hold


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


def _order_of(event: InboundEvent) -> OrderData | None:
    """The order an event reports, or None for topics that carry none."""
    if event.source == Source.POLL:
        return order_data_from_json(event.raw_body)
    parsed = channel_connector(event.channel).parse_webhook(
        event.headers, event.raw_body.encode("utf-8")
    )
    return parsed.order


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
                order = _order_of(event)
                if order is not None:
                    order_apply(channel=event.channel, data=order, source=event.source)
        except Exception as exc:  # whatever failed, the event must record it and stay findable
            return _record_failure(event, exc, now)
        event.status = Status.PROCESSED if order is not None else Status.IGNORED
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
    """Seconds after receipt before retry number ``attempts``: BASE * (2^n - 1)."""
    return settings.PIMSYNC_WEBHOOK_RETRY_BASE_SECONDS * (2**attempts - 1)


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


# --- polling ------------------------------------------------------------------------------------


@dataclass
class PollReport:
    channel_id: int
    pages: int = 0
    orders: int = 0
    new_events: int = 0
    processed: int = 0
    failed: int = 0
    cursor: str = ""  # the stored cursor after this run
    hwm: str = ""  # the running high-water mark (carried to a continuation)
    next_cursor: str | None = None  # set when the run stopped before the last page
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timestamp_of(cursor: str) -> datetime | None:
    """The time a stored cursor stands for: an ISO high-water mark, or the
    ``hwm``/``since`` inside an encoded page cursor. None when unreadable."""
    if not cursor:
        return None
    try:
        state = decode_page_cursor(cursor)
        value = (state.get("hwm") or state.get("since") or "") if state is not None else cursor
        return parse_timestamp(str(value)) if value else None
    except ConnectorError:
        return None


def later_cursor(current: str, candidate: str | None) -> str:
    """The later of two high-water marks (a cursor never moves backwards)."""
    if not candidate:
        return current
    ours, theirs = _timestamp_of(current), _timestamp_of(candidate)
    if theirs is None:
        return current
    if ours is None or theirs > ours:
        return candidate
    return current


def poll_start_cursor(channel: Channel, stored: str) -> str:
    """Where a poll starts: the stored high-water mark minus the overlap window
    (late-visible changes, clock skew and whole-second timestamps are read again
    and deduplicated rather than lost). Without a cursor the first poll starts at
    the channel's creation in pimsync: older orders were settled before pimsync
    kept the stock, and applying them now would ship units twice."""
    overlap = timedelta(seconds=settings.PIMSYNC_POLL_OVERLAP_SECONDS)
    since = _timestamp_of(stored)
    if since is None:
        if stored:
            log.warning(
                "channel %s: unreadable poll cursor %r, restarting", channel.slug, stored[:60]
            )
        since = channel.created_at
    return format_timestamp(since - overlap)


def poll_delivery_id(order: OrderData) -> str:
    """One id per observed change of an order. The status is part of it because
    some platforms (WooCommerce, Shopify) stamp whole seconds: a poll between two
    changes within one second must not make the second look like a repeat."""
    stamp = order.updated_at.astimezone(UTC).isoformat()
    return f"poll:{order.external_id}:{stamp}:{order.status}"[:200]


def _poll_ingest(channel: Channel, page: OrdersPage, report: PollReport) -> None:
    """Store one page's orders as poll events (a change already stored is skipped)
    and process the new ones in the page's order."""
    events: dict[str, InboundEvent] = {}
    for order in page.orders:
        body = order_data_to_json(order)
        events[poll_delivery_id(order)] = InboundEvent(
            channel=channel,
            source=Source.POLL,
            delivery_id=poll_delivery_id(order),
            topic="poll",
            raw_body=body,
            body_sha256=hashlib.sha256(body.encode()).hexdigest(),
            external_order_id=order.external_id[:120],
        )
    report.orders += len(page.orders)
    known = set(
        InboundEvent.objects.filter(channel=channel, delivery_id__in=list(events)).values_list(
            "delivery_id", flat=True
        )
    )
    fresh = [event for delivery_id, event in events.items() if delivery_id not in known]
    if not fresh:
        return
    # ON CONFLICT DO NOTHING: a concurrent poll inserting the same change is not an error.
    InboundEvent.objects.bulk_create(fresh, ignore_conflicts=True)
    report.new_events += len(fresh)
    ids = dict(
        InboundEvent.objects.filter(
            channel=channel,
            delivery_id__in=[e.delivery_id for e in fresh],
            status=Status.PENDING,
            attempts=0,
        ).values_list("delivery_id", "pk")
    )
    for event in fresh:
        event_id = ids.get(event.delivery_id)
        if event_id is None:
            continue  # a concurrent poll got there first
        outcome = inbound_event_process(event_id)
        if outcome in (Status.PROCESSED, Status.IGNORED):
            report.processed += 1
        elif outcome is not None:
            report.failed += 1


def _poll_state_store(channel_id: int, hwm: str | None) -> str:
    """Record the poll's end: the cursor moves to the high-water mark (never back)."""
    with transaction.atomic():
        state = ChannelSyncState.objects.select_for_update().get(channel_id=channel_id)
        state.poll_cursor = later_cursor(state.poll_cursor, hwm)[:200]
        state.polled_at = timezone.now()
        state.save(update_fields=["poll_cursor", "polled_at"])
        return state.poll_cursor


def channel_poll(
    channel_id: int, *, resume_cursor: str | None = None, resume_hwm: str = ""
) -> PollReport:
    """Read the channel's orders changed since its cursor (with overlap) and feed
    each through the inbound event path.

    Pages until the connector says there is no further page, at most
    PIMSYNC_POLL_MAX_PAGES pages or POLL_TIME_BUDGET_SECONDS per run; a run cut
    short returns ``next_cursor`` (the caller enqueues the continuation) and
    leaves the stored cursor alone, since platforms need not list changes
    oldest first. The stored cursor moves only after the last page. A connector
    error stops the run, keeps what was stored and leaves the cursor unchanged.
    """
    channel = Channel.objects.filter(pk=channel_id).first()
    report = PollReport(channel_id=channel_id)
    if channel is None or not channel.is_enabled:
        return report  # deleted or disabled since the poll was asked for
    state = channel_sync_state(channel_id)
    cursor = resume_cursor or poll_start_cursor(channel, state.poll_cursor)
    report.hwm = resume_hwm or state.poll_cursor
    connector = channel_connector(channel)
    started = time.monotonic()
    try:
        for _ in range(settings.PIMSYNC_POLL_MAX_PAGES):
            page = connector.orders_since(cursor, page_size=settings.PIMSYNC_POLL_PAGE_SIZE)
            report.pages += 1
            _poll_ingest(channel, page, report)
            report.hwm = later_cursor(report.hwm, page.high_water_mark)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
            if time.monotonic() - started > POLL_TIME_BUDGET_SECONDS:
                report.next_cursor = cursor
                break
        else:
            report.next_cursor = cursor
    except ConnectorError as exc:
        report.error = f"{exc.kind.value} {exc.code}: {exc.message}"[:ERROR_MAX_CHARS]
        log.warning("poll of channel %s stopped: %s", channel.slug, report.error)
        return report
    if report.next_cursor is None:
        report.cursor = _poll_state_store(channel_id, report.hwm)
    else:
        ChannelSyncState.objects.filter(channel_id=channel_id).update(polled_at=timezone.now())
    return report


def channels_poll_due(*, now: datetime | None = None) -> list[int]:
    """Enqueue a poll for every enabled channel whose poll interval has passed.

    ``polled_at`` is claimed (set to now, conditionally) before the enqueue, so a
    slow queue never gets a second poll of the same channel from the next beat;
    a failed enqueue gives the claim back. Returns the channels enqueued.
    """
    now = now or timezone.now()
    channels = list(
        Channel.objects.filter(is_enabled=True).values_list("pk", "poll_interval_seconds")
    )
    ChannelSyncState.objects.bulk_create(
        [ChannelSyncState(channel_id=pk) for pk, _ in channels], ignore_conflicts=True
    )
    last_polls = dict(
        ChannelSyncState.objects.filter(channel_id__in=[pk for pk, _ in channels]).values_list(
            "channel_id", "polled_at"
        )
    )
    enqueued = []
    for channel_id, interval in channels:
        last = last_polls.get(channel_id)
        if last is not None and last > now - timedelta(seconds=interval):
            continue
        unchanged = Q(polled_at__isnull=True) if last is None else Q(polled_at=last)
        claimed = ChannelSyncState.objects.filter(unchanged, channel_id=channel_id).update(
            polled_at=now
        )
        if not claimed:
            continue
        if channel_poll_request(channel_id):
            enqueued.append(channel_id)
        else:
            ChannelSyncState.objects.filter(channel_id=channel_id, polled_at=now).update(
                polled_at=last
            )
    return enqueued


# --- missed webhooks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceDay:
    """Orders pimsync first saw on one day for one channel, by how they arrived."""

    channel_id: int
    day: date
    orders: int
    first_via_webhook: int
    first_via_poll: int
    poll_only: int  # never seen by webhook: a webhook was missed (or the platform sends none)

    @property
    def missed_webhook_rate(self) -> float:
        return self.poll_only / self.orders if self.orders else 0.0


def orders_seen_by_source(*, channel: Channel | None = None, days: int = 7) -> list[SourceDay]:
    """Per channel and day (UTC, by when pimsync first saw the order) over the
    last ``days`` days: how orders arrived. One query."""
    since = timezone.now() - timedelta(days=days)
    orders = ChannelOrder.objects.filter(created_at__gte=since)
    if channel is not None:
        orders = orders.filter(channel=channel)
    rows = (
        orders.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("channel_id", "day")
        .annotate(
            orders=Count("pk"),
            first_via_webhook=Count("pk", filter=Q(first_seen_via=Source.WEBHOOK)),
            first_via_poll=Count("pk", filter=Q(first_seen_via=Source.POLL)),
            poll_only=Count("pk", filter=Q(seen_via_webhook=False)),
        )
        .order_by("channel_id", "day")
    )
    return [SourceDay(**row) for row in rows]
