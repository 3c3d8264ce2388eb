"""The push loop of one channel (design §3).

claim due markers (SKIP LOCKED on PostgreSQL, a lease everywhere)
  -> compute the CURRENT price / ATP
  -> rules: drop no-ops, wait below threshold / minimum interval
  -> chunk to the connector's largest batch -> rate-limit tokens -> call
  -> per SKU: sync log entry; success clears the marker (unless re-dirtied
     meanwhile), retryable backs off, permanent dead-letters, auth pauses
Crash safety: a marker is only deleted after the channel confirmed the value;
a worker killed mid-batch leaves leased markers that the next claim takes once
the lease runs out.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from pimsync.backoff import backoff_delay
from synclog import services as synclog
from synclog.services import Attempt

from ..connectors.base import Connector, ItemResult, PriceUpdate, QuantityUpdate
from ..connectors.errors import FailureKind
from ..dispatch import channel_poll_request_on_commit, channel_push_request_on_commit
from ..models import (
    Channel,
    ChannelListing,
    ChannelSyncState,
    InboundEvent,
    SyncKind,
    SyncMarker,
)
from ..selectors import channel_atp_bulk, channel_price_bulk
from . import breaker
from .connection import channel_connector, listing_ref
from .limiter import rate_limit_wait
from .rules import Action, Decision, Limits, price_decide, quantity_decide

log = logging.getLogger(__name__)
EVENT_TYPE: dict[str, str] = {SyncKind.PRICE: "price", SyncKind.QUANTITY: "inventory"}
CAS_PLATFORMS = frozenset({"shopify"})
CAS_STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
CAS_RETRY_SECONDS = 2.0  # time for the order poll to import what the channel sold
INBOUND_HOLD_SECONDS = 1.0


@dataclass
class PushReport:
    channel_id: int
    pushed: int = 0
    failed: int = 0
    dropped: int = 0
    waiting: int = 0
    calls: int = 0
    stopped: str = ""  # why the loop ended early: disabled, auth, circuit, budget
    retry_at: datetime | None = None
    latencies_ms: list[int] = field(default_factory=list)


@dataclass
class Work:
    marker: SyncMarker
    listing: ChannelListing
    value: Any  # Decimal for price, int for quantity
    result: ItemResult | None = None

    @property
    def outcome(self) -> ItemResult:
        """The channel's answer for this SKU; only read once the call returned."""
        if self.result is None:
            raise RuntimeError(f"no answer recorded for {self.listing.variant.sku}")
        return self.result


# --- claiming -----------------------------------------------------------------------------


