"""Reconciliation (design §5): compare a channel's live values with pimsync's.

    start a run (one running run per channel)
      -> per page of listings (pk order): the fresh price / ATP pimsync should
         publish, the channel's live values read in bulk by the connector
         (retryable read failures waited out and read again)
      -> a field with a push pending or in flight is skipped (its value is on
         its way); every other difference is a DriftFinding
      -> findings beyond the channel's threshold: forced resync of ONLY those
         listings and fields (the ordinary markers, so the engine pushes them)
    verify, once those pushes are done: read the SKUs back; a finding that now
    matches what pimsync should publish gets ``resolved_at`` and its listing
    counts as fixed. A drift alert per channel opens while drift is unresolved
    and resolves when it clears.

The connector does HTTP only; this module joins it with the database.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from synclog import services as synclog
from synclog.models import Alert, DriftFinding, ReconciliationRun

from ..connectors.base import Connector, ListingState
from ..connectors.errors import FailureKind
from ..dispatch import reconcile_verify_later
from ..models import Channel, ChannelListing, SyncKind, SyncMarker
from ..selectors import channel_atp_bulk, channel_price_bulk
from . import engine
from .connection import channel_connector, listing_ref
from .markers import listings_mark_dirty

log = logging.getLogger(__name__)
CENT = Decimal("0.01")
FIELD_KIND: dict[str, str] = {
    DriftFinding.Field.PRICE: SyncKind.PRICE,
    DriftFinding.Field.QUANTITY: SyncKind.QUANTITY,
}
FIELD_OF_KIND = {kind: field_name for field_name, kind in FIELD_KIND.items()}
ERROR_MESSAGE_MAX = 2000


class ReconcileBusyError(Exception):
    """A reconciliation of this channel is already running."""


class ReconcileAbortedError(Exception):
    """The channel cannot be read at all (disabled, credentials refused)."""


# --- comparing (pure) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    quantity_units: int
    price_amount: Decimal
    price_percent: Decimal

    @classmethod
    def of(cls, channel: Channel) -> Thresholds:
        return cls(
            quantity_units=max(1, channel.drift_quantity_threshold),
            price_amount=max(CENT, channel.drift_price_amount),
            price_percent=channel.drift_price_percent,
        )


@dataclass(frozen=True)
class Drift:
    field: str
    expected: Decimal
    found: Decimal
    beyond_threshold: bool

    @property
    def difference(self) -> Decimal:
        return self.found - self.expected


def quantity_drift(*, expected: int, found: int, thresholds: Thresholds) -> Drift | None:
    """None when the channel shows the expected quantity."""
    if found == expected:
        return None
    beyond = abs(found - expected) >= thresholds.quantity_units
    return Drift(DriftFinding.Field.QUANTITY, Decimal(expected), Decimal(found), beyond)


def price_drift(*, expected: Decimal, found: Decimal, thresholds: Thresholds) -> Drift | None:
    """None when the prices agree to the cent. Beyond the threshold when the
    difference reaches the amount and, if a percentage is set, that share of
    the expected price too (both tolerances must be exceeded)."""
    expected, found = expected.quantize(CENT), found.quantize(CENT)
    if found == expected:
        return None
    gap = abs(found - expected)
    beyond = gap >= thresholds.price_amount
    if beyond and thresholds.price_percent > 0:
        beyond = expected == 0 or gap * 100 / expected >= thresholds.price_percent
    return Drift(DriftFinding.Field.PRICE, expected, found, beyond)


# --- starting ----------------------------------------------------------------------------------


def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.PIMSYNC_RECONCILE_STALE_SECONDS)


def reconciliation_start(
    *,
    channel: Channel,
    trigger: str,
    listing_ids: Sequence[int] | None = None,
    requested_by_id: int | None = None,
    now: datetime | None = None,
) -> ReconciliationRun:
    """Open a run for the channel (status running, total = listings to check).

    Raises ReconcileBusyError while another run of the channel is running (a
    run that has not moved for PIMSYNC_RECONCILE_STALE_SECONDS is failed as
    abandoned, so a killed worker never blocks the channel for good).
    """
    now = now or timezone.now()
    with transaction.atomic():
        Channel.objects.select_for_update().filter(pk=channel.pk).first()
        running = ReconciliationRun.objects.filter(
            channel=channel, status=ReconciliationRun.Status.RUNNING
        )
        running.filter(started_at__lt=_stale_before(now)).update(
            status=ReconciliationRun.Status.FAILED,
            finished_at=now,
            error_message="Abandoned: the run stopped making progress (worker lost?).",
        )
        busy = running.first()
        if busy is not None:
            raise ReconcileBusyError(
                f"Reconciliation #{busy.pk} of {channel} is still running "
                f"({busy.checked}/{busy.total} checked)."
            )
        return ReconciliationRun.objects.create(
            channel=channel,
            trigger=trigger,
            started_at=now,
            total=_listings(channel, listing_ids).count(),
            requested_by_id=requested_by_id,
        )


def _listings(channel: Channel, listing_ids: Sequence[int] | None) -> QuerySet[ChannelListing]:
    listings = ChannelListing.objects.filter(channel=channel, is_enabled=True)
    if listing_ids is not None:
        listings = listings.filter(pk__in=list(listing_ids))
    return listings


# --- checking ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """The run's counters while it runs (written to the row after every page)."""

    checked: int = 0
    skipped: int = 0
    drifted: int = 0
    resynced: int = 0
    errors: int = 0
    messages: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        if sum(len(m) + 1 for m in self.messages) < ERROR_MESSAGE_MAX:
            self.messages.append(message)


