"""Writes to the record: log attempts, raise and clear alerts.

channels_app (the producer) calls these; they never call back into it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Alert, SyncLogEntry, SyncStatus


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


def alert_raise(
    *,
    kind: str,
    message: str,
    channel_id: int | None = None,
    sku: str = "",
    severity: str = Alert.Severity.WARNING,
    now: datetime | None = None,
) -> Alert:
    """Open the alert, or count a repeat of the open one (one per kind/channel/sku)."""
    now = now or timezone.now()
    for _ in range(2):
        with transaction.atomic():
            existing = (
                Alert.objects.select_for_update()
                .filter(kind=kind, channel_id=channel_id, sku=sku, resolved_at__isnull=True)
                .first()
            )
            if existing is not None:
                existing.count += 1
                existing.last_seen = now
                existing.message = message
                existing.severity = severity
                existing.save(update_fields=["count", "last_seen", "message", "severity"])
                return existing
            try:
                with transaction.atomic():
                    return Alert.objects.create(
                        kind=kind,
                        channel_id=channel_id,
                        sku=sku,
                        message=message,
                        severity=severity,
                        last_seen=now,
                    )
            except IntegrityError:
                continue  # opened concurrently: count it on the next pass
    raise RuntimeError("alert_raise could not open or count the alert")


def alert_resolve(
    *,
    kind: str,
    channel_id: int | None = None,
    sku: str | None = None,
    now: datetime | None = None,
) -> int:
    """Resolve open alerts of a kind (for a channel, and one SKU or all); returns how many."""
    qs = Alert.objects.filter(kind=kind, channel_id=channel_id, resolved_at__isnull=True)
    if sku is not None:
        qs = qs.filter(sku=sku)
    return qs.update(resolved_at=now or timezone.now())


def alert_acknowledge(*, alert_ids: Iterable[int], user: AbstractBaseUser) -> int:
    return Alert.objects.filter(pk__in=list(alert_ids), acknowledged_at__isnull=True).update(
        acknowledged_by=user, acknowledged_at=timezone.now()
    )


def alerts_resolve(*, alert_ids: Iterable[int], now: datetime | None = None) -> int:
    """Resolve these alerts by hand (a person decided the condition is over); an alert
    whose condition persists opens again on the next evaluation. Returns how many."""
    return Alert.objects.filter(pk__in=list(alert_ids), resolved_at__isnull=True).update(
        resolved_at=now or timezone.now()
    )
