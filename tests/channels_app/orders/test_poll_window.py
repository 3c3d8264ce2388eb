"""A poll whose cursor lies beyond what the platform serves (eBay: two years) stops
loudly - a poll_gap alert, the cursor kept - and never skips orders silently; a
person restarts it from a date they choose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin import helpers
from django.urls import reverse

from channels_app.connectors.http import format_timestamp
from channels_app.models import ChannelSyncState, InboundEvent
from channels_app.orders.poll_window import channel_poll_restart
from channels_app.orders.polling import channel_poll
from synclog.models import Alert
from tests.support.sandbox import EBAY_TOKEN, control

pytestmark = pytest.mark.django_db


@pytest.fixture
def ebay_channel(sandbox, channel_factory):
    return channel_factory(
        platform="ebay",
        name="eBay shop",
        base_url=sandbox.platform_url("ebay"),
        credentials={"access_token": EBAY_TOKEN},
        platform_config={"marketplace_id": "EBAY_US", "rate_limit_per_second": 0},
    )


def stored_cursor(channel, cursor: str) -> None:
    ChannelSyncState.objects.update_or_create(channel=channel, defaults={"poll_cursor": cursor})


def test_a_cursor_beyond_two_years_stops_the_poll_with_an_alert(sandbox, ebay_channel) -> None:
    # given: pimsync last polled this channel three years ago
    old = format_timestamp(datetime.now(UTC) - timedelta(days=3 * 365))
    stored_cursor(ebay_channel, old)
    # when
    report = channel_poll(ebay_channel.pk)
    # then: no call was made, nothing skipped, the cursor kept, an alert says what to do
    assert report.error.startswith("permanent poll_window_exceeded: eBay serves orders")
    assert sandbox.platform("ebay").counters.snapshot()["calls"] == 0
    assert ChannelSyncState.objects.get(channel=ebay_channel).poll_cursor == old
    alert = Alert.objects.get(kind=Alert.Kind.POLL_GAP, channel=ebay_channel)
    assert (alert.severity, alert.resolved_at) == (Alert.Severity.CRITICAL, None)
    assert alert.message.startswith("Order polling of eBay shop is stopped: eBay serves orders")
    assert "move the channel's poll cursor" in alert.message
    # and the next refused poll counts on the same alert
    channel_poll(ebay_channel.pk)
    assert Alert.objects.get(kind=Alert.Kind.POLL_GAP).count == 2


def test_a_cursor_within_two_years_reads_every_change_since_it(sandbox, ebay_channel) -> None:
    control(sandbox.url, "POST", "/_control/seed", {"ebay": [{"sku": "E", "price": "1"}]})
    order = sandbox.platform("ebay").create_order([{"sku": "E", "quantity": 1}])
    stored_cursor(ebay_channel, format_timestamp(datetime.now(UTC) - timedelta(days=400)))

    report = channel_poll(ebay_channel.pk)

    assert (report.error, report.orders) == ("", 1)
    assert not Alert.objects.filter(kind=Alert.Kind.POLL_GAP).exists()
    assert InboundEvent.objects.filter(channel=ebay_channel, external_order_id=order.id).exists()


def test_restarting_moves_the_cursor_and_resolves_the_alert(sandbox, ebay_channel) -> None:
    stored_cursor(ebay_channel, "2020-01-01T00:00:00Z")
    channel_poll(ebay_channel.pk)
    since = datetime.now(UTC) - timedelta(days=30)

    cursor = channel_poll_restart(channel=ebay_channel, since=since)

    assert cursor == format_timestamp(since)
    assert ChannelSyncState.objects.get(channel=ebay_channel).poll_cursor == cursor
    assert Alert.objects.get(kind=Alert.Kind.POLL_GAP).resolved_at is not None
    assert channel_poll(ebay_channel.pk).error == ""


def test_the_channel_admin_restarts_polling_from_a_date(admin_client, ebay_channel) -> None:
    stored_cursor(ebay_channel, "2020-01-01T00:00:00Z")
    url = reverse("admin:channels_app_channel_changelist")
    selection = {"action": "poll_restart_action", helpers.ACTION_CHECKBOX_NAME: [ebay_channel.pk]}

    asked = admin_client.post(url, selection)
    done = admin_client.post(
        url, {**selection, "confirm": "yes", "since": "2026-11-01 00:00"}, follow=True
    )

    assert "Poll orders changed since" in asked.content.decode()
    assert [str(m) for m in done.context["messages"]] == [
        "Order polling of 1 channel(s) restarts from 2026-11-01 00:00."
    ]
    assert ChannelSyncState.objects.get(channel=ebay_channel).poll_cursor == "2026-11-01T00:00:00Z"