def _pages(
    channel: Channel, listing_ids: Sequence[int] | None, size: int
) -> Iterator[list[ChannelListing]]:
    """Listings in pk order, one page at a time (keyset: no OFFSET scans)."""
    last = 0
    base = _listings(channel, listing_ids).select_related("variant").order_by("pk")
    while True:
        page = list(base.filter(pk__gt=last)[:size])
        if not page:
            return
        yield page
        last = page[-1].pk


def _kinds_in_flight(listing_ids: list[int], since: datetime) -> dict[int, set[str]]:
    """Fields whose value is on its way: a pending marker (queued, waiting, or
    claimed by a worker right now), or a push that completed since ``since``
    (the live value read may predate it)."""
    busy: dict[int, set[str]] = defaultdict(set)
    for listing_id, kind in SyncMarker.objects.filter(
        listing_id__in=listing_ids, status=SyncMarker.Status.PENDING
    ).values_list("listing_id", "kind"):
        busy[listing_id].add(kind)
    pushed = ChannelListing.objects.filter(pk__in=listing_ids).filter(
        Q(last_price_pushed_at__gte=since) | Q(last_quantity_pushed_at__gte=since)
    )
    for listing_id, price_at, quantity_at in pushed.values_list(
        "pk", "last_price_pushed_at", "last_quantity_pushed_at"
    ):
        if price_at and price_at >= since:
            busy[listing_id].add(SyncKind.PRICE)
        if quantity_at and quantity_at >= since:
            busy[listing_id].add(SyncKind.QUANTITY)
    return busy


def read_live(
    connector: Connector,
    listings: Sequence[ChannelListing],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ListingState]:
    """The channel's values for each listing (same order), read in bulk.

    Listings that failed with a retryable error (429, THROTTLED, 5xx, timeout)
    are read again after the wait the channel asked for. A rate-limited read
    that keeps making progress goes on; after PIMSYNC_RECONCILE_READ_ATTEMPTS
    rounds in a row without a single success, what still fails is returned
    with its error.
    """
    states: list[ListingState | None] = [None] * len(listings)
    pending = list(range(len(listings)))
    fruitless, attempt = 0, 0
    limit = max(1, settings.PIMSYNC_RECONCILE_READ_ATTEMPTS)
    while pending:
        got = connector.read_listings([listing_ref(listings[i]) for i in pending])
        by_position = _align(pending, listings, got)
        retry, wait = [], 0.0
        for i in pending:
            state = by_position[i]
            if state.error is not None and state.error.kind is FailureKind.RETRYABLE:
                retry.append(i)
                wait = max(wait, state.error.retry_after or 2.0 ** min(attempt, 5))
            else:
                states[i] = state
        fruitless = fruitless + 1 if len(retry) == len(pending) else 0
        attempt += 1
        if not retry or fruitless >= limit:
            for i in retry:
                states[i] = by_position[i]
            break
        sleep(min(wait, settings.PIMSYNC_RECONCILE_MAX_RETRY_WAIT_SECONDS))
        pending = retry
    return [s for s in states if s is not None]


