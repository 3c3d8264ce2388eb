"""Writes to the record: log attempts, raise and clear alerts (which notifies
and groups them into incidents), record channel health snapshots.

channels_app (the producer) calls these; they never call back into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from . import incidents, notifications
from .models import (
    Alert,
    ChannelHealthSnapshot,
    DriftFinding,
    Notification,
    SyncLogEntry,
    SyncStatus,
)


@dataclass(frozen=True)
class Attempt:
    """One SKU's outcome of one push attempt, as the engine saw it."""

    channel_id: int
    sku: str
    listing_id: int | None
    event_type: str
    value_sent: str
    status: str
    error_code: str = ""
    message: str = ""
    retry_count: int = 0
    latency_ms: int | None = None
    http_status: int | None = None
    resolved: bool = False  # a failure already known to be moot


def sync_log_record(attempts: Sequence[Attempt], *, now: datetime | None = None) -> int:
    """Write one entry per attempt; a success resolves that SKU's earlier failures.

    Returns the number of entries written. One INSERT for the batch plus one
    UPDATE per (channel, event type) that had successes.
    """
    if not attempts:
        return 0
    now = now or timezone.now()
    SyncLogEntry.objects.bulk_create(
        [
            SyncLogEntry(
                channel_id=a.channel_id,
                sku=a.sku,
                listing_id=a.listing_id,
                event_type=a.event_type,
                value_sent=a.value_sent[:64],
                status=a.status,
                error_code=a.error_code[:64],
                message=a.message[:2000],
                retry_count=a.retry_count,
                latency_ms=a.latency_ms,
                http_status=a.http_status,
                resolved_at=now if a.status == SyncStatus.SUCCESS or a.resolved else None,
            )
            for a in attempts
        ],
        batch_size=500,
    )
    succeeded: dict[tuple[int, str], set[str]] = {}
    for a in attempts:
        if a.status == SyncStatus.SUCCESS:
            succeeded.setdefault((a.channel_id, a.event_type), set()).add(a.sku)
    for (channel_id, event_type), skus in succeeded.items():
        sync_log_resolve(channel_id=channel_id, event_type=event_type, skus=skus, now=now)
    return len(attempts)


def sync_log_resolve(
    *, channel_id: int, event_type: str, skus: Iterable[str], now: datetime | None = None
) -> int:
    """Mark a SKU's open failures resolved: a later push succeeded, or the channel
    turned out to show the right value already. Returns how many were resolved."""
    return (
        SyncLogEntry.objects.filter(
            channel_id=channel_id,
            event_type=event_type,
            sku__in=list(skus),
            resolved_at__isnull=True,
        )
        .exclude(status=SyncStatus.SUCCESS)
        .update(resolved_at=now or timezone.now())
    )


def _channel_names(channel_ids: Iterable[int | None]) -> dict[int, str]:
    ids = {cid for cid in channel_ids if cid}
    if not ids:
        return {}
    channel_model = Alert._meta.get_field("channel").related_model  # lazy: no channels_app import
    return dict(channel_model._default_manager.filter(pk__in=ids).values_list("pk", "name"))


def _state_changed(changes: Sequence[tuple[Alert, str]], now: datetime) -> None:
    """Everything an open / reopen / resolve entails, in its transaction:
    incident grouping, then one outbox row per transport."""
    if not changes:
        return
    names = _channel_names(a.channel_id for a, _ in changes)
    for alert, event in changes:
        if event == Notification.Event.RESOLVED:
            incidents.incident_on_alert_resolved(alert, now=now)
        else:
            incidents.incident_on_alert_opened(
                alert,
                now=now,
                reopened=event == Notification.Event.REOPENED,
                channel_name=names.get(alert.channel_id or 0, ""),
            )
    notifications.notifications_record(changes, now=now, channel_names=names)


def _of_channel(channel_id: int | None) -> Q:
    """Alerts of one channel, or the channel-less ones (None)."""
    return Q(channel__isnull=True) if channel_id is None else Q(channel_id=channel_id)


def _recently_resolved(kind: str, channel_id: int | None, sku: str, now: datetime) -> Alert | None:
    window = timedelta(seconds=settings.PIMSYNC_ALERT_REOPEN_SECONDS)
    if not window:
        return None
    return (
        Alert.objects.select_for_update()
        .filter(
            _of_channel(channel_id),
            kind=kind,
            sku=sku,
            resolved_at__isnull=False,
            resolved_at__gte=now - window,
        )
        .order_by("-resolved_at", "-pk")
        .first()
    )


