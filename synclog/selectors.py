"""Reads for the ops dashboard: channel cards, 24 h charts, open alerts, failures.

Everything comes from synclog's own tables (health snapshots written once a
minute by channels_app, the sync log, alerts, reconciliation runs); channels
are reached through synclog's lazy foreign key, never by importing
channels_app. Every selector is a fixed number of aggregate queries, whatever
the number of channels, snapshots or log entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    Aggregate,
    Case,
    Count,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Lower, RowNumber
from django.utils import timezone

from .models import (
    Alert,
    ChannelHealthSnapshot,
    ChannelState,
    ReconciliationRun,
    SyncLogEntry,
    SyncStatus,
)

# The state shown before the first health snapshot of an enabled channel.
UNKNOWN_STATE = "unknown"
STATE_LABELS = {**dict(ChannelState.choices), UNKNOWN_STATE: "No health data"}
STATE_TONES = {
    ChannelState.HEALTHY: "ok",
    ChannelState.DEGRADED: "warn",
    ChannelState.DEAD: "bad",
    ChannelState.CIRCUIT_OPEN: "bad",
    ChannelState.AUTH_FAILED: "bad",
    ChannelState.DISABLED: "muted",
    UNKNOWN_STATE: "muted",
}
FAILED_STATUSES = (SyncStatus.FAILED, SyncStatus.DEAD)
# The channel did not take the value (a hold for an orders import is no error).
ERROR_STATUSES = (SyncStatus.RETRYING, SyncStatus.FAILED, SyncStatus.DEAD)
CHART_HOURS = 24
# What the dashboard shows of a channel; never its (encrypted) credentials.
CHANNEL_FIELDS = ("id", "name", "platform", "is_enabled")


def channel_model() -> type[Model]:
    """The channel model, resolved through synclog's own lazy foreign key."""
    return SyncLogEntry._meta.get_field("channel").related_model


@dataclass(frozen=True)
class ReconciliationSummary:
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    checked: int
    drifted: int
    fixed: int
    errors: int


@dataclass(frozen=True)
class ChannelCard:
    channel_id: int
    name: str
    platform: str
    is_enabled: bool
    snapshot_id: int | None
    state: str
    state_label: str
    state_tone: str
    state_detail: str
    snapshot_at: datetime | None
    is_stale: bool
    last_success_at: datetime | None
    queue_depth: int | None
    oldest_pending_seconds: int | None
    pushes_last_hour: int
    errors_last_hour: int
    latency_p50_ms: int | None
    latency_p95_ms: int | None
    last_reconciliation: ReconciliationSummary | None

    @property
    def error_rate_last_hour(self) -> float | None:
        attempts = self.pushes_last_hour + self.errors_last_hour
        return None if attempts == 0 else self.errors_last_hour / attempts


@dataclass
class ChannelSeries:
    """One channel's last 24 h in hourly buckets, oldest first."""

    channel_id: int
    name: str
    bucket_starts: list[datetime]
    pushes: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    latency_p50_ms: list[int | None] = field(default_factory=list)
    latency_p95_ms: list[int | None] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        return (
            any(self.pushes) or any(self.errors) or any(v is not None for v in self.latency_p95_ms)
        )


def _channels_with_latest_ids() -> list[Any]:
    """Every channel with the id of its newest snapshot and reconciliation run (one query)."""
    latest_snapshot = (
        ChannelHealthSnapshot.objects.filter(channel=OuterRef("pk"))
        .order_by("-taken_at", "-id")
        .values("pk")[:1]
    )
    qs = (
        channel_model()
        ._default_manager.only(*CHANNEL_FIELDS)
        .annotate(latest_snapshot_id=Subquery(latest_snapshot))
    )
    latest_run = (
        ReconciliationRun.objects.filter(channel=OuterRef("pk"))
        .order_by("-started_at", "-pk")
        .values("pk")[:1]
    )
    qs = qs.annotate(latest_run_id=Subquery(latest_run))
    return list(qs.order_by(Lower("name"), "pk"))


def _reconciliation_summaries(run_ids: list[int]) -> dict[int, ReconciliationSummary]:
    if not run_ids:
        return {}
    return {
        run.channel_id: ReconciliationSummary(
            started_at=run.started_at,
            finished_at=run.finished_at,
            status=run.status,
            checked=run.checked,
            drifted=run.drifted,
            fixed=run.fixed,
            errors=run.errors,
        )
        for run in ReconciliationRun.objects.filter(pk__in=run_ids)
    }


def sync_log_hour_counts(*, since: datetime) -> dict[int, tuple[int, int]]:
    """(successful pushes, failed attempts) per channel since `since` (one query).

    A retrying attempt counts as an error: the channel did not take the value.
    """
    rows = (
        SyncLogEntry.objects.filter(created_at__gte=since)
        .exclude(event_type="order")
        .values("channel_id")
        .annotate(
            pushes=Count("id", filter=Q(status=SyncStatus.SUCCESS)),
            errors=Count("id", filter=Q(status__in=ERROR_STATUSES)),
        )
        .order_by()
    )
    return {r["channel_id"]: (r["pushes"], r["errors"]) for r in rows}


