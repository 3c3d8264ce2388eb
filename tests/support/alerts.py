"""Alert helpers: delivering notifications, what was told, evaluating health."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import responses
from django.core import mail

from channels_app.health import health_evaluate
from channels_app.models import ChannelListing, SyncMarker
from synclog import services as synclog
from synclog.models import Alert
from synclog.notifications import notifications_deliver_due

HOOK_URL = "https://hooks.example.test/services/pimsync"
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def deliver() -> None:
    """What the delivery task does, with every backoff already passed."""
    notifications_deliver_due(now=FAR_FUTURE)


def told(hook: responses.RequestsMock) -> list[tuple[str, str, str]]:
    """(transport, event, kind) of everything delivered so far, e-mails then webhooks."""
    sent = []
    for message in mail.outbox:
        headers = message.extra_headers
        sent.append(("email", headers["X-Pimsync-Event"], headers["X-Pimsync-Alert-Kind"]))
    for call in hook.calls:
        body = json.loads(call.request.body)
        sent.append(("webhook", body["event"], body["alert"]["kind"]))
    return sent


def told_events(hook: responses.RequestsMock) -> list[tuple[str, str]]:
    """(transport, event) of everything delivered so far."""
    return [(t, e) for t, e, _ in told(hook)]


def open_alerts(kind: str) -> list[Alert]:
    return list(Alert.objects.filter(kind=kind, resolved_at__isnull=True))


def evaluate(now: datetime | None = None, *, minutes: float = 0):
    """One health evaluation, at ``now`` plus ``minutes``."""
    base = now or datetime.now(UTC)
    return health_evaluate(now=base + timedelta(minutes=minutes))


def stuck_marker(listing: ChannelListing, *, now: datetime, minutes: float, attempts: int = 1):
    """A change first made ``minutes`` ago that has failed ``attempts`` times."""
    since = now - timedelta(minutes=minutes)
    return SyncMarker.objects.create(
        listing=listing,
        channel=listing.channel,
        kind="quantity",
        first_dirty_at=since,
        last_dirty_at=since,
        due_at=now + timedelta(seconds=30),  # waiting for its retry backoff
        change_token="t",
        attempts=attempts,
        last_error_code="503",
    )


def record(channel, sku: str, status: str, n: int = 1, latency_ms: int | None = None) -> None:
    synclog.sync_log_record(
        [
            synclog.Attempt(channel.pk, sku, None, "inventory", "5", status, latency_ms=latency_ms)
            for _ in range(n)
        ]
    )