def _reopen(
    alert: Alert, *, message: str, severity: str, now: datetime, occurrences: int = 1
) -> Alert:
    alert.resolved_at = None
    alert.resolved_by = None
    alert.acknowledged_by = None  # the earlier occurrence was acknowledged, not this one
    alert.acknowledged_at = None
    alert.count += occurrences
    alert.last_seen = now
    alert.message = message
    alert.severity = severity
    alert.state_version += 1
    alert.reopened_count += 1
    alert.save(
        update_fields=[
            "resolved_at",
            "resolved_by",
            "acknowledged_by",
            "acknowledged_at",
            "count",
            "last_seen",
            "message",
            "severity",
            "state_version",
            "reopened_count",
        ]
    )
    return alert


def alert_raise(
    *,
    kind: str,
    message: str,
    channel_id: int | None = None,
    sku: str = "",
    severity: str = Alert.Severity.WARNING,
    now: datetime | None = None,
    source: str = "",
    count_repeat: bool = True,
    occurrences: int = 1,
) -> Alert:
    """Open the alert, or count a repeat of the open one (one per kind/channel/sku).

    ``occurrences`` > 1 records that many occurrences at once (a batch of orders
    that all lost the last unit of one SKU): counted as that many repeats.

    A subject whose alert resolved less than PIMSYNC_ALERT_REOPEN_SECONDS ago
    reopens that alert (a flap is one story, not two). Opening and reopening
    notify (outbox, same transaction) and join or open an incident; a counted
    repeat does neither. ``count_repeat=False`` only makes sure it is open (for
    a condition re-checked every minute whose events are counted elsewhere).
    """
    now = now or timezone.now()
    for _ in range(2):
        with transaction.atomic():
            existing = (
                Alert.objects.select_for_update()
                .filter(_of_channel(channel_id), kind=kind, sku=sku, resolved_at__isnull=True)
                .first()
            )
            if existing is not None:
                if count_repeat:
                    existing.count += occurrences
                existing.last_seen = now
                existing.message = message
                existing.severity = severity
                existing.save(update_fields=["count", "last_seen", "message", "severity"])
                return existing
            earlier = _recently_resolved(kind, channel_id, sku, now)
            try:
                with transaction.atomic():
                    if earlier is not None:
                        alert = _reopen(
                            earlier,
                            message=message,
                            severity=severity,
                            now=now,
                            occurrences=occurrences,
                        )
                        event = Notification.Event.REOPENED
                    else:
                        alert = Alert.objects.create(
                            kind=kind,
                            channel_id=channel_id,
                            sku=sku,
                            message=message,
                            severity=severity,
                            last_seen=now,
                            source=source,
                            count=occurrences,
                        )
                        event = Notification.Event.OPENED
                    _state_changed([(alert, event)], now)
                    return alert
            except IntegrityError:
                continue  # opened concurrently: count it on the next pass
    raise RuntimeError("alert_raise could not open or count the alert")


def alerts_resolve(
    alerts: QuerySet[Alert], *, now: datetime | None = None, user: User | None = None
) -> int:
    """Resolve the open alerts of a queryset: one UPDATE, then incidents and
    notifications for each. Returns how many were resolved."""
    now = now or timezone.now()
    with transaction.atomic():
        # Lock by primary key: the caller's queryset may carry outer joins, which
        # PostgreSQL refuses to lock.
        ids = list(alerts.filter(resolved_at__isnull=True).values_list("pk", flat=True))
        resolved = list(
            Alert.objects.select_for_update().filter(pk__in=ids, resolved_at__isnull=True)
        )
        if not resolved:
            return 0
        Alert.objects.filter(pk__in=[a.pk for a in resolved]).update(
            resolved_at=now, resolved_by=user, state_version=F("state_version") + 1
        )
        for a in resolved:
            a.resolved_at, a.resolved_by, a.state_version = now, user, a.state_version + 1
        _state_changed([(a, Notification.Event.RESOLVED) for a in resolved], now)
    return len(resolved)


def alert_resolve(
    *,
    kind: str,
    channel_id: int | None = None,
    sku: str | None = None,
    now: datetime | None = None,
) -> int:
    """Resolve open alerts of a kind (for a channel, and one SKU or all); returns how many."""
    qs = Alert.objects.filter(_of_channel(channel_id), kind=kind, resolved_at__isnull=True)
    if sku is not None:
        qs = qs.filter(sku=sku)
    return alerts_resolve(qs, now=now)