def _nearest_rank(percent: int) -> ExpressionWrapper:
    # ceil(percent/100 * n) in integer arithmetic, identical on SQLite and PostgreSQL.
    return ExpressionWrapper((F("n") * percent + 99) / 100, output_field=IntegerField())


class PercentileDisc(Aggregate):
    """PostgreSQL's ordered-set aggregate: the first value whose cumulative share
    reaches `fraction`, which is the nearest-rank percentile."""

    function = "PERCENTILE_DISC"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = IntegerField()

    def __init__(self, expression: Any, *, fraction: float) -> None:
        super().__init__(expression, fraction=float(fraction))


def push_latency_percentiles(*, since: datetime) -> dict[int, tuple[int, int]]:
    """Exact nearest-rank p50 and p95 of successful push latency per channel since
    `since`, in one query: PostgreSQL's PERCENTILE_DISC, elsewhere a windowed query
    returning the two ranked rows per channel (the same answer, slower)."""
    successes = SyncLogEntry.objects.filter(
        created_at__gte=since, status=SyncStatus.SUCCESS, latency_ms__isnull=False
    )
    if connection.vendor == "postgresql":
        return _percentiles_ordered_set(successes)
    return _percentiles_windowed(successes)


def _percentiles_ordered_set(successes: QuerySet) -> dict[int, tuple[int, int]]:
    rows = (
        successes.values("channel_id")
        .annotate(
            p50=PercentileDisc("latency_ms", fraction=0.5),
            p95=PercentileDisc("latency_ms", fraction=0.95),
        )
        .order_by()
    )
    return {r["channel_id"]: (r["p50"], r["p95"]) for r in rows}


def _percentiles_windowed(successes: QuerySet) -> dict[int, tuple[int, int]]:
    ranked = (
        successes.annotate(
            rn=Window(
                RowNumber(),
                partition_by=[F("channel_id")],
                order_by=[F("latency_ms").asc(), F("id").asc()],
            ),
            n=Window(Count("id"), partition_by=[F("channel_id")]),
        )
        .annotate(r50=_nearest_rank(50), r95=_nearest_rank(95))
        .filter(Q(rn=F("r50")) | Q(rn=F("r95")))
        .values_list("channel_id", "rn", "r50", "r95", "latency_ms")
        .order_by()
    )
    out: dict[int, tuple[int, int]] = {}
    for channel_id, rn, r50, r95, latency in ranked:
        p50, p95 = out.get(channel_id, (0, 0))
        if rn == r50:
            p50 = latency
        if rn == r95:
            p95 = latency
        out[channel_id] = (p50, p95)
    return out


def _last_success_from_log(channel_ids: list[int], *, since: datetime) -> dict[int, datetime]:
    """Fallback for channels without a snapshot: newest success in the recent log."""
    if not channel_ids:
        return {}
    rows = (
        SyncLogEntry.objects.filter(
            channel_id__in=channel_ids, status=SyncStatus.SUCCESS, created_at__gte=since
        )
        .values("channel_id")
        .annotate(last=Max("created_at"))
        .order_by()
    )
    return {r["channel_id"]: r["last"] for r in rows}


def _card_state(
    channel: Any, snapshot: ChannelHealthSnapshot | None, *, now: datetime, stale_after: timedelta
) -> tuple[str, str, bool]:
    """(state, detail, is_stale): disabled wins; no snapshot yet is 'unknown'."""
    if not channel.is_enabled:
        return ChannelState.DISABLED, "Channel disabled in its settings", False
    if snapshot is None:
        return UNKNOWN_STATE, "No health snapshot recorded yet", False
    is_stale = now - snapshot.taken_at > stale_after
    return snapshot.state, snapshot.detail, is_stale


def ops_channel_cards(*, now: datetime | None = None) -> list[ChannelCard]:
    """One card per channel, ordered by name. At most six queries."""
    now = now or timezone.now()
    hour_ago = now - timedelta(hours=1)
    stale_after = timedelta(seconds=settings.PIMSYNC_DASHBOARD_STALE_SECONDS)
    channels = _channels_with_latest_ids()
    snapshot_ids = [c.latest_snapshot_id for c in channels if c.latest_snapshot_id]
    snapshots = {s.channel_id: s for s in ChannelHealthSnapshot.objects.filter(pk__in=snapshot_ids)}
    runs = _reconciliation_summaries(
        [c.latest_run_id for c in channels if getattr(c, "latest_run_id", None)]
    )
    counts = sync_log_hour_counts(since=hour_ago)
    percentiles = push_latency_percentiles(since=hour_ago)
    fallback_success = _last_success_from_log(
        [c.pk for c in channels if c.pk not in snapshots], since=now - timedelta(days=1)
    )
    cards = []
    for channel in channels:
        snapshot = snapshots.get(channel.pk)
        state, detail, is_stale = _card_state(channel, snapshot, now=now, stale_after=stale_after)
        pushes, errors = counts.get(channel.pk, (0, 0))
        p50, p95 = percentiles.get(channel.pk, (None, None))
        cards.append(
            ChannelCard(
                channel_id=channel.pk,
                name=channel.name,
                platform=channel.get_platform_display(),
                is_enabled=channel.is_enabled,
                snapshot_id=snapshot.pk if snapshot else None,
                state=state,
                state_label=STATE_LABELS.get(state, state),
                state_tone=STATE_TONES.get(state, "info"),
                state_detail=detail,
                snapshot_at=snapshot.taken_at if snapshot else None,
                is_stale=is_stale,
                last_success_at=(
                    snapshot.last_success_at if snapshot else fallback_success.get(channel.pk)
                ),
                queue_depth=snapshot.queue_depth if snapshot else None,
                oldest_pending_seconds=snapshot.oldest_pending_seconds if snapshot else None,
                pushes_last_hour=pushes,
                errors_last_hour=errors,
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                last_reconciliation=runs.get(channel.pk),
            )
        )
    return cards


