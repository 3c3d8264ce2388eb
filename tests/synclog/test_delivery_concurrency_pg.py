"""Notification delivery under real parallel connections (PostgreSQL lane): rows
claimed with SKIP LOCKED are sent by exactly one worker each."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import responses
from django.db import connection

from synclog import services
from synclog.models import Notification
from synclog.notifications import notifications_deliver_due
from tests.support.alerts import HOOK_URL

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_parallel_deliverers_send_every_notification_exactly_once(channel_factory, settings):
    settings.PIMSYNC_ALERT_WEBHOOK_URL = HOOK_URL
    settings.PIMSYNC_ALERT_EMAIL_ENABLED = False
    for i in range(60):
        services.alert_raise(
            kind="repeated_failure", channel_id=channel_factory().pk, sku=f"S{i}", message="x"
        )
    assert Notification.objects.count() == 60
    barrier = threading.Barrier(6)
    later = datetime(2100, 1, 1, tzinfo=UTC)

    def deliver(_: int) -> int:
        try:
            barrier.wait()
            sent = 0
            while (report := notifications_deliver_due(now=later, limit=5)).sent:
                sent += report.sent
            return sent
        finally:
            connection.close()

    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK_URL, status=200)
        with ThreadPoolExecutor(6) as pool:
            per_worker = list(pool.map(deliver, range(6)))
        posted = [json.loads(c.request.body)["alert"]["sku"] for c in rsps.calls]

    assert sum(per_worker) == 60
    assert sorted(posted) == sorted(f"S{i}" for i in range(60))  # each once
    assert sum(1 for n in per_worker if n) > 1, "the work was shared"
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}