def _align(
    positions: list[int], listings: Sequence[ChannelListing], got: list[ListingState]
) -> dict[int, ListingState]:
    """Connectors answer one state per listing in order; pair by SKU if not."""
    if len(got) == len(positions) and all(
        s.sku == listings[i].variant.sku for i, s in zip(positions, got, strict=True)
    ):
        return dict(zip(positions, got, strict=True))
    by_sku = {s.sku: s for s in got}
    return {
        i: by_sku.get(listings[i].variant.sku)
        or ListingState(listings[i].variant.sku, None, None, found=False)
        for i in positions
    }


def _state_problem(state: ListingState, kinds: Collection[str]) -> str:
    """Why this listing's live values cannot be compared ('' when they can)."""
    if state.error is not None:
        return f"{state.error.code or state.error.kind}: {state.error.message}"[:300]
    if not state.found:
        return "not listed on the channel"
    if SyncKind.PRICE in kinds and state.price is None:
        return "the channel returned no price"
    if SyncKind.QUANTITY in kinds and state.quantity is None:
        return "the channel returned no quantity"
    return ""


def _live_price(state: ListingState) -> Decimal:
    """The live price of a state _state_problem accepted for prices."""
    if state.price is None:
        raise ValueError(f"{state.sku}: the channel returned no price")
    return state.price


def _live_quantity(state: ListingState) -> int:
    """The live quantity of a state _state_problem accepted for quantities."""
    if state.quantity is None:
        raise ValueError(f"{state.sku}: the channel returned no quantity")
    return state.quantity


@dataclass
class PageResult:
    findings: list[DriftFinding]
    clean: dict[str, list[int]]  # field -> listing ids compared without a difference


def _check_page(
    run: ReconciliationRun,
    channel: Channel,
    connector: Connector,
    page: list[ChannelListing],
    tally: Tally,
    clock: Callable[[], datetime],
) -> PageResult:
    started = clock()
    ids = [lst.pk for lst in page]
    variant_ids = [lst.variant_id for lst in page]
    busy_before = _kinds_in_flight(ids, started)
    expected_price = channel_price_bulk(channel=channel, variant_ids=variant_ids)
    expected_qty = channel_atp_bulk(channel=channel, variant_ids=variant_ids)
    states = read_live(connector, page)
    if any(s.error is not None and s.error.kind is FailureKind.AUTH for s in states):
        raise ReconcileAbortedError("The channel refused our credentials.")
    busy_after = _kinds_in_flight(ids, started)
    thresholds = Thresholds.of(channel)
    now = clock()
    result = PageResult([], defaultdict(list))
    for listing, state in zip(page, states, strict=True):
        tally.checked += 1
        busy = busy_before.get(listing.pk, set()) | busy_after.get(listing.pk, set())
        kinds = {SyncKind.PRICE, SyncKind.QUANTITY} - busy
        if busy:
            tally.skipped += 1
        problem = _state_problem(state, kinds) if kinds else ""
        if problem:
            tally.errors += 1
            tally.note(f"{listing.variant.sku}: {problem}")
            continue
        found_drift = []
        for kind in sorted(kinds):
            if kind == SyncKind.PRICE:
                drift = price_drift(
                    expected=expected_price[listing.variant_id],
                    found=_live_price(state),
                    thresholds=thresholds,
                )
            else:
                drift = quantity_drift(
                    expected=expected_qty[listing.variant_id],
                    found=_live_quantity(state),
                    thresholds=thresholds,
                )
            if drift is None:
                result.clean[FIELD_OF_KIND[kind]].append(listing.pk)
            else:
                found_drift.append(drift)
        if found_drift:
            tally.drifted += 1
        result.findings.extend(
            DriftFinding(
                run=run,
                channel_id=channel.pk,
                listing_id=listing.pk,
                sku=listing.variant.sku,
                field=d.field,
                expected=d.expected,
                found=d.found,
                difference=d.difference,
                beyond_threshold=d.beyond_threshold,
                resync_requested=d.beyond_threshold,
                found_at=now,
            )
            for d in found_drift
        )
    return result


