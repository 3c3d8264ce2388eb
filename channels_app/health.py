"""Channel health, evaluated where its data lives (design §5).

Once a minute (beat) ``health_evaluate`` reads every channel's live data in a
few aggregate queries — pending markers, breaker and auth state, the sync log of
the last minute and of the degraded window, refused webhooks, oversold lines,
top sellers' ATP — records one ChannelHealthSnapshot per channel in synclog, and
makes the open alerts match what it sees: a condition that holds raises (or
counts) its alert, one that cleared resolves it. Each condition is one small
function from the gathered facts to the subjects that are alerting now.

Ownership: the evaluator raises and clears dead channel, degraded, queue depth,
low ATP and per-SKU repeated failures (``source="health"``). Auth failure,
circuit open, oversell, bad signatures and dead letters are raised where they
happen (engine, orders, webhooks); the evaluator re-checks their truth and
clears them when it is gone. Drift belongs to reconciliation and is never
touched here; nor are the inbound and fulfilment ``repeated_failure`` alerts
that other code raised.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import (
    Count,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Window,
)
from django.db.models.functions import RowNumber
from django.utils import timezone

from synclog import services as synclog
from synclog.models import Alert, ChannelHealthSnapshot, ChannelState, SyncLogEntry, SyncStatus
from synclog.services import Observed

from .models import (
    Channel,
    ChannelAlertSettings,
    ChannelOrderLine,
    ChannelSyncState,
    OrderStatus,
    SyncMarker,
    WebhookRefusalCount,
)
from .selectors import channel_atp_bulk

log = logging.getLogger(__name__)
Kind = Alert.Kind
Severity = Alert.Severity
SOURCE = "health"
SOLD_STATES = (
    ChannelOrderLine.State.RESERVED,
    ChannelOrderLine.State.COMMITTED,
    ChannelOrderLine.State.SHIPPED,
)
SETTLED_ORDER_STATES = (OrderStatus.CANCELLED, OrderStatus.REFUNDED)
MAX_SKU_ALERTS_PER_CHANNEL = 50
OUTAGE_STATES = frozenset({ChannelState.DEAD, ChannelState.CIRCUIT_OPEN, ChannelState.AUTH_FAILED})
REFUSAL_KEEP = timedelta(days=1)


# --- thresholds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    dead_after: timedelta
    degraded_error_percent: int
    degraded_window: timedelta
    degraded_min_attempts: int
    repeated_failures: int
    queue_depth_limit: int
    top_sellers: int
    top_seller_days: int
    top_seller_safety_stock: int
    bad_signature_threshold: int
    bad_signature_window: timedelta

    @classmethod
    def of(cls, channel: Channel) -> Thresholds:
        """The channel's own row, else the defaults from the settings (read now)."""
        try:
            row = channel.alert_settings
        except ChannelAlertSettings.DoesNotExist:
            row = ChannelAlertSettings()
        return cls(**{f.name: getattr(row, f.name) for f in _threshold_fields()})


def _threshold_fields() -> list:
    return [
        f for f in ChannelAlertSettings._meta.concrete_fields if f.name not in ("id", "channel")
    ]


def webhook_refusal_record(*, channel: Channel, reason: str, delivery: str) -> bool:
    """Count a webhook delivery refused as unauthentic (one row per channel and
    minute), and alert once the channel's threshold within its window is reached.
    Returns True when the alert was raised or counted."""
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    with transaction.atomic():
        bumped = WebhookRefusalCount.objects.filter(channel=channel, minute=minute).update(
            count=F("count") + 1
        )
        if not bumped:
            _, created = WebhookRefusalCount.objects.get_or_create(
                channel=channel, minute=minute, defaults={"count": 1}
            )
            if not created:  # created concurrently by another refusal
                WebhookRefusalCount.objects.filter(channel=channel, minute=minute).update(
                    count=F("count") + 1
                )
    limits = Thresholds.of(channel)
    refused = (
        WebhookRefusalCount.objects.filter(
            channel=channel, minute__gte=now - limits.bad_signature_window
        ).aggregate(n=Sum("count"))["n"]
        or 0
    )
    if refused < limits.bad_signature_threshold:
        return False
    synclog.alert_raise(
        kind=Kind.BAD_SIGNATURE,
        channel_id=channel.pk,
        severity=Severity.CRITICAL,
        message=_bad_signature_message(channel, refused, limits)
        + f" Last: {reason} (delivery id {delivery}).",
        now=now,
        source="webhook",
    )
    return True