def alert_acknowledge(*, alert_ids: Iterable[int], user: User) -> int:
    """A person has seen these open alerts; who and when is kept. Acknowledged
    alerts stay open until their condition clears. Returns how many changed."""
    return Alert.objects.filter(
        pk__in=list(alert_ids), acknowledged_at__isnull=True, resolved_at__isnull=True
    ).update(acknowledged_by=user, acknowledged_at=timezone.now())


@dataclass(frozen=True)
class Observed:
    """A condition the health evaluator sees now, for one (channel, sku)."""

    message: str
    severity: str = Alert.Severity.WARNING


def alerts_reconcile(
    *,
    kind: str,
    observed: Mapping[tuple[int | None, str], Observed],
    scope: QuerySet[Alert] | None = None,
    count_repeat: bool = True,
    now: datetime | None = None,
    source: str = "health",
) -> tuple[int, int]:
    """Make the open alerts of ``kind`` match what is observed now.

    New subjects open (or reopen) through ``alert_raise``; open ones seen again
    are counted (``count_repeat``) in one bulk UPDATE; open alerts of ``scope``
    (default: every open alert of the kind) that are no longer observed are
    resolved. Returns (opened, resolved). Queries: one read of the open alerts,
    one bulk update, one per newly opened alert, one resolve.
    """
    now = now or timezone.now()
    scope = scope if scope is not None else Alert.objects.filter(kind=kind)
    open_alerts = {
        (a.channel_id, a.sku): a
        for a in Alert.objects.filter(kind=kind, resolved_at__isnull=True).only(
            "pk", "channel_id", "sku", "count", "message", "severity"
        )
    }
    seen_again = []
    opened = 0
    for subject, obs in observed.items():
        alert = open_alerts.get(subject)
        if alert is None:
            alert_raise(
                kind=kind,
                channel_id=subject[0],
                sku=subject[1],
                message=obs.message,
                severity=obs.severity,
                now=now,
                source=source,
            )
            opened += 1
            continue
        alert.count += 1 if count_repeat else 0
        alert.last_seen, alert.message, alert.severity = now, obs.message, obs.severity
        seen_again.append(alert)
    if seen_again:
        Alert.objects.bulk_update(seen_again, ["count", "last_seen", "message", "severity"])
    gone = [a.pk for s, a in open_alerts.items() if s not in observed]
    resolved = alerts_resolve(scope.filter(pk__in=gone), now=now) if gone else 0
    return opened, resolved


def health_snapshots_record(snapshots: Sequence[ChannelHealthSnapshot]) -> int:
    """Store one evaluation's snapshots (one per channel) in one INSERT."""
    ChannelHealthSnapshot.objects.bulk_create(snapshots)
    return len(snapshots)


# --- retention --------------------------------------------------------------------------------