def hour_bucket_starts(*, now: datetime, hours: int = CHART_HOURS) -> list[datetime]:
    """Starts of the last `hours` hourly buckets (current local hour last)."""
    current = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


def _bucket_index(starts: list[datetime]) -> Case:
    """Which bucket a snapshot falls in, as plain comparisons the database evaluates
    natively (SQLite has no native date truncation: Django's per-row Python function
    costs several times more; PostgreSQL and SQLite give the same answer)."""
    return Case(
        *[When(taken_at__lt=boundary, then=Value(i)) for i, boundary in enumerate(starts[1:])],
        default=Value(len(starts) - 1),
        output_field=IntegerField(),
    )


def ops_channel_series(
    *, channels: list[tuple[int, str]], now: datetime | None = None
) -> list[ChannelSeries]:
    """Hourly pushes, errors and latency of the last 24 h per channel, summed from
    health snapshots with one grouped query.

    An hour's p50 is the push-weighted mean of its per-minute p50s; its p95 is
    the worst per-minute p95 (percentiles of minutes cannot be merged exactly,
    and the worst minute is what ops look for).
    """
    now = now or timezone.now()
    starts = hour_bucket_starts(now=now)
    rows = (
        ChannelHealthSnapshot.objects.filter(taken_at__gte=starts[0], taken_at__lte=now)
        .annotate(bucket=_bucket_index(starts))
        .values("channel_id", "bucket")
        .annotate(
            push_sum=Sum("pushes"),
            error_sum=Sum("errors"),
            p50_weighted=Sum(
                F("latency_p50_ms") * F("pushes"), filter=Q(latency_p50_ms__isnull=False)
            ),
            p50_weight=Sum("pushes", filter=Q(latency_p50_ms__isnull=False)),
            p95=Max("latency_p95_ms"),
        )
        .order_by()
    )
    series = {
        channel_id: ChannelSeries(
            channel_id=channel_id,
            name=name,
            bucket_starts=starts,
            pushes=[0] * len(starts),
            errors=[0] * len(starts),
            latency_p50_ms=[None] * len(starts),
            latency_p95_ms=[None] * len(starts),
        )
        for channel_id, name in channels
    }
    for row in rows:
        one = series.get(row["channel_id"])
        i = row["bucket"]
        if one is None:
            continue
        one.pushes[i] = row["push_sum"] or 0
        one.errors[i] = row["error_sum"] or 0
        if row["p50_weight"]:
            one.latency_p50_ms[i] = round(row["p50_weighted"] / row["p50_weight"])
        one.latency_p95_ms[i] = row["p95"]
    return list(series.values())


ALERT_FIELDS = (
    "kind",
    "sku",
    "severity",
    "message",
    "first_seen",
    "last_seen",
    "count",
    "acknowledged_at",
    "resolved_at",
    "channel__name",
    "acknowledged_by__username",
)
FAILURE_FIELDS = (
    "created_at",
    "sku",
    "event_type",
    "status",
    "error_code",
    "message",
    "resolved_at",
    "channel__name",
)


def ops_open_alerts(*, limit: int) -> tuple[Sequence[Alert], int]:
    """Open alerts — unacknowledged before acknowledged, then most severe, then most
    recent — and how many are open in all (one query)."""
    alerts = list(
        Alert.objects.filter(resolved_at__isnull=True)
        .select_related("channel", "acknowledged_by")
        .only(*ALERT_FIELDS)
        .annotate(
            total=Window(Count("id")),
            is_acknowledged=Case(
                When(acknowledged_at__isnull=True, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            severity_rank=Case(
                When(severity=Alert.Severity.CRITICAL, then=Value(0)),
                When(severity=Alert.Severity.WARNING, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            ),
        )
        .order_by("is_acknowledged", "severity_rank", "-last_seen", "-id")[:limit]
    )
    return alerts, (alerts[0].total if alerts else 0)


def ops_recent_failures(*, limit: int) -> list[SyncLogEntry]:
    """The newest failed and dead-lettered attempts."""
    return list(
        SyncLogEntry.objects.filter(status__in=FAILED_STATUSES)
        .select_related("channel")
        .only(*FAILURE_FIELDS)
        .order_by("-created_at", "-id")[:limit]
    )