def _bad_signature_message(channel: Channel, refused: int, limits: Thresholds) -> str:
    return (
        f"{refused} webhook deliveries to /webhooks/{channel.slug}/ refused in the last "
        f"{_human(limits.bad_signature_window)} (missing, invalid or stale signature). Check "
        "the webhook secret on the channel and in pimsync."
    )


# --- facts --------------------------------------------------------------------------------------


@dataclass
class ChannelFacts:
    """What one evaluation knows of one channel."""

    channel: Channel
    limits: Thresholds
    since: datetime  # the previous snapshot (the minute's counters start here)
    queue_depth: int = 0
    oldest_pending_at: datetime | None = None
    stuck_since: datetime | None = None
    window_attempts: int = 0
    window_errors: int = 0
    pushes: int = 0
    errors: int = 0
    latency_p50_ms: int | None = None
    latency_p95_ms: int | None = None
    last_success_at: datetime | None = None
    refused_webhooks: int = 0
    state: str = ChannelState.HEALTHY
    detail: str = ""

    @property
    def sync_state(self) -> ChannelSyncState | None:
        return getattr(self.channel, "sync_state", None)

    @property
    def error_percent(self) -> float:
        return 100.0 * self.window_errors / self.window_attempts if self.window_attempts else 0.0


def _channels_with_previous_snapshot(now: datetime) -> list[Channel]:
    latest = ChannelHealthSnapshot.objects.filter(channel=OuterRef("pk")).order_by(
        "-taken_at", "-pk"
    )
    return list(
        Channel.objects.select_related("alert_settings", "sync_state")
        .annotate(
            prev_taken_at=Subquery(latest.values("taken_at")[:1]),
            prev_last_success_at=Subquery(latest.values("last_success_at")[:1]),
        )
        .order_by("pk")
    )


def _marker_facts(facts: dict[int, ChannelFacts], now: datetime) -> None:
    """Queue depth, oldest pending change, and since when work is stuck: failed at
    least once, or due and untaken (in-flight claims are neither). One query."""
    pending = Q(status=SyncMarker.Status.PENDING)
    idle = Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
    rows = (
        SyncMarker.objects.filter(pending)
        .values("channel_id")
        .annotate(
            depth=Count("pk"),
            oldest=Min("first_dirty_at"),
            oldest_failing=Min("first_dirty_at", filter=idle & Q(attempts__gt=0)),
            oldest_due=Min("due_at", filter=idle & Q(attempts=0, due_at__lte=now)),
        )
        .order_by()
    )
    for row in rows:
        f = facts.get(row["channel_id"])
        if f is None:
            continue
        f.queue_depth, f.oldest_pending_at = row["depth"], row["oldest"]
        stuck = [t for t in (row["oldest_failing"], row["oldest_due"]) if t is not None]
        f.stuck_since = min(stuck) if stuck else None


def _per_channel(facts: Iterable[ChannelFacts], start: Callable[[ChannelFacts], datetime]) -> Q:
    return reduce(or_, (Q(channel_id=f.channel.pk, created_at__gt=start(f)) for f in facts))


