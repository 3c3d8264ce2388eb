"""Ops dashboard selectors: card figures, exact latency percentiles, hourly chart
buckets, alert ordering; each computed by a fixed number of aggregate queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from synclog import selectors
from synclog.models import Alert, ChannelHealthSnapshot, SyncLogEntry
from tests.support.ops_data import alert_open, attempts_seed, snapshots_seed

pytestmark = pytest.mark.django_db


def test_latency_percentiles_are_exact_nearest_rank_per_channel(channel_factory):
    a, b, c = channel_factory(), channel_factory(), channel_factory()
    now = timezone.now()
    attempts_seed(a.pk, latencies=list(range(100, 0, -1)))  # 1..100 ms, shuffled order
    attempts_seed(b.pk, latencies=[700])
    attempts_seed(b.pk, latencies=[None, None], sku_prefix="NOLAT")
    attempts_seed(b.pk, latencies=[5, 5, 5], status="failed", sku_prefix="FAIL")
    attempts_seed(c.pk, latencies=[9000], sku_prefix="OLD", at=now - timedelta(hours=2))

    result = selectors.push_latency_percentiles(since=now - timedelta(hours=1))

    assert result == {a.pk: (50, 95), b.pk: (700, 700)}


def test_latency_percentiles_nearest_rank_rounds_up(channel_factory):
    channel = channel_factory()
    attempts_seed(channel.pk, latencies=[10, 20, 30])

    result = selectors.push_latency_percentiles(since=timezone.now() - timedelta(hours=1))

    # ceil(0.5 * 3) = 2nd value, ceil(0.95 * 3) = 3rd value
    assert result == {channel.pk: (20, 30)}


def test_hour_counts_split_pushes_and_failed_attempts_and_ignore_orders(channel_factory):
    channel = channel_factory()
    now = timezone.now()
    attempts_seed(channel.pk, latencies=[1, 2, 3])
    attempts_seed(channel.pk, latencies=[None, None], status="retrying", sku_prefix="R")
    attempts_seed(channel.pk, latencies=[None], status="dead", sku_prefix="D")
    attempts_seed(channel.pk, latencies=[None], status="failed", sku_prefix="O", event_type="order")
    attempts_seed(channel.pk, latencies=[1], sku_prefix="OLD", at=now - timedelta(minutes=61))

    assert selectors.sync_log_hour_counts(since=now - timedelta(hours=1)) == {channel.pk: (3, 3)}


def test_card_reads_state_queue_and_last_success_from_the_newest_snapshot(channel_factory):
    channel = channel_factory(name="Shop")
    now = timezone.now()
    snapshots_seed(channel.pk, now=now - timedelta(minutes=1), hours=1, state="healthy")
    newest = ChannelHealthSnapshot.objects.create(
        channel=channel,
        taken_at=now,
        state="degraded",
        queue_depth=42,
        oldest_pending_seconds=90,
        last_success_at=now - timedelta(minutes=3),
        detail="error rate 30% over 10 min",
    )
    attempts_seed(channel.pk, latencies=[100, 200])
    attempts_seed(channel.pk, latencies=[None], status="failed", sku_prefix="F")

    [card] = selectors.ops_channel_cards(now=now)

    assert card.state == "degraded"
    assert card.state_tone == "warn"
    assert card.state_detail == "error rate 30% over 10 min"
    assert card.snapshot_at == newest.taken_at
    assert not card.is_stale
    assert card.queue_depth == 42
    assert card.oldest_pending_seconds == 90
    assert card.last_success_at == now - timedelta(minutes=3)
    assert (card.pushes_last_hour, card.errors_last_hour) == (2, 1)
    assert (card.latency_p50_ms, card.latency_p95_ms) == (100, 200)
    assert card.last_reconciliation is None  # no ReconciliationRun model on this branch


def test_card_without_snapshot_is_unknown_and_falls_back_to_the_log(channel_factory):
    fresh = channel_factory(name="A fresh")
    channel_factory(name="B off", is_enabled=False)
    attempts_seed(fresh.pk, latencies=[10])
    logged = SyncLogEntry.objects.get(channel=fresh).created_at

    cards = selectors.ops_channel_cards()

    assert [(c.name, c.state, c.state_label) for c in cards] == [
        ("A fresh", "unknown", "No health data"),
        ("B off", "disabled", "Disabled"),
    ]
    assert cards[0].last_success_at == logged
    assert cards[0].queue_depth is None
    assert cards[1].last_success_at is None


def test_disabled_channel_wins_over_its_last_snapshot_and_old_snapshots_are_stale(
    channel_factory, settings
):
    settings.PIMSYNC_DASHBOARD_STALE_SECONDS = 300
    off = channel_factory(name="A", is_enabled=False)
    quiet = channel_factory(name="B")
    now = timezone.now()
    ChannelHealthSnapshot.objects.create(channel=off, taken_at=now, state="dead")
    ChannelHealthSnapshot.objects.create(
        channel=quiet, taken_at=now - timedelta(seconds=301), state="healthy"
    )

    off_card, quiet_card = selectors.ops_channel_cards(now=now)

    assert (off_card.state, off_card.is_stale) == ("disabled", False)
    assert (quiet_card.state, quiet_card.is_stale) == ("healthy", True)


def test_cards_make_the_same_queries_for_one_channel_and_many(
    channel_factory, django_assert_num_queries
):
    now = timezone.now()
    first = channel_factory()
    snapshots_seed(first.pk, now=now, hours=1)
    attempts_seed(first.pk, latencies=[5, 6])
    channel_factory()  # no snapshot: the log fallback
    # channels (+ newest snapshot ids), snapshots, hour counts, percentiles, log fallback
    with django_assert_num_queries(5):
        selectors.ops_channel_cards(now=now)
    for _ in range(5):
        ch = channel_factory()
        snapshots_seed(ch.pk, now=now, hours=2)
        attempts_seed(ch.pk, latencies=[5, 6, 7], sku_prefix=f"S{ch.pk}")
    channel_factory()
    with django_assert_num_queries(5):
        cards = selectors.ops_channel_cards(now=now)
    assert len(cards) == 8


def test_series_sum_snapshots_into_hourly_buckets(channel_factory):
    channel = channel_factory(name="Shop")
    other = channel_factory(name="Other")
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    hour = now.replace(minute=0)
    for minute, (pushes, errors, p50, p95) in {
        0: (10, 1, 100, 900),
        10: (30, 0, 200, 400),
        20: (0, 2, None, None),
    }.items():
        ChannelHealthSnapshot.objects.create(
            channel=channel,
            taken_at=hour + timedelta(minutes=minute),
            state="healthy",
            pushes=pushes,
            errors=errors,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
        )
    ChannelHealthSnapshot.objects.create(
        channel=channel, taken_at=hour - timedelta(hours=5, minutes=-5), state="healthy", pushes=7
    )
    ChannelHealthSnapshot.objects.create(
        channel=channel, taken_at=hour - timedelta(hours=24), state="healthy", pushes=1000
    )

    shop, empty = selectors.ops_channel_series(
        channels=[(channel.pk, "Shop"), (other.pk, "Other")], now=now
    )

    assert len(shop.bucket_starts) == 24
    assert shop.bucket_starts[-1] == hour
    assert shop.pushes[-1] == 40
    assert shop.errors[-1] == 3
    assert shop.latency_p50_ms[-1] == round((100 * 10 + 200 * 30) / 40)
    assert shop.latency_p95_ms[-1] == 900
    assert shop.pushes[-6] == 7
    assert sum(shop.pushes) == 47  # the snapshot from 24 h ago is outside the window
    assert shop.latency_p95_ms[-2] is None
    assert not empty.has_data
    assert empty.pushes == [0] * 24


def test_open_alerts_unacknowledged_first_then_severity_then_recency(channel_factory, admin_user):
    channel = channel_factory()
    now = timezone.now()
    info = alert_open(channel.pk, kind="drift", severity="info", now=now)
    crit_old = alert_open(channel.pk, kind="dead_channel", now=now - timedelta(minutes=5))
    crit_new = alert_open(channel.pk, kind="auth_failed", now=now)
    acked = alert_open(channel.pk, kind="degraded", now=now)
    Alert.objects.filter(pk=acked.pk).update(acknowledged_at=now, acknowledged_by=admin_user)
    alert_open(channel.pk, kind="queue_depth", now=now, message="gone")
    Alert.objects.filter(kind="queue_depth").update(resolved_at=now)

    alerts, total = selectors.ops_open_alerts(limit=3)

    assert [a.pk for a in alerts] == [crit_new.pk, crit_old.pk, info.pk]
    assert total == 4


def test_recent_failures_only_failed_and_dead_newest_first(channel_factory):
    channel = channel_factory()
    attempts_seed(channel.pk, latencies=[None], status="failed", sku_prefix="F")
    attempts_seed(channel.pk, latencies=[None], status="retrying", sku_prefix="R")
    attempts_seed(channel.pk, latencies=[1], sku_prefix="OK")
    attempts_seed(channel.pk, latencies=[None], status="dead", sku_prefix="D")

    assert [e.sku for e in selectors.ops_recent_failures(limit=10)] == ["D-0", "F-0"]
    assert connection.vendor in ("sqlite", "postgresql")


def test_card_shows_the_newest_reconciliation_run_and_its_drift(
    channel_factory, django_assert_num_queries, admin_client
):
    from synclog.models import ReconciliationRun

    shop, other, never = (
        channel_factory(name="A"),
        channel_factory(name="B"),
        channel_factory(name="C"),
    )
    now = timezone.now()
    run = ReconciliationRun.objects.create
    run(
        channel=shop,
        started_at=now - timedelta(hours=5),
        finished_at=now,
        status="finished",
        total=200,
        checked=200,
        drifted=9,
    )
    newest = {
        "started_at": now - timedelta(hours=1),
        "finished_at": now - timedelta(minutes=50),
        "status": "finished",
        "checked": 200,
        "drifted": 3,
        "fixed": 3,
    }
    run(channel=shop, total=200, **newest)
    run(channel=other, started_at=now, status="running", total=50, checked=10)

    # channels (+ newest snapshot and run ids), runs, hour counts, percentiles, log fallback
    with django_assert_num_queries(5):
        a, b, c = selectors.ops_channel_cards(now=now)

    assert a.last_reconciliation == selectors.ReconciliationSummary(**newest, errors=0)
    assert (b.last_reconciliation.status, b.last_reconciliation.finished_at) == ("running", None)
    assert c.last_reconciliation is None
    assert never.pk == c.channel_id
    body = admin_client.get(reverse("admin:synclog_opsdashboard_body")).content.decode()
    assert "3 drifted" in body
    assert "running" in body


def test_latency_percentiles_match_nearest_rank_on_random_data(channel_factory):
    import math
    import random

    from synclog.models import SyncLogEntry as Entry

    rng = random.Random(11)
    expected = {}
    for n in (1, 2, 7, 20, 333):
        channel = channel_factory()
        latencies = [rng.randrange(1, 60_000) for _ in range(n)]
        attempts_seed(channel.pk, latencies=latencies)
        ordered = sorted(latencies)
        expected[channel.pk] = tuple(ordered[math.ceil(p / 100 * n) - 1] for p in (50, 95))
    since = timezone.now() - timedelta(hours=1)
    successes = Entry.objects.filter(created_at__gte=since, status="success")

    assert selectors.push_latency_percentiles(since=since) == expected
    assert selectors._percentiles_windowed(successes) == expected
    if connection.vendor == "postgresql":
        assert selectors._percentiles_ordered_set(successes) == expected
