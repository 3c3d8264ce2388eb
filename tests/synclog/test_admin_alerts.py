"""Admin pages for alerts, incidents and notifications, and the channel's alert
thresholds: actions with confirmation, the recovery report, no N+1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from channels_app.models import ChannelAlertSettings
from synclog import services
from synclog.models import Alert, Incident, Notification

pytestmark = pytest.mark.django_db


def some_alerts(channel_factory, n: int, prefix: str) -> list[Alert]:
    alerts = []
    for i in range(n):
        channel = channel_factory(name=f"{prefix}{i}")
        alerts.append(
            services.alert_raise(kind="dead_channel", channel_id=channel.pk, message="dead")
        )
        alerts.append(
            services.alert_raise(
                kind="repeated_failure", channel_id=channel.pk, sku=f"{prefix}-SKU-{i}", message="x"
            )
        )
    return alerts


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries)


@pytest.mark.parametrize("model", ["alert", "incident", "notification"])
def test_list_pages_make_the_same_queries_at_any_size(admin_client, channel_factory, model):
    url = reverse(f"admin:synclog_{model}_changelist")
    some_alerts(channel_factory, 2, "A")
    few = queries(admin_client, url)

    some_alerts(channel_factory, 8, "B")

    assert queries(admin_client, url) == few
    assert few <= 15


def test_alert_list_shows_badges_and_finds_by_sku(admin_client, channel_factory):
    some_alerts(channel_factory, 2, "A")
    url = reverse("admin:synclog_alert_changelist")

    page = admin_client.get(url, {"q": "A-SKU-1"}).content.decode()

    assert "A-SKU-1" in page
    assert "A-SKU-0" not in page
    everything = admin_client.get(url).content.decode()
    assert 'class="ps-badge ps-warn">Warning' in everything
    assert 'class="ps-badge ps-bad">Channel dead' in everything
    assert "Repeated push failure" in page


def test_acknowledge_asks_first_then_records_the_person(admin_client, admin_user, shop):
    alert = services.alert_raise(kind="dead_channel", channel_id=shop.pk, message="dead")
    url = reverse("admin:synclog_alert_changelist")
    picked = {"action": "acknowledge_action", ACTION_CHECKBOX_NAME: [alert.pk]}

    ask = admin_client.post(url, picked)
    assert "Yes, acknowledge selected alerts" in ask.content.decode()
    assert Alert.objects.get().acknowledged_at is None

    done = admin_client.post(url, {**picked, "confirm": "yes"}, follow=True)

    assert [str(m) for m in done.context["messages"]] == ["Acknowledged 1 alert(s)."]
    alert.refresh_from_db()
    assert alert.acknowledged_by == admin_user
    assert alert.acknowledged_at is not None


def test_resolve_action_records_who_and_notifies(admin_client, admin_user, shop, hook):
    alert = services.alert_raise(kind="dead_channel", channel_id=shop.pk, message="dead")
    url = reverse("admin:synclog_alert_changelist")

    done = admin_client.post(
        url,
        {"action": "resolve_action", ACTION_CHECKBOX_NAME: [alert.pk], "confirm": "yes"},
        follow=True,
    )

    assert [str(m) for m in done.context["messages"]] == ["Resolved 1 alert(s)."]
    alert.refresh_from_db()
    assert alert.resolved_by == admin_user
    assert Notification.objects.filter(alert=alert, event="resolved").count() == 2
    incident = Incident.objects.get()
    assert incident.recovered_at == alert.resolved_at


def test_incident_list_reports_recovery_time_per_channel(admin_client, shop, channel_factory):
    now = datetime.now(UTC)
    for minutes in (2, 4, 9):
        incident = Incident.objects.create(
            title="t",
            detected_at=now - timedelta(hours=minutes),
            recovered_at=now - timedelta(hours=minutes) + timedelta(minutes=minutes),
            ttr_seconds=minutes * 60,
        )
        incident.channels.add(shop)

    page = admin_client.get(reverse("admin:synclog_incident_changelist")).content.decode()

    assert 'id="recovery-report"' in page
    row = page.split("<td>Shop</td>")[1].split("</tr>")[0]
    cells = [c.split("</td>")[0] for c in row.split('<td class="num">')[1:]]
    assert cells == ["3", "3", "0", "5 min 00 s", "4 min 00 s", "9 min 00 s"]


def test_ops_edit_the_root_cause_and_who_wrote_it_is_kept(admin_client, admin_user, shop):
    services.alert_raise(kind="auth_failed", channel_id=shop.pk, message="401")
    incident = Incident.objects.get()
    url = reverse("admin:synclog_incident_change", args=[incident.pk])
    assert "Channel authentication failed" in admin_client.get(url).content.decode()

    response = admin_client.post(
        url,
        {
            "root_cause": "API key rotated on the Shopify side without telling us.",
            "alerts-TOTAL_FORMS": 1,
            "alerts-INITIAL_FORMS": 1,
            "alerts-0-id": Alert.objects.get().pk,
            "alerts-0-incident": incident.pk,
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    incident.refresh_from_db()
    assert incident.root_cause == "API key rotated on the Shopify side without telling us."
    assert incident.root_cause_by == admin_user
    assert incident.root_cause_at is not None


def test_failed_notifications_can_be_sent_again_from_the_admin(admin_client, shop, hook):
    services.alert_raise(kind="dead_channel", channel_id=shop.pk, message="dead")
    Notification.objects.update(status="failed", attempts=8, last_error="HTTP 404")
    url = reverse("admin:synclog_notification_changelist")

    page = admin_client.get(url, {"status__exact": "failed"}).content.decode()
    assert "HTTP 404" in page
    done = admin_client.post(
        url,
        {
            "action": "retry_action",
            ACTION_CHECKBOX_NAME: list(Notification.objects.values_list("pk", flat=True)),
            "confirm": "yes",
        },
        follow=True,
    )

    assert [str(m) for m in done.context["messages"]] == ["Queued 2 notification(s) again."]
    assert set(Notification.objects.values_list("status", "attempts")) == {("pending", 0)}


def test_alert_thresholds_are_edited_on_the_channel_page(admin_client, shop):
    url = reverse("admin:channels_app_channel_change", args=[shop.pk])
    page = admin_client.get(url).content.decode()
    assert "Alert thresholds" in page
    unchanged = {
        k: json.dumps(v) if isinstance(v, dict) else v
        for k, v in model_to_dict(shop).items()
        if v is not None and k not in ("locations", "credentials", "webhook_secret")
    }
    inlines = ("channel_locations", "listings", "listings-2", "webhook_secret_events")
    form = {
        **unchanged,
        **{f"{prefix}-{n}_FORMS": 0 for prefix in inlines for n in ("TOTAL", "INITIAL")},
        "alert_settings-TOTAL_FORMS": 1,
        "alert_settings-INITIAL_FORMS": 0,
        "alert_settings-0-dead_after": "00:02:00",
        "alert_settings-0-degraded_error_percent": 30,
        "alert_settings-0-degraded_window": "00:10:00",
        "alert_settings-0-degraded_min_attempts": 10,
        "alert_settings-0-repeated_failures": 2,
        "alert_settings-0-queue_depth_limit": 800,
        "alert_settings-0-top_sellers": 10,
        "alert_settings-0-top_seller_days": 14,
        "alert_settings-0-top_seller_safety_stock": 3,
        "alert_settings-0-bad_signature_threshold": 5,
        "alert_settings-0-bad_signature_window": "00:15:00",
    }

    response = admin_client.post(url, form)

    assert response.status_code == 302, response.content.decode()[:3000]
    saved = ChannelAlertSettings.objects.get(channel=shop)
    assert (saved.dead_after, saved.degraded_error_percent, saved.queue_depth_limit) == (
        timedelta(minutes=2),
        30,
        800,
    )
    bad = admin_client.post(url, {**form, "alert_settings-0-degraded_error_percent": 150})
    assert bad.status_code == 200
    assert ChannelAlertSettings.objects.get(channel=shop).degraded_error_percent == 30