def _log_counts(
    facts: dict[int, ChannelFacts], start: Callable[[ChannelFacts], datetime], now: datetime
) -> dict[int, dict]:
    """Per channel, over (start(channel), now]: SKU attempts, successes, failures,
    timed successes, and the last success. One aggregate query."""
    ok = Q(status=SyncStatus.SUCCESS)
    held = Q(status=SyncStatus.HELD)  # waiting for orders: neither a push nor an error
    rows = (
        SyncLogEntry.objects.exclude(event_type="order")
        .filter(_per_channel(facts.values(), start), created_at__lte=now)
        .values("channel_id")
        .annotate(
            total=Count("pk", filter=~held),
            ok=Count("pk", filter=ok),
            errors=Count("pk", filter=~ok & ~held),
            timed=Count("latency_ms", filter=ok),
            last_ok=Max("created_at", filter=ok),
        )
        .order_by()
    )
    return {row["channel_id"]: row for row in rows}


def _log_facts(facts: dict[int, ChannelFacts], now: datetime) -> None:
    """The degraded window's attempts and errors, and the minute's pushes, errors
    and last success. Two aggregate queries, plus two percentile reads per
    channel that pushed in the minute."""
    for cid, row in _log_counts(facts, lambda f: now - f.limits.degraded_window, now).items():
        f = facts[cid]
        f.window_attempts, f.window_errors = row["total"], row["errors"]
        f.last_success_at = _latest(f.last_success_at, row["last_ok"])
    for cid, row in _log_counts(facts, lambda f: f.since, now).items():
        f = facts[cid]
        f.pushes, f.errors = row["ok"], row["errors"]
        f.last_success_at = _latest(f.last_success_at, row["last_ok"])
        if row["timed"]:
            f.latency_p50_ms, f.latency_p95_ms = _percentiles(f, row["timed"], now)


def _percentiles(f: ChannelFacts, n: int, now: datetime) -> tuple[int, int]:
    """Exact nearest-rank p50 and p95 of the minute's push latencies, read by
    offset so no row list comes back."""
    latencies = (
        SyncLogEntry.objects.filter(
            channel_id=f.channel.pk,
            status=SyncStatus.SUCCESS,
            created_at__gt=f.since,
            created_at__lte=now,
            latency_ms__isnull=False,
        )
        .exclude(event_type="order")
        .order_by("latency_ms")
        .values_list("latency_ms", flat=True)
    )

    def rank(p: float) -> int:
        return latencies[max(0, math.ceil(p * n) - 1)]

    return rank(0.50), rank(0.95)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((t for t in (a, b) if t is not None), default=None)


def _refusal_facts(facts: dict[int, ChannelFacts], now: datetime) -> None:
    rows = (
        WebhookRefusalCount.objects.filter(
            reduce(
                or_,
                (
                    Q(channel_id=f.channel.pk, minute__gte=now - f.limits.bad_signature_window)
                    for f in facts.values()
                ),
            )
        )
        .values("channel_id")
        .annotate(n=Sum("count"))
        .order_by()
    )
    for row in rows:
        facts[row["channel_id"]].refused_webhooks = row["n"]


def health_facts(*, now: datetime) -> dict[int, ChannelFacts]:
    """Everything the conditions need, for every channel, in a constant number of
    queries (two more per channel that pushed in the last minute)."""
    facts = {}
    for channel in _channels_with_previous_snapshot(now):
        since = channel.prev_taken_at or now - timedelta(
            seconds=settings.PIMSYNC_HEALTH_EVALUATE_SECONDS
        )
        facts[channel.pk] = ChannelFacts(
            channel=channel,
            limits=Thresholds.of(channel),
            since=min(since, now),
            last_success_at=channel.prev_last_success_at,
        )
    if not facts:
        return facts
    _marker_facts(facts, now)
    _log_facts(facts, now)
    _refusal_facts(facts, now)
    for f in facts.values():
        f.state, f.detail = channel_state(f, now)
    return facts


