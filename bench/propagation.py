"""Outbound propagation through the real stack: engine, Celery workers, broker,
database, limiter and the channel sandbox over HTTP, at its DEFAULT limits.

Run from the repository root::

    .venv/bin/python bench/propagation.py [--lane embedded|pg|both] [--skus 10000]

Each lane builds everything it uses and removes it afterwards:

* embedded: a SQLite file and the filesystem broker in a temporary folder
  (PIMSYNC_VAR_DIR), the database rate limiter;
* pg: throwaway PostgreSQL + Redis from ``scripts/pg-redis.sh`` (Redis is the
  broker and, through PIMSYNC_RATE_LIMIT_REDIS_URL, the shared rate limiter).

Then it starts ``manage.py run_sandbox`` on a free loopback port (documented
limits), ``--workers`` Celery worker processes (``--concurrency`` pool children
each; default one worker with 5, so the five channels are pushed in parallel)
and, in place of beat, a thread of this process that calls
``channels_app.tasks.sweep_due_channels`` every ``--sweep-seconds`` (1 s).

Catalog: ``--skus`` variants in products of ``--variants-per-product`` (4) on
five channels: Shopify products of 4 variants (one productVariantsBulkUpdate
per product), WooCommerce simple products (``--woocommerce variations`` lists
them as variations of 4-variant parents, one batch call per parent), eBay and
Amazon per SKU, Magento simple children of one configurable per product (prices by
SKU in bulk). The sandbox is seeded with the same ids at 0.00 / 0.

Phases and the JSON lines they print (one object per line):

1. ``initial_sync``: every listing marked dirty (price and quantity) and drained;
   run with the sandbox limits and pimsync rates multiplied by
   ``--initial-scale`` (default 10) because it is not the figure; every
   channel's values are then compared with pimsync's.
2. ``single_change_latency`` (figure a): ``--changes`` (200) price changes, one
   at a time and at least ``--change-interval`` (0.5 s) apart, so no channel's
   rate limit is reached (Amazon allows 5 calls/s), each
   ``inventory.services.variant_save`` of a random SKU, waiting until all five
   channels confirmed it (a success SyncLogEntry for
   that SKU and value). ``stored_ms``: the latency stored on those entries
   (confirmation − first_dirty_at), per change the slowest of the five;
   ``wall_ms``: own clock, from just before save() to the 5th entry's
   created_at; ``observed_ms``: until this process saw all five.
3. ``burst`` (figure b): one ``inventory.services.variant_set_prices`` call for
   every SKU, with full sandbox buckets; wall time until every channel
   confirmed every SKU, against the rate-limit floor: per channel the calls it
   needs at its maximum batch over its documented limit (capacity at start,
   refill rate), Amazon above the feed threshold one JSON_LISTINGS_FEED whose
   floor is the sandbox's processing time, Magento one asynchronous bulk per
   5,000 SKUs whose floor is the sandbox consumer's time for its operations.
   The channels are pushed in parallel, so the floor is the slowest channel's. ``ratio_to_floor`` =
   seconds / floor (goal ≤ 1.15). It stops early (``incomplete``) after
   ``--stall`` seconds without a new confirmation or 3 × floor + 120 s.
   Each phase line also counts the push tasks the workers ran and their errors.
4. ``worker_memory`` (figure c): peak RSS of the worker processes and their
   children, sampled from /proc every 0.25 s during phases 1-3.

pimsync's ``rate_limit_per_second`` per channel is what the sandbox's default
limit allows: WooCommerce 5/s, eBay 10/s, Amazon patchListingsItem 5/s, Magento the
host's 5/s (one token per call). Shopify's budget is the shop's cost bucket in points
(each call takes its requested cost; the bucket follows ``extensions.cost``), so its
setting is unused.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import requests  # noqa: E402
from _stack import (  # noqa: E402
    RssSampler,
    Stack,
    Started,
    check_alive,
    emit,
    noise_line,
    pg_redis_start,
    pg_redis_stop,
    start_sandbox,
    start_workers,
)
from connectors import SHOPIFY_COST_PER_CALL  # noqa: E402

from sandbox.magento import HOSTING_LIMITS  # noqa: E402

PLATFORMS = ("shopify", "woocommerce", "ebay", "amazon", "magento")
GOAL_P95_MS = {"embedded": 1000, "pg": 500}
GOAL_BURST_RATIO = 1.15
CENT = Decimal("0.01")
WORKERS: list[Started] = []  # checked while waiting: a dead worker ends the lane


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def spread(values: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
    }


# --------------------------------------------------------------------------- sandbox


@dataclass
class Sandbox:
    url: str

    def control(self, method: str, path: str, payload: object = None, timeout: float = 60) -> Any:
        response = requests.request(
            method, f"{self.url}/_control/{path}", json=payload, timeout=timeout
        )
        response.raise_for_status()
        return response.json()

    def limits_reset(self) -> None:
        """The documented limits, and a small host's for Magento (which documents none)."""
        self.control("POST", "rate_limits", {p: {"reset": True} for p in PLATFORMS})
        self.control("POST", "rate_limits", {"magento": dict(HOSTING_LIMITS)})

    def limits_scale(self, factor: float) -> None:
        self.control("POST", "rate_limits", {p: {"scale": factor} for p in PLATFORMS})


