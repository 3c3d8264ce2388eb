"""The ops dashboard in a real headless browser over the seeded demo: an ops user
logs in, sees the four channel cards and their charts, acknowledges an alert by
clicking, and the page refreshes itself. A screenshot is saved for people."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from channels_app.models import Channel
from pimsync.demo import demo_seed
from synclog.models import Alert
from tests.support.browser import SCREENSHOTS, own_db_connections_closed
from tests.support.ops_data import alert_open, attempts_seed, snapshots_seed

# Also `e2e`: `make test` runs it in its end-to-end pass, whose file database lets the
# live server's threads and the test each use their own connection.
pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "ops-Very-Long-Pass-1"


def ops_history_seed() -> dict[str, Channel]:
    """A day of health history and a recent hour of pushes for the four demo channels."""
    now = timezone.now()
    rng = random.Random(7)
    channels = {c.platform: c for c in Channel.objects.all()}
    shapes = {
        "shopify": {"state": "healthy", "pushes": 40, "errors": 0, "p50": 600, "p95": 2400},
        "woocommerce": {"state": "degraded", "pushes": 25, "errors": 3, "p50": 900, "p95": 5200},
        "ebay": {"state": "circuit_open", "pushes": 18, "errors": 2, "p50": 1200, "p95": 6800},
        "amazon": {"state": "healthy", "pushes": 12, "errors": 0, "p50": 2100, "p95": 9000},
    }
    for platform, shape in shapes.items():
        channel = channels[platform]
        snapshots_seed(channel.pk, now=now, rng=rng, queue_depth=rng.randint(0, 40), **shape)
        attempts_seed(
            channel.pk,
            latencies=[int(shape["p50"] * rng.uniform(0.3, 2.5)) for _ in range(60)],
            sku_prefix=f"OK-{platform}",
        )
    attempts_seed(channels["ebay"].pk, latencies=[None] * 3, status="dead", sku_prefix="TEE-BLACK")
    attempts_seed(
        channels["woocommerce"].pk, latencies=[None] * 2, status="failed", sku_prefix="CAP-NAVY"
    )
    alert_open(
        channels["ebay"].pk,
        kind="circuit_open",
        message="eBay (sandbox): 5 consecutive failed calls, circuit open for 30 s",
    )
    alert_open(
        channels["woocommerce"].pk,
        kind="degraded",
        severity="warning",
        message="WooCommerce (sandbox): 11% of attempts failed in the last 10 minutes",
    )
    alert_open(
        channels["ebay"].pk,
        kind="repeated_failure",
        sku="TEE-BLACK-0",
        severity="warning",
        message="TEE-BLACK-0 failed twice in a row on eBay (sandbox): 400 invalid quantity",
    )
    return channels


def ops_user_create():
    user = get_user_model().objects.create_user("ops", password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_ops_dashboard"),
        Permission.objects.get(codename="change_alert"),
    )
    return user


def test_ops_dashboard_in_a_real_browser(live_server, browser_page, settings):
    settings.PIMSYNC_DASHBOARD_REFRESH_SECONDS = 1
    with own_db_connections_closed():
        ops_dashboard_walk(live_server, browser_page)


def ops_dashboard_walk(live_server, page) -> None:
    demo_seed()
    channels = ops_history_seed()
    ops_user_create()
    outside_requests: list[str] = []
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith(live_server.url)
            else outside_requests.append(request.url)
        ),
    )

    # Given an ops user logged in through the admin login form
    page.goto(f"{live_server.url}{reverse('admin:login')}?next={reverse('admin:index')}")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}{reverse('admin:index')}")

    # When they follow the dashboard link from the admin index
    page.click(f"a[href='{reverse('admin:synclog_opsdashboard_changelist')}']")

    # Then the five channel cards and their charts show, with the snapshot states
    cards = page.locator(".ps-card")
    cards.first.wait_for()
    assert cards.count() == 5
    for card in cards.all():
        assert card.is_visible()
    assert (
        page.locator(
            ".ps-card[data-channel='{}'] [data-state]".format(channels["ebay"].pk)
        ).inner_text()
        == "Circuit open"
    )
    charts = page.locator("svg.ps-chart")
    assert charts.count() == 10
    for chart in charts.all():
        assert chart.is_visible()
        assert chart.bounding_box()["height"] > 60
    assert page.locator("svg.ps-chart rect.ps-bar-ok").count() > 0
    assert page.locator("svg.ps-chart polyline.ps-line-p95").count() > 0
    assert page.locator("#ps-failures a", has_text="TEE-BLACK-0").count() == 1

    # When they acknowledge the circuit-open alert by clicking its button
    alert = Alert.objects.get(kind="circuit_open")
    row = page.locator(f"tr[data-alert='{alert.pk}']")
    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_load_state()

    # Then the page says so, the row shows who acknowledged it, and so does the database
    assert (
        "Acknowledged alert “Circuit breaker open” (eBay (sandbox))."
        in page.locator("ul.messagelist").inner_text()
    )
    row = page.locator(f"tr[data-alert='{alert.pk}']")
    assert row.locator(".ps-alert-state").inner_text().split() == ["acknowledged", "by", "ops"]
    assert row.get_by_role("button", name="Acknowledge").count() == 0
    alert.refresh_from_db()
    assert alert.acknowledged_by.username == "ops"
    assert alert.acknowledged_at is not None

    # And the page refreshes itself: a new alert appears without a reload
    fresh = alert_open(
        channels["amazon"].pk,
        kind="queue_depth",
        severity="warning",
        message="Amazon (sandbox): 1,200 listings waiting to be pushed",
        now=timezone.now() - timedelta(seconds=1),
    )
    page.locator(f"tr[data-alert='{fresh.pk}']").wait_for(timeout=10_000)
    assert "ps-js" in page.locator("html").get_attribute("class")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "ops-dashboard.png"), full_page=True)
    assert outside_requests == []
