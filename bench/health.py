"""How long one health evaluation (the every-minute beat task) takes at catalogue scale.

Run from the repository root::

    .venv/bin/python bench/health.py [--lane pg|sqlite] [--listings 10000] [--runs 15]

It makes a throwaway database (PostgreSQL + Redis via scripts/pg-redis.sh for
``--lane pg``, a SQLite file otherwise), migrates it and seeds four channels with
``--listings`` listings each, a pending push for ``--pending-share`` of them
(some failed once or twice, some due), ``--log-rows`` sync log entries spread
over the last 15 minutes (a tenth failed, latencies 20–2000 ms), and
``--order-lines`` sold order lines over 30 days. Then it evaluates ``--runs``
times, one "minute" apart (the clock is passed in), after a first run that
opens whatever the seeded state warrants.

JSON lines:

1. ``seed``: rows seeded and seconds taken.
2. ``health_evaluate``: wall milliseconds per steady-state run (p50, p95, max),
   the queries of one run, snapshots written and open alerts; the first
   (alert-opening) run separately.
3. ``machine_noise`` before and after (cores, load average, a fixed CPU loop).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from _stack import pg_redis_start, pg_redis_stop  # noqa: E402
from propagation import emit, noise_line, spread  # noqa: E402

PLATFORMS = ("shopify", "woocommerce", "ebay", "amazon")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lane", choices=("pg", "sqlite"), default="pg")
    p.add_argument("--listings", type=int, default=10_000, help="per channel")
    p.add_argument("--pending-share", type=float, default=0.2)
    p.add_argument("--log-rows", type=int, default=200_000)
    p.add_argument("--order-lines", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args(argv)


def seed(args: argparse.Namespace, now: datetime) -> dict[str, int]:
    from channels_app.models import (
        Channel,
        ChannelListing,
        ChannelLocation,
        ChannelOrder,
        ChannelOrderLine,
        SyncMarker,
    )
    from inventory.models import Location, Product, StockLevel, Variant
    from synclog.models import SyncLogEntry

    rng = random.Random(args.seed)
    location = Location.objects.create(code="bench", name="Bench")
    products = Product.objects.bulk_create(
        [Product(title=f"P{i}", handle=f"p{i}") for i in range(args.listings // 4)]
    )
    variants = Variant.objects.bulk_create(
        [
            Variant(product=products[i // 4], sku=f"B-{i:06d}", price=Decimal("10"))
            for i in range(args.listings)
        ],
        batch_size=5000,
    )
    StockLevel.objects.bulk_create(
        [StockLevel(variant=v, location=location, on_hand=rng.randrange(0, 40)) for v in variants],
        batch_size=5000,
    )
    channels = []
    for platform in PLATFORMS:
        channel = Channel.objects.create(
            name=platform.title(), slug=platform, platform=platform, base_url="http://x.test"
        )
        ChannelLocation.objects.create(channel=channel, location=location)
        channels.append(channel)
        listings = ChannelListing.objects.bulk_create(
            [ChannelListing(channel=channel, variant=v) for v in variants], batch_size=5000
        )
        pending = rng.sample(listings, int(len(listings) * args.pending_share))
        SyncMarker.objects.bulk_create(
            [
                SyncMarker(
                    listing=lst,
                    channel=channel,
                    kind="quantity",
                    first_dirty_at=now - timedelta(seconds=rng.randrange(1, 240)),
                    last_dirty_at=now,
                    due_at=now + timedelta(seconds=rng.randrange(-30, 30)),
                    change_token=f"bench-{lst.pk}",
                    attempts=rng.choice((0, 0, 0, 1, 2)),
                )
                for lst in pending
            ],
            batch_size=5000,
        )
    rows = []
    for i in range(args.log_rows):
        ok = rng.random() > 0.1
        rows.append(
            SyncLogEntry(
                channel=channels[i % 4],
                sku=variants[rng.randrange(len(variants))].sku,
                event_type="inventory",
                status="success" if ok else "retrying",
                latency_ms=rng.randrange(20, 2000) if ok else None,
            )
        )
    SyncLogEntry.objects.bulk_create(rows, batch_size=5000)
    # Spread over the last 15 minutes (auto_now_add stamped them all "now").
    ids = list(SyncLogEntry.objects.values_list("pk", flat=True))
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        offset = timedelta(seconds=rng.randrange(0, 900))
        SyncLogEntry.objects.filter(pk__in=chunk).update(created_at=now - offset)
    orders = ChannelOrder.objects.bulk_create(
        [
            ChannelOrder(
                channel=channels[i % 4],
                external_id=f"O{i}",
                status="paid",
                placed_at=now - timedelta(days=rng.randrange(0, 30)),
                channel_updated_at=now,
                first_seen_via="poll",
            )
            for i in range(args.order_lines)
        ],
        batch_size=5000,
    )
    ChannelOrderLine.objects.bulk_create(
        [
            ChannelOrderLine(
                order=o,
                external_line_id="1",
                sku=(v := variants[int(rng.paretovariate(1.2)) % len(variants)]).sku,
                variant=v,
                quantity=rng.randrange(1, 4),
                state="committed",
            )
            for o in orders
        ],
        batch_size=5000,
    )
    return {
        "listings": args.listings * 4,
        "markers": SyncMarker.objects.count(),
        "log_rows": args.log_rows,
        "order_lines": args.order_lines,
    }


def measure(args: argparse.Namespace, lane: dict[str, str], now: datetime) -> None:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from channels_app.health import health_evaluate
    from synclog.models import Alert, ChannelHealthSnapshot

    started = time.perf_counter()
    health_evaluate(now=now)
    first_ms = (time.perf_counter() - started) * 1000
    timings, queries = [], 0
    for run in range(1, args.runs + 1):
        reset_queries()
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            health_evaluate(now=now + timedelta(minutes=run / 60))  # one second apart
            timings.append(round((time.perf_counter() - started) * 1000, 1))
        queries = len(ctx.captured_queries)
    emit(
        lane
        | {
            "metric": "health_evaluate",
            "first_run_ms": round(first_ms, 1),
            "steady_ms": spread(timings),
            "queries_per_run": queries,
            "snapshots": ChannelHealthSnapshot.objects.count(),
            "open_alerts": Alert.objects.filter(resolved_at__isnull=True).count(),
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    tmp = Path(tempfile.mkdtemp(prefix="pimsync-bench-health-"))
    # Its own top-level folder: scripts/pg-redis.sh hands it to the postgres user.
    pg_dir = Path(tempfile.mkdtemp(prefix="pimsync-bench-health-pg-"))
    (tmp / "var").mkdir()
    env = {
        "DJANGO_SETTINGS_MODULE": "pimsync.settings.base",
        "PIMSYNC_VAR_DIR": str(tmp / "var"),
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PIMSYNC_ALERT_EMAIL_ENABLED": "false",
        "CELERY_BROKER_URL": "memory://",
    }
    try:
        if args.lane == "pg":
            env["DATABASE_URL"] = pg_redis_start(pg_dir)["DATABASE_URL"]
        else:
            env["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        lane = {"lane": args.lane}
        emit(lane | noise_line("before"))
        call_command("migrate", verbosity=0)
        now = datetime.now(UTC)
        started = time.monotonic()
        counts = seed(args, now)
        emit(lane | {"metric": "seed", **counts, "seconds": round(time.monotonic() - started, 1)})
        measure(args, lane, now)
        emit(lane | noise_line("after"))
        return 0
    finally:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()
        if args.lane == "pg":
            pg_redis_stop(pg_dir)
        shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