def _record_page(channel: Channel, result: PageResult, tally: Tally, now: datetime) -> None:
    """Store the page's findings, close earlier findings the page saw cleared,
    and mark the listings beyond the threshold for a forced resync."""
    with transaction.atomic():
        DriftFinding.objects.bulk_create(result.findings, batch_size=500)
        for field_name, listing_ids in result.clean.items():
            DriftFinding.objects.filter(
                channel_id=channel.pk,
                field=field_name,
                listing_id__in=listing_ids,
                resolved_at__isnull=True,
            ).update(resolved_at=now)
        to_resync: dict[str, list[int]] = defaultdict(list)
        for finding in result.findings:
            if finding.resync_requested:
                to_resync[FIELD_KIND[finding.field]].append(finding.listing_id)
        for kind, listing_ids in to_resync.items():
            listings_mark_dirty(
                ChannelListing.objects.filter(pk__in=listing_ids), kinds=[kind], forced=True
            )
        tally.resynced += len({i for ids in to_resync.values() for i in ids})


def _save_progress(run: ReconciliationRun, tally: Tally) -> None:
    run.checked, run.skipped, run.drifted = tally.checked, tally.skipped, tally.drifted
    run.resynced, run.errors = tally.resynced, tally.errors
    run.error_message = "\n".join(tally.messages)[:ERROR_MESSAGE_MAX]
    run.total = max(run.total, run.checked)
    ReconciliationRun.objects.filter(pk=run.pk).update(
        checked=run.checked,
        skipped=run.skipped,
        drifted=run.drifted,
        resynced=run.resynced,
        errors=run.errors,
        error_message=run.error_message,
        total=run.total,
    )


def reconciliation_check(
    run_id: int,
    *,
    listing_ids: Sequence[int] | None = None,
    clock: Callable[[], datetime] = timezone.now,
) -> ReconciliationRun:
    """Read, compare and record one run; resyncs are requested as it goes.

    Progress (checked / total) is written after every page. A run with nothing
    to resync is finished here; otherwise it stays running until
    reconciliation_verify has read the resynced SKUs back. A channel that
    cannot be read (disabled, credentials refused, any unexpected error) fails
    the run with the reason; findings stored so far are kept.
    """
    run = ReconciliationRun.objects.select_related("channel").get(pk=run_id)
    if run.status != ReconciliationRun.Status.RUNNING or run.checked:
        return run  # already done, failed as abandoned, or a redelivered task
    channel = run.channel
    tally = Tally()
    try:
        if not channel.is_enabled:
            raise ReconcileAbortedError("The channel is disabled.")
        connector = channel_connector(channel)
        for page in _pages(channel, listing_ids, settings.PIMSYNC_RECONCILE_PAGE_SIZE):
            result = _check_page(run, channel, connector, page, tally, clock)
            _record_page(channel, result, tally, clock())
            _save_progress(run, tally)
    except Exception as exc:
        if not isinstance(exc, ReconcileAbortedError):
            log.exception("reconciliation #%s of channel %s failed", run.pk, channel.pk)
        _save_progress(run, tally)
        return _finish(run, status=ReconciliationRun.Status.FAILED, now=clock(), reason=str(exc))
    _drift_alert_update(run, now=clock(), whole_channel=listing_ids is None)
    if tally.resynced == 0:
        return _finish(run, status=ReconciliationRun.Status.FINISHED, now=clock())
    return run


# --- verifying ---------------------------------------------------------------------------------


def _awaiting(run: ReconciliationRun) -> QuerySet[DriftFinding]:
    return run.findings.filter(resync_requested=True, read_back_at__isnull=True)


