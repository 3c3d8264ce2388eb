"""Polling a channel's orders: the fallback for missed webhooks and the only
path for platforms that send none (design §4).

A poll reads the orders changed since the channel's cursor (with an overlap
window) and feeds each change through the inbound event path (events.py), so a
change seen by webhook and by polling applies once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..connectors.base import OrderData, OrdersPage
from ..connectors.errors import POLL_WINDOW_EXCEEDED, ConnectorError
from ..connectors.http import decode_page_cursor, format_timestamp, parse_timestamp
from ..dispatch import channel_poll_request, channel_sync_state
from ..models import Channel, ChannelOrder, ChannelSyncState, InboundEvent
from ..sync.connection import channel_connector
from ..sync.edits import channel_edits_recheck
from ..sync.markers import markers_release_after_poll
from .events import ERROR_MAX_CHARS, inbound_events_apply, order_data_to_json, order_skus
from .poll_window import poll_window_alert

log = logging.getLogger(__name__)

Status = InboundEvent.Status
Source = InboundEvent.Source

# A poll run stops paging after this long and hands the rest to a follow-up task
# (well inside channel_poll_task's time limit).
POLL_TIME_BUDGET_SECONDS = 240.0


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
    started: str = ""  # when the poll (its first run, if continued) began, ISO
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
            skus=order_skus(order),
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
    # In the page's order; an event missing here was taken by a concurrent poll. One a
    # worker holds right now is waited for: when the poll ends, its page is applied.
    ordered = [ids[e.delivery_id] for e in fresh if e.delivery_id in ids]
    size = settings.PIMSYNC_INBOUND_BATCH_SIZE
    for start in range(0, len(ordered), size):
        outcomes = inbound_events_apply(event_ids=ordered[start : start + size], wait=True)
        for outcome in outcomes.values():
            if outcome in (Status.PROCESSED, Status.IGNORED):
                report.processed += 1
            else:
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
    channel_id: int,
    *,
    resume_cursor: str | None = None,
    resume_hwm: str = "",
    resume_started: str = "",
) -> PollReport:
    """Read the channel's orders changed since its cursor (with overlap) and feed
    each through the inbound event path.

    Pages until the connector says there is no further page, at most
    PIMSYNC_POLL_MAX_PAGES pages or POLL_TIME_BUDGET_SECONDS per run; a run cut
    short returns ``next_cursor`` (the caller enqueues the continuation) and
    leaves the stored cursor alone, since platforms need not list changes
    oldest first. The stored cursor moves only after the last page. A connector
    error stops the run, keeps what was stored, leaves the cursor unchanged and
    is recorded on the channel's sync state.

    When the last page is in, the quantity pushes that were held for an orders
    poll started before this one (``resume_started``: when the first run of a
    continued poll began) are released: the sales behind them are imported.
    """
    channel = Channel.objects.filter(pk=channel_id).first()
    report = PollReport(channel_id=channel_id)
    if channel is None or not channel.is_enabled:
        return report  # deleted or disabled since the poll was asked for
    report.started = resume_started or timezone.now().isoformat()
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
        ChannelSyncState.objects.filter(channel_id=channel_id).update(
            poll_failed_at=timezone.now(), poll_error=report.error
        )
        if exc.code == POLL_WINDOW_EXCEEDED:
            poll_window_alert(channel=channel, error=exc)
        return report
    if report.next_cursor is None:
        report.cursor = _poll_state_store(channel_id, report.hwm)
        _poll_applied(channel_id, datetime.fromisoformat(report.started))
    else:
        ChannelSyncState.objects.filter(channel_id=channel_id).update(polled_at=timezone.now())
    return report


def _poll_applied(channel_id: int, started: datetime) -> None:
    """A whole poll is in: record it, let the pushes held for it go, and compare
    the edited values that waited for the channel's orders."""
    with transaction.atomic():
        ChannelSyncState.objects.filter(channel_id=channel_id).update(
            poll_applied_started_at=started, poll_error=""
        )
        markers_release_after_poll(channel_id=channel_id, poll_started_at=started)
    channel_edits_recheck(channel_id=channel_id)


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