def rows_delete_in_batches(queryset: QuerySet, *, batch_size: int) -> int:
    """Delete every row of ``queryset``, ``batch_size`` primary keys per short
    transaction, so no lock is held on the table for long and concurrent
    writers interleave. Returns how many rows were deleted."""
    model = queryset.model
    deleted = 0
    last_pk = None
    while True:
        batch = queryset.order_by("pk")
        if last_pk is not None:
            batch = batch.filter(pk__gt=last_pk)
        ids = list(batch.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        with transaction.atomic():
            count, _ = model._base_manager.filter(pk__in=ids).delete()
        deleted += count
        last_pk = ids[-1]


def sync_log_purge(*, before: datetime, batch_size: int) -> int:
    """Delete sync log entries created before ``before``; returns how many."""
    return rows_delete_in_batches(
        SyncLogEntry.objects.filter(created_at__lt=before), batch_size=batch_size
    )


def drift_findings_purge(*, before: datetime, batch_size: int) -> int:
    """Delete drift findings resolved before ``before`` (open ones are kept,
    whatever their age); returns how many."""
    return rows_delete_in_batches(
        DriftFinding.objects.filter(resolved_at__lt=before), batch_size=batch_size
    )


def notifications_purge(*, before: datetime, batch_size: int) -> int:
    """Delete notifications created before ``before`` whose delivery is over (sent,
    failed for good or skipped); pending ones are still work. Returns how many."""
    done = (Notification.Status.SENT, Notification.Status.FAILED, Notification.Status.SKIPPED)
    return rows_delete_in_batches(
        Notification.objects.filter(created_at__lt=before, status__in=done),
        batch_size=batch_size,
    )


def health_snapshots_purge(*, before: datetime, batch_size: int) -> int:
    """Delete per-minute channel health snapshots taken before ``before`` (the
    dashboard charts 24 hours; incidents keep their own times). Returns how many."""
    return rows_delete_in_batches(
        ChannelHealthSnapshot.objects.filter(taken_at__lt=before), batch_size=batch_size
    )


# --- findings reported by a channel's webhook ---------------------------------------------------


def drift_finding_record(
    *,
    channel_id: int,
    listing_id: int,
    sku: str,
    field: str,
    expected: Decimal,
    found: Decimal,
    beyond_threshold: bool,
    delivery_id: str = "",
    now: datetime | None = None,
) -> DriftFinding:
    """Store a difference a channel's webhook reported (no reconciliation run).

    Earlier open webhook findings of the same listing and field are closed as
    superseded: the channel's latest value is the one that counts."""
    now = now or timezone.now()
    DriftFinding.objects.filter(
        channel_id=channel_id,
        listing_id=listing_id,
        field=field,
        source=DriftFinding.Source.WEBHOOK,
        resolved_at__isnull=True,
    ).update(resolved_at=now, decision=DriftFinding.Decision.SUPERSEDED, decided_at=now)
    return DriftFinding.objects.create(
        source=DriftFinding.Source.WEBHOOK,
        channel_id=channel_id,
        listing_id=listing_id,
        sku=sku,
        field=field,
        expected=expected,
        found=found,
        difference=found - expected,
        beyond_threshold=beyond_threshold,
        delivery_id=delivery_id[:200],
        found_at=now,
    )


def drift_finding_decide(
    *,
    finding: DriftFinding,
    decision: str,
    resolved: bool,
    resync_requested: bool = False,
    user: User | None = None,
    now: datetime | None = None,
) -> DriftFinding:
    """Record what was done about a finding (by the channel's policy or a person)."""
    now = now or timezone.now()
    finding.decision = decision
    finding.decided_at = now
    finding.decided_by = user
    finding.resync_requested = finding.resync_requested or resync_requested
    if resolved:
        finding.resolved_at = now
    finding.save(
        update_fields=["decision", "decided_at", "decided_by", "resync_requested", "resolved_at"]
    )
    return finding


def drift_findings_agree(
    *, channel_id: int, listing_id: int, field: str, now: datetime | None = None
) -> int:
    """The channel shows what pimsync publishes for this field again: its open findings
    (of any source) are resolved. Returns how many."""
    return DriftFinding.objects.filter(
        channel_id=channel_id, listing_id=listing_id, field=field, resolved_at__isnull=True
    ).update(resolved_at=now or timezone.now())


def drift_findings_pushed(
    *, channel_id: int, listing_ids: Sequence[int], field: str, now: datetime | None = None
) -> int:
    """pimsync's value of this field was just written to the channel and confirmed:
    the open findings a webhook reported for these listings no longer hold (a
    pushed-back edit is undone; a flagged one was overwritten by a newer value, and
    its "choose" alert settles). Returns how many were resolved."""
    now = now or timezone.now()
    open_findings = DriftFinding.objects.filter(
        channel_id=channel_id,
        listing_id__in=list(listing_ids),
        field=field,
        source=DriftFinding.Source.WEBHOOK,
        resolved_at__isnull=True,
    )
    flagged = set(
        open_findings.filter(decision=DriftFinding.Decision.FLAGGED).values_list("sku", flat=True)
    )
    resolved = open_findings.update(resolved_at=now)
    for sku in sorted(flagged):
        channel_edit_alert_settle(channel_id=channel_id, sku=sku, now=now)
    return resolved


def channel_edit_alert_settle(*, channel_id: int, sku: str, now: datetime | None = None) -> int:
    """Resolve the SKU's "choose" alert once no flagged finding of it is open."""
    waiting = DriftFinding.objects.filter(
        channel_id=channel_id,
        sku=sku,
        decision=DriftFinding.Decision.FLAGGED,
        resolved_at__isnull=True,
    )
    if waiting.exists():
        return 0
    return alert_resolve(kind=Alert.Kind.CHANNEL_EDIT, channel_id=channel_id, sku=sku, now=now)
