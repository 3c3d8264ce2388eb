"""Reconciliation of 5 channels x N listings against the sandbox at its DEFAULT limits.

Run from the repository root::

    .venv/bin/python bench/reconcile.py [--listings 10000] [--drift 50] [--per-product 4]

It migrates a throwaway SQLite database, seeds N variants (bulk, one location,
stock rows written directly: a bench fixture, not a stock change) and one
channel per platform (Shopify, WooCommerce, eBay, Amazon, Magento) with N
listings each, seeds an in-process sandbox (documented limits, loopback HTTP;
Magento, which documents none, gets ``sandbox.magento.HOSTING_LIMITS``) with the
same ids and values, then edits ``--drift`` values per channel directly in the
sandbox (as a person in the channel's console would). The five channels are
reconciled at the same time (one thread each, as five workers would) with the
real connectors, ``channels_app.sync.reconcile`` and the real push engine for
the resyncs.

JSON lines:

* ``machine_noise`` before and after (a fixed CPU loop, load average; bench/_stack.py).
* per channel ``reconcile_channel``: ``read_seconds`` (time inside the bulk
  reads), ``local_seconds`` (everything else of the check: database, fresh
  price/ATP, comparison, findings), ``check_seconds`` (read + local, i.e. until
  every listing was compared), ``resync_verify_seconds`` (forced pushes of the
  drifted listings and their read-back), the run's counters, the read floor,
  ``check_ratio = check_seconds / floor_seconds`` (``read_ratio`` too, which can
  be below 1: the limits' buckets refill while pages are compared) and ``met``:
  check <= 1.2 x floor + the local time, and local time <= 15 s.
* ``reconcile_all``: wall time of the five concurrent checks, the slowest
  channel's read floor and the ratio to it, and whether the goal holds:
  check wall time <= 1.2 x slowest floor + 15 s, every channel met, and every
  edited value found and fixed.

Read floors (calls at the platform's bulk maximum, under the sandbox's limits:
capacity at start = bucket size / burst, then the refill rate):

* Shopify: ``nodes(ids:)`` with 250 ids (the input cap), requested cost
  1 + 3 x ids; bucket 1000 points restored at 100/s:
  ``(sum of costs - 1000) / 100``.
* WooCommerce: ``GET products?include=`` 100 per page (``per_page`` max) for
  simple products; variations are read per parent
  (``products/{id}/variations?include=``), so one call per 100 variations of a
  parent; 5 requests/s, burst 10.
* eBay: ``bulk_get_inventory_item`` 25 SKUs per call for the quantity, plus
  ``GET offer?sku=`` per SKU for the price (the Inventory API has no bulk offer
  read); 10 requests/s, burst 25 (the sandbox's assumption).
* Amazon: ``searchListingsItems`` with 20 SKUs as ``identifiers`` (the
  documented maximum) including offers and fulfillment availability; 5/s,
  burst 5.
* Magento: per 100 SKUs (the connector's page) one product search (price) and
  one salable-quantity export, plus the stock and its sources once; a small
  host's 5 requests/s, burst 10 (``HOSTING_LIMITS``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _embedded import (
    bucket_floor,
    embedded_django,
    in_temporary_folder,
    sandbox_at_documented_limits,
    threads_wall,
)
from _stack import noise_line

PLATFORMS = ("shopify", "woocommerce", "ebay", "amazon", "magento")
GOAL_RATIO = 1.2
GOAL_LOCAL_SECONDS = 15.0
SEED_KEYS = {
    "external_product_id": "product_id",
    "external_variant_id": "variant_id",
    "inventory_item_id": "inventory_item_id",
    "offer_id": "offer_id",
    "listing_sku": "listing_sku",
}


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line, default=str), flush=True)


# --------------------------------------------------------------------------- floors


def read_floor(platform: str, limits: dict[str, dict[str, float]], n: int, per_parent: int) -> dict:
    """Seconds the documented limits need to read n listings at the bulk maximum."""
    if platform == "shopify":
        sizes = [min(250, n - start) for start in range(0, n, 250)]
        points = sum(1 + 3 * size for size in sizes)
        cost = limits["cost"]
        seconds = bucket_floor(points, burst=cost["maximum"], rate=cost["restore_rate"])
        return {"calls": len(sizes), "points": points, "seconds": round(seconds, 2)}
    if platform == "woocommerce":
        calls = math.ceil(n / 100) if per_parent <= 1 else math.ceil(n / per_parent)
        spec = limits["default"]
    elif platform == "ebay":
        calls = math.ceil(n / 25) + n
        spec = limits["default"]
    elif platform == "magento":
        calls = 2 + 2 * math.ceil(n / 100)
        spec = limits["default"]
    else:
        calls = math.ceil(n / 20)
        spec = limits["searchListingsItems"]
    seconds = bucket_floor(calls, burst=spec["burst"], rate=spec["rate"])
    return {"calls": calls, "seconds": round(seconds, 2)}


# --------------------------------------------------------------------------- catalog


def listing_ids(platform: str, index: int, product: int, sku: str, per_parent: int) -> dict:
    if platform == "shopify":
        return {
            "external_product_id": f"gid://shopify/Product/{100000 + product}",
            "external_variant_id": f"gid://shopify/ProductVariant/{200000 + index}",
            "inventory_item_id": f"gid://shopify/InventoryItem/{500000 + index}",
        }
    if platform == "woocommerce":
        variation = str(200000 + index)
        parent = variation if per_parent <= 1 else str(100000 + product)
        return {"external_product_id": parent, "external_variant_id": variation}
    if platform == "ebay":
        return {"offer_id": str(700000 + index), "listing_sku": sku}
    if platform == "magento":  # simple children of one configurable per product
        return {"external_product_id": f"RCFG{product}", "external_variant_id": str(300000 + index)}
    return {"listing_sku": sku}


def build_catalog(sandbox: Any, *, n: int, per_product: int, woo_per_parent: int) -> list:
    """pimsync and the sandbox holding the same values (as after a full push)."""
    from channels_app.models import Channel, ChannelListing, ChannelLocation
    from inventory.models import Location, Product, StockLevel, Variant
    from pimsync.demo import SANDBOX_CHANNELS

    location = Location.objects.create(code="bench", name="Bench warehouse")
    products = Product.objects.bulk_create(
        (
            Product(title=f"Bench {p}", handle=f"bench-{p}")
            for p in range(math.ceil(n / per_product))
        ),
        batch_size=1000,
    )
    variants = Variant.objects.bulk_create(
        (
            Variant(
                product=products[i // per_product],
                sku=f"RB{i:06d}",
                title=f"Size {i % per_product}",
                price=Decimal(10 + i % 40) + Decimal("0.99"),
            )
            for i in range(n)
        ),
        batch_size=1000,
    )
    quantity = {v.pk: 20 + i % 30 for i, v in enumerate(variants)}
    StockLevel.objects.bulk_create(
        (StockLevel(variant=v, location=location, on_hand=quantity[v.pk]) for v in variants),
        batch_size=1000,
    )
    spec_of = {spec["platform"]: spec for spec in SANDBOX_CHANNELS}
    channels = []
    for platform in PLATFORMS:
        spec = spec_of[platform]
        config = dict(spec["platform_config"])
        if platform in ("woocommerce", "magento"):
            # WooCommerce and Magento have no rate limit of their own: the host's
            # capacity (the sandbox's 5/s, burst 10) is the channel's configured pacing.
            config |= {"requests_per_second": 4.8, "burst": 9}
        channel = Channel.objects.create(
            name=f"{platform} (bench)",
            slug=f"bench-{platform}",
            platform=platform,
            base_url=sandbox.platform_url(platform),
            credentials=spec["credentials"],
            platform_config=config,
            rate_limit_per_second=Decimal("10"),
        )
        ChannelLocation.objects.create(channel=channel, location=location)
        parent = woo_per_parent if platform == "woocommerce" else per_product
        listings, rows = [], []
        for i, v in enumerate(variants):
            ids = listing_ids(platform, i, i // parent, v.sku, woo_per_parent)
            listings.append(
                ChannelListing(
                    channel=channel,
                    variant=v,
                    last_pushed_price=v.price,
                    last_confirmed_price=v.price,
                    last_pushed_quantity=quantity[v.pk],
                    last_confirmed_quantity=quantity[v.pk],
                    **ids,
                )
            )
            row = {SEED_KEYS[k]: value for k, value in ids.items() if value}
            rows.append(
                {
                    "sku": ids.get("listing_sku") or v.sku,
                    **row,
                    "price": f"{v.price:.2f}",
                    "quantity": quantity[v.pk],
                }
            )
        ChannelListing.objects.bulk_create(listings, batch_size=1000)
        sandbox.platform(platform).seed(rows)
        channels.append(channel)
    return channels


def edit_in_console(sandbox: Any, channel: Any, n: int, rng: random.Random) -> None:
    from channels_app.models import ChannelListing

    picked = rng.sample(
        list(ChannelListing.objects.filter(channel=channel).select_related("variant")), n
    )
    platform = sandbox.platform(channel.platform)
    with platform.lock:
        for i, listing in enumerate(picked):
            item = platform.catalog.get(listing.channel_sku) or platform.catalog.find_by_id(
                "listing_sku", listing.channel_sku
            )
            # set_values, as the control API does: Magento keeps its sources and prices.
            if i % 2:
                platform.catalog.set_values(item.sku, price=item.price + Decimal("5.00"))
            else:
                platform.catalog.set_values(item.sku, quantity=rng.choice([0, 3, 500]))


# --------------------------------------------------------------------------- running


class ReadTimer:
    """Time spent inside the connectors' bulk reads, per thread (= per channel)."""

    def __init__(self) -> None:
        self.local = threading.local()

    def wrap(self, read_live: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return read_live(*args, **kwargs)
            finally:
                self.local.seconds = getattr(self.local, "seconds", 0.0) + (
                    time.perf_counter() - started
                )

        return timed

    def take(self) -> float:
        seconds = getattr(self.local, "seconds", 0.0)
        self.local.seconds = 0.0
        return seconds


def reconcile_one(channel: Any, timer: ReadTimer, floor: dict, out: dict) -> None:
    from django.db import connection

    from channels_app.models import SyncMarker
    from channels_app.orders.polling import channel_poll
    from channels_app.sync import engine
    from channels_app.sync.reconcile import (
        reconciliation_check,
        reconciliation_start,
        reconciliation_verify,
    )

    try:
        started = time.perf_counter()
        run = reconciliation_start(channel=channel, trigger="api")
        run = reconciliation_check(run.pk)
        check = time.perf_counter() - started
        read = timer.take()
        deadline = time.monotonic() + 600
        while run.status == "running":
            engine.channel_push(channel.pk)
            # A value edited down in the console looks like an unseen sale to read
            # before write: the push back waits for an orders poll, which beat and a
            # worker would run (this bench has neither).
            if SyncMarker.objects.filter(channel=channel, held_for_poll_at__isnull=False).exists():
                channel_poll(channel.pk)
            if reconciliation_verify(run.pk, force=time.monotonic() > deadline):
                break
            time.sleep(0.2)
        run.refresh_from_db()
        out[channel.platform] = {
            "metric": "reconcile_channel",
            "platform": channel.platform,
            "listings": run.total,
            "status": run.status,
            "checked": run.checked,
            "skipped": run.skipped,
            "drifted": run.drifted,
            "resynced": run.resynced,
            "fixed": run.fixed,
            "errors": run.errors,
            "error_message": run.error_message[:300],
            "check_seconds": round(check, 2),
            "read_seconds": round(read, 2),
            "local_seconds": round(check - read, 2),
            "resync_verify_seconds": round(time.perf_counter() - started - check, 2),
            "floor": floor,
            # The bucket refills while the channel's pages are compared, so the time
            # inside reads alone can undercut the floor: check_ratio is the fair one.
            "read_ratio": round(read / floor["seconds"], 3) if floor["seconds"] else None,
            "check_ratio": round(check / floor["seconds"], 3) if floor["seconds"] else None,
            "met": check <= GOAL_RATIO * floor["seconds"] + min(check - read, GOAL_LOCAL_SECONDS)
            and check - read <= GOAL_LOCAL_SECONDS,
        }
    except Exception as exc:  # one line saying why, the other channels go on
        out[channel.platform] = {
            "metric": "reconcile_channel",
            "platform": channel.platform,
            "error": f"{type(exc).__name__}: {exc}",
        }
    finally:
        connection.close()


def run(args: argparse.Namespace, tmp: Path) -> int:
    embedded_django(tmp)
    from channels_app.sync import reconcile

    emit(noise_line("before"))
    sandbox = sandbox_at_documented_limits()
    try:
        started = time.perf_counter()
        channels = build_catalog(
            sandbox,
            n=args.listings,
            per_product=args.per_product,
            woo_per_parent=args.woo_per_parent,
        )
        rng = random.Random(args.seed)
        for channel in channels:
            edit_in_console(sandbox, channel, args.drift, rng)
        emit(
            {
                "metric": "seeded",
                "listings_per_channel": args.listings,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        timer = ReadTimer()
        reconcile.read_live = timer.wrap(reconcile.read_live)
        floors = {
            p: read_floor(p, sandbox.platform(p).limits, args.listings, args.woo_per_parent)
            for p in PLATFORMS
        }
        for p in PLATFORMS:
            sandbox.platform(p).counters.reset()
        out: dict[str, dict] = {}
        wall = threads_wall(reconcile_one, [(c, timer, floors[c.platform], out) for c in channels])
        for p in PLATFORMS:
            line = out.get(p, {"platform": p, "error": "no result"})
            line["calls_by_endpoint"] = sandbox.platform(p).counters.snapshot()["by_endpoint"]
            line["rate_limited"] = sandbox.platform(p).counters.snapshot()["rate_limited"]
            emit(line)
        ok = [line for line in out.values() if "error" not in line]
        slowest = max(PLATFORMS, key=lambda p: floors[p]["seconds"])
        check_wall = max((line["check_seconds"] for line in ok), default=None)
        local = round(sum(line["local_seconds"] for line in ok), 2)
        floor = floors[slowest]["seconds"]
        met = (
            len(ok) == len(PLATFORMS)
            and check_wall is not None
            and check_wall <= GOAL_RATIO * floor + GOAL_LOCAL_SECONDS
            and all(line["met"] for line in ok)
            and all(line["drifted"] == line["fixed"] == args.drift for line in ok)
        )
        emit(
            {
                "metric": "reconcile_all",
                "channels": len(PLATFORMS),
                "listings_per_channel": args.listings,
                "drift_per_channel": args.drift,
                "check_wall_seconds": round(check_wall, 2) if check_wall else None,
                "total_wall_seconds": round(wall, 2),
                "slowest_floor_channel": slowest,
                "slowest_floor_seconds": floor,
                "ratio_to_slowest_floor": round(check_wall / floor, 3)
                if check_wall and floor
                else None,
                "local_seconds_sum": local,
                "goal": f"check wall <= {GOAL_RATIO} x floor + {GOAL_LOCAL_SECONDS} s local",
                "met": met,
            }
        )
        emit(noise_line("after"))
        return 0 if met else 1
    finally:
        sandbox.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=10_000, help="listings per channel")
    parser.add_argument("--drift", type=int, default=50, help="values edited per channel")
    parser.add_argument("--per-product", type=int, default=4, help="variants per product")
    parser.add_argument(
        "--woo-per-parent",
        type=int,
        default=1,
        help="WooCommerce variations per parent product (1 = simple products)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary database")
    args = parser.parse_args(argv)
    return in_temporary_folder(run, args, "pimsync-reconcile-")


if __name__ == "__main__":
    sys.exit(main())
