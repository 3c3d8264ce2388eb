"""The push loop of one channel (design §3, §6).

claim due markers, urgent first (SKIP LOCKED on PostgreSQL, a short lease kept
alive by a heartbeat while this worker lives)
  -> compute the CURRENT price / ATP (0 for what is not for sale)
  -> rules: drop no-ops, wait below threshold / minimum interval (urgent work never waits)
  -> quantities on platforms without compare-and-set: hold increases of SKUs whose
     orders are still being imported, and read the channel's quantities right
     before writing (guard.py): nothing is written over a sale not imported yet
  -> chunk to the connector's largest batch -> call (every call spends from the
     channel's shared rate budget) -> urgent work that arrived meanwhile goes next
  -> kinds in order: quantities, then prices, then product content (attribute: the
     parts of a published product's content that changed, one product per call)
  -> per SKU: sync log entry; success clears the marker (unless re-dirtied
     meanwhile), retryable backs off (bounded by attempts and age, then
     dead-lettered), permanent dead-letters, auth pauses, a compare-and-set
     mismatch waits for an orders poll
Crash safety: a marker is only deleted after the channel confirmed the value;
a worker killed mid-batch stops renewing its leases, and another worker takes
its markers over within one lease.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
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

from ..connectors.base import (
    AsyncBatchConnector,
    Connector,
    ContentPublisher,
    ContentUpdate,
    ItemResult,
    PriceUpdate,
    QuantityUpdate,
)
from ..connectors.errors import ConnectorError, FailureKind
from ..connectors.http import item_result
from ..content import content_updates, listing_content_parts
from ..dispatch import batch_watch_later, channel_push_request_on_commit
from ..models import (
    Channel,
    ChannelBatch,
    ChannelListing,
    ChannelSyncState,
    SyncKind,
    SyncMarker,
)
from ..selectors import channel_atp_bulk, channel_price_bulk, listing_is_for_sale
from . import breaker
from .connection import channel_connector, listing_ref
from .guard import (
    baseline_record,
    guard_quantities,
    has_compare_and_set,
    markers_hold_for_poll,
    read_group_size,
    skus_being_imported,
)
from .lease import lease_length, leased_run
from .limiter import urgent_calls
from .rules import Action, Decision, Limits, content_decide, price_decide, quantity_decide
from .tokens import channel_token_reset

log = logging.getLogger(__name__)
EVENT_TYPE: dict[str, str] = {
    SyncKind.PRICE: "price",
    SyncKind.QUANTITY: "inventory",
    SyncKind.ATTRIBUTE: "attribute",
}
# The order a claim's kinds are pushed in: overselling costs more than a stale price,
# a stale price more than a stale description.
KIND_ORDER = (SyncKind.QUANTITY, SyncKind.PRICE, SyncKind.ATTRIBUTE)
# Variants of one product per content call at most (Shopify's input arrays take 250).
CONTENT_CALL_MAX = 250
CAS_STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
# An increase of a SKU whose orders are still being imported is tried again this soon.
INBOUND_HOLD_SECONDS = 1.0


@dataclass
class PushReport:
    channel_id: int
    pushed: int = 0
    failed: int = 0
    dropped: int = 0
    waiting: int = 0
    calls: int = 0
    submitted: int = 0  # SKUs handed to the channel in asynchronous batches
    stopped: str = ""  # why the loop ended early: disabled, auth, circuit, budget
    retry_at: datetime | None = None
    latencies_ms: list[int] = field(default_factory=list)


@dataclass
class Work:
    marker: SyncMarker
    listing: ChannelListing
    value: Any  # Decimal for price, int for quantity, ContentUpdate for attribute
    result: ItemResult | None = None

    @property
    def outcome(self) -> ItemResult:
        """The channel's answer for this SKU; only read once the call returned."""
        if self.result is None:
            raise RuntimeError(f"no answer recorded for {self.listing.variant.sku}")
        return self.result


@dataclass
class Run:
    """One push run of one channel: its connection, its claim token, its limits."""

    channel: Channel
    connector: Connector
    token: str
    report: PushReport
    clock: Callable[[], datetime]
    deadline: float
    # Recording the results of a batch the channel processed (not a live call).
    finishing_batch: bool = False
    # The urgent lane: claims urgent markers only, pushes their zeros and passes the
    # rest over (not claimed again by this run).
    urgent_only: bool = False
    passed_over: set[int] = field(default_factory=set)


# --- claiming -----------------------------------------------------------------------------