def reconciliation_resync_pending(run: ReconciliationRun) -> bool:
    """True while a forced resync of this run has not been pushed yet."""
    pending = defaultdict(list)
    for listing_id, field_name in _awaiting(run).values_list("listing_id", "field"):
        pending[FIELD_KIND[field_name]].append(listing_id)
    return any(
        SyncMarker.objects.filter(
            listing_id__in=ids, kind=kind, status=SyncMarker.Status.PENDING
        ).exists()
        for kind, ids in pending.items()
    )


def reconciliation_verify(
    run_id: int, *, clock: Callable[[], datetime] = timezone.now, force: bool = False
) -> bool:
    """Read back the SKUs this run resynced, once their pushes are done.

    Returns False (nothing changed) while a resync push is still pending and
    the run is younger than PIMSYNC_RECONCILE_VERIFY_TIMEOUT_SECONDS (the
    caller tries again later); otherwise reads back, resolves the findings that
    now match what pimsync should publish, counts their listings as fixed,
    finishes the run, and returns True. Idempotent: a finished run is left alone.
    """
    run = ReconciliationRun.objects.select_related("channel").get(pk=run_id)
    if run.status != ReconciliationRun.Status.RUNNING:
        return True
    now = clock()
    timed_out = now - run.started_at > timedelta(
        seconds=settings.PIMSYNC_RECONCILE_VERIFY_TIMEOUT_SECONDS
    )
    if not (force or timed_out) and reconciliation_resync_pending(run):
        return False
    findings = list(_awaiting(run))
    try:
        _read_back(run, findings, clock)
    except Exception as exc:
        log.exception("read-back of reconciliation #%s failed", run.pk)
        _finish(
            run, status=ReconciliationRun.Status.FAILED, now=clock(), reason=f"read-back: {exc}"
        )
        return True
    _drift_alert_update(run, now=clock(), whole_channel=False)
    _finish(run, status=ReconciliationRun.Status.FINISHED, now=clock())
    return True


def _read_back(
    run: ReconciliationRun, findings: list[DriftFinding], clock: Callable[[], datetime]
) -> None:
    channel = run.channel
    listing_ids = sorted({f.listing_id for f in findings})
    listings = list(
        ChannelListing.objects.filter(pk__in=listing_ids).select_related("variant").order_by("pk")
    )
    live = read_live(channel_connector(channel), listings)
    states = dict(zip([lst.pk for lst in listings], live, strict=True))
    variants = {lst.pk: lst.variant_id for lst in listings}
    prices = channel_price_bulk(channel=channel, variant_ids=variants.values())
    quantities = channel_atp_bulk(channel=channel, variant_ids=variants.values())
    now = clock()
    for finding in findings:
        finding.read_back_at = now
        state = states.get(finding.listing_id)
        if state is None or _state_problem(state, {FIELD_KIND[finding.field]}):
            continue
        variant_id = variants[finding.listing_id]
        if finding.field == DriftFinding.Field.PRICE:
            finding.read_back_value = _live_price(state).quantize(CENT)
            matches = finding.read_back_value == prices[variant_id].quantize(CENT)
        else:
            finding.read_back_value = Decimal(_live_quantity(state))
            matches = state.quantity == quantities[variant_id]
        if matches:
            finding.resolved_at = now
    DriftFinding.objects.bulk_update(
        findings, ["read_back_at", "read_back_value", "resolved_at"], batch_size=500
    )
    resynced = run.findings.filter(resync_requested=True)
    unfixed = set(resynced.filter(resolved_at__isnull=True).values_list("listing_id", flat=True))
    run.fixed = len(set(resynced.values_list("listing_id", flat=True)) - unfixed)
    ReconciliationRun.objects.filter(pk=run.pk).update(fixed=run.fixed)


# --- finishing ---------------------------------------------------------------------------------


def _finish(
    run: ReconciliationRun, *, status: str, now: datetime, reason: str = ""
) -> ReconciliationRun:
    run.status, run.finished_at = status, now
    if reason:
        run.error_message = f"{reason}\n{run.error_message}".strip()[:ERROR_MESSAGE_MAX]
    ReconciliationRun.objects.filter(pk=run.pk).update(
        status=run.status, finished_at=run.finished_at, error_message=run.error_message
    )
    return run


