"""Health, alerts and notifications: a channel with stock, an ops person, a mocked
alert webhook, and helpers that say who was told what."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import responses
from django.contrib.auth.models import Group
from django.core import mail

from channels_app.health import health_evaluate
from channels_app.models import SyncMarker
from inventory import services
from synclog.models import Alert
from synclog.notifications import notifications_deliver_due

HOOK_URL = "https://hooks.example.test/services/pimsync"
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture
def hook(settings) -> Iterator[responses.RequestsMock]:
    """The alert webhook, answered 200 by a mock; its calls are the deliveries."""
    settings.PIMSYNC_ALERT_WEBHOOK_URL = HOOK_URL
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, HOOK_URL, json={"ok": True}, status=200)
        yield rsps


@pytest.fixture
def ops(db, django_user_model):
    user = django_user_model.objects.create_user("olga", "olga@ops.example", "pw-Very-Long-1")
    user.groups.add(Group.objects.get_or_create(name="ops")[0])
    return user


@pytest.fixture
def shop(db, channel_factory, channel_location_factory, location, variant_factory, listing_factory):
    """A Shopify channel fed by `location`; SKU-1 has 50 units there."""
    channel = channel_factory(name="Shop", slug="shop", platform="shopify")
    channel_location_factory(channel=channel, location=location)
    variant = variant_factory(sku="SKU-1")
    listing_factory(channel=channel, variant=variant)
    services.stock_adjust(
        variant=variant,
        location=location,
        quantity=50,
        reason="receive",
        source="t",
        idempotency_key="seed-SKU-1",
    )
    SyncMarker.objects.all().delete()  # the seed's own push is not what these tests look at
    return channel


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