def markers_claim(
    channel_id: int,
    *,
    limit: int,
    now: datetime,
    token: str,
    urgent_only: bool = False,
    passed_over: Collection[int] = (),
) -> list[SyncMarker]:
    """Lease up to ``limit`` due markers of a channel to the run holding ``token``,
    urgent ones first; markers held for an orders poll wait for it.

    PostgreSQL: rows locked by another claimer are skipped, so workers share a
    channel's work without doubles. SQLite: the IMMEDIATE transaction
    serialises claimers. Either way the lease makes the claim visible.
    """
    due = (
        SyncMarker.objects.filter(
            channel_id=channel_id,
            status=SyncMarker.Status.PENDING,
            due_at__lte=now,
            held_for_poll_at__isnull=True,
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        # In a batch the channel is processing: only urgent work overtakes it.
        .filter(Q(batch__isnull=True) | Q(is_urgent=True))
    )
    if urgent_only:
        due = due.filter(is_urgent=True)
    if passed_over:
        due = due.exclude(pk__in=passed_over)
    with transaction.atomic():
        ids = list(
            due.select_for_update(skip_locked=True)
            .order_by("-is_urgent", "due_at", "pk")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        SyncMarker.objects.filter(pk__in=ids).update(
            claimed_until=now + lease_length(), claim_token=token
        )
    # Prefetched, not joined: a queue table's statistics are often those of an empty
    # table (analyzed between bursts), and the planner then joins four tables by
    # nested sequential scans - 83 s for 600 claimed markers instead of milliseconds.
    return list(
        SyncMarker.objects.filter(pk__in=ids, claim_token=token).prefetch_related(
            "listing__variant__product"
        )
    )


def _urgent_waiting(channel_id: int, now: datetime) -> bool:
    return (
        SyncMarker.objects.filter(
            channel_id=channel_id,
            status=SyncMarker.Status.PENDING,
            is_urgent=True,
            due_at__lte=now,
            held_for_poll_at__isnull=True,
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .exists()
    )


def _release(markers: Sequence[SyncMarker], **changes: Any) -> None:
    """Give claimed markers back (only those this run still holds)."""
    if markers:
        SyncMarker.objects.filter(
            pk__in=[m.pk for m in markers], claim_token__in={m.claim_token for m in markers}
        ).update(claimed_until=None, claim_token="", **changes)


def _delete_unless_redirtied(
    markers: Sequence[SyncMarker], now: datetime, *, finishing_batch: bool = False
) -> None:
    """Remove markers whose change was pushed; one re-dirtied in flight stays, due now.

    A marker still in a batch the channel is processing (an urgent value written
    past it) stays in the batch, no longer urgent and marked changed: the batch's
    older value may land after ours, so the current value goes again once the
    batch is finished."""
    if not markers:
        return
    if not finishing_batch:
        overtaken = [m for m in markers if m.batch_id is not None]
        if overtaken:
            SyncMarker.objects.filter(pk__in=[m.pk for m in overtaken]).update(
                is_urgent=False, change_token=uuid.uuid4().hex, claimed_until=None, claim_token=""
            )
            markers = [m for m in markers if m.batch_id is None]
            if not markers:
                return
    SyncMarker.objects.filter(
        reduce(or_, (Q(pk=m.pk, change_token=m.change_token) for m in markers))
    ).delete()
    _release(
        markers,
        due_at=now,
        attempts=0,
        first_failed_at=None,
        batch=None,
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
    if kind == SyncKind.ATTRIBUTE:
        return content_decide(
            changed=work.value.changed,
            last_pushed_at=lst.last_content_pushed_at,
            forced=m.is_forced,
            limits=limits,
            now=now,
            urgent=m.is_urgent,
        )
    if kind == SyncKind.PRICE:
        return price_decide(
            new=work.value,
            last_pushed=lst.last_pushed_price,
            last_pushed_at=lst.last_price_pushed_at,
            forced=m.is_forced,
            limits=limits,
            now=now,
            urgent=m.is_urgent,
        )
    return quantity_decide(
        new=work.value,
        last_pushed=lst.last_pushed_quantity,
        last_pushed_at=lst.last_quantity_pushed_at,
        first_dirty_at=m.first_dirty_at,
        forced=m.is_forced,
        limits=limits,
        now=now,
        urgent=m.is_urgent,
    )


def _current_values(
    channel: Channel, kind: str, markers: Sequence[SyncMarker]
) -> tuple[list[Work], list[SyncMarker]]:
    """Fresh values, computed now: never a stale value carried by an event. What is
    not for sale (listing disabled, variant inactive, product archived) is told 0;
    its price is not pushed (those markers come back second)."""
    variant_ids = {m.listing.variant_id for m in markers}
    if kind == SyncKind.ATTRIBUTE:
        return _current_content(channel, markers)
    if kind == SyncKind.PRICE:
        selling = [m for m in markers if listing_is_for_sale(m.listing)]
        prices = channel_price_bulk(channel=channel, variant_ids=variant_ids)
        work = [Work(m, m.listing, prices[m.listing.variant_id]) for m in selling]
        return work, [m for m in markers if not listing_is_for_sale(m.listing)]
    atp = channel_atp_bulk(channel=channel, variant_ids=variant_ids)
    return [
        Work(m, m.listing, atp[m.listing.variant_id] if listing_is_for_sale(m.listing) else 0)
        for m in markers
    ], []


def _current_content(
    channel: Channel, markers: Sequence[SyncMarker]
) -> tuple[list[Work], list[SyncMarker]]:
    """Each listing's content as the catalog holds it now and the parts that changed;
    a listing whose content pimsync no longer owns, or that is not for sale, is not
    pushed (those markers come back second)."""
    pushed = [m for m in markers if m.listing.sync_content and listing_is_for_sale(m.listing)]
    updates = content_updates(
        channel=channel,
        listings=[m.listing for m in pushed],
        forced=[m.listing_id for m in pushed if m.is_forced],
    )
    return [Work(m, m.listing, updates[m.listing_id]) for m in pushed], [
        m for m in markers if m not in pushed
    ]


# --- calling ----------------------------------------------------------------------------------


def _content_chunks(work: list[Work]) -> list[list[Work]]:
    """One product per content call: the platforms write a product's content (and its
    variants) in one request, or one variant after another of that product."""
    by_product: dict[int, list[Work]] = defaultdict(list)
    for w in work:
        by_product[w.listing.variant.product_id].append(w)
    return [
        group[i : i + CONTENT_CALL_MAX]
        for group in by_product.values()
        for i in range(0, len(group), CONTENT_CALL_MAX)
    ]


def _chunks(
    connector: Connector, kind: str, work: list[Work], channel: Channel, *, urgent: bool = False
) -> list[list[Work]]:
    if kind == SyncKind.ATTRIBUTE:
        return _content_chunks(work)
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
        return _amazon_chunks(connector, work, limit, urgent=urgent)
    return [g[i : i + limit] for g in groups for i in range(0, len(g), limit)]


def _amazon_chunks(
    connector: Connector, work: list[Work], limit: int, *, urgent: bool
) -> list[list[Work]]:
    """One patch per SKU (the shared limiter paces each call) for urgent work and for
    SKUs still in a feed Amazon is processing (an urgent change that came after the
    feed) - urgent work never waits for a feed, and a SKU is never in two feeds; a
    feed for the rest when there are more than the connector's threshold."""
    threshold = int(getattr(connector, "feed_threshold", 200))
    patched = [w for w in work if urgent or w.marker.batch_id]
    rest = [w for w in work if not (urgent or w.marker.batch_id)]
    if len(rest) <= threshold:
        patched, rest = patched + rest, []
    singles = [[w] for w in patched]
    return singles + [rest[i : i + limit] for i in range(0, len(rest), limit)]


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


def _price_updates(chunk: list[Work]) -> list[PriceUpdate]:
    return [
        PriceUpdate(listing_ref(w.listing), w.value, w.listing.variant.compare_at_price)
        for w in chunk
    ]


def _quantity_updates(connector: Connector, chunk: list[Work]) -> list[QuantityUpdate]:
    # Compare-and-set where the channel offers it (Shopify): never overwrite
    # units the channel sold that pimsync has not imported yet. A 0 cannot raise
    # anything the channel shows, so it is set unchecked: a mismatch would hold the
    # sold-out SKU on sale until the next orders poll.
    cas = has_compare_and_set(connector)
    return [
        QuantityUpdate(
            listing_ref(w.listing),
            w.value,
            expected_quantity=w.listing.last_confirmed_quantity if cas and w.value else None,
        )
        for w in chunk
    ]


def _updates(
    connector: Connector, kind: str, chunk: list[Work]
) -> list[PriceUpdate] | list[QuantityUpdate]:
    if kind == SyncKind.PRICE:
        return _price_updates(chunk)
    return _quantity_updates(connector, chunk)


def _call(connector: Connector, kind: str, chunk: list[Work]) -> list[ItemResult]:
    if kind == SyncKind.ATTRIBUTE:
        if not isinstance(connector, ContentPublisher):
            return [
                ItemResult(
                    w.listing.variant.sku,
                    FailureKind.PERMANENT,
                    "unsupported",
                    f"{connector.platform} takes no product content from pimsync",
                )
                for w in chunk
            ]
        return connector.push_content([w.value for w in chunk])
    if kind == SyncKind.PRICE:
        return connector.push_prices(_price_updates(chunk))
    return connector.push_quantities(_quantity_updates(connector, chunk))


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
    kind: str, done: list[Work], now: datetime, report: PushReport, *, finishing_batch: bool = False
) -> list[Attempt]:
    listings = []
    for w in done:
        lst = w.listing
        if kind == SyncKind.ATTRIBUTE:
            lst.last_pushed_content = listing_content_parts(lst, w.value.product)
            lst.last_content_pushed_at = now
        elif kind == SyncKind.PRICE:
            lst.last_pushed_price = lst.last_confirmed_price = w.value
            lst.last_price_pushed_at = now
        else:
            lst.last_pushed_quantity = lst.last_confirmed_quantity = w.value
            lst.last_quantity_pushed_at = now
        lst.last_pushed_at = lst.last_confirmed_at = now
        listings.append(lst)
    ChannelListing.objects.bulk_update(listings, [*PUSHED_FIELDS[kind], *PUSHED_AT])
    if listings and kind != SyncKind.ATTRIBUTE:
        # An edit a channel's webhook reported for these fields is overwritten now.
        synclog.drift_findings_pushed(
            channel_id=listings[0].channel_id,
            listing_ids=[lst.pk for lst in listings],
            field=kind,
            now=now,
        )
    _delete_unless_redirtied([w.marker for w in done], now, finishing_batch=finishing_batch)
    attempts = []
    for w in done:
        latency = max(0, int((now - w.marker.first_dirty_at).total_seconds() * 1000))
        report.latencies_ms.append(latency)
        attempts.append(_attempt(kind, w, "success", latency_ms=latency))
    report.pushed += len(done)
    return attempts


PUSHED_FIELDS: dict[str, list[str]] = {
    SyncKind.PRICE: ["last_pushed_price", "last_confirmed_price", "last_price_pushed_at"],
    SyncKind.QUANTITY: [
        "last_pushed_quantity",
        "last_confirmed_quantity",
        "last_quantity_pushed_at",
    ],
    SyncKind.ATTRIBUTE: ["last_pushed_content", "last_content_pushed_at"],
}
PUSHED_AT = ["last_pushed_at", "last_confirmed_at"]


def value_text(value: Any) -> str:
    """The value as the sync log shows it; a content push names the parts it carried."""
    if isinstance(value, ContentUpdate):
        return ",".join(sorted(value.changed)) or "content"
    return str(value)


def _attempt(kind: str, w: Work, status: str, **extra: Any) -> Attempt:
    r = w.result
    return Attempt(
        channel_id=w.listing.channel_id,
        sku=w.listing.variant.sku,
        listing_id=w.listing.pk,
        event_type=EVENT_TYPE[kind],
        value_sent=value_text(w.value)[:64],
        status=status,
        error_code=(r.code if r and not r.ok else "")[:64],
        message=(r.message if r and not r.ok else "")[:2000],
        retry_count=w.marker.attempts,
        http_status=r.http_status if r else None,
        **extra,
    )


def _backoff(attempt: int, *, retry_after: float | None = None) -> float:
    return backoff_delay(
        attempt,
        base=settings.PIMSYNC_RETRY_BASE_SECONDS,
        cap=settings.PIMSYNC_RETRY_CAP_SECONDS,
        retry_after=retry_after,
    )


def _retries_exhausted(channel: Channel, w: Work, now: datetime) -> str:
    """Why this retryable failure is the last one ('' while it may be retried)."""
    attempts = w.marker.attempts + 1
    if attempts >= channel.retry_max_attempts:
        return f"failed {attempts} times"
    since = w.marker.first_failed_at or now
    if now - since >= timedelta(hours=channel.retry_max_hours):
        return f"failing for {channel.retry_max_hours} h"
    return ""


def _record_retry(
    channel: Channel, kind: str, items: list[Work], now: datetime
) -> tuple[list[Attempt], datetime | None]:
    attempts: list[Attempt] = []
    earliest = None
    exhausted = [(w, why) for w in items if (why := _retries_exhausted(channel, w, now))]
    for w, why in exhausted:
        attempts += _record_dead(kind, [w], now, why=why)
    for w in items:
        if any(w is gone for gone, _ in exhausted):
            continue
        delay = _backoff(w.marker.attempts + 1, retry_after=w.outcome.retry_after)
        due = now + timedelta(seconds=delay)
        earliest = due if earliest is None else min(earliest, due)
        still_ours = SyncMarker.objects.filter(pk=w.marker.pk, claim_token=w.marker.claim_token)
        kept = still_ours.update(
            claimed_until=None,
            claim_token="",
            due_at=due,
            attempts=F("attempts") + 1,
            first_failed_at=w.marker.first_failed_at or now,
            last_error_code=w.outcome.code[:64] or "retryable",
            last_error=w.outcome.message[:2000],
        )
        # A lost claim means another run has pushed (or is pushing) this SKU:
        # this failure is superseded, not something to chase.
        attempts.append(_attempt(kind, w, "retrying", resolved=not kept))
    return attempts, earliest


def _record_dead(kind: str, items: list[Work], now: datetime, *, why: str = "") -> list[Attempt]:
    """Dead-letter: refused for good, or (``why``) retried until the channel's limit."""
    attempts = []
    for w in items:
        error = f"{w.outcome.code} {w.outcome.message}".strip()
        SyncMarker.objects.filter(pk=w.marker.pk, claim_token=w.marker.claim_token).update(
            claimed_until=None,
            claim_token="",
            status=SyncMarker.Status.DEAD,
            attempts=F("attempts") + 1,
            last_error_code="exhausted" if why else "permanent",
            last_error=(f"Gave up ({why}); last error: {error}" if why else error)[:2000],
        )
        attempts.append(_attempt(kind, w, "dead"))
        outcome = f"gave up after retrying ({why})" if why else "refused"
        synclog.alert_raise(
            kind="dead_letter",
            channel_id=w.listing.channel_id,
            sku=w.listing.variant.sku,
            message=f"{EVENT_TYPE[kind].title()} push of {w.listing.variant.sku} {outcome}: "
            f"{error}"[:1000],
            now=now,
        )
    return attempts


def _record_hold(w: Work, shows: int, confirmed: int | None) -> Attempt:
    return Attempt(
        channel_id=w.listing.channel_id,
        sku=w.listing.variant.sku,
        listing_id=w.listing.pk,
        event_type=EVENT_TYPE[SyncKind.QUANTITY],
        value_sent=str(w.value),
        status="held",
        error_code="held_for_orders",
        message=f"The channel shows {shows}, fewer than the {confirmed} pimsync last confirmed: "
        "a sale pimsync has not imported yet. Its orders are imported first; then the "
        "quantity is recomputed and written.",
        retry_count=w.marker.attempts,
    )


def _hold_for_orders(
    channel: Channel, held: list[tuple[Work, int]], now: datetime
) -> list[Attempt]:
    """An unseen sale: the channel's shown quantity is the new baseline, and the
    SKU waits for an orders poll that starts after now."""
    attempts = [_record_hold(w, shows, w.listing.last_confirmed_quantity) for w, shows in held]
    for w, shows in held:
        baseline_record(w.listing, shows, now)
    markers_hold_for_poll(
        [w.marker for w, _ in held],
        channel_id=channel.pk,
        now=now,
        message="Waiting for the channel's orders to be imported (it shows fewer units "
        "than pimsync last confirmed).",
    )
    return attempts


def _record_cas_mismatch(
    channel: Channel, connector: Connector, items: list[Work], now: datetime
) -> list[Attempt]:
    """The channel's quantity moved since we last confirmed it (a sale we have
    not imported): read what it shows now as the new compare base. A value below
    it goes again at once (a decrease never waits); anything else waits for an
    orders poll that starts after now — never a blind retry after a delay."""
    try:
        live = {s.sku: s for s in connector.read_listings([listing_ref(w.listing) for w in items])}
    except Exception:
        log.exception("re-reading %s quantities after a compare mismatch", channel.platform)
        live = {}
    # Compared with the stock available now, not when the call left: a sale during the
    # call (the SKU sold out) is a decrease that goes at once, not one held for a poll.
    atp = _available_now(channel, items)
    again, held = [], []
    for w in items:
        state = live.get(w.listing.variant.sku) or live.get(w.listing.channel_sku)
        shows = state.quantity if state is not None and state.error is None else None
        if shows is not None and min(w.value, atp[w.listing.variant_id]) < shows:
            baseline_record(w.listing, shows, now)
            again.append(w)
        else:
            held.append((w, shows if shows is not None else w.listing.last_confirmed_quantity or 0))
    for w in again:
        # Once at once with the new base; if the channel moves again meanwhile, back off.
        delay = 0.0 if not w.marker.attempts else _backoff(w.marker.attempts)
        _release([w.marker], due_at=now + timedelta(seconds=delay), attempts=F("attempts") + 1)
    attempts = [_attempt(SyncKind.QUANTITY, w, "retrying") for w in again]
    if held:
        attempts += _hold_for_orders(channel, held, now)
    return attempts


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
        # Long enough for a refused token refresh, whose message says what to do.
        message=f"The channel refused our credentials ({message[:1200]}). Pushes are paused "
        "until the credentials are replaced.",
        now=now,
    )
    return [_attempt(items[0].marker.kind, w, "failed") for w in items]


# --- guarding quantities -----------------------------------------------------------------------


def _hold_imports(run: Run, work: list[Work]) -> list[Work]:
    """Increases of SKUs whose orders are still being imported wait a moment
    (per SKU: other SKUs, decreases and zeros go on)."""
    importing = skus_being_imported(run.channel.pk)
    if not importing:
        return work
    waiting = [
        w
        for w in work
        if {w.listing.variant.sku, w.listing.channel_sku} & importing
        and w.value > (w.listing.last_confirmed_quantity or 0)
    ]
    if waiting:
        due = run.clock() + timedelta(seconds=INBOUND_HOLD_SECONDS)
        _release([w.marker for w in waiting], due_at=due)
        run.report.waiting += len(waiting)
    return [w for w in work if w not in waiting]


def _guard_chunk(run: Run, work: list[Work]) -> list[Work]:
    """Read before write (platforms without compare-and-set): what may be written
    now; unseen sales are held for an orders poll, unreadable SKUs retried shortly."""
    now = run.clock()
    guarded = guard_quantities(run.connector, [(w.listing, w.value) for w in work])
    by_listing = {w.listing.pk: w for w in work}
    held = [(by_listing[listing.pk], shows) for listing, _, shows in guarded.hold]
    unread = [by_listing[listing.pk] for listing, _ in guarded.unread]
    if held or unread:
        with transaction.atomic():
            attempts = _hold_for_orders(run.channel, held, now) if held else []
            due = now + timedelta(seconds=INBOUND_HOLD_SECONDS)
            _release([w.marker for w in unread], due_at=due)
            synclog.sync_log_record(attempts, now=now)
        run.report.waiting += len(held) + len(unread)
    allowed = {listing.pk for listing, _ in guarded.write}
    return [w for w in work if w.listing.pk in allowed]


# --- the loop ---------------------------------------------------------------------------------


def _call_priority(kind: str, work: Sequence[Work]) -> AbstractContextManager[None]:
    """A call that tells the channel a 0 goes before the calls other runs queued in
    the channel's shared rate budget. Only zeros: with a few units per SKU nearly
    every quantity is low stock, and a priority everything has is none."""
    carries_zero = kind == SyncKind.QUANTITY and any(w.value == 0 for w in work)
    return urgent_calls() if carries_zero else nullcontext()


def _available_now(channel: Channel, work: Sequence[Work]) -> dict[int, int]:
    """The channel's ATP of each work item's variant, read now (by variant id)."""
    return channel_atp_bulk(channel=channel, variant_ids={w.listing.variant_id for w in work})


def _lower_to_fresh_quantities(run: Run, chunk: list[Work]) -> None:
    """Just before the call, each quantity is lowered to the stock available now
    when a sale came after it was computed (a read before write or the rate budget may
    have taken a while meanwhile): the sale's 0 goes with this call instead of after
    it. Never raised here: an increase is the read-before-write guard's to allow."""
    atp = _available_now(run.channel, chunk)
    for w in chunk:
        w.value = min(w.value, atp[w.listing.variant_id])


def _push_chunk(run: Run, kind: str, chunk: list[Work]) -> bool:
    """One connector call and its bookkeeping; returns False when the loop must stop."""
    if kind == SyncKind.QUANTITY:
        _lower_to_fresh_quantities(run, chunk)
    if (
        len(chunk) > 1
        and kind != SyncKind.ATTRIBUTE
        and isinstance(run.connector, AsyncBatchConnector)
    ):
        return _submit_batch(run, kind, chunk)
    try:
        with _call_priority(kind, chunk):
            results = _call(run.connector, kind, chunk)
    except Exception as exc:
        log.exception("connector %s raised on a %s push", run.channel.platform, kind)
        results = _error_results(chunk, exc)
    run.report.calls += 1
    return record_results(run, kind, chunk, results)


def _error_results(chunk: list[Work], exc: Exception) -> list[ItemResult]:
    if isinstance(exc, ConnectorError):
        return [item_result(w.listing.variant.sku, exc) for w in chunk]
    return [
        ItemResult(w.listing.variant.sku, FailureKind.RETRYABLE, "connector_error", str(exc)[:500])
        for w in chunk
    ]


def _submit_batch(run: Run, kind: str, chunk: list[Work]) -> bool:
    """Hand a large chunk to the channel as an asynchronous batch and record it at
    once (id, SKUs, values); a watcher task follows it (sync/batches.py). The run
    goes on with other work instead of waiting for the channel to process it."""
    connector = run.connector
    if not isinstance(connector, AsyncBatchConnector):
        raise TypeError(f"{run.channel.platform} takes no asynchronous batches")
    try:
        batch_id = connector.batch_submit(kind, _updates(connector, kind, chunk))
    except Exception as exc:
        log.warning("submitting a %s batch to %s failed: %s", kind, run.channel.platform, exc)
        run.report.calls += 1
        return record_results(run, kind, chunk, _error_results(chunk, exc))
    run.report.calls += 1
    now = run.clock()
    with transaction.atomic():
        batch = ChannelBatch.objects.create(
            channel=run.channel,
            kind=kind,
            external_id=batch_id[:200],
            items=[
                {
                    "marker": w.marker.pk,
                    "listing": w.listing.pk,
                    "sku": w.listing.variant.sku,
                    "channel_sku": w.listing.channel_sku,
                    "value": str(w.value),
                    "change_token": w.marker.change_token,
                }
                for w in chunk
            ],
            submitted_at=now,
            next_check_at=now + timedelta(seconds=settings.PIMSYNC_BATCH_CHECK_SECONDS),
        )
        # The feed carries their values: no longer urgent. A change that is urgent
        # again while Amazon processes the feed is patched past it (_amazon_chunks).
        SyncMarker.objects.filter(
            pk__in=[w.marker.pk for w in chunk], claim_token=run.token
        ).update(batch=batch, claimed_until=None, claim_token="", is_urgent=False)
        batch_watch_later(batch.pk)
    run.report.submitted += len(chunk)
    return True


def record_results(run: Run, kind: str, chunk: list[Work], results: list[ItemResult]) -> bool:
    """Per SKU: success, retry, hold, dead letter or auth pause, logged; the breaker
    counts the call. Returns False when the loop must stop."""
    channel, connector, report = run.channel, run.connector, run.report
    now = run.clock()
    _results_by_position(chunk, results)
    by_kind: dict[FailureKind, list[Work]] = defaultdict(list)
    for w in chunk:
        by_kind[w.outcome.kind].append(w)
    attempts: list[Attempt] = []
    with transaction.atomic():
        if by_kind[FailureKind.OK]:
            attempts += _record_success(
                kind, by_kind[FailureKind.OK], now, report, finishing_batch=run.finishing_batch
            )
        if by_kind[FailureKind.RETRYABLE]:
            retry_attempts, retry_at = _record_retry(
                channel, kind, by_kind[FailureKind.RETRYABLE], now
            )
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


def _decided(run: Run, kind: str, markers: list[SyncMarker]) -> list[Work]:
    """Fresh values through the rules: what to push now; drops and waits recorded."""
    now = run.clock()
    limits = _limits(run.channel)
    work, not_for_sale = _current_values(run.channel, kind, markers)
    to_push: list[Work] = []
    drop: list[SyncMarker] = list(not_for_sale)
    for w in work:
        decision = _decide(kind, w, limits, now)
        if decision.action is Action.PUSH:
            to_push.append(w)
        elif decision.action is Action.DROP:
            drop.append(w.marker)
        else:
            _release([w.marker], due_at=decision.until)
            run.report.waiting += 1
    _delete_unless_redirtied(drop, now)
    if drop:
        # The channel already shows the value (or is not told it): earlier failed
        # attempts are moot.
        synclog.sync_log_resolve(
            channel_id=run.channel.pk,
            event_type=EVENT_TYPE[kind],
            skus={m.listing.variant.sku for m in drop},
            now=now,
        )
    run.report.dropped += len(drop)
    if kind == SyncKind.QUANTITY:
        # Zeros first: a sold-out SKU must not wait behind the run's other quantities.
        to_push.sort(key=lambda w: w.value != 0)
    return to_push


def _read_groups(connector: Connector, chunks: list[list[Work]]) -> list[list[list[Work]]]:
    """Consecutive chunks read together right before they are written (at most
    guard.read_group_size SKUs per read, a chunk is never split)."""
    size = read_group_size(connector)
    groups: list[list[list[Work]]] = []
    count = 0
    for chunk in chunks:
        if not groups or count + len(chunk) > size:
            groups.append([])
            count = 0
        groups[-1].append(chunk)
        count += len(chunk)
    return groups


def _markers_of(groups: Sequence[Sequence[Sequence[Work]]]) -> list[SyncMarker]:
    return [w.marker for group in groups for chunk in group for w in chunk]


def _guarded_group(run: Run, group: list[list[Work]]) -> list[list[Work]]:
    """The group's chunks with only what may be written now (read before write)."""
    work = [w for chunk in group for w in chunk]
    allowed = {w.marker.pk for w in _guard_chunk(run, work)}
    return [[w for w in chunk if w.marker.pk in allowed] for chunk in group]


def _zeros_only(run: Run, work: list[Work]) -> list[Work]:
    """The urgent lane's share of a quantity claim: the zeros. Low stock (a read before
    write and a write per SKU on most platforms) goes back to the routine runs, which
    claim it first: the urgent lane's few workers stay free for the next zero."""
    zeros = [w for w in work if w.value == 0]
    passed = [w.marker for w in work if w.value != 0]
    _release(passed)
    run.passed_over.update(m.pk for m in passed)
    return zeros


def _process_kind(run: Run, kind: str, markers: list[SyncMarker], *, urgent: bool) -> bool:
    to_push = _decided(run, kind, markers)
    if run.urgent_only and kind == SyncKind.QUANTITY:
        to_push = _zeros_only(run, to_push)
    guarded = kind == SyncKind.QUANTITY and not has_compare_and_set(run.connector)
    if guarded:
        to_push = _hold_imports(run, to_push)
    chunks = _chunks(run.connector, kind, to_push, run.channel, urgent=urgent)
    groups = _read_groups(run.connector, chunks) if guarded else [[c] for c in chunks]
    for g, group in enumerate(groups):
        if time.monotonic() > run.deadline:
            _release(_markers_of(groups[g:]), due_at=run.clock())
            run.report.stopped = "budget"
            return False
        # Zeros and low stock that arrived meanwhile go before the rest of this batch.
        if (
            not urgent
            and g
            and _urgent_waiting(run.channel.pk, run.clock())
            and not _serve_urgent(run)
        ):
            _release(_markers_of(groups[g:]))
            return False
        ready = _guarded_group(run, group) if guarded else group
        for i, chunk in enumerate(ready):
            if chunk and not _push_chunk(run, kind, chunk):
                _release(_markers_of([ready[i + 1 :], *groups[g + 1 :]]))
                return False
    return True


def _process_claimed(run: Run, markers: list[SyncMarker], *, urgent: bool = False) -> bool:
    """Quantities first (overselling costs more than a stale price), content last."""
    by_kind: dict[str, list[SyncMarker]] = defaultdict(list)
    for m in markers:
        by_kind[m.kind].append(m)
    kinds = [k for k in KIND_ORDER if by_kind[k]]
    for i, kind in enumerate(kinds):
        if not _process_kind(run, kind, by_kind[kind], urgent=urgent):
            _release([m for later in kinds[i + 1 :] for m in by_kind[later]])
            return False
    return True


def _serve_urgent(run: Run) -> bool:
    """Claim and push the urgent markers due now (urgent work never waits behind a
    long batch or a feed)."""
    while True:
        markers = markers_claim(
            run.channel.pk,
            limit=settings.PIMSYNC_PUSH_CLAIM_SIZE,
            now=run.clock(),
            token=run.token,
            urgent_only=True,
        )
        if not markers:
            return True
        if not _process_claimed(run, markers, urgent=True):
            return False


def channel_push(
    channel_id: int,
    *,
    time_budget: float | None = None,
    clock: Callable[[], datetime] = timezone.now,
    urgent_only: bool = False,
) -> PushReport:
    """Push every due marker of one channel, urgent ones first, until none is due,
    or the budget, the circuit or an auth failure stops it. Safe to run in several
    workers: each run's claims are leased to it and renewed while it lives.

    ``urgent_only`` (the urgent lane): only urgent markers (zeros, low stock, "push
    now"), every call of the run ahead of routine calls in the channel's rate budget.
    """
    report = PushReport(channel_id)
    state, _ = ChannelSyncState.objects.get_or_create(channel_id=channel_id)
    # The request's flag is cleared before anything is claimed: a change marked from
    # now on asks for a run of its own, one marked before is claimed by this one.
    flag = {"urgent_queued_at": None} if urgent_only else {"push_queued": False}
    ChannelSyncState.objects.filter(channel_id=channel_id).update(**flag)
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None or not channel.is_enabled:
        report.stopped = "disabled"
        return report
    if state.auth_failed_at is not None:
        report.stopped = "auth"
        return report
    budget = settings.PIMSYNC_PUSH_TIME_BUDGET_SECONDS if time_budget is None else time_budget
    with leased_run() as token, urgent_calls() if urgent_only else nullcontext():
        run = Run(
            channel,
            channel_connector(channel),
            token,
            report,
            clock,
            time.monotonic() + budget,
            urgent_only=urgent_only,
        )
        _push_until_done(run)
    return report


def _claim_size(run: Run, *, probe: bool) -> int:
    if probe:  # a half-open circuit tries one SKU
        return 1
    return (
        settings.PIMSYNC_URGENT_CLAIM_SIZE if run.urgent_only else settings.PIMSYNC_PUSH_CLAIM_SIZE
    )


def _push_until_done(run: Run) -> None:
    while time.monotonic() < run.deadline:
        permit = breaker.breaker_permit(run.channel.pk, now=run.clock())
        if not permit.allowed:
            run.report.stopped, run.report.retry_at = "circuit", permit.retry_at
            return
        markers = markers_claim(
            run.channel.pk,
            limit=_claim_size(run, probe=permit.probe),
            now=run.clock(),
            token=run.token,
            urgent_only=run.urgent_only,
            passed_over=run.passed_over,
        )
        if not markers:
            if permit.probe:
                breaker.breaker_record_success(run.channel.pk, now=run.clock())
            return
        calls_before = run.report.calls
        if not _process_claimed(run, markers, urgent=run.urgent_only):
            return
        if permit.probe and run.report.calls == calls_before:
            breaker.breaker_probe_abandoned(run.channel.pk, now=run.clock())
    run.report.stopped = "budget"


def channel_resume(channel_id: int) -> None:
    """Clear an auth pause (after credentials were replaced) and push again."""
    ChannelSyncState.objects.filter(channel_id=channel_id).update(
        auth_failed_at=None, auth_error=""
    )
    channel_token_reset(channel_id=channel_id)
    synclog.alert_resolve(kind="auth_failed", channel_id=channel_id, sku="")
    channel_push_request_on_commit(channel_id)
