"""Connector throughput against the sandbox at its DEFAULT (documented) rate limits.

Run: ``.venv/bin/python bench/connectors.py [--floor-seconds 8] [--only shopify,woocommerce]``

Prints JSON lines: one ``machine_noise`` line (a fixed CPU loop timed
repeatedly, with its spread), then per platform and operation (prices,
quantities) the SKUs pushed per second and the ratio to the rate-limit floor.

How it drives a connector (what the sync engine does): the updates are cut into
the connector's largest batch (``max_price_batch`` / ``max_quantity_batch``),
sent one call after the other, and SKUs reported RETRYABLE are sent again after
their ``retry_after``. Each phase starts with a fresh connector and full
sandbox buckets.

The floor is what the documented limit allows at the maximum batch size:
``calls = ceil(N / max_batch)``; the limit governing the write endpoint (the
most-called non-GET endpoint) has a capacity at start (burst, or Shopify's
1000-point bucket) and a refill rate, so those calls need at least
``floor_seconds = max(0, calls * cost - capacity) / rate`` (cost: 10 points per
Shopify mutation, 1 token elsewhere). ``ratio = floor_seconds / measured
seconds`` (= measured SKUs/s divided by floor SKUs/s); 1.0 means the connector
loses nothing to the limiter. When the capacity at start covers every call the
run is not rate-bound and the ratio is null.

SKU counts are chosen so that each phase's floor is about ``--floor-seconds``
(default 8 s) at the default limits, which keeps the whole run under about two
minutes: Shopify (1000 points, 100/s, 10 points per 250 SKUs) 45,000 SKUs in
products of 250 variants; WooCommerce (5 requests/s, burst 10, 100 per batch)
5,000; eBay (10/s, burst 25, 25 per call) 2,625; Amazon patches (5/s, burst 5,
one SKU per call below the connector's feed threshold) 45; Magento 685 (see below).
One extra Amazon run pushes 1,000 SKUs through a feed, one extra Magento run
5,000 SKUs through one asynchronous bulk; both are processing-bound (the feed
processor, the ``async.operations.all`` consumer), not rate-bound. The Magento
bulk's floor adds the consumer's time as the sandbox models it
(``processing_seconds``: a start delay plus a fixed time per operation of 20 SKUs)
to the rate floor of its calls; the Amazon feed's ratio stays null.

Magento has no rate limit of its own; its host has one. The sandbox is given
``sandbox.magento.HOSTING_LIMITS`` (5 requests/s, burst 10: a small host's PHP-FPM
pool) with Magento's Web API input limits on (20 items per synchronous call), and
the connector the same figures as pacing. A quantity push needs more than its
writes: it reads the stock (twice per connector) and, per 100 SKUs, the source
items and the salable quantity (what unshipped orders hold must stay on the
shelf), so those reads count in its floor (``extra_calls``).

WooCommerce documents no rate limit; the sandbox's 5/s burst 10 models host
capacity, and the connector is given the same figures as its pacing setting
(in production the engine's per-channel limiter plays that part).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _stack import machine_noise

from channels_app.connectors.base import (
    ChannelConfig,
    ItemResult,
    ListingRef,
    PriceUpdate,
    QuantityUpdate,
)
from channels_app.connectors.errors import FailureKind
from channels_app.connectors.registry import connector_class
from sandbox.magento import HOSTING_LIMITS, MagentoSandbox
from sandbox.platform import SandboxPlatform
from sandbox.server import RunningSandbox, start_sandbox
from sandbox.store import ID_KEYS

SHOPIFY_COST_PER_CALL = 10.0
MAX_RETRY_WAIT = 10.0


@dataclass(frozen=True)
class Plan:
    label: str
    platform: str
    skus_per_floor_second: Callable[[float], int]
    group_size: int = 0  # Shopify: variants per product
    items_per_call: int | None = None  # when the API takes fewer than the connector's batch
    platform_config: dict[str, Any] = field(default_factory=dict)
    # Calls the operation needs besides its writes (op, SKUs) -> calls; they spend
    # from the same limit (Magento reads what unshipped orders reserve before writing).
    extra_calls: Callable[[str, int], int] | None = None
    sandbox_limits: Mapping[str, Mapping[str, float]] | None = None  # instead of the defaults
    # Time the platform needs after the calls (op, SKUs) -> seconds, added to the floor
    # (Magento's async consumer running the bulk's operations, as the sandbox models it).
    processing_seconds: Callable[[str, int], float] | None = None


def plans(floor_seconds: float) -> list[Plan]:
    def shopify(seconds: float) -> int:
        # capacity 1000 points = 100 calls free, then 10 calls/s; 250 SKUs per call
        return int((100 + 10 * seconds) * 250)

    return [
        Plan(
            "shopify",
            "shopify",
            shopify,
            group_size=250,
            platform_config={"location_id": "gid://shopify/Location/1"},
        ),
        Plan(
            "woocommerce",
            "woocommerce",
            lambda s: int((10 + 5 * s) * 100),
            platform_config={"requests_per_second": 5, "burst": 10},
        ),
        Plan(
            "ebay",
            "ebay",
            lambda s: int((25 + 10 * s) * 25),
            platform_config={"marketplace_id": "EBAY_US"},
        ),
        Plan(
            "amazon",
            "amazon",
            lambda s: int(5 + 5 * s),
            items_per_call=1,  # patchListingsItem takes one SKU (below the feed threshold)
            platform_config=amazon_config(),
        ),
        Plan(
            "amazon-feed",
            "amazon",
            lambda s: 1000,
            platform_config=amazon_config(),
        ),
        Plan(
            "magento",
            "magento",
            # a quantity push: 20 per write, two reads per 100 SKUs, the stock read once
            lambda s: int((MAGENTO_HOST_BURST + MAGENTO_HOST_RATE * s - 2) / 7 * 100),
            items_per_call=MAGENTO_INPUT_LIMIT,
            platform_config=magento_config(async_threshold=0),
            extra_calls=magento_reads,
            sandbox_limits=magento_limits(),
        ),
        Plan(
            "magento-async",
            "magento",
            lambda s: 5000,
            platform_config=magento_config(
                async_threshold=200, read_page_size=300, bulk_poll_seconds=0.5
            ),
            extra_calls=lambda op, skus: magento_reads(op, skus, page=300),
            sandbox_limits=magento_limits(),
            processing_seconds=lambda op, skus: (
                MagentoSandbox.async_start_seconds
                + math.ceil(skus / MAGENTO_INPUT_LIMIT) * MagentoSandbox.async_seconds_per_operation
            ),
        ),
    ]


MAGENTO_INPUT_LIMIT = 20  # Magento's Web API input limit, when the merchant turns it on
MAGENTO_HOST_RATE = HOSTING_LIMITS["default"]["rate"]
MAGENTO_HOST_BURST = HOSTING_LIMITS["default"]["burst"]


def magento_limits() -> dict[str, dict[str, float]]:
    """A small host's limit, and Magento's input limits switched on."""
    return {
        "default": {"rate": MAGENTO_HOST_RATE, "burst": MAGENTO_HOST_BURST},
        "input": {"list": MAGENTO_INPUT_LIMIT, "max_page_size": 300, "async": 5000},
    }


def magento_config(**options: Any) -> dict[str, Any]:
    """Paced at the host's rate with one token less of burst (the host's bucket then
    always holds one more: network jitter never turns into a 429), at most the input
    limit per synchronous call."""
    return {
        "sync_batch_size": MAGENTO_INPUT_LIMIT,
        "requests_per_second": MAGENTO_HOST_RATE,
        "burst": MAGENTO_HOST_BURST - 1,
        **options,
    }


def magento_reads(op: str, skus: int, page: int = 100) -> int:
    """A quantity push reads the stock (2 calls) and, per page of SKUs, source items
    and salable quantities (2 calls): what unshipped orders hold must stay on the shelf."""
    return 2 + 2 * math.ceil(skus / page) if op == "quantities" else 0


def amazon_config() -> dict[str, Any]:
    return {
        "seller_id": "A1BENCHSELLER",
        "marketplace_id": "ATVPDKIKX0DER",
        "product_type": "PRODUCT",
    }


# --------------------------------------------------------------------------- driving


@dataclass
class Outcome:
    ok: int = 0
    failed: int = 0
    retried_calls: int = 0
    codes: dict[str, int] = field(default_factory=dict)


def drive(
    push: Callable[[Sequence[Any]], list[ItemResult]], updates: Sequence[Any], batch: int
) -> Outcome:
    """Send batch after batch; retryable SKUs go again after their retry_after."""
    outcome = Outcome()
    for start in range(0, len(updates), batch):
        chunk = list(updates[start : start + batch])
        while chunk:
            results = push(chunk)
            retry, waits = [], []
            for update, result in zip(chunk, results, strict=True):
                if result.kind is FailureKind.OK:
                    outcome.ok += 1
                elif result.kind is FailureKind.RETRYABLE:
                    retry.append(update)
                    waits.append(result.retry_after or 0.1)
                    outcome.codes[result.code] = outcome.codes.get(result.code, 0) + 1
                else:
                    outcome.failed += 1
                    outcome.codes[result.code] = outcome.codes.get(result.code, 0) + 1
            if retry:
                outcome.retried_calls += 1
                time.sleep(min(max(waits), MAX_RETRY_WAIT))
            chunk = retry
    return outcome


def write_limit(
    platform: SandboxPlatform, counters: dict[str, Any]
) -> tuple[str, float, float, float] | None:
    """(limit name, capacity at start, refill per second, cost per call) of the write
    path: the most-called rate-limited non-GET endpoint; None when none is limited."""
    if platform.name == "shopify":
        spec = platform.limits["cost"]
        return "cost", spec["maximum"], spec["restore_rate"], SHOPIFY_COST_PER_CALL
    writes = {
        r.name: r.limit_key
        for r in platform.routes
        if r.method != "GET" and r.limit_key and "rate" in platform.limits.get(r.limit_key, {})
    }
    used = [(count, name) for name, count in counters["by_endpoint"].items() if name in writes]
    if not used:
        return None
    _, endpoint = max(used)
    spec = platform.limits[writes[endpoint]]
    return f"{endpoint}:{writes[endpoint]}", spec.get("burst", spec["rate"]), spec["rate"], 1.0


def run_phase(
    box: RunningSandbox, plan: Plan, op: str, listings: list[ListingRef]
) -> dict[str, Any]:
    platform = box.platform(plan.platform)
    # fresh (full) buckets at the documented values (or the plan's, for a limit-less API)
    platform.set_limits(plan.sandbox_limits or platform.limits, replace=True)
    platform.counters.reset()
    config = ChannelConfig(
        channel_id=1,
        platform=plan.platform,
        base_url=box.platform_url(plan.platform),
        credentials=dict(platform.credentials),
        platform_config=dict(plan.platform_config),
    )
    connector = connector_class(plan.platform)(config)
    if op == "prices":
        updates: list[Any] = [
            PriceUpdate(ref, Decimal("7.00") + n % 50) for n, ref in enumerate(listings)
        ]
        push, batch = connector.push_prices, connector.max_price_batch
    else:
        updates = [QuantityUpdate(ref, 20 + n % 30) for n, ref in enumerate(listings)]
        push, batch = connector.push_quantities, connector.max_quantity_batch

    started = time.monotonic()
    outcome = drive(push, updates, batch)
    seconds = time.monotonic() - started

    counters = platform.counters.snapshot()
    limit = write_limit(platform, counters)
    calls = math.ceil(len(updates) / (plan.items_per_call or batch))
    if plan.extra_calls is not None:
        calls += plan.extra_calls(op, len(updates))
    floor_seconds = 0.0
    if limit is not None:
        _, capacity, rate, cost = limit
        floor_seconds = max(0.0, calls * cost - capacity) / rate
    processing = plan.processing_seconds(op, len(updates)) if plan.processing_seconds else 0.0
    floor_seconds += processing
    return {
        "platform": plan.label,
        "op": op,
        "skus": len(updates),
        "ok": outcome.ok,
        "failed": outcome.failed,
        "seconds": round(seconds, 3),
        "skus_per_s": round(len(updates) / seconds, 1),
        "floor_seconds": round(floor_seconds, 3),
        "floor_skus_per_s": round(len(updates) / floor_seconds, 1) if floor_seconds else None,
        "ratio": round(floor_seconds / seconds, 3) if floor_seconds else None,
        "processing_seconds": round(processing, 3) if plan.processing_seconds else None,
        "max_batch": batch,
        "limit": dict(zip(("name", "capacity", "rate", "cost_per_call"), limit, strict=True))
        if limit
        else None,
        "http_calls": counters["calls"],
        "rate_limited": counters["rate_limited"],
        "retried_calls": outcome.retried_calls,
        "codes": outcome.codes,
    }


def seed(platform: SandboxPlatform, plan: Plan, count: int) -> list[ListingRef]:
    rows = [
        {
            "sku": f"BENCH-{n:06d}",
            "price": "5.00",
            "quantity": 10,
            **({"group": f"P{n // plan.group_size}"} if plan.group_size else {}),
        }
        for n in range(count)
    ]
    return [
        ListingRef(sku=item.sku, **{k: v for k, v in item.ids.items() if k in ID_KEYS})
        for item in platform.seed(rows)
    ]


def bench_platform(box: RunningSandbox, plan: Plan, floor_seconds: float) -> list[dict[str, Any]]:
    if plan.platform not in box.app.platforms:
        reason = box.app.missing.get(plan.platform, "not loaded")
        return [{"platform": plan.label, "error": f"sandbox platform unavailable: {reason}"}]
    try:
        connector_class(plan.platform)
    except (ImportError, AttributeError) as exc:
        return [{"platform": plan.label, "error": f"connector unavailable: {exc!r}"}]
    platform = box.platform(plan.platform)
    platform.reset()
    if plan.platform == "amazon" and hasattr(platform, "feed_processing_seconds"):
        platform.feed_processing_seconds = 2.0  # the sandbox default, stated explicitly
    listings = seed(platform, plan, plan.skus_per_floor_second(floor_seconds))
    lines = []
    for op in ("prices", "quantities"):
        try:
            lines.append(run_phase(box, plan, op, listings))
        except Exception as exc:  # the bench reports a broken connector and goes on
            lines.append(
                {
                    "platform": plan.label,
                    "op": op,
                    "error": f"{type(exc).__name__}: {exc}",
                    "where": traceback.format_exc(limit=3).splitlines()[-3:],
                }
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floor-seconds", type=float, default=8.0)
    parser.add_argument("--only", default="", help="comma-separated labels, e.g. shopify,ebay")
    args = parser.parse_args(argv)
    wanted = {label for label in args.only.split(",") if label}

    logging.basicConfig(level=logging.ERROR)  # the connectors warn on every 429
    started = time.monotonic()
    print(json.dumps(machine_noise()), flush=True)
    with start_sandbox() as box:  # default (documented) limits
        for plan in plans(args.floor_seconds):
            if wanted and plan.label not in wanted:
                continue
            for line in bench_platform(box, plan, args.floor_seconds):
                print(json.dumps(line), flush=True)
    print(json.dumps(machine_noise() | {"when": "after"}), flush=True)
    print(json.dumps({"metric": "total_seconds", "value": round(time.monotonic() - started, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