def default_rates(limits: dict[str, Any]) -> dict[str, Decimal]:
    """Calls per second each channel's documented limit allows for price writes."""
    shopify = limits["shopify"]["cost"]["restore_rate"] / SHOPIFY_COST_PER_CALL
    return {
        "shopify": Decimal(str(shopify)),
        "woocommerce": Decimal(str(limits["woocommerce"]["default"]["rate"])),
        "ebay": Decimal(str(limits["ebay"]["default"]["rate"])),
        "amazon": Decimal(str(limits["amazon"]["patchListingsItem"]["rate"])),
        # Magento documents no limit: the sandbox has one only once a bench set a host's.
        "magento": Decimal(
            str(limits.get("magento", {}).get("default", HOSTING_LIMITS["default"])["rate"])
        ),
    }


# --------------------------------------------------------------------------- catalog


def listing_ids(platform: str, index: int, product: int, sku: str, woo: str) -> dict[str, str]:
    """Channel ids in each platform's format; ranges never overlap."""
    if platform == "shopify":
        return {
            "external_product_id": f"gid://shopify/Product/{100000 + product}",
            "external_variant_id": f"gid://shopify/ProductVariant/{200000 + index}",
            "inventory_item_id": f"gid://shopify/InventoryItem/{500000 + index}",
        }
    if platform == "woocommerce":
        variation = str(200000 + index)
        parent = variation if woo == "simple" else str(100000 + product)
        return {"external_product_id": parent, "external_variant_id": variation}
    if platform == "ebay":
        return {"offer_id": str(700000 + index), "listing_sku": sku}
    if platform == "magento":  # simple children of one configurable per product
        return {"external_product_id": f"PCFG{product}", "external_variant_id": str(300000 + index)}
    return {"listing_sku": sku}


SEED_KEYS = {
    "external_product_id": "product_id",
    "external_variant_id": "variant_id",
    "inventory_item_id": "inventory_item_id",
    "offer_id": "offer_id",
    "listing_sku": "listing_sku",
}