# --- conditions ----------------------------------------------------------------------------------


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def is_dead(f: ChannelFacts, now: datetime) -> bool:
    """No successful push for N while work has been stuck for N."""
    cutoff = now - f.limits.dead_after
    no_success = f.last_success_at is None or f.last_success_at <= cutoff
    return f.stuck_since is not None and f.stuck_since <= cutoff and no_success


def is_degraded(f: ChannelFacts) -> bool:
    """Error share over the window above Y %, once the window holds enough attempts."""
    return (
        f.window_attempts >= f.limits.degraded_min_attempts
        and f.error_percent >= f.limits.degraded_error_percent
    )


def channel_state(f: ChannelFacts, now: datetime) -> tuple[str, str]:
    """The one state a card shows, most severe first, and why."""
    state = f.sync_state
    if not f.channel.is_enabled:
        return ChannelState.DISABLED, "The channel is disabled"
    if state is not None and state.auth_failed_at is not None:
        return ChannelState.AUTH_FAILED, f"Credentials refused: {state.auth_error[:200]}"
    # Dead outranks an open circuit: the breaker is how pimsync copes, "nothing got
    # through for N minutes" is what ops must hear.
    if is_dead(f, now):
        return ChannelState.DEAD, _dead_message(f, now)
    if state is not None and state.breaker != ChannelSyncState.Breaker.CLOSED:
        return ChannelState.CIRCUIT_OPEN, _circuit_message(state)
    if is_degraded(f):
        return ChannelState.DEGRADED, _degraded_message(f)
    return ChannelState.HEALTHY, ""


def _circuit_message(state: ChannelSyncState) -> str:
    return (
        f"Circuit {state.get_breaker_display().lower()} after "
        f"{state.consecutive_failures} failed calls"
    )


def _dead_message(f: ChannelFacts, now: datetime) -> str:
    last = (
        f"last success {f.last_success_at:%Y-%m-%d %H:%M:%S} UTC"
        if f.last_success_at
        else "no success on record"
    )
    return (
        f"No successful push for {_human(f.limits.dead_after)} or more ({last}) while "
        f"{f.queue_depth} change(s) wait, stuck since {f.stuck_since:%H:%M:%S} UTC"
    )[:255]


def _degraded_message(f: ChannelFacts) -> str:
    return (
        f"{f.window_errors} of {f.window_attempts} SKU attempts failed "
        f"({f.error_percent:.0f} %) in the last {_human(f.limits.degraded_window)} "
        f"(threshold {f.limits.degraded_error_percent} %)"
    )[:255]


Subjects = dict[tuple[int | None, str], Observed]


