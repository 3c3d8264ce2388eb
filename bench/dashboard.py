"""Ops dashboard cost with a month of health history: how long its selectors and a
whole page load take, and how many queries they make, as the data grows.

Run from the repository root::

    .venv/bin/python bench/dashboard.py [--channels 4] [--days 30] [--log-hour 50000]

Uses a throwaway SQLite database in a temporary folder, or the database named by
DATABASE_URL (PostgreSQL: give it an empty database; the script migrates it and
leaves its rows behind). It seeds ``--channels`` channels, one health snapshot per
channel per minute over ``--days`` days (what the per-minute health evaluation
writes), ``--log-hour`` sync log attempts in the last hour (5 % failed, latencies
spread 50 ms .. 30 s) plus ``--log-old`` older ones, and ``--alerts`` open alerts.

JSON lines: ``machine_noise`` before and after (a fixed CPU loop, see
bench/connectors.py), then one line per measured piece (``ops_channel_cards``,
``ops_channel_series``, ``ops_open_alerts``, ``ops_recent_failures``, and
``dashboard_page``: the whole admin page through Django's test client, session and
template included) with the median / p95 / max milliseconds over ``--repeats``
runs and the number of queries one run makes.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]


def django_setup(var_dir: str) -> None:
    os.environ.setdefault("PIMSYNC_VAR_DIR", var_dir)
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pimsync.settings.base")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(args: argparse.Namespace) -> dict[str, int]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from channels_app.models import Channel
    from synclog.models import Alert, ChannelHealthSnapshot, SyncLogEntry

    rng = random.Random(5)
    now = timezone.now()
    platforms = ("shopify", "woocommerce", "ebay", "amazon")
    channels = [
        Channel.objects.create(
            name=f"Bench {i}",
            slug=f"bench-{i}-{rng.randrange(10**9)}",
            platform=platforms[i % 4],
            base_url="http://127.0.0.1:9/",
        )
        for i in range(args.channels)
    ]
    minutes = args.days * 24 * 60
    for channel in channels:
        ChannelHealthSnapshot.objects.bulk_create(
            (
                ChannelHealthSnapshot(
                    channel=channel,
                    taken_at=now - timedelta(minutes=m),
                    state="healthy",
                    queue_depth=rng.randrange(50),
                    pushes=rng.randrange(5, 200),
                    errors=rng.randrange(3),
                    latency_p50_ms=rng.randrange(200, 2000),
                    latency_p95_ms=rng.randrange(2000, 20000),
                    last_success_at=now - timedelta(minutes=m, seconds=5),
                )
                for m in range(minutes)
            ),
            batch_size=5000,
        )
    entry = SyncLogEntry
    for count, old in ((args.log_hour, False), (args.log_old, True)):
        rows = [
            entry(
                channel=rng.choice(channels),
                sku=f"SKU-{rng.randrange(20000)}",
                event_type=rng.choice(("price", "inventory")),
                value_sent="1",
                status="failed" if rng.random() < 0.05 else "success",
                latency_ms=int(rng.lognormvariate(7, 1)) % 30000 + 50,
            )
            for _ in range(count)
        ]
        created = entry.objects.bulk_create(rows, batch_size=5000)
        if old:
            # auto_now_add stamps "now": move these two days back.
            entry.objects.filter(pk__gte=created[0].pk).update(created_at=now - timedelta(days=2))
    for i in range(args.alerts):
        Alert.objects.create(
            kind="repeated_failure",
            channel=rng.choice(channels),
            sku=f"SKU-{i}",
            message="bench",
            last_seen=now,
        )
    user = get_user_model().objects.create_superuser(
        f"bench-{rng.randrange(10**9)}", "bench@example.com", "bench-Password-1"
    )
    return {"user_id": user.pk, "snapshots": minutes * len(channels)}


def measure(name: str, fn: Callable[[], Any], repeats: int) -> dict[str, Any]:
    from django.db import connection

    fn()  # warm caches (templates, permissions) like a running server
    executed: list[str] = []

    def count(execute: Callable[..., Any], sql: str, *rest: Any) -> Any:
        executed.append(sql)
        return execute(sql, *rest)

    with connection.execute_wrapper(count):
        fn()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "metric": name,
        "ms_median": round(statistics.median(timings), 2),
        "ms_p95": round(timings[max(0, int(len(timings) * 0.95 + 0.5) - 1)], 2),
        "ms_max": round(timings[-1], 2),
        "queries": len(executed),
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--log-hour", type=int, default=50_000)
    parser.add_argument("--log-old", type=int, default=100_000)
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pimsync-bench-dashboard-") as var_dir:
        django_setup(var_dir)
        from django.conf import settings
        from django.test import Client
        from django.urls import reverse
        from propagation import emit, noise_line

        from synclog import selectors

        emit(noise_line("before"))
        started = time.perf_counter()
        seeded = seed(args)
        emit(
            {
                "metric": "seed",
                "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
                "channels": args.channels,
                "snapshots": seeded["snapshots"],
                "log_last_hour": args.log_hour,
                "log_older": args.log_old,
                "open_alerts": args.alerts,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        from datetime import timedelta

        from django.utils import timezone

        hour_ago = timezone.now() - timedelta(hours=1)
        cards = selectors.ops_channel_cards()
        pairs = [(c.channel_id, c.name) for c in cards]
        client = Client()
        from django.contrib.auth import get_user_model

        client.force_login(get_user_model().objects.get(pk=seeded["user_id"]))
        page_url = reverse("admin:synclog_opsdashboard_changelist")

        def page() -> None:
            response = client.get(page_url)
            assert response.status_code == 200, response.status_code

        for name, fn in (
            ("ops_channel_cards", selectors.ops_channel_cards),
            ("sync_log_hour_counts", lambda: selectors.sync_log_hour_counts(since=hour_ago)),
            (
                "push_latency_percentiles",
                lambda: selectors.push_latency_percentiles(since=hour_ago),
            ),
            ("ops_channel_series", lambda: selectors.ops_channel_series(channels=pairs)),
            ("ops_open_alerts", lambda: selectors.ops_open_alerts(limit=50)),
            ("ops_recent_failures", lambda: selectors.ops_recent_failures(limit=15)),
            ("dashboard_page", page),
        ):
            emit(measure(name, fn, args.repeats))
        emit(noise_line("after"))


if __name__ == "__main__":
    main()
