"""The evaluation itself: snapshots, states, ownership, cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels_app.health import Thresholds, health_evaluate
from channels_app.models import (
    ChannelAlertSettings,
    ChannelListing,
    ChannelSyncState,
    WebhookRefusalCount,
)
from channels_app.tasks import channel_health_evaluate_task
from synclog import services as synclog
from synclog.models import Alert, ChannelHealthSnapshot
from tests.support.alerts import evaluate, open_alerts, record, stuck_marker

pytestmark = pytest.mark.django_db


def test_a_snapshot_counts_the_minute_and_its_latency_percentiles(shop, hook):
    for ms in range(100, 2001, 100):  # 20 successes: 100 … 2000 ms
        record(shop, "SKU-1", "success", latency_ms=ms)
    record(shop, "SKU-1", "retrying", n=3)
    now = datetime.now(UTC)
    stuck_marker(shop.listings.get(), now=now, minutes=2)

    health_evaluate(now=now)

    snap = ChannelHealthSnapshot.objects.get(channel=shop)
    assert (snap.pushes, snap.errors) == (20, 3)
    assert (snap.latency_p50_ms, snap.latency_p95_ms) == (1000, 1900)  # nearest rank
    assert (snap.queue_depth, snap.oldest_pending_seconds) == (1, 120)
    assert snap.state == "healthy"
    assert snap.last_success_at is not None
    assert snap.last_success_at <= now


def test_the_next_snapshot_counts_only_what_came_after_and_keeps_the_last_success(shop, hook):
    record(shop, "SKU-1", "success", latency_ms=40)
    now = datetime.now(UTC)
    health_evaluate(now=now)
    first = ChannelHealthSnapshot.objects.get()

    health_evaluate(now=now + timedelta(minutes=60))  # long after the log window

    latest = ChannelHealthSnapshot.objects.latest()
    assert (latest.pushes, latest.errors, latest.latency_p50_ms) == (0, 0, None)
    assert latest.last_success_at == first.last_success_at


def test_one_snapshot_per_channel_per_run_with_the_most_severe_state(shop, hook, channel_factory):
    off = channel_factory(name="Off", is_enabled=False)
    locked = channel_factory(name="Locked")
    ChannelSyncState.objects.create(
        channel=locked, auth_failed_at=datetime.now(UTC), breaker="open"
    )
    tripped = channel_factory(name="Tripped")
    ChannelSyncState.objects.create(channel=tripped, breaker="half_open", consecutive_failures=6)

    report = health_evaluate()

    assert report.states == {
        shop.pk: "healthy",
        off.pk: "disabled",
        locked.pk: "auth_failed",  # auth outranks the open circuit
        tripped.pk: "circuit_open",
    }
    assert ChannelHealthSnapshot.objects.count() == 4
    assert "6 failed calls" in ChannelHealthSnapshot.objects.get(channel=tripped).detail


def test_disabling_a_dead_channel_resolves_its_dead_alert(shop, hook):
    now = datetime.now(UTC)
    stuck_marker(shop.listings.get(), now=now, minutes=10)
    evaluate(now)
    assert len(open_alerts("dead_channel")) == 1

    shop.is_enabled = False
    shop.save()
    evaluate(now, minutes=1)

    assert open_alerts("dead_channel") == []


def test_alerts_others_raised_and_the_evaluator_cannot_see_are_left_alone(shop, hook):
    kept = [
        synclog.alert_raise(kind="drift", channel_id=shop.pk, sku="SKU-1", message="d"),
        synclog.alert_raise(kind="unmatched_sku", channel_id=shop.pk, sku="X", message="u"),
        synclog.alert_raise(kind="repeated_failure", channel_id=shop.pk, sku="A, B", message="f"),
    ]

    evaluate(minutes=5)

    assert Alert.objects.filter(pk__in=[a.pk for a in kept], resolved_at__isnull=True).count() == 3


def test_thresholds_default_to_the_settings_and_a_row_overrides_them(shop, settings):
    settings.PIMSYNC_HEALTH_DEAD_AFTER_SECONDS = 90
    assert Thresholds.of(shop).dead_after == timedelta(seconds=90)

    ChannelAlertSettings.objects.create(channel=shop, dead_after=timedelta(minutes=2))
    shop = type(shop).objects.select_related("alert_settings").get(pk=shop.pk)

    assert Thresholds.of(shop).dead_after == timedelta(minutes=2)
    assert Thresholds.of(shop).queue_depth_limit == settings.PIMSYNC_HEALTH_QUEUE_DEPTH_LIMIT


def _grow(shop, variant_factory, listing_factory, n: int) -> None:
    now = datetime.now(UTC)
    for i in range(n):
        listing = listing_factory(channel=shop, variant=variant_factory())
        stuck_marker(listing, now=now, minutes=1, attempts=i % 3)
        record(shop, listing.variant.sku, "success" if i % 4 else "retrying", latency_ms=i)


def _queries() -> int:
    """Queries of a steady-state run: the run before it opened whatever the new
    rows warrant (opening costs a few queries per alert, once)."""
    health_evaluate(now=datetime.now(UTC))
    with CaptureQueriesContext(connection) as ctx:
        health_evaluate(now=datetime.now(UTC) + timedelta(seconds=1))
    return len(ctx.captured_queries)


def test_evaluation_cost_does_not_grow_with_the_catalog(
    shop, hook, variant_factory, listing_factory, channel_factory
):
    channel_factory(name="Second")
    _grow(shop, variant_factory, listing_factory, 10)
    health_evaluate()  # first snapshot: the counters below start here
    _grow(shop, variant_factory, listing_factory, 10)
    small = _queries()

    _grow(shop, variant_factory, listing_factory, 150)
    large = _queries()

    assert ChannelListing.objects.filter(channel=shop).count() > 150
    assert large == small
    assert small <= 30, small


def test_the_beat_runs_the_evaluation_every_minute(shop, hook):
    schedule = settings.CELERY_BEAT_SCHEDULE["health-evaluate"]
    assert schedule["task"] == "channels_app.tasks.channel_health_evaluate_task"
    assert schedule["schedule"] == 60.0
    assert "synclog.tasks.notifications_deliver_task" in {
        s["task"] for s in settings.CELERY_BEAT_SCHEDULE.values()
    }

    result = channel_health_evaluate_task.apply().get()

    assert result["states"] == {shop.pk: "healthy"}
    assert ChannelHealthSnapshot.objects.filter(channel=shop).count() == 1
    # A second beat message right behind the first (a backlog) does not run again.
    assert "skipped" in channel_health_evaluate_task.apply().get()
    assert ChannelHealthSnapshot.objects.count() == 1


def test_snapshots_and_refusal_counts_age_out(shop, hook, settings):
    settings.PIMSYNC_HEALTH_SNAPSHOT_DAYS = 30
    now = datetime.now(UTC)
    health_evaluate(now=now - timedelta(days=31))
    health_evaluate(now=now - timedelta(days=29))
    WebhookRefusalCount.objects.create(channel=shop, minute=now - timedelta(days=2), count=4)

    health_evaluate(now=now)

    assert ChannelHealthSnapshot.objects.count() == 2
    assert not WebhookRefusalCount.objects.exists()


def test_sku_alerts_are_capped_per_channel_without_crowding_out_another(
    shop, hook, channel_factory, variant_factory, listing_factory
):
    now = datetime.now(UTC)
    quiet = channel_factory(name="Quiet")
    for _ in range(60):
        stuck_marker(
            listing_factory(channel=shop, variant=variant_factory()), now=now, minutes=1, attempts=3
        )
    lonely = listing_factory(channel=quiet, variant=variant_factory(sku="ONLY-ONE"))
    stuck_marker(lonely, now=now, minutes=1, attempts=2)

    health_evaluate(now=now)

    assert Alert.objects.filter(kind="repeated_failure", channel=shop).count() == 50
    assert Alert.objects.filter(kind="repeated_failure", channel=quiet, sku="ONLY-ONE").exists()