def build_catalog(
    sandbox: Sandbox, *, skus: int, per_product: int, woo: str, rates: dict[str, Decimal]
) -> None:
    """pimsync's catalog, channels and listings, and the sandbox with the same ids."""
    from channels_app.models import Channel, ChannelListing, ChannelLocation
    from inventory.models import Location, Product, StockLevel, Variant
    from pimsync.demo import SANDBOX_CHANNELS

    location = Location.objects.create(code="bench", name="Bench warehouse")
    products = Product.objects.bulk_create(
        Product(title=f"Bench product {p}", handle=f"bench-{p}")
        for p in range(math.ceil(skus / per_product))
    )
    variants = Variant.objects.bulk_create(
        (
            Variant(
                product=products[i // per_product],
                sku=f"PB{i:06d}",
                title=f"Size {i % per_product}",
                price=Decimal("10.00"),
            )
            for i in range(skus)
        ),
        batch_size=1000,
    )
    StockLevel.objects.bulk_create(
        (
            StockLevel(variant=v, location=location, on_hand=20 + i % 30)
            for i, v in enumerate(variants)
        ),
        batch_size=1000,
    )
    spec_of = {spec["platform"]: spec for spec in SANDBOX_CHANNELS}
    seed: dict[str, list[dict[str, Any]]] = {}
    for platform in PLATFORMS:
        spec = spec_of[platform]
        channel = Channel.objects.create(
            name=f"{platform} (bench)",
            slug=f"bench-{platform}",
            platform=platform,
            base_url=f"{sandbox.url}/{platform}",
            credentials=spec["credentials"],
            platform_config=spec["platform_config"],
            rate_limit_per_second=rates[platform],
        )
        ChannelLocation.objects.create(channel=channel, location=location)
        listings, rows = [], []
        for i, v in enumerate(variants):
            ids = listing_ids(platform, i, i // per_product, v.sku, woo)
            listings.append(ChannelListing(channel=channel, variant=v, **ids))
            row = {SEED_KEYS[k]: value for k, value in ids.items() if value}
            rows.append(
                {"sku": ids.get("listing_sku") or v.sku, **row, "price": "0.00", "quantity": 0}
            )
        ChannelListing.objects.bulk_create(listings, batch_size=1000)
        seed[platform] = rows
    sandbox.control("POST", "seed", seed, timeout=300)


def set_rates(rates: dict[str, Decimal], factor: Decimal = Decimal(1)) -> None:
    from channels_app.models import Channel

    for platform, rate in rates.items():
        Channel.objects.filter(platform=platform).update(rate_limit_per_second=rate * factor)


def mismatches(sandbox: Sandbox, *, quantities: bool) -> dict[str, int]:
    """Per channel, SKUs whose channel value differs from what pimsync would publish."""
    from channels_app.models import Channel, ChannelListing
    from channels_app.selectors import channel_atp_bulk, channel_price_bulk

    found = {}
    for channel in Channel.objects.all():
        listings = list(ChannelListing.objects.filter(channel=channel).select_related("variant"))
        ids = [lst.variant_id for lst in listings]
        prices = channel_price_bulk(channel=channel, variant_ids=ids)
        atp = channel_atp_bulk(channel=channel, variant_ids=ids) if quantities else {}
        live = sandbox.control("GET", f"values/{channel.platform}", timeout=120)
        wrong = 0
        for lst in listings:
            seen = live.get(lst.channel_sku)
            if (
                seen is None
                or Decimal(seen["price"]) != prices[lst.variant_id]
                or (quantities and int(seen["quantity"]) != atp[lst.variant_id])
            ):
                wrong += 1
        found[channel.platform] = wrong
    return found


# --------------------------------------------------------------------------- floors


def burst_floor(
    limits: dict[str, Any], *, skus: int, per_product: int, woo: str
) -> dict[str, dict[str, Any]]:
    """Seconds each channel needs at least for a price change of every SKU: the calls at
    the connector's largest batch over the documented limit (capacity at start, refill)."""
    from channels_app.connectors.magento import MagentoOptions
    from channels_app.connectors.registry import connector_class
    from sandbox.amazon import AmazonSandbox
    from sandbox.magento import MagentoSandbox

    def sizes() -> list[int]:  # variants per product
        full, rest = divmod(skus, per_product)
        return [per_product] * full + ([rest] if rest else [])

    def bucket(calls: int, capacity: float, rate: float, cost: float = 1.0) -> float:
        return max(0.0, calls * cost - capacity) / rate

    batch = {p: connector_class(p).max_price_batch for p in PLATFORMS}
    floors: dict[str, dict[str, Any]] = {}
    shopify_calls = sum(math.ceil(n / batch["shopify"]) for n in sizes())
    cost = limits["shopify"]["cost"]
    floors["shopify"] = {
        "calls": shopify_calls,
        "batch": f"one product per call (≤{batch['shopify']} variants)",
        "seconds": bucket(
            shopify_calls, cost["maximum"], cost["restore_rate"], SHOPIFY_COST_PER_CALL
        ),
    }
    woo_calls = (
        math.ceil(skus / batch["woocommerce"])
        if woo == "simple"
        else sum(math.ceil(n / batch["woocommerce"]) for n in sizes())
    )
    spec = limits["woocommerce"]["default"]
    floors["woocommerce"] = {
        "calls": woo_calls,
        "batch": f"≤{batch['woocommerce']} per call"
        + ("" if woo == "simple" else ", one parent product per call"),
        "seconds": bucket(woo_calls, spec.get("burst", spec["rate"]), spec["rate"]),
    }
    spec = limits["ebay"]["default"]
    ebay_calls = math.ceil(skus / batch["ebay"])
    floors["ebay"] = {
        "calls": ebay_calls,
        "batch": f"≤{batch['ebay']} per call",
        "seconds": bucket(ebay_calls, spec.get("burst", spec["rate"]), spec["rate"]),
    }
    threshold = 200  # AmazonConnector's default feed_threshold
    if skus > threshold:
        feeds = math.ceil(skus / batch["amazon"])
        create = limits["amazon"]["createFeed"]
        floors["amazon"] = {
            "calls": feeds,
            "batch": f"JSON_LISTINGS_FEED ≤{batch['amazon']} messages",
            "seconds": feeds * AmazonSandbox.feed_processing_seconds
            + bucket(feeds, create["burst"], create["rate"]),
        }
    else:
        spec = limits["amazon"]["patchListingsItem"]
        floors["amazon"] = {
            "calls": skus,
            "batch": "one patchListingsItem per SKU",
            "seconds": bucket(skus, spec["burst"], spec["rate"]),
        }
    # Magento: one asynchronous bulk request per 5,000 prices, then the consumer
    # runs one operation per synchronous batch (the connector's default size).
    options = MagentoOptions()
    bulks = math.ceil(skus / batch["magento"])
    operations = math.ceil(skus / options.sync_batch_size)
    spec = limits["magento"]["default"]
    floors["magento"] = {
        "calls": bulks,
        "batch": f"async bulk ≤{batch['magento']} prices, operations of {options.sync_batch_size}",
        "seconds": MagentoSandbox.async_start_seconds
        + operations * MagentoSandbox.async_seconds_per_operation
        + bucket(bulks, spec["burst"], spec["rate"]),
    }
    return floors


# --------------------------------------------------------------------------- worker logs


TASK_DONE = re.compile(r"succeeded in ([0-9.]+)s: (\{.*\})")
TASK_ERROR = re.compile(r"raised unexpected: (.*)")


class TaskLog:
    """What the workers' logs say happened since the last look: push tasks run,
    those that found nothing to do, budget stops and unexpected errors."""

    def __init__(self) -> None:
        self._offsets: dict[Path, int] = {}

    def since_last(self) -> dict[str, Any]:
        tasks = idle = budget = 0
        errors: Counter[str] = Counter()
        for worker in WORKERS:
            path = worker.log_path
            with path.open("rb") as f:
                f.seek(self._offsets.get(path, 0))
                chunk = f.read()
                self._offsets[path] = f.tell()
            for line in chunk.decode(errors="replace").splitlines():
                if done := TASK_DONE.search(line):
                    tasks += 1
                    idle += "'pushed': 0, 'failed': 0" in done[2]
                    budget += "'stopped': 'budget'" in done[2]
                elif error := TASK_ERROR.search(line):
                    tasks += 1
                    errors[error[1][:160]] += 1
        return {
            "push_tasks": tasks,
            "tasks_with_nothing_to_do": idle,
            "tasks_stopped_by_budget": budget,
            "task_errors": dict(errors),
        }


# --------------------------------------------------------------------------- sweeper


class Sweeper:
    """Beat's part: calls sweep_due_channels every ``interval`` seconds in a thread."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.sweeps = 0
        self.enqueued = 0
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)

    def _run(self) -> None:
        from django.db import connection

        from channels_app.dispatch import sweep_due_channels

        try:
            while not self._stop.wait(self.interval):
                try:
                    self.enqueued += len(sweep_due_channels())
                    self.sweeps += 1
                except Exception as exc:  # the bench reports it and goes on, as beat would
                    self.errors[type(exc).__name__] += 1
        finally:
            connection.close()

    def __enter__(self) -> Sweeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def wait_drained(timeout: float, stall: float) -> tuple[float, int]:
    """Seconds until no marker is pending (dead ones are counted, not waited for);
    gives up after ``timeout`` or ``stall`` seconds without one marker less."""
    from channels_app.models import SyncMarker

    started = time.monotonic()
    pending, progress_at = -1, started
    while True:
        check_alive(WORKERS)
        now = time.monotonic()
        left = SyncMarker.objects.filter(status=SyncMarker.Status.PENDING).count()
        if not left:
            break
        if left != pending:
            pending, progress_at = left, now
        if now - progress_at > stall or now - started > timeout:
            stuck = SyncMarker.objects.filter(status=SyncMarker.Status.PENDING).values(
                "channel__name",
                "listing__variant__sku",
                "kind",
                "due_at",
                "attempts",
                "is_urgent",
                "held_for_poll_at",
                "claimed_until",
                "batch_id",
                "last_error",
            )[:10]
            raise TimeoutError(
                f"{left} markers still pending after {now - started:.0f} s: "
                + "; ".join(str(row) for row in stuck)
            )
        time.sleep(0.5)
    dead = SyncMarker.objects.filter(status=SyncMarker.Status.DEAD).count()
    return time.monotonic() - started, dead


# --------------------------------------------------------------------------- phases


def initial_sync(
    sandbox: Sandbox, rates: dict[str, Decimal], *, scale: float, timeout: float, stall: float
) -> dict[str, Any]:
    from channels_app.models import ChannelListing
    from channels_app.sync.markers import listings_mark_dirty

    if scale != 1:
        sandbox.limits_scale(scale)
        set_rates(rates, Decimal(str(scale)))
    started = time.monotonic()
    markers = listings_mark_dirty(ChannelListing.objects.all())
    _, dead = wait_drained(timeout, stall)
    seconds = time.monotonic() - started
    sandbox.limits_reset()
    set_rates(rates)
    return {
        "metric": "initial_sync",
        "markers": markers,
        "seconds": round(seconds, 1),
        "limits_scale": scale,
        "dead": dead,
        "mismatches": mismatches(sandbox, quantities=True),
    }


def single_changes(
    *, changes: int, rng: random.Random, timeout: float, poll: float, interval: float
) -> dict[str, Any]:
    from django.utils import timezone

    from channels_app.models import Channel
    from inventory import services
    from inventory.models import Variant
    from synclog.models import SyncLogEntry

    platform_of = dict(Channel.objects.values_list("pk", "platform"))
    ids = list(Variant.objects.order_by("pk").values_list("pk", flat=True))
    stored, wall, observed, timeouts = [], [], [], 0
    per_channel: dict[str, list[int]] = defaultdict(list)
    next_at = time.monotonic()
    for variant_id in rng.sample(ids, min(changes, len(ids))):
        # Low load: changes further apart than any channel's rate limit allows,
        # so no push waits for a token (Amazon: 5 calls/s).
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = time.monotonic() + interval
        variant = Variant.objects.get(pk=variant_id)
        variant.price = (variant.price + Decimal(rng.randrange(1, 500)) / 100).quantize(CENT)
        expected = str(variant.price)
        before, clock = timezone.now(), time.monotonic()
        services.variant_save(variant=variant)
        rows: list[tuple[int, int, Any]] = []
        while True:
            rows = list(
                SyncLogEntry.objects.filter(
                    sku=variant.sku,
                    event_type="price",
                    status="success",
                    value_sent=expected,
                    created_at__gte=before,
                ).values_list("channel_id", "latency_ms", "created_at")
            )
            if len({r[0] for r in rows}) >= len(platform_of):
                break
            check_alive(WORKERS)
            if time.monotonic() - clock > timeout:
                timeouts += 1
                break
            time.sleep(poll)
        if len({r[0] for r in rows}) < len(platform_of):
            continue
        observed.append(round((time.monotonic() - clock) * 1000))
        first = {}
        for channel_id, latency, created in sorted(rows, key=lambda r: r[2]):
            first.setdefault(channel_id, (latency, created))
        for channel_id, (latency, _) in first.items():
            per_channel[platform_of[channel_id]].append(latency)
        stored.append(max(latency for latency, _ in first.values()))
        last = max(created for _, created in first.values())
        wall.append(round((last - before).total_seconds() * 1000))
    return {
        "metric": "single_change_latency",
        "changes": changes,
        "timeouts": timeouts,
        "stored_ms": spread(stored),
        "wall_ms": spread(wall),
        "observed_ms": spread(observed),
        "stored_ms_by_channel": {p: spread(v) for p, v in sorted(per_channel.items())},
    }


def burst(
    sandbox: Sandbox,
    limits: dict[str, Any],
    *,
    skus: int,
    per_product: int,
    woo: str,
    timeout: float | None,
    stall: float,
) -> dict[str, Any]:
    from django.db.models import Count, Max, Min
    from django.utils import timezone

    from channels_app.models import Channel
    from inventory import services
    from inventory.models import Variant
    from synclog.models import SyncLogEntry

    floors = burst_floor(limits, skus=skus, per_product=per_product, woo=woo)
    floor = max(f["seconds"] for f in floors.values())
    if timeout is None:
        timeout = 3 * floor + 120
    platform_of = dict(Channel.objects.values_list("pk", "platform"))
    sandbox.limits_reset()  # full buckets: the floor counts their capacity
    sandbox.control("POST", "counters/reset", {})
    time.sleep(1.5)  # pimsync's own buckets refill too (burst = one second of rate)
    prices = {
        pk: Decimal("20.00") + Decimal(pk % 500) / 100
        for pk in Variant.objects.values_list("pk", flat=True)
    }
    before, clock = timezone.now(), time.monotonic()
    changed = services.variant_set_prices(prices=prices)
    call_seconds = time.monotonic() - clock
    done: dict[int, dict[str, Any]] = {}
    stopped = ""
    confirmed, progress_at = -1, time.monotonic()
    while True:
        rows = (
            SyncLogEntry.objects.filter(
                event_type="price", status="success", created_at__gte=before
            )
            .values("channel_id")
            .annotate(
                n=Count("sku", distinct=True), first=Min("created_at"), last=Max("created_at")
            )
        )
        done = {row["channel_id"]: row for row in rows}
        if all(done.get(cid, {}).get("n", 0) >= skus for cid in platform_of):
            break
        check_alive(WORKERS)
        total = sum(row["n"] for row in done.values())
        if total != confirmed:
            confirmed, progress_at = total, time.monotonic()
        if time.monotonic() - progress_at > stall:
            stopped = f"no confirmation for {stall:.0f} s"
            break
        if time.monotonic() - clock > timeout:
            stopped = f"timeout after {timeout:.0f} s"
            break
        time.sleep(0.5)
    seconds = time.monotonic() - clock
    counters = sandbox.control("GET", "counters")
    failures = Counter(
        (platform_of[cid], status, code)
        for cid, status, code in SyncLogEntry.objects.filter(
            event_type="price", created_at__gte=before
        )
        .exclude(status="success")
        .values_list("channel_id", "status", "error_code")
    )
    channels = {}
    for cid, platform in sorted(platform_of.items(), key=lambda kv: PLATFORMS.index(kv[1])):
        row = done.get(cid, {})
        took = (row["last"] - before).total_seconds() if row else None
        channel_floor = floors[platform]["seconds"]
        c = counters.get(platform, {})
        channels[platform] = {
            "confirmed": row.get("n", 0),
            "seconds": round(took, 2) if took is not None else None,
            "first_confirmation_s": round((row["first"] - before).total_seconds(), 2)
            if row
            else None,
            "floor_seconds": round(channel_floor, 2),
            "floor_calls": floors[platform]["calls"],
            "floor_batch": floors[platform]["batch"],
            "ratio_to_floor": round(took / channel_floor, 3) if took and channel_floor else None,
            "floor_calls_per_s": round(floors[platform]["calls"] / took, 1) if took else None,
            "http_calls": c.get("calls"),
            "by_endpoint": c.get("by_endpoint"),
            "rate_limited": c.get("rate_limited"),
            "failed_attempts": {
                f"{status}:{code}": n for (p, status, code), n in failures.items() if p == platform
            },
        }
    confirmed_by = max((ch["seconds"] or 0) for ch in channels.values())
    return {
        "metric": "burst",
        "skus": skus,
        "variants_changed": changed,
        "set_prices_call_s": round(call_seconds, 2),
        "incomplete": stopped or None,
        "seconds": round(confirmed_by if not stopped else seconds, 2),
        "floor_seconds": round(floor, 2),
        "slowest_floor_channel": max(floors, key=lambda p: floors[p]["seconds"]),
        "ratio_to_floor": round(confirmed_by / floor, 3) if floor and not stopped else None,
        "goal_ratio": GOAL_BURST_RATIO,
        "channels": channels,
        "mismatches": mismatches(sandbox, quantities=False),
    }


# --------------------------------------------------------------------------- lanes


def lane_environment(lane: str, tmp: Path, pg_dir: Path | None) -> dict[str, str]:
    var_dir = tmp / "var"
    var_dir.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pimsync.settings.base",
        "PIMSYNC_VAR_DIR": str(var_dir),
        "DJANGO_DEBUG": "false",  # no query log growing in the workers' memory
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if lane == "pg":
        assert pg_dir is not None
        exported = pg_redis_start(pg_dir)
        env |= {
            "DATABASE_URL": exported["DATABASE_URL"],
            "CELERY_BROKER_URL": exported["CELERY_BROKER_URL"],
            "PIMSYNC_RATE_LIMIT_REDIS_URL": exported["REDIS_URL"],
        }
    else:
        env |= {
            "DATABASE_URL": f"sqlite:///{var_dir / 'bench.sqlite3'}",
            "CELERY_BROKER_URL": "filesystem://",
            "PIMSYNC_RATE_LIMIT_REDIS_URL": "",
        }
    return env


def run_lane(args: argparse.Namespace) -> int:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="pimsync-bench-"))
    pg_dir = Path(tempfile.mkdtemp(prefix="pimsync-bench-pg-")) if args.lane == "pg" else None
    try:
        env = lane_environment(args.lane, tmp, pg_dir)
        os.environ.update(env)
        return _run_lane(args, env, tmp, started)
    except Exception as exc:  # one JSON line saying why the lane stopped
        emit({"lane": args.lane, "metric": "error", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        from django.db import connections

        connections.close_all()
        if pg_dir is not None:
            pg_redis_stop(pg_dir)
            shutil.rmtree(pg_dir, ignore_errors=True)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _phases(
    args: argparse.Namespace,
    lane: dict[str, str],
    sandbox: Sandbox,
    limits: dict[str, Any],
    rates: dict[str, Decimal],
    tasks: TaskLog,
) -> None:
    line = initial_sync(
        sandbox,
        rates,
        scale=args.initial_scale,
        timeout=args.timeout or 1800,
        stall=args.stall,
    )
    emit(lane | line | tasks.since_last())
    line = single_changes(
        changes=args.changes,
        rng=random.Random(args.seed),
        timeout=30.0,
        poll=0.005,
        interval=args.change_interval,
    )
    goal = GOAL_P95_MS[args.lane]
    p95 = line["stored_ms"]["p95"]
    met = p95 is not None and p95 <= goal
    emit(lane | line | {"goal_p95_ms": goal, "met": met} | tasks.since_last())
    line = burst(
        sandbox,
        limits,
        skus=args.skus,
        per_product=args.variants_per_product,
        woo=args.woocommerce,
        timeout=args.timeout,
        stall=args.stall,
    )
    ratio = line["ratio_to_floor"]
    met = ratio is not None and ratio <= GOAL_BURST_RATIO
    emit(lane | line | {"met": met} | tasks.since_last())


def _run_lane(args: argparse.Namespace, env: dict[str, str], tmp: Path, started: float) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    lane = {"lane": args.lane}
    logs = tmp / "logs"
    logs.mkdir()
    with Stack(logs) as stack:
        sandbox = Sandbox(start_sandbox(stack, env))
        sandbox.limits_reset()  # Magento: the host's limit
        limits = sandbox.control("GET", "rate_limits")
        rates = default_rates(limits)
        build_catalog(
            sandbox,
            skus=args.skus,
            per_product=args.variants_per_product,
            woo=args.woocommerce,
            rates=rates,
        )
        workers = start_workers(stack, env, count=args.workers, concurrency=args.concurrency)
        WORKERS[:] = workers
        emit(
            lane
            | {
                "metric": "setup",
                "database": connection.vendor,
                "broker": settings.CELERY_BROKER_URL.split(":", 1)[0],
                "rate_limiter": "redis" if env["PIMSYNC_RATE_LIMIT_REDIS_URL"] else "database",
                "skus": args.skus,
                "channels": len(PLATFORMS),
                "variants_per_product": args.variants_per_product,
                "woocommerce_listings": args.woocommerce,
                "workers": args.workers,
                "concurrency": args.concurrency,
                "sweeper": f"bench thread, sweep_due_channels every {args.sweep_seconds} s",
                "pimsync_rates_per_s": {p: float(r) for p, r in rates.items()},
                "sandbox_limits": "documented defaults; Magento (none documented): "
                f"a small host's {dict(HOSTING_LIMITS['default'])}",
            }
        )
        sampler = RssSampler([w.proc.pid for w in workers])
        tasks = TaskLog()
        with sampler, Sweeper(args.sweep_seconds) as sweeper:
            try:
                _phases(args, lane, sandbox, limits, rates, tasks)
            except TimeoutError as exc:  # a phase that cannot finish ends the lane
                emit(lane | {"metric": "incomplete", "error": str(exc)} | tasks.since_last())
        emit(
            lane
            | {"metric": "worker_memory", **sampler.figures()}
            | {"sweeps": sweeper.sweeps, "sweeper_enqueued": sweeper.enqueued}
            | ({"sweeper_errors": dict(sweeper.errors)} if sweeper.errors else {})
        )
    emit(lane | {"metric": "lane_seconds", "value": round(time.monotonic() - started, 1)})
    return 0


# --------------------------------------------------------------------------- main


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lane", choices=("embedded", "pg", "both"), default="both")
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--variants-per-product", type=int, default=4)
    parser.add_argument("--woocommerce", choices=("simple", "variations"), default="simple")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument(
        "--change-interval",
        type=float,
        default=0.5,
        help="figure a: seconds from one change to the next at least",
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--sweep-seconds", type=float, default=1.0)
    parser.add_argument("--initial-scale", type=float, default=10.0)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per phase (default: initial sync 1800, burst 3 × floor + 120)",
    )
    parser.add_argument(
        "--stall", type=float, default=300.0, help="give up a phase after so long without progress"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    parser.add_argument("--no-noise", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_child(command: list[str]) -> int:
    """One lane in its own process (Django is set up once per process); a stop
    request is passed on so the child stops what it started."""
    child = subprocess.Popen(command)  # noqa: S603 - this script, one lane
    try:
        return child.wait()
    except BaseException:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=120)
        raise


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: processes are stopped


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    if not args.no_noise:
        emit(noise_line("before"))
    if args.lane != "both":
        code = run_lane(args)
    else:
        code = 0
        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "both"]
        rest = [a for a in rest if a != "--lane" and not a.startswith("--lane=")]
        for lane in ("embedded", "pg"):
            code = (
                run_child([sys.executable, __file__, "--lane", lane, "--no-noise", *rest]) or code
            )
    if not args.no_noise:
        emit(noise_line("after"))
        emit({"metric": "total_seconds", "value": round(time.monotonic() - started, 1)})
    return code


if __name__ == "__main__":
    raise SystemExit(main())
