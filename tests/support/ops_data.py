"""Helpers that write what the health evaluation and the push engine would have
written: health snapshots over a period, sync log attempts with latencies, alerts."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from synclog import services
from synclog.models import Alert, ChannelHealthSnapshot, SyncLogEntry


def snapshots_seed(
    channel_id: int,
    *,
    now: datetime,
    hours: int = 24,
    every_minutes: int = 5,
    state: str = "healthy",
    pushes: int = 10,
    errors: int = 0,
    p50: int | None = 400,
    p95: int | None = 1500,
    queue_depth: int = 0,
    rng: random.Random | None = None,
) -> list[ChannelHealthSnapshot]:
    """Snapshots every `every_minutes` over the last `hours`, newest `state`."""
    rows = []
    steps = hours * 60 // every_minutes
    for i in range(steps):
        taken = now - timedelta(minutes=every_minutes * (steps - 1 - i))
        jitter = rng.uniform(0.6, 1.4) if rng else 1.0
        rows.append(
            ChannelHealthSnapshot(
                channel_id=channel_id,
                taken_at=taken,
                state=state if i == steps - 1 else "healthy",
                queue_depth=queue_depth,
                pushes=round(pushes * jitter),
                errors=errors if rng is None else round(errors * rng.uniform(0, 2)),
                latency_p50_ms=None if p50 is None else round(p50 * jitter),
                latency_p95_ms=None if p95 is None else round(p95 * jitter),
                last_success_at=taken - timedelta(seconds=20),
            )
        )
    return ChannelHealthSnapshot.objects.bulk_create(rows)


def attempts_seed(
    channel_id: int,
    *,
    latencies: list[int | None],
    status: str = "success",
    sku_prefix: str = "SKU",
    event_type: str = "inventory",
    at: datetime | None = None,
) -> None:
    services.sync_log_record(
        [
            services.Attempt(
                channel_id=channel_id,
                sku=f"{sku_prefix}-{i}",
                listing_id=None,
                event_type=event_type,
                value_sent="1",
                status=status,
                error_code="" if status == "success" else "HTTP_503",
                message="" if status == "success" else "Service unavailable",
                latency_ms=latency,
            )
            for i, latency in enumerate(latencies)
        ]
    )
    if at is not None:
        SyncLogEntry.objects.filter(channel_id=channel_id, sku__startswith=sku_prefix).update(
            created_at=at
        )


def alert_open(channel_id: int | None, *, kind: str = "dead_channel", sku: str = "", **kw) -> Alert:
    return services.alert_raise(
        kind=kind,
        channel_id=channel_id,
        sku=sku,
        message=kw.pop("message", f"{kind} on channel {channel_id}"),
        severity=kw.pop("severity", Alert.Severity.CRITICAL),
        **kw,
    )