def markers_claim(channel_id: int, *, limit: int, now: datetime) -> list[SyncMarker]:
    """Lease up to ``limit`` due markers of a channel to this caller.

    PostgreSQL: rows locked by another claimer are skipped, so workers share a
    channel's work without doubles. SQLite: the IMMEDIATE transaction
    serialises claimers. Either way the lease makes the claim visible.
    """
    token = uuid.uuid4().hex
    lease = timedelta(seconds=settings.PIMSYNC_PUSH_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            SyncMarker.objects.select_for_update(skip_locked=True)
            .filter(channel_id=channel_id, status=SyncMarker.Status.PENDING, due_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("due_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        SyncMarker.objects.filter(pk__in=ids).update(claimed_until=now + lease, claim_token=token)
    return list(
        SyncMarker.objects.filter(pk__in=ids, claim_token=token).select_related("listing__variant")
    )


def _release(markers: Sequence[SyncMarker], **changes: Any) -> None:
    """Give claimed markers back (only those this run still holds)."""
    if markers:
        SyncMarker.objects.filter(
            pk__in=[m.pk for m in markers], claim_token__in={m.claim_token for m in markers}
        ).update(claimed_until=None, claim_token="", **changes)


def _delete_unless_redirtied(markers: Sequence[SyncMarker], now: datetime) -> None:
    """Remove markers whose change was pushed; one re-dirtied in flight stays, due now."""
    if not markers:
        return
    SyncMarker.objects.filter(
        reduce(or_, (Q(pk=m.pk, change_token=m.change_token) for m in markers))
    ).delete()
    _release(
        markers,
        due_at=now,
        attempts=0,
        is_forced=False,
        first_dirty_at=F("last_dirty_at"),
        last_error_code="",
        last_error="",
    )


# --- deciding ---------------------------------------------------------------------------------


def _limits(channel: Channel) -> Limits:
    return Limits(
        threshold=max(1, channel.inventory_threshold),
        low_stock=channel.low_stock_level,
        min_interval=timedelta(seconds=channel.min_push_interval_seconds),
        max_interval=timedelta(seconds=channel.max_push_interval_seconds),
    )


def _decide(kind: str, work: Work, limits: Limits, now: datetime) -> Decision:
    m, lst = work.marker, work.listing
    if kind == SyncKind.PRICE:
        return price_decide(
            new=work.value,
            last_pushed=lst.last_pushed_price,
            last_pushed_at=lst.last_price_pushed_at,
            forced=m.is_forced,
            limits=limits,
            now=now,
        )
    return quantity_decide(
        new=work.value,
        last_pushed=lst.last_pushed_quantity,
        last_pushed_at=lst.last_quantity_pushed_at,
        first_dirty_at=m.first_dirty_at,
        forced=m.is_forced,
        limits=limits,
        now=now,
    )


def _current_values(channel: Channel, kind: str, markers: Sequence[SyncMarker]) -> list[Work]:
    """Fresh values, computed now: never a stale value carried by an event."""
    variant_ids = {m.listing.variant_id for m in markers}
    if kind == SyncKind.PRICE:
        values: dict[int, Any] = channel_price_bulk(channel=channel, variant_ids=variant_ids)
    else:
        values = channel_atp_bulk(channel=channel, variant_ids=variant_ids)
    return [Work(m, m.listing, values[m.listing.variant_id]) for m in markers]


# --- calling ----------------------------------------------------------------------------------


def _chunks(
    connector: Connector, kind: str, work: list[Work], channel: Channel
) -> list[list[Work]]:
    limit = connector.max_price_batch if kind == SyncKind.PRICE else connector.max_quantity_batch
    if channel.batch_size:
        limit = min(limit, channel.batch_size)
    groups: list[list[Work]] = [work]
    if _one_product_per_call(connector.platform, kind):
        # Each product is its own HTTP call: group so that one chunk is one call
        # and the shared limiter's token count is the true call count.
        by_product: dict[str, list[Work]] = defaultdict(list)
        for w in work:
            by_product[_call_group(connector.platform, w.listing)].append(w)
        groups = list(by_product.values())
    if connector.platform == "amazon":
        threshold = int(getattr(connector, "feed_threshold", 200))
        if len(work) <= threshold:
            limit = 1  # one patch per SKU: the shared limiter paces each call
    return [g[i : i + limit] for g in groups for i in range(0, len(g), limit)]


def _one_product_per_call(platform: str, kind: str) -> bool:
    # Shopify: productVariantsBulkUpdate takes one product. WooCommerce:
    # variations are written through products/{parent}/variations/batch.
    return (platform == "shopify" and kind == SyncKind.PRICE) or platform == "woocommerce"


def _call_group(platform: str, listing: ChannelListing) -> str:
    if platform == "woocommerce":
        simple = not listing.external_product_id or (
            listing.external_product_id == listing.external_variant_id
        )
        return "" if simple else listing.external_product_id  # "" = products/batch
    return listing.external_product_id


def _extend_lease(connector: Connector, chunk: list[Work], now: datetime) -> None:
    """Renew this run's claim before every call, so no other worker takes over
    SKUs still waiting their turn here; the chunk in flight keeps it for as long
    as its call may take (an Amazon feed can take many minutes)."""
    lease = timedelta(seconds=settings.PIMSYNC_PUSH_LEASE_SECONDS)
    token = chunk[0].marker.claim_token
    SyncMarker.objects.filter(claim_token=token).update(claimed_until=now + lease)
    if connector.platform == "amazon" and len(chunk) > 1:
        feed = timedelta(seconds=float(getattr(connector, "feed_max_wait_seconds", 1200)))
        SyncMarker.objects.filter(pk__in=[w.marker.pk for w in chunk]).update(
            claimed_until=now + lease + feed
        )


def _call(connector: Connector, kind: str, chunk: list[Work]) -> list[ItemResult]:
    if kind == SyncKind.PRICE:
        return connector.push_prices(
            [
                PriceUpdate(listing_ref(w.listing), w.value, w.listing.variant.compare_at_price)
                for w in chunk
            ]
        )
    # Compare-and-set where the channel offers it (Shopify): never overwrite
    # units the channel sold that pimsync has not imported yet.
    cas = connector.platform in CAS_PLATFORMS
    return connector.push_quantities(
        [
            QuantityUpdate(
                listing_ref(w.listing),
                w.value,
                expected_quantity=w.listing.last_confirmed_quantity if cas else None,
            )
            for w in chunk
        ]
    )


def _results_by_position(chunk: list[Work], results: list[ItemResult]) -> None:
    """Pair results with work by SKU; a SKU the connector forgot is a permanent error."""
    by_sku: dict[str, list[ItemResult]] = defaultdict(list)
    for r in results:
        by_sku[r.sku].append(r)
    for w in chunk:
        candidates = by_sku.get(w.listing.variant.sku) or by_sku.get(w.listing.channel_sku)
        w.result = (
            candidates.pop(0)
            if candidates
            else ItemResult(
                w.listing.variant.sku,
                FailureKind.PERMANENT,
                "no_result",
                "The connector returned no result for this SKU",
            )
        )


# --- recording -------------------------------------------------------------------------------


def _record_success(
    kind: str, done: list[Work], now: datetime, report: PushReport
) -> list[Attempt]:
    listings = []
    for w in done:
        lst = w.listing
        if kind == SyncKind.PRICE:
            lst.last_pushed_price = lst.last_confirmed_price = w.value
            lst.last_price_pushed_at = now
        else:
            lst.last_pushed_quantity = lst.last_confirmed_quantity = w.value
            lst.last_quantity_pushed_at = now
        lst.last_pushed_at = lst.last_confirmed_at = now
        listings.append(lst)
    fields = (
        ["last_pushed_price", "last_confirmed_price", "last_price_pushed_at"]
        if kind == SyncKind.PRICE
        else ["last_pushed_quantity", "last_confirmed_quantity", "last_quantity_pushed_at"]
    )
    ChannelListing.objects.bulk_update(listings, [*fields, "last_pushed_at", "last_confirmed_at"])
    _delete_unless_redirtied([w.marker for w in done], now)
    attempts = []
    for w in done:
        latency = max(0, int((now - w.marker.first_dirty_at).total_seconds() * 1000))
        report.latencies_ms.append(latency)
        attempts.append(_attempt(kind, w, "success", latency_ms=latency))
    report.pushed += len(done)
    return attempts


def _attempt(kind: str, w: Work, status: str, **extra: Any) -> Attempt:
    r = w.result
    return Attempt(
        channel_id=w.listing.channel_id,
        sku=w.listing.variant.sku,
        listing_id=w.listing.pk,
        event_type=EVENT_TYPE[kind],
        value_sent=str(w.value),
        status=status,
        error_code=(r.code if r and not r.ok else "")[:64],
        message=(r.message if r and not r.ok else "")[:2000],
        retry_count=w.marker.attempts,
        http_status=r.http_status if r else None,
        **extra,
    )


def _record_retry(
    kind: str, items: list[Work], now: datetime
) -> tuple[list[Attempt], datetime | None]:
    attempts, earliest = [], None
    for w in items:
        delay = backoff_delay(
            w.marker.attempts + 1,
            base=settings.PIMSYNC_RETRY_BASE_SECONDS,
            cap=settings.PIMSYNC_RETRY_CAP_SECONDS,
            retry_after=w.outcome.retry_after,
        )
        due = now + timedelta(seconds=delay)
        earliest = due if earliest is None else min(earliest, due)
        still_ours = SyncMarker.objects.filter(pk=w.marker.pk, claim_token=w.marker.claim_token)
        kept = still_ours.update(
            claimed_until=None,
            claim_token="",
            due_at=due,
            attempts=F("attempts") + 1,
            last_error_code=w.outcome.code[:64] or "retryable",
            last_error=w.outcome.message[:2000],
        )
        # A lost claim means another run has pushed (or is pushing) this SKU:
        # this failure is superseded, not something to chase.
        attempts.append(_attempt(kind, w, "retrying", resolved=not kept))
    return attempts, earliest


def _record_dead(kind: str, items: list[Work], now: datetime) -> list[Attempt]:
    attempts = []
    for w in items:
        SyncMarker.objects.filter(pk=w.marker.pk, claim_token=w.marker.claim_token).update(
            claimed_until=None,
            claim_token="",
            status=SyncMarker.Status.DEAD,
            attempts=F("attempts") + 1,
            last_error_code="permanent",
            last_error=f"{w.outcome.code}: {w.outcome.message}"[:2000],
        )
        attempts.append(_attempt(kind, w, "dead"))
        synclog.alert_raise(
            kind="dead_letter",
            channel_id=w.listing.channel_id,
            sku=w.listing.variant.sku,
            message=f"{EVENT_TYPE[kind].title()} push of {w.listing.variant.sku} refused: "
            f"{w.outcome.code} {w.outcome.message}"[:1000],
            now=now,
        )
    return attempts


def _record_cas_mismatch(
    channel: Channel, connector: Connector, items: list[Work], now: datetime
) -> list[Attempt]:
    """The channel's quantity moved since we last confirmed it (a sale we have
    not imported): poll its orders, re-read its quantity as the new compare
    base, and retry shortly with a freshly computed ATP."""
    try:
        live = {s.sku: s for s in connector.read_listings([listing_ref(w.listing) for w in items])}
    except Exception:
        log.exception("re-reading %s quantities after a compare mismatch", channel.platform)
        live = {}
    attempts = []
    for w in items:
        state = live.get(w.listing.variant.sku) or live.get(w.listing.channel_sku)
        if state is not None and state.quantity is not None:
            ChannelListing.objects.filter(pk=w.listing.pk).update(
                last_confirmed_quantity=state.quantity, last_confirmed_at=now
            )
        SyncMarker.objects.filter(pk=w.marker.pk, claim_token=w.marker.claim_token).update(
            claimed_until=None,
            claim_token="",
            due_at=now + timedelta(seconds=CAS_RETRY_SECONDS),
            attempts=F("attempts") + 1,
            last_error_code=w.outcome.code[:64],
            last_error="The channel's quantity changed since our last push; importing its "
            "orders before pushing again.",
        )
        attempts.append(_attempt(SyncKind.QUANTITY, w, "retrying"))
    channel_poll_request_on_commit(channel.pk)
    return attempts


def _inbound_pending(channel: Channel) -> bool:
    """Orders fetched from the channel but not applied yet: pushing an absolute
    quantity now could re-inflate stock the channel already sold."""
    return InboundEvent.objects.filter(channel=channel, status=InboundEvent.Status.PENDING).exists()


def _record_auth_failure(channel_id: int, items: list[Work], now: datetime) -> list[Attempt]:
    message = items[0].result.message if items and items[0].result else "authentication failed"
    ChannelSyncState.objects.filter(channel_id=channel_id).update(
        auth_failed_at=now, auth_error=message[:2000]
    )
    _release([w.marker for w in items], due_at=now)
    synclog.alert_raise(
        kind="auth_failed",
        channel_id=channel_id,
        severity="critical",
        message=f"The channel refused our credentials ({message[:300]}). Pushes are paused until "
        "the credentials are replaced.",
        now=now,
    )
    return [_attempt(items[0].marker.kind, w, "failed") for w in items]


# --- the loop ---------------------------------------------------------------------------------


def _push_chunk(
    channel: Channel,
    connector: Connector,
    kind: str,
    chunk: list[Work],
    report: PushReport,
    clock: Callable[[], datetime],
) -> bool:
    """One connector call and its bookkeeping; returns False when the loop must stop."""
    rate_limit_wait(channel.pk, rate=float(channel.rate_limit_per_second))
    _extend_lease(connector, chunk, clock())
    try:
        results = _call(connector, kind, chunk)
    except Exception as exc:
        log.exception("connector %s raised on a %s push", channel.platform, kind)
        results = [
            ItemResult(
                w.listing.variant.sku, FailureKind.RETRYABLE, "connector_error", str(exc)[:500]
            )
            for w in chunk
        ]
    report.calls += 1
    now = clock()
    _results_by_position(chunk, results)
    by_kind: dict[FailureKind, list[Work]] = defaultdict(list)
    for w in chunk:
        by_kind[w.outcome.kind].append(w)
    attempts: list[Attempt] = []
    with transaction.atomic():
        if by_kind[FailureKind.OK]:
            attempts += _record_success(kind, by_kind[FailureKind.OK], now, report)
        if by_kind[FailureKind.RETRYABLE]:
            retry_attempts, retry_at = _record_retry(kind, by_kind[FailureKind.RETRYABLE], now)
            attempts += retry_attempts
            report.retry_at = min(filter(None, [report.retry_at, retry_at]), default=None)
        stale = [w for w in by_kind[FailureKind.PERMANENT] if w.outcome.code in CAS_STALE_CODES]
        if stale:
            attempts += _record_cas_mismatch(channel, connector, stale, now)
        dead = [w for w in by_kind[FailureKind.PERMANENT] if w.outcome.code not in CAS_STALE_CODES]
        if dead:
            attempts += _record_dead(kind, dead, now)
        if by_kind[FailureKind.AUTH]:
            attempts += _record_auth_failure(channel.pk, by_kind[FailureKind.AUTH], now)
        synclog.sync_log_record(attempts, now=now)
    report.failed += len(chunk) - len(by_kind[FailureKind.OK])
    whole_call_failed = len(by_kind[FailureKind.RETRYABLE]) == len(chunk)
    if whole_call_failed:
        reason = chunk[0].outcome.code or "retryable error"
        if breaker.breaker_record_failure(channel.pk, now=now, reason=reason):
            report.stopped = "circuit"
            return False
    else:
        breaker.breaker_record_success(channel.pk, now=now)
    if by_kind[FailureKind.AUTH]:
        report.stopped = "auth"
        return False
    return True


def _process_kind(
    channel: Channel,
    connector: Connector,
    kind: str,
    markers: list[SyncMarker],
    report: PushReport,
    clock: Callable[[], datetime],
    deadline: float,
) -> bool:
    now = clock()
    if (
        kind == SyncKind.QUANTITY
        and channel.platform not in CAS_PLATFORMS
        and _inbound_pending(channel)
    ):
        _release(markers, due_at=now + timedelta(seconds=INBOUND_HOLD_SECONDS))
        report.waiting += len(markers)
        return True
    limits = _limits(channel)
    work = _current_values(channel, kind, markers)
    to_push: list[Work] = []
    drop: list[SyncMarker] = []
    for w in work:
        decision = _decide(kind, w, limits, now)
        if decision.action is Action.PUSH:
            to_push.append(w)
        elif decision.action is Action.DROP:
            drop.append(w.marker)
        else:
            _release([w.marker], due_at=decision.until)
            report.waiting += 1
    _delete_unless_redirtied(drop, now)
    if drop:
        # The channel already shows the value: earlier failed attempts are moot.
        synclog.sync_log_resolve(
            channel_id=channel.pk,
            event_type=EVENT_TYPE[kind],
            skus={m.listing.variant.sku for m in drop},
            now=now,
        )
    report.dropped += len(drop)
    chunks = _chunks(connector, kind, to_push, channel)
    for i, chunk in enumerate(chunks):
        if time.monotonic() > deadline:
            _release([w.marker for c in chunks[i:] for w in c], due_at=clock())
            report.stopped = "budget"
            return False
        if not _push_chunk(channel, connector, kind, chunk, report, clock):
            _release([w.marker for c in chunks[i + 1 :] for w in c])
            return False
    return True


def _process_claimed(
    channel: Channel,
    connector: Connector,
    markers: list[SyncMarker],
    report: PushReport,
    clock: Callable[[], datetime],
    deadline: float,
) -> bool:
    """Quantities first (overselling costs more than a stale price)."""
    by_kind: dict[str, list[SyncMarker]] = defaultdict(list)
    for m in markers:
        by_kind[m.kind].append(m)
    kinds = [k for k in (SyncKind.QUANTITY, SyncKind.PRICE) if by_kind[k]]
    for i, kind in enumerate(kinds):
        if not _process_kind(channel, connector, kind, by_kind[kind], report, clock, deadline):
            _release([m for later in kinds[i + 1 :] for m in by_kind[later]])
            return False
    return True


def channel_push(
    channel_id: int,
    *,
    time_budget: float | None = None,
    clock: Callable[[], datetime] = timezone.now,
) -> PushReport:
    """Push every due marker of one channel until none is due, or the budget,
    the circuit or an auth failure stops it. Safe to run in several workers."""
    report = PushReport(channel_id)
    ChannelSyncState.objects.get_or_create(channel_id=channel_id)
    ChannelSyncState.objects.filter(channel_id=channel_id).update(push_queued=False)
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None or not channel.is_enabled:
        report.stopped = "disabled"
        return report
    state = ChannelSyncState.objects.get(channel_id=channel_id)
    if state.auth_failed_at is not None:
        report.stopped = "auth"
        return report
    connector = channel_connector(channel)
    budget = settings.PIMSYNC_PUSH_TIME_BUDGET_SECONDS if time_budget is None else time_budget
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        permit = breaker.breaker_permit(channel_id, now=clock())
        if not permit.allowed:
            report.stopped, report.retry_at = "circuit", permit.retry_at
            return report
        limit = 1 if permit.probe else settings.PIMSYNC_PUSH_CLAIM_SIZE
        markers = markers_claim(channel_id, limit=limit, now=clock())
        if not markers:
            if permit.probe:
                breaker.breaker_record_success(channel_id, now=clock())
            return report
        calls_before = report.calls
        if not _process_claimed(channel, connector, markers, report, clock, deadline):
            return report
        if permit.probe and report.calls == calls_before:
            breaker.breaker_probe_abandoned(channel_id, now=clock())
    report.stopped = "budget"
    return report


def channel_resume(channel_id: int) -> None:
    """Clear an auth pause (after credentials were replaced) and push again."""
    ChannelSyncState.objects.filter(channel_id=channel_id).update(
        auth_failed_at=None, auth_error=""
    )
    synclog.alert_resolve(kind="auth_failed", channel_id=channel_id, sku="")
    channel_push_request_on_commit(channel_id)
