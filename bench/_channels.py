"""Shared by bench/tokens.py and bench/budget.py: channels configured as the demo's
(pimsync/demo.py: eBay and Amazon with refresh-token credentials) on a running
sandbox, their catalog on both sides, and beat's periodic work in a thread.

Needs Django set up (the callers run on the pg lane of bench/propagation.py).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from _stack import Stack, pg_redis_stop
from propagation import SEED_KEYS, Sandbox, emit, lane_environment, listing_ids, noise_line

PER_PRODUCT = 4


def build_channels(
    sandbox: Sandbox,
    *,
    counts: dict[str, int],
    rates: dict[str, Decimal],
    poll_seconds: dict[str, int],
    stock: int = 40,
) -> dict[str, Any]:
    """One channel per platform in ``counts`` listing that many variants (the first
    ones of one catalog; products of PER_PRODUCT variants), configured as the demo's,
    and the sandbox seeded with the same ids, price and quantity (nothing to push yet).
    Returns {platform: Channel}."""
    from channels_app.models import Channel, ChannelListing, ChannelLocation
    from inventory.models import Location, Product, StockLevel, Variant
    from pimsync.demo import SANDBOX_CHANNELS

    skus = max(counts.values())
    location = Location.objects.create(code="bench", name="Bench warehouse")
    products = Product.objects.bulk_create(
        Product(title=f"Bench product {p}", handle=f"bench-{p}")
        for p in range(math.ceil(skus / PER_PRODUCT))
    )
    variants = Variant.objects.bulk_create(
        (
            Variant(
                product=products[i // PER_PRODUCT],
                sku=f"BT{i:06d}",
                title=f"Size {i % PER_PRODUCT}",
                price=Decimal("10.00"),
            )
            for i in range(skus)
        ),
        batch_size=1000,
    )
    StockLevel.objects.bulk_create(
        (StockLevel(variant=v, location=location, on_hand=stock) for v in variants),
        batch_size=1000,
    )
    spec_of = {spec["platform"]: spec for spec in SANDBOX_CHANNELS}
    channels, seed = {}, {}
    for platform, count in counts.items():
        spec = spec_of[platform]
        channel = Channel.objects.create(
            name=f"{platform} (bench)",
            slug=f"bench-{platform}",
            platform=platform,
            base_url=f"{sandbox.url}/{platform}",
            credentials=spec["credentials"],
            platform_config=spec["platform_config"],
            rate_limit_per_second=rates[platform],
            poll_interval_seconds=poll_seconds[platform],
            reconcile_interval_minutes=0,  # only the bench's own runs
        )
        ChannelLocation.objects.create(channel=channel, location=location)
        listings, rows = [], []
        for i, v in enumerate(variants[:count]):
            ids = listing_ids(platform, i, i // PER_PRODUCT, v.sku, "simple")
            listings.append(ChannelListing(channel=channel, variant=v, **ids))
            row = {SEED_KEYS[k]: value for k, value in ids.items() if value}
            sku = ids.get("listing_sku") or v.sku
            rows.append({"sku": sku, **row, "price": "10.00", "quantity": stock})
        ChannelListing.objects.bulk_create(listings, batch_size=1000)
        seed[platform] = rows
        channels[platform] = channel
    sandbox.control("POST", "seed", seed, timeout=300)
    return channels


class Beat:
    """Beat's part in a thread: the push sweeper every ``sweep`` seconds and the
    due-poll check every ``poll_due`` seconds (as channels_app.tasks would run them)."""

    def __init__(self, *, sweep: float = 1.0, poll_due: float = 5.0) -> None:
        self.sweep, self.poll_due = sweep, poll_due
        self.sweeps = self.polls_enqueued = 0
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="beat", daemon=True)

    def _run(self) -> None:
        from django.db import connection

        from channels_app.dispatch import sweep_due_channels
        from channels_app.orders.polling import channels_poll_due

        next_poll_check = 0.0
        waited = 0.0
        try:
            while not self._stop.wait(self.sweep):
                waited += self.sweep
                try:
                    sweep_due_channels()
                    self.sweeps += 1
                    if waited >= next_poll_check:
                        self.polls_enqueued += len(channels_poll_due())
                        next_poll_check = waited + self.poll_due
                except Exception as exc:  # reported, and beat goes on
                    self.errors[type(exc).__name__] += 1
        finally:
            connection.close()

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def figures(self) -> dict[str, Any]:
        return {
            "sweeps": self.sweeps,
            "polls_enqueued": self.polls_enqueued,
            **({"beat_errors": dict(self.errors)} if self.errors else {}),
        }


def sync_log_figures(channel: Any) -> dict[str, Any]:
    """What the sync log holds for a channel: successes, anything else by status,
    and entries that say the channel refused our credentials."""
    from django.db.models import Q

    from synclog.models import SyncLogEntry

    entries = SyncLogEntry.objects.filter(channel=channel)
    others = Counter(entries.exclude(status="success").values_list("status", flat=True))
    auth = entries.filter(Q(http_status__in=[401, 403]) | Q(message__icontains="credentials"))
    return {
        "sync_log_success": entries.filter(status="success").count(),
        "sync_log_not_success": dict(others),
        "sync_log_auth_errors": auth.count(),
    }


def on_pg_lane(name: str, body: Callable[[Stack, dict[str, str]], None], *, keep: bool) -> int:
    """Run ``body(stack, env)`` on the pg lane of bench/propagation.py: throwaway
    PostgreSQL + Redis (broker and shared rate limiter), migrated, this process set
    up for Django; everything started is stopped and removed afterwards. Prints the
    machine-noise lines around it and one ``error`` line if it fails."""
    emit(noise_line("before"))
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f"pimsync-bench-{name}-"))
    pg_dir = Path(tempfile.mkdtemp(prefix="pimsync-bench-pg-"))
    code = 0
    try:
        env = lane_environment("pg", tmp, pg_dir)
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        logs = tmp / "logs"
        logs.mkdir()
        with Stack(logs) as stack:
            body(stack, env)
        emit({"metric": "lane_seconds", "value": round(time.monotonic() - started, 1)})
    except Exception as exc:  # one JSON line saying why the run stopped
        emit({"metric": "error", "error": f"{type(exc).__name__}: {exc}"})
        code = 1
    finally:
        from django.db import connections

        connections.close_all()
        pg_redis_stop(pg_dir)
        shutil.rmtree(pg_dir, ignore_errors=True)
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    emit(noise_line("after"))
    return code
