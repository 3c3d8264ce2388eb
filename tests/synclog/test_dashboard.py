"""The ops dashboard admin page: who may see it, what it shows, the alert buttons,
the refresh fragment, and a page load whose query count does not grow with data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from synclog.models import Alert, ChannelHealthSnapshot
from tests.support.ops_data import alert_open, attempts_seed, snapshots_seed

pytestmark = pytest.mark.django_db

DASHBOARD = "admin:synclog_opsdashboard_changelist"
BODY = "admin:synclog_opsdashboard_body"


def alert_url(alert: Alert, action: str) -> str:
    return reverse(
        "admin:synclog_opsdashboard_alert", kwargs={"alert_id": alert.pk, "action": action}
    )


@pytest.fixture
def ops_user(django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw-Very-Long-1", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_ops_dashboard"),
        Permission.objects.get(codename="change_alert"),
    )
    return user


@pytest.fixture
def ops_client(client, ops_user):
    client.force_login(ops_user)
    return client


def test_staff_without_the_permission_get_403_and_anonymous_the_login(client, django_user_model):
    url = reverse(DASHBOARD)
    assert client.get(url).status_code == 302
    staff = django_user_model.objects.create_user("clerk", password="x" * 12, is_staff=True)
    client.force_login(staff)
    assert client.get(url).status_code == 403
    assert client.get(reverse(BODY)).status_code == 403
    alert = alert_open(None, kind="bad_signature")
    assert client.post(alert_url(alert, "acknowledge")).status_code == 403
    assert Alert.objects.get(pk=alert.pk).acknowledged_at is None


def test_superuser_and_ops_user_see_it_linked_from_the_admin_index(admin_client, ops_client):
    for c in (admin_client, ops_client):
        index = c.get(reverse("admin:index"))
        assert reverse(DASHBOARD).encode() in index.content
        assert c.get(reverse(DASHBOARD)).status_code == 200


def test_dashboard_shows_cards_charts_alerts_and_failures(ops_client, channel_factory):
    now = timezone.now()
    shop = channel_factory(name="Shop A")
    woo = channel_factory(name="Woo B", platform="woocommerce")
    snapshots_seed(shop.pk, now=now, state="degraded", queue_depth=17, errors=1)
    attempts_seed(shop.pk, latencies=[120, 340])
    attempts_seed(woo.pk, latencies=[None], status="dead", sku_prefix="TEE-RED")
    alert = alert_open(shop.pk, kind="degraded", message="error rate 40% in 10 min")

    response = ops_client.get(reverse(DASHBOARD))

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('class="ps-card ') == 2
    assert 'data-state="degraded"' in html
    assert 'data-state="unknown"' in html
    assert "120 / 340 ms" in html
    assert html.count('<svg class="ps-chart"') == 4
    assert "error rate 40% in 10 min" in html
    assert alert_url(alert, "acknowledge") in html
    history = reverse("admin:synclog_synclogentry_changelist")
    assert f"{history}?sku=TEE-RED-0&amp;channel__id__exact={woo.pk}" in html
    assert "ops_dashboard.js" in html
    assert "cdn" not in html.lower()
    assert "https://" not in html


def test_sync_log_link_of_a_failure_filters_to_that_sku(admin_client, channel_factory):
    channel = channel_factory()
    attempts_seed(channel.pk, latencies=[None], status="failed", sku_prefix="X")
    attempts_seed(channel.pk, latencies=[None], status="failed", sku_prefix="Y")
    rows = admin_client.get(reverse(DASHBOARD)).context["failures"]
    link = next(r["history_url"] for r in rows if r["entry"].sku == "X-0")

    response = admin_client.get(link)

    assert response.status_code == 200
    assert list(response.context["cl"].result_list.values_list("sku", flat=True)) == ["X-0"]


def test_acknowledge_records_who_and_says_so(ops_client, ops_user, channel_factory):
    alert = alert_open(channel_factory(name="Shop").pk)

    response = ops_client.post(alert_url(alert, "acknowledge"), follow=True)

    alert.refresh_from_db()
    assert alert.acknowledged_by == ops_user
    assert alert.acknowledged_at is not None
    assert alert.resolved_at is None
    assert response.redirect_chain[-1][0] == reverse(DASHBOARD)
    assert [str(m) for m in response.context["messages"]] == [
        "Acknowledged alert “Channel dead” (Shop)."
    ]
    again = ops_client.post(alert_url(alert, "acknowledge"), follow=True)
    assert [str(m) for m in again.context["messages"]] == [
        "Alert “Channel dead” (Shop) was already acknowledged by ops."
    ]


def test_resolve_closes_only_that_alert(ops_client, channel_factory):
    channel = channel_factory(name="Shop")
    alert = alert_open(channel.pk, kind="repeated_failure", sku="A-1")
    other = alert_open(channel.pk, kind="repeated_failure", sku="B-2")

    response = ops_client.post(alert_url(alert, "resolve"), follow=True)

    assert Alert.objects.get(pk=alert.pk).resolved_at is not None
    assert Alert.objects.get(pk=other.pk).resolved_at is None
    assert "Resolved alert “Repeated push failure” (Shop, A-1)." in str(
        next(iter(response.context["messages"]))
    )
    again = ops_client.post(alert_url(alert, "resolve"), follow=True)
    assert "already resolved" in str(next(iter(again.context["messages"])))


def test_alert_buttons_refuse_get_unknown_actions_and_missing_alerts(ops_client, channel_factory):
    alert = alert_open(channel_factory().pk)
    assert ops_client.get(alert_url(alert, "acknowledge")).status_code == 405
    response = ops_client.post(alert_url(alert, "explode"), follow=True)
    assert "Unknown alert action" in str(next(iter(response.context["messages"])))
    gone = ops_client.post(
        reverse(
            "admin:synclog_opsdashboard_alert", kwargs={"alert_id": 999999, "action": "resolve"}
        ),
        follow=True,
    )
    assert "does not exist" in str(next(iter(gone.context["messages"])))
    assert Alert.objects.get(pk=alert.pk).acknowledged_at is None


def test_alert_buttons_need_a_csrf_token(ops_user, channel_factory):
    from django.test import Client

    alert = alert_open(channel_factory().pk)
    client = Client(enforce_csrf_checks=True)
    client.force_login(ops_user)
    assert client.post(alert_url(alert, "acknowledge")).status_code == 403
    assert Alert.objects.get(pk=alert.pk).acknowledged_at is None


def test_viewer_without_change_alert_sees_no_buttons(client, django_user_model, channel_factory):
    viewer = django_user_model.objects.create_user("viewer", password="x" * 12, is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_ops_dashboard"))
    client.force_login(viewer)
    alert = alert_open(channel_factory().pk)

    html = client.get(reverse(DASHBOARD)).content.decode()

    assert alert.message in html
    assert alert_url(alert, "acknowledge") not in html
    assert client.post(alert_url(alert, "acknowledge")).status_code == 403


def test_body_fragment_is_the_page_body_without_the_admin_chrome(ops_client, channel_factory):
    channel_factory(name="Shop")
    response = ops_client.get(reverse(BODY))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div class="ps-ops-body"')
    assert "Shop" in html
    assert 'id="header"' not in html
    assert "no-cache" in response["Cache-Control"]


def grow(channel_factory, now, n):
    for i in range(n):
        channel = channel_factory(name=f"Grown {i}")
        snapshots_seed(channel.pk, now=now, hours=3, every_minutes=10, errors=1)
        attempts_seed(channel.pk, latencies=[10, 20, 30], sku_prefix=f"G{channel.pk}")
        attempts_seed(channel.pk, latencies=[None] * 3, status="dead", sku_prefix=f"D{channel.pk}")
        alert_open(channel.pk, kind="degraded")
        alert_open(channel.pk, kind="repeated_failure", sku=f"G{channel.pk}-0")
    ChannelHealthSnapshot.objects.filter(state="dead").update(state="healthy")


def page_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url_name", [DASHBOARD, BODY])
def test_page_load_makes_the_same_queries_whatever_the_amount_of_data(
    ops_client, channel_factory, url_name, django_assert_max_num_queries
):
    now = timezone.now() - timedelta(seconds=5)
    url = reverse(url_name)
    grow(channel_factory, now, 1)
    channel_factory(name="No snapshot yet")
    ops_client.get(url)  # warm the session and permission caches
    small = page_queries(ops_client, url)

    grow(channel_factory, now, 6)
    large = page_queries(ops_client, url)

    assert small == large
    with django_assert_max_num_queries(16):
        ops_client.get(url)


def test_card_links_the_snapshot_it_shows_read_only(
    ops_client, client, django_user_model, channel_factory
):
    channel = channel_factory(name="Shop")
    snapshot = ChannelHealthSnapshot.objects.create(
        channel=channel, taken_at=timezone.now(), state="dead", detail="no success for 15 min"
    )
    url = reverse("admin:synclog_opsdashboard_change", args=[snapshot.pk])

    assert url in ops_client.get(reverse(DASHBOARD)).content.decode()
    page = ops_client.get(url)
    assert page.status_code == 200
    assert "no success for 15 min" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert ops_client.post(url, {"state": "healthy"}).status_code == 403

    clerk = django_user_model.objects.create_user("clerk", password="x" * 12, is_staff=True)
    client.force_login(clerk)
    assert client.get(url).status_code == 403
