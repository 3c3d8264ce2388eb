"""The notification outbox: one row per alert state change and transport, written
in the change's transaction, delivered by a task with retries, never twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.db import transaction

from synclog import services
from synclog.models import Alert, Notification
from synclog.notifications import notifications_deliver_due, notifications_retry, ops_recipients
from synclog.tasks import notifications_deliver_task
from tests.support.alerts import FAR_FUTURE, HOOK_URL, deliver

pytestmark = pytest.mark.django_db


def raise_dead(channel, **extra) -> Alert:
    return services.alert_raise(
        kind="dead_channel",
        channel_id=channel.pk,
        message="no success",
        severity="critical",
        **extra,
    )


def test_open_repeat_resolve_reopen_records_one_row_per_transport_per_change(
    shop, ops, hook, settings
):
    alert = raise_dead(shop)
    raise_dead(shop)  # a counted repeat tells nobody
    services.alert_resolve(kind="dead_channel", channel_id=shop.pk)
    again = raise_dead(shop)  # within the reopen window: the same alert, reopened

    rows = list(
        Notification.objects.order_by("pk").values_list(
            "alert_id", "state_version", "event", "transport"
        )
    )
    assert again.pk == alert.pk
    assert (again.count, again.reopened_count, again.state_version) == (3, 1, 3)
    assert rows == [
        (alert.pk, 1, "opened", "email"),
        (alert.pk, 1, "opened", "webhook"),
        (alert.pk, 2, "resolved", "email"),
        (alert.pk, 2, "resolved", "webhook"),
        (alert.pk, 3, "reopened", "email"),
        (alert.pk, 3, "reopened", "webhook"),
    ]


def test_outside_the_reopen_window_a_new_alert_opens(shop, hook, settings):
    settings.PIMSYNC_ALERT_REOPEN_SECONDS = 60
    now = datetime.now(UTC)
    first = services.alert_raise(kind="degraded", channel_id=shop.pk, message="m", now=now)
    services.alert_resolve(kind="degraded", channel_id=shop.pk, now=now)

    second = services.alert_raise(
        kind="degraded", channel_id=shop.pk, message="m", now=now + timedelta(minutes=5)
    )

    assert second.pk != first.pk
    assert Notification.objects.filter(alert=second, event="opened").count() == 2


def test_a_rolled_back_state_change_tells_nobody(shop, ops, hook):
    def fails_after_raising() -> None:
        with transaction.atomic():
            raise_dead(shop)
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        fails_after_raising()

    deliver()

    assert Notification.objects.count() == 0
    assert mail.outbox == []


def test_delivery_sends_each_row_once_even_when_run_again(shop, ops, hook):
    raise_dead(shop)

    first = notifications_deliver_due(now=FAR_FUTURE)
    second = notifications_deliver_due(now=FAR_FUTURE)

    assert (first.sent, second.sent) == (2, 0)
    assert len(mail.outbox) == 1
    assert len(hook.calls) == 1
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


def test_a_row_claimed_by_another_worker_is_not_sent_until_its_lease_runs_out(shop, ops, hook):
    raise_dead(shop)
    now = datetime.now(UTC)
    Notification.objects.update(status="sending", claimed_until=now + timedelta(minutes=5))

    assert notifications_deliver_due(now=now).sent == 0
    assert notifications_deliver_due(now=now + timedelta(minutes=6)).sent == 2  # worker died


def test_the_webhook_body_has_the_alert_and_a_slack_text(shop, ops, hook, settings):
    settings.PIMSYNC_ALERT_LINK_BASE_URL = "https://pim.example.com"
    alert = services.alert_raise(
        kind="repeated_failure", channel_id=shop.pk, sku="SKU-1", message="503 twice"
    )

    deliver()

    call = hook.calls[0]
    body = json.loads(call.request.body)
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.headers["Idempotency-Key"].startswith("pimsync-notification-")
    assert body["event"] == "opened"
    assert body["alert"] | {"first_seen": None, "last_seen": None} == {
        "id": alert.pk,
        "kind": "repeated_failure",
        "kind_label": "Repeated push failure",
        "severity": "warning",
        "channel_id": shop.pk,
        "channel": "Shop",
        "sku": "SKU-1",
        "message": "503 twice",
        "count": 1,
        "first_seen": None,
        "last_seen": None,
        "resolved_at": None,
        "incident_id": None,
        "url": f"https://pim.example.com/admin/synclog/alert/{alert.pk}/change/",
    }
    assert body["text"].startswith(":rotating_light: [WARNING] OPEN: Repeated push failure on Shop")
    assert "SKU SKU-1 — 503 twice" in body["text"]
    message = mail.outbox[0]
    assert message.subject == "[pimsync] OPENED warning: Repeated push failure — Shop SKU-1"
    assert "503 twice" in message.body
    assert f"https://pim.example.com/admin/synclog/alert/{alert.pk}/change/" in message.body


def test_a_failing_webhook_is_retried_with_backoff_then_sent(shop, ops, settings):
    settings.PIMSYNC_ALERT_WEBHOOK_URL = HOOK_URL
    settings.PIMSYNC_ALERT_NOTIFY_RETRY_BASE_SECONDS = 30
    raise_dead(shop)
    now = datetime.now(UTC)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK_URL, status=503)
        report = notifications_deliver_due(now=now)
    row = Notification.objects.get(transport="webhook")
    assert (report.sent, report.retrying) == (1, 1)  # the e-mail went out
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 503")
    assert now + timedelta(seconds=23) <= row.next_attempt_at <= now + timedelta(seconds=37)

    assert notifications_deliver_due(now=now + timedelta(seconds=10)).sent == 0  # not yet
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK_URL, status=200)
        assert notifications_deliver_due(now=now + timedelta(minutes=2)).sent == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_refused_webhook_fails_at_once_and_can_be_sent_again(shop, ops, settings):
    settings.PIMSYNC_ALERT_WEBHOOK_URL = HOOK_URL
    raise_dead(shop)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK_URL, status=404, body="no such hook")
        notifications_deliver_due(now=FAR_FUTURE)
    row = Notification.objects.get(transport="webhook")
    assert (row.status, row.attempts) == ("failed", 1)
    assert "HTTP 404: no such hook" in row.last_error

    assert notifications_retry(notification_ids=[row.pk]) == 1
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK_URL, status=200)
        notifications_deliver_due(now=FAR_FUTURE)
    row.refresh_from_db()
    assert row.status == "sent"


def test_retries_stop_after_the_maximum(shop, ops, settings):
    settings.PIMSYNC_ALERT_WEBHOOK_URL = HOOK_URL
    settings.PIMSYNC_ALERT_EMAIL_ENABLED = False
    settings.PIMSYNC_ALERT_NOTIFY_MAX_ATTEMPTS = 3
    raise_dead(shop)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, HOOK_URL, body=requests.ConnectionError("refused"))
        for hour in range(5):
            notifications_deliver_due(now=FAR_FUTURE + timedelta(hours=hour))
        assert len(rsps.calls) == 3
    row = Notification.objects.get()
    assert (row.status, row.attempts) == ("failed", 3)


def test_recipients_are_the_ops_group_and_staff_who_may_see_the_ops_dashboard(
    ops, django_user_model
):
    perm = Permission.objects.get(codename="view_ops_dashboard")
    direct = django_user_model.objects.create_user("d", "d@x.test", is_staff=True)
    direct.user_permissions.add(perm)
    via_group = django_user_model.objects.create_user("g", "g@x.test", is_staff=True)
    watchers = Group.objects.create(name="watchers")
    watchers.permissions.add(perm)
    via_group.groups.add(watchers)
    django_user_model.objects.create_superuser("root", "root@x.test", "pw-Very-Long-1")
    django_user_model.objects.create_user("staff", "staff@x.test", is_staff=True)  # no perm
    not_staff = django_user_model.objects.create_user("p", "p@x.test")
    not_staff.user_permissions.add(perm)
    gone = django_user_model.objects.create_user("gone", "gone@x.test", is_active=False)
    gone.groups.add(Group.objects.get(name="ops"))

    assert ops_recipients() == ["d@x.test", "g@x.test", "olga@ops.example", "root@x.test"]


def test_with_nobody_to_tell_the_email_is_skipped_not_retried(shop, hook, django_user_model):
    raise_dead(shop)

    deliver()

    email = Notification.objects.get(transport="email")
    assert (email.status, email.attempts) == ("skipped", 1)
    assert mail.outbox == []
    assert Notification.objects.get(transport="webhook").status == "sent"


def test_info_alerts_notify_nobody_by_default(shop, hook):
    services.alert_raise(
        kind="unmatched_sku", channel_id=shop.pk, sku="X", message="m", severity="info"
    )

    assert Notification.objects.count() == 0


def test_an_alert_raised_by_other_code_notifies_too(shop, ops, hook):
    from channels_app.sync import breaker

    for _ in range(5):
        breaker.breaker_record_failure(shop.pk, now=datetime.now(UTC), reason="503")

    result = notifications_deliver_task.apply().get()

    assert result["sent"] == 2
    assert [m.extra_headers["X-Pimsync-Alert-Kind"] for m in mail.outbox] == ["circuit_open"]