def _drift_alert_update(run: ReconciliationRun, *, now: datetime, whole_channel: bool) -> None:
    """One drift alert per channel: open (counted) while this run's drift beyond
    the threshold is unresolved; resolved once nothing unresolved remains (for a
    partial run, nothing on the whole channel)."""
    channel_id = run.channel_id
    beyond = DriftFinding.objects.filter(beyond_threshold=True, resolved_at__isnull=True)
    open_here = beyond.filter(run=run)
    if open_here.exists():
        skus = list(open_here.values_list("sku", flat=True).distinct()[:5])
        count = open_here.values("listing_id").distinct().count()
        synclog.alert_raise(
            kind=Alert.Kind.DRIFT,
            channel_id=channel_id,
            message=f"{count} listing(s) on {run.channel} differ from pimsync beyond the drift "
            f"threshold (reconciliation #{run.pk}), e.g. {', '.join(skus)}.",
            now=now,
        )
        return
    if whole_channel or not beyond.filter(channel_id=channel_id).exists():
        synclog.alert_resolve(kind=Alert.Kind.DRIFT, channel_id=channel_id, sku="", now=now)


# --- one call for callers that wait ------------------------------------------------------------


def channel_reconcile(
    *,
    channel: Channel,
    trigger: str = ReconciliationRun.Trigger.MANUAL,
    listing_ids: Sequence[int] | None = None,
    requested_by_id: int | None = None,
    push: Callable[[int], object] | None = None,
    wait_seconds: float = 60.0,
) -> ReconciliationRun:
    """Start, check, push the resyncs with ``push(channel_id)`` (e.g. the
    engine's channel_push) until they are out, verify. For scripts, tests and
    the bench; workers use the tasks, which do the same without blocking."""
    run = reconciliation_start(
        channel=channel, trigger=trigger, listing_ids=listing_ids, requested_by_id=requested_by_id
    )
    run = reconciliation_check(run.pk, listing_ids=listing_ids)
    deadline = time.monotonic() + wait_seconds
    while run.status == ReconciliationRun.Status.RUNNING:
        if push is not None:
            push(channel.pk)
        if reconciliation_verify(run.pk, force=time.monotonic() > deadline):
            break
        time.sleep(0.2)
    run.refresh_from_db()
    return run


def listings_by_channel(listing_ids: Iterable[int]) -> dict[int, list[int]]:
    """Enabled listings grouped by channel (for 'reconcile selected listings')."""
    grouped: dict[int, list[int]] = defaultdict(list)
    for pk, channel_id in (
        ChannelListing.objects.filter(pk__in=list(listing_ids), is_enabled=True)
        .order_by("pk")
        .values_list("pk", "channel_id")
    ):
        grouped[channel_id].append(pk)
    return dict(grouped)


# --- one whole run, as the task runs it ---------------------------------------------------------


def reconciliation_run(
    channel_id: int,
    *,
    trigger: str = "scheduled",
    run_id: int | None = None,
    listing_ids: list[int] | None = None,
) -> dict[str, Any]:
    """Reconcile a channel: open a run (beat passes none; admin/API opened theirs),
    check it, push its resyncs at once, then read them back now or later
    (dispatch.reconcile_verify_later). Returns a summary for the task result."""
    if run_id is None:
        channel = Channel.objects.filter(pk=channel_id).first()
        if channel is None or not channel.is_enabled:
            return {"skipped": "channel missing or disabled"}
        try:
            run_id = reconciliation_start(channel=channel, trigger=trigger).pk
        except ReconcileBusyError as exc:
            return {"skipped": str(exc)}
    run = reconciliation_check(run_id, listing_ids=listing_ids)
    if run.status == ReconciliationRun.Status.RUNNING:
        engine.channel_push(channel_id)
        if not reconciliation_verify(run_id):
            reconcile_verify_later(run_id)
    return {"run": run_id}


def reconciliation_verify_or_later(run_id: int) -> bool:
    """Read back now if the resyncs are out, else ask again later."""
    done = reconciliation_verify(run_id)
    if not done:
        reconcile_verify_later(run_id)
    return done
