"""Incidents: the alerts of one outage, grouped, with its time to recovery.

Rules (called from the alert state changes in ``synclog.services``, inside
their transaction):
- a channel-level outage alert (dead, degraded, circuit open, auth failed)
  joins the open incident of its channel; failing that, an incident opened on
  another channel within the correlation window (one cause, e.g. our network,
  takes several channels down together); failing that, it opens a new one;
- symptom alerts of a channel (repeated SKU failures, dead letters, queue
  depth) join the channel's open incident, never open one;
- business alerts (low ATP, oversell, unmatched SKU, drift) stay out: they
  outlive any outage and would hold its recovery open;
- the incident recovers when every alert in it has resolved; a flapping alert
  that reopens its recovered incident makes the recovery undone.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .models import Alert, EventType, Incident, SyncLogEntry, SyncStatus

Kind = Alert.Kind
OUTAGE_KINDS = frozenset({Kind.DEAD_CHANNEL, Kind.DEGRADED, Kind.CIRCUIT_OPEN, Kind.AUTH_FAILED})
SYMPTOM_KINDS = frozenset({Kind.REPEATED_FAILURE, Kind.DEAD_LETTER, Kind.QUEUE_DEPTH})
SKUS_KEPT = 500


def _open_incident_of_channel(channel_id: int) -> Incident | None:
    return (
        Incident.objects.select_for_update()
        .filter(recovered_at__isnull=True, channels__id=channel_id)
        .order_by("detected_at", "pk")
        .first()
    )


def _correlated_open_incident(now: datetime) -> Incident | None:
    window = timedelta(seconds=settings.PIMSYNC_INCIDENT_CORRELATION_SECONDS)
    if not window:
        return None
    return (
        Incident.objects.select_for_update()
        .filter(recovered_at__isnull=True, detected_at__gte=now - window)
        .order_by("detected_at", "pk")
        .first()
    )


def _title(alert: Alert, channel_name: str) -> str:
    return f"{channel_name or 'channel ' + str(alert.channel_id)}: {alert.get_kind_display()}"[:200]


def _add_sku(incident: Incident, sku: str) -> None:
    if sku and sku not in incident.skus:
        if len(incident.skus) < SKUS_KEPT:
            incident.skus = [*incident.skus, sku]
        incident.sku_count += 1
        incident.save(update_fields=["skus", "sku_count", "updated_at"])


def incident_on_alert_opened(
    alert: Alert, *, now: datetime, reopened: bool, channel_name: str = ""
) -> Incident | None:
    """Attach a newly opened (or reopened) alert to its incident; may open one."""
    if alert.channel_id is None or alert.kind not in OUTAGE_KINDS | SYMPTOM_KINDS:
        return None
    if reopened and alert.incident_id:
        incident = Incident.objects.select_for_update().get(pk=alert.incident_id)
        if incident.recovered_at is not None:
            incident.recovered_at, incident.ttr_seconds = None, None
            incident.save(update_fields=["recovered_at", "ttr_seconds", "updated_at"])
        return incident
    incident = _open_incident_of_channel(alert.channel_id)
    if incident is None and alert.kind in OUTAGE_KINDS:
        incident = _correlated_open_incident(now)
        if incident is None:
            incident = Incident.objects.create(title=_title(alert, channel_name), detected_at=now)
        incident.channels.add(alert.channel_id)
    if incident is None:
        return None
    alert.incident = incident
    Alert.objects.filter(pk=alert.pk).update(incident=incident)
    _add_sku(incident, alert.sku)
    return incident


def incident_on_alert_resolved(alert: Alert, *, now: datetime) -> Incident | None:
    """Recover the alert's incident when this was its last open alert."""
    if alert.incident_id is None:
        return None
    incident = Incident.objects.select_for_update().get(pk=alert.incident_id)
    if incident.recovered_at is not None:
        return incident
    if Alert.objects.filter(incident=incident, resolved_at__isnull=True).exists():
        return incident
    incident.recovered_at = now
    incident.ttr_seconds = max(0, int((now - incident.detected_at).total_seconds()))
    incident_refresh_skus(incident, save=False)
    incident.save(update_fields=["recovered_at", "ttr_seconds", "skus", "sku_count", "updated_at"])
    return incident


def incident_refresh_skus(incident: Incident, *, save: bool = True) -> int:
    """SKUs affected: those its alerts name, and those whose pushes failed on its
    channels from a little before detection until recovery. One query each."""
    lookback = timedelta(seconds=settings.PIMSYNC_INCIDENT_SKU_LOOKBACK_SECONDS)
    failed = SyncLogEntry.objects.filter(
        channel__in=incident.channels.all(),
        created_at__gte=incident.detected_at - lookback,
        event_type__in=[EventType.PRICE, EventType.INVENTORY],
    ).exclude(status=SyncStatus.SUCCESS)
    if incident.recovered_at is not None:
        failed = failed.filter(created_at__lte=incident.recovered_at)
    skus = set(failed.values_list("sku", flat=True).distinct())
    skus |= set(incident.alerts.exclude(sku="").values_list("sku", flat=True))
    incident.skus = sorted(skus)[:SKUS_KEPT]
    incident.sku_count = len(skus)
    if save:
        incident.save(update_fields=["skus", "sku_count", "updated_at"])
    return incident.sku_count


def incident_root_cause_set(*, incident: Incident, text: str, user: AbstractBaseUser) -> Incident:
    """Ops' finding on what caused it; who wrote it and when are kept."""
    with transaction.atomic():
        incident.root_cause = text.strip()
        incident.root_cause_by = user
        incident.root_cause_at = timezone.now()
        incident.save(update_fields=["root_cause", "root_cause_by", "root_cause_at", "updated_at"])
    return incident


# --- the recovery report ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveryStats:
    """Incidents detected in the period, and how long recovery took (seconds)."""

    label: str
    incidents: int
    recovered: int
    still_open: int
    mean_seconds: float | None
    p50_seconds: float | None
    max_seconds: int | None


def _stats(label: str, ttrs: list[int | None]) -> RecoveryStats:
    done = [t for t in ttrs if t is not None]
    return RecoveryStats(
        label=label,
        incidents=len(ttrs),
        recovered=len(done),
        still_open=len(ttrs) - len(done),
        mean_seconds=round(statistics.fmean(done), 1) if done else None,
        p50_seconds=statistics.median(done) if done else None,
        max_seconds=max(done) if done else None,
    )


def incident_recovery_report(
    *, days: int = 30, now: datetime | None = None
) -> tuple[RecoveryStats, list[RecoveryStats]]:
    """Time to recovery over incidents detected in the last ``days``: overall and
    per channel (an incident over two channels counts for each). Two queries."""
    since = (now or timezone.now()) - timedelta(days=days)
    overall = list(
        Incident.objects.filter(detected_at__gte=since).values_list("ttr_seconds", flat=True)
    )
    through = Incident.channels.through
    rows = (
        through.objects.filter(incident__detected_at__gte=since)
        .values_list("channel__name", "incident__ttr_seconds")
        .order_by("channel__name")
    )
    per_channel: dict[str, list[int | None]] = defaultdict(list)
    for name, ttr in rows:
        per_channel[name].append(ttr)
    return _stats("All channels", overall), [_stats(n, t) for n, t in per_channel.items()]