def dead_channels(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    # Whether or not its circuit is open; not when credentials are refused (that
    # alert names the cause) or the channel is disabled.
    return {
        (cid, ""): Observed(f.detail, Severity.CRITICAL)
        for cid, f in facts.items()
        if f.state == ChannelState.DEAD
    }


def degraded_channels(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    # Only when nothing worse is open: a dead channel is also 100 % failing.
    return {
        (cid, ""): Observed(f.detail, Severity.WARNING)
        for cid, f in facts.items()
        if f.state == ChannelState.DEGRADED
    }


def deep_queues(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    return {
        (cid, ""): Observed(
            f"{f.queue_depth} pushes pending on {f.channel.name} (limit "
            f"{f.limits.queue_depth_limit})",
            Severity.WARNING,
        )
        for cid, f in facts.items()
        if f.channel.is_enabled and f.queue_depth > f.limits.queue_depth_limit
    }


def auth_failures(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    return {
        (cid, ""): Observed(
            f"The channel refused our credentials ({f.sync_state.auth_error[:300]}). Pushes are "
            "paused until the credentials are replaced.",
            Severity.CRITICAL,
        )
        for cid, f in facts.items()
        if f.sync_state is not None and f.sync_state.auth_failed_at is not None
    }


def held_pushes(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    """Quantity pushes that have waited too long for an orders poll (the channel
    showed a sale pimsync had not imported): the polls are not getting through."""
    limit = timedelta(seconds=settings.PIMSYNC_PUSH_HELD_ALERT_SECONDS)
    rows = (
        SyncMarker.objects.filter(channel_id__in=list(facts), held_for_poll_at__lt=now - limit)
        .values("channel_id")
        .annotate(held=Count("pk"), since=Min("held_for_poll_at"))
        .order_by()
    )
    subjects: Subjects = {}
    for row in rows:
        f = facts[row["channel_id"]]
        state = f.sync_state
        why = (
            f"the last orders poll failed: {state.poll_error[:300]}"
            if state is not None and state.poll_error
            else "no orders poll has completed since"
        )
        subjects[(row["channel_id"], "")] = Observed(
            f"{row['held']} quantity push(es) on {f.channel.name} have waited "
            f"{_human(now - row['since'])} for the channel's orders to be imported ({why}). "
            "They stay held: writing them could offer units the channel already sold. "
            "Fix the polling (credentials, the channel's API), or check the orders by hand.",
            Severity.CRITICAL,
        )
    return subjects


def open_circuits(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    return {
        (cid, ""): Observed(
            f"{_circuit_message(f.sync_state)}; pushes paused until a probe call succeeds.",
            Severity.CRITICAL,
        )
        for cid, f in facts.items()
        if f.sync_state is not None and f.sync_state.breaker != ChannelSyncState.Breaker.CLOSED
    }


def bad_signatures(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    return {
        (cid, ""): Observed(
            _bad_signature_message(f.channel, f.refused_webhooks, f.limits), Severity.CRITICAL
        )
        for cid, f in facts.items()
        if f.refused_webhooks >= f.limits.bad_signature_threshold
    }


def repeated_sku_failures(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    """SKUs whose push failed N times in a row (the marker's attempts since its
    last success). Skipped on a channel in outage: its channel alert says it all,
    and a thousand SKU alerts would drown it. At most 50 SKUs per channel."""
    watched = {
        cid: f
        for cid, f in facts.items()
        if f.state not in OUTAGE_STATES and f.state != ChannelState.DISABLED
    }
    if not watched:
        return {}
    lowest = min(f.limits.repeated_failures for f in watched.values())
    # The worst 50 of each channel, ranked in the database: one busy channel must
    # not crowd the others out of a shared LIMIT.
    rows = (
        SyncMarker.objects.filter(
            channel_id__in=list(watched),
            status=SyncMarker.Status.PENDING,
            attempts__gte=lowest,
        )
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("channel_id")],
                order_by=[F("attempts").desc(), F("pk").asc()],
            )
        )
        .filter(rank__lte=MAX_SKU_ALERTS_PER_CHANNEL)
        .values_list("channel_id", "listing__variant__sku", "kind", "attempts", "last_error_code")
    )
    found: Subjects = {}
    for cid, sku, kind, attempts, code in rows:
        if attempts < watched[cid].limits.repeated_failures or (cid, sku) in found:
            continue
        found[(cid, sku)] = Observed(
            f"The {kind} push of {sku} to {watched[cid].channel.name} failed {attempts} times in "
            f"a row (last error: {code or 'unknown'}); it is retried with backoff.",
            Severity.WARNING,
        )
    return found


def oversell_conflicts(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    """Oversold lines whose order is neither cancelled nor refunded nor settled by ops."""
    rows = (
        ChannelOrderLine.objects.filter(
            state=ChannelOrderLine.State.OVERSOLD, order__oversell_resolved_at__isnull=True
        )
        .exclude(order__status__in=SETTLED_ORDER_STATES)
        .values("order__channel_id", "sku")
        .annotate(orders=Count("order_id", distinct=True))
        .order_by()
    )
    return {
        (r["order__channel_id"], r["sku"][:100]): Observed(
            f"{r['orders']} order(s) for {r['sku']} on "
            f"{_name(facts, r['order__channel_id'])} could not be covered (another channel sold "
            "the last unit); cancel or settle them in the admin.",
            Severity.CRITICAL,
        )
        for r in rows
    }


def _name(facts: dict[int, ChannelFacts], channel_id: int) -> str:
    f = facts.get(channel_id)
    return f.channel.name if f else f"channel {channel_id}"


def top_sellers(channel: Channel, limits: Thresholds, now: datetime) -> list[tuple[int, str, int]]:
    """(variant id, sku, units) of the channel's K best sellers over D days. One query."""
    if limits.top_sellers <= 0:
        return []
    return list(
        ChannelOrderLine.objects.filter(
            order__channel=channel,
            order__placed_at__gte=now - timedelta(days=limits.top_seller_days),
            variant__isnull=False,
            state__in=SOLD_STATES,
        )
        .values("variant_id", "variant__sku")
        .annotate(units=Sum("quantity", output_field=IntegerField()))
        .order_by("-units", "variant_id")
        .values_list("variant_id", "variant__sku", "units")[: limits.top_sellers]
    )


def low_atp_top_sellers(facts: dict[int, ChannelFacts], now: datetime) -> Subjects:
    """Top sellers whose ATP on the channel is below the channel's safety stock.
    Per enabled channel: one top-seller query and the ATP of those K variants."""
    found: Subjects = {}
    for cid, f in facts.items():
        if not f.channel.is_enabled:
            continue
        best = top_sellers(f.channel, f.limits, now)
        if not best:
            continue
        atp = channel_atp_bulk(channel=f.channel, variant_ids=[vid for vid, _, _ in best])
        for rank, (vid, sku, units) in enumerate(best, start=1):
            if atp.get(vid, 0) < f.limits.top_seller_safety_stock:
                found[(cid, sku)] = Observed(
                    f"{sku}, top seller #{rank} on {f.channel.name} ({units} sold in "
                    f"{f.limits.top_seller_days} days), has ATP {atp.get(vid, 0)} there, below "
                    f"the safety stock of {f.limits.top_seller_safety_stock}.",
                    Severity.CRITICAL if atp.get(vid, 0) == 0 else Severity.WARNING,
                )
    return found


def stale_dead_letters(facts: dict[int, ChannelFacts], now: datetime) -> QuerySet[Alert]:
    """Open dead-letter alerts whose SKU has no dead-lettered push any more (it was
    re-driven and went through, or its listing is gone)."""
    open_alerts = list(
        Alert.objects.filter(kind=Kind.DEAD_LETTER, resolved_at__isnull=True).values_list(
            "pk", "channel_id", "sku"
        )
    )
    if not open_alerts:
        return Alert.objects.none()
    still_dead = set(
        SyncMarker.objects.filter(
            status=SyncMarker.Status.DEAD,
            listing__variant__sku__in={sku for _, _, sku in open_alerts},
        ).values_list("channel_id", "listing__variant__sku")
    )
    gone = [pk for pk, cid, sku in open_alerts if (cid, sku) not in still_dead]
    return Alert.objects.filter(pk__in=gone)


@dataclass(frozen=True)
class Rule:
    """One alert kind: the condition, whether each evaluation counts as a repeat
    (conditions the evaluator owns) or only keeps it open (events counted where
    they happen), and which open alerts it may resolve."""

    kind: str
    condition: Callable[[dict[int, ChannelFacts], datetime], Subjects]
    count_repeat: bool = True
    only_own: bool = False


RULES = (
    Rule(Kind.AUTH_FAILED, auth_failures, count_repeat=False),
    Rule(Kind.CIRCUIT_OPEN, open_circuits, count_repeat=False),
    Rule(Kind.PUSH_HELD, held_pushes, count_repeat=False),
    Rule(Kind.DEAD_CHANNEL, dead_channels),
    Rule(Kind.DEGRADED, degraded_channels),
    Rule(Kind.QUEUE_DEPTH, deep_queues),
    Rule(Kind.REPEATED_FAILURE, repeated_sku_failures, only_own=True),
    Rule(Kind.BAD_SIGNATURE, bad_signatures, count_repeat=False),
    Rule(Kind.OVERSELL, oversell_conflicts, count_repeat=False),
    Rule(Kind.LOW_ATP, low_atp_top_sellers),
)


# --- the evaluation -----------------------------------------------------------------------------


@dataclass
class HealthReport:
    taken_at: datetime
    states: dict[int, str] = field(default_factory=dict)
    opened: dict[str, int] = field(default_factory=dict)
    resolved: dict[str, int] = field(default_factory=dict)


def _snapshot(f: ChannelFacts, now: datetime) -> ChannelHealthSnapshot:
    oldest = (
        max(0, int((now - f.oldest_pending_at).total_seconds()))
        if f.oldest_pending_at is not None
        else None
    )
    return ChannelHealthSnapshot(
        channel_id=f.channel.pk,
        taken_at=now,
        state=f.state,
        queue_depth=f.queue_depth,
        oldest_pending_seconds=oldest,
        pushes=f.pushes,
        errors=f.errors,
        latency_p50_ms=f.latency_p50_ms,
        latency_p95_ms=f.latency_p95_ms,
        last_success_at=f.last_success_at,
        detail=f.detail[:255],
    )


def _apply_rule(
    rule: Rule, facts: dict[int, ChannelFacts], now: datetime, report: HealthReport
) -> None:
    observed = rule.condition(facts, now)
    scope = Alert.objects.filter(kind=rule.kind)
    if rule.only_own:
        scope = scope.filter(source=SOURCE)
    opened, resolved = synclog.alerts_reconcile(
        kind=rule.kind,
        observed=observed,
        scope=scope,
        count_repeat=rule.count_repeat,
        now=now,
        source=SOURCE,
    )
    if opened:
        report.opened[rule.kind] = opened
    if resolved:
        report.resolved[rule.kind] = resolved


def _prune(now: datetime) -> None:
    """Each run deletes what aged out since the previous one: a few rows, by index."""
    WebhookRefusalCount.objects.filter(minute__lt=now - REFUSAL_KEEP).delete()
    keep = timedelta(days=settings.PIMSYNC_HEALTH_SNAPSHOT_DAYS)
    ChannelHealthSnapshot.objects.filter(taken_at__lt=now - keep).delete()


def health_evaluate(*, now: datetime | None = None) -> HealthReport:
    """Evaluate every channel once: one snapshot each, alerts raised, counted and
    resolved to match. Idempotent within a minute apart from the counters; safe
    to run twice at once (alerts are one-per-subject in the database)."""
    now = now or timezone.now()
    report = HealthReport(taken_at=now)
    facts = health_facts(now=now)
    synclog.health_snapshots_record([_snapshot(f, now) for f in facts.values()])
    report.states = {cid: f.state for cid, f in facts.items()}
    for rule in RULES:
        _apply_rule(rule, facts, now, report)
    resolved = synclog.alerts_resolve(stale_dead_letters(facts, now), now=now)
    if resolved:
        report.resolved[Kind.DEAD_LETTER] = resolved
    _prune(now)
    if report.opened or report.resolved:
        log.info("health: opened %s, resolved %s", report.opened, report.resolved)
    return report


def health_evaluate_unless_recent() -> dict[str, Any]:
    """What beat's evaluation task runs: an evaluation, unless one was recorded
    less than half an interval ago. A backlog of beat messages (worker down for a
    while) must not evaluate several times at once: each run's counters start at
    the previous snapshot."""
    recent = timezone.now() - timedelta(seconds=settings.PIMSYNC_HEALTH_EVALUATE_SECONDS / 2)
    if ChannelHealthSnapshot.objects.filter(taken_at__gt=recent).exists():
        return {"skipped": "evaluated less than half an interval ago"}
    report = health_evaluate()
    return {"states": report.states, "opened": report.opened, "resolved": report.resolved}
