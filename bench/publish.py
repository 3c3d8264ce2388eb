"""Publishing and content edits on the real stack: products created in pimsync are
published on all five channels, then every product's description is edited and
this process watches the sandbox until each channel shows the new text.

Run from the repository root::

    .venv/bin/python bench/publish.py [--products 25] [--sizes 4]

The pg lane of bench/propagation.py: throwaway PostgreSQL + Redis (broker and
shared rate limiter), ``manage.py run_sandbox`` on a free loopback port at the
documented limits (Magento: a small host's), ``--workers`` Celery worker
processes (``--concurrency`` children each, default and push queues) and beat's
part in a thread of this process (the push sweeper every second). The channels
are configured as the demo's (pimsync/demo.py), with its rates: Shopify 2
calls/s, the others 5. Shopify's calls are paced by the shop's cost-point bucket
(docs/channels.md), not by calls per second: its ``floor_s`` is only an upper bound.

JSON lines:

* ``publish`` per platform: ``--products`` products of ``--sizes`` variants
  published one after another from this process (product_publish, as the admin
  action and the API do), seconds, the channel's calls, and the floor: calls ÷
  pimsync's rate for the channel.
* ``description_edit`` per platform: every product's description saved at once
  (one product_save each); ``seconds`` from the first save until the sandbox
  shows the new description on every SKU of that channel (read from the
  sandbox's own store, every 0.1 s), the calls the channel received meanwhile
  (content pushes only: nothing else changed), ``floor_s`` = (calls − the
  limiter's burst) ÷ rate, ``ratio_to_floor``; the sync log's attribute entries
  (success / other) and the sandbox's ``rate_limited`` (pimsync above the
  platform's limit: should be 0).
* ``lane_seconds`` and the machine-noise lines around the run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from _channels import Beat, on_pg_lane  # noqa: E402
from _stack import Stack, start_sandbox, start_workers  # noqa: E402
from propagation import Sandbox, emit  # noqa: E402

PLATFORMS = ("shopify", "woocommerce", "ebay", "amazon", "magento")
SIZES = ("S", "M", "L", "XL", "XXL", "3XL")
EDITED = "<p>Merino trail sock, reinforced heel and toe (edited).</p>"


def build_catalog(products: int, sizes: int) -> list[Any]:
    """Products of ``sizes`` variants with barcodes, images and stock; none listed yet."""
    from inventory import services
    from inventory.models import Location, Product, Variant

    location = Location.objects.create(code="bench", name="Bench warehouse")
    made = []
    for p in range(products):
        product = services.product_save(
            product=Product(
                title=f"Trail Sock {p}",
                handle=f"trail-sock-{p}",
                description="<p>Merino trail sock.</p>",
                vendor="Acme",
                product_type="Socks",
                image_urls=[f"https://images.example.com/sock-{p}.jpg"],
            )
        )
        for n, size in enumerate(SIZES[:sizes]):
            variant = services.variant_save(
                variant=Variant(
                    product=product,
                    sku=f"SOCK-{p:03d}-{size}",
                    options={"size": size},
                    barcode=f"04006381{p:03d}{n:02d}",
                    price=Decimal("12.00"),
                )
            )
            services.stock_adjust(
                variant=variant,
                location=location,
                quantity=20,
                reason="receive",
                source="bench",
                idempotency_key=f"bench-publish-{variant.sku}",
            )
        made.append(product)
    return made


def build_channels(sandbox: Sandbox) -> dict[str, Any]:
    from channels_app.models import Channel, ChannelLocation
    from inventory.models import Location
    from pimsync.demo import SANDBOX_CHANNELS

    location = Location.objects.get(code="bench")
    channels = {}
    for spec in SANDBOX_CHANNELS:
        channel = Channel.objects.create(
            name=spec["name"],
            slug=spec["slug"],
            platform=spec["platform"],
            base_url=f"{sandbox.url}/{spec['platform']}",
            credentials=spec["credentials"],
            platform_config=spec["platform_config"],
            rate_limit_per_second=Decimal(spec["rate"]),
            reconcile_interval_minutes=0,
        )
        ChannelLocation.objects.create(channel=channel, location=location)
        channels[spec["platform"]] = channel
    return channels


def drained(timeout: float) -> float:
    from channels_app.models import SyncMarker

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not SyncMarker.objects.filter(status=SyncMarker.Status.PENDING).exists():
            break
        time.sleep(0.5)
    return time.monotonic() - started


def publish_all(sandbox: Sandbox, channels: dict[str, Any], products: list[Any]) -> None:
    from channels_app.publishing import product_publish

    for platform, channel in channels.items():
        before = sandbox.control("GET", f"counters/{platform}")["calls"]
        started = time.monotonic()
        outcomes = [product_publish(channel=channel, product=p) for p in products]
        seconds = time.monotonic() - started
        calls = sandbox.control("GET", f"counters/{platform}")["calls"] - before
        rate = float(channel.rate_limit_per_second)
        emit(
            {
                "metric": "publish",
                "platform": platform,
                "products": len(products),
                "published": sum(o.ok for o in outcomes),
                "listed_skus": sum(len(o.listed) for o in outcomes),
                "seconds": round(seconds, 2),
                "calls": calls,
                "rate_per_s": rate,
                "floor_s": round(calls / rate, 2),
            }
        )


def watch_edit(sandbox: Sandbox, channels: dict[str, Any], products: list[Any]) -> None:
    from inventory import services
    from synclog.models import SyncLogEntry

    sandbox.control("POST", "counters/reset", {})
    started = time.monotonic()
    for product in products:
        product.description = EDITED
        services.product_save(product=product)
    saved = time.monotonic() - started
    shown: dict[str, float] = {}
    while len(shown) < len(channels) and time.monotonic() - started < 600:
        for platform in set(channels) - set(shown):
            content = sandbox.control("GET", f"content/{platform}")
            if {row["description"] for row in content.values()} == {EDITED}:
                shown[platform] = time.monotonic() - started
        time.sleep(0.1)
    drained(120)
    counters = sandbox.control("GET", "counters")
    for platform, channel in channels.items():
        rate = float(channel.rate_limit_per_second)
        calls = counters[platform]["calls"]
        floor = max(0.0, calls - max(1.0, rate)) / rate  # the limiter's burst: max(1, rate)
        entries = SyncLogEntry.objects.filter(channel=channel, event_type="attribute")
        seconds = shown.get(platform)
        emit(
            {
                "metric": "description_edit",
                "platform": platform,
                "products": len(products),
                "saves_s": round(saved, 2),
                "seconds": round(seconds, 2) if seconds is not None else None,
                "calls": calls,
                "rate_per_s": rate,
                "floor_s": round(floor, 2),
                "ratio_to_floor": round(seconds / floor, 2) if seconds and floor else None,
                "sync_log_success": entries.filter(status="success", value_sent="product").count(),
                "sync_log_other": entries.exclude(status="success").count(),
                "rate_limited": counters[platform]["rate_limited"],
            }
        )


def run(args: argparse.Namespace, stack: Stack, env: dict[str, str]) -> None:
    sandbox = Sandbox(start_sandbox(stack, env))
    sandbox.limits_reset()
    products = build_catalog(args.products, args.sizes)
    channels = build_channels(sandbox)
    start_workers(stack, env, count=args.workers, concurrency=args.concurrency)
    emit(
        {
            "metric": "setup",
            "database": "postgresql",
            "broker": "redis",
            "products": args.products,
            "variants_per_product": args.sizes,
            "platforms": list(PLATFORMS),
            "pimsync_rates_per_s": {p: float(c.rate_limit_per_second) for p, c in channels.items()},
            "workers": args.workers,
            "concurrency": args.concurrency,
        }
    )
    with Beat():
        publish_all(sandbox, channels, products)
        emit({"metric": "first_pushes_drained", "seconds": round(drained(300), 1)})
        watch_edit(sandbox, channels, products)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=25)
    parser.add_argument("--sizes", type=int, default=4, choices=range(1, len(SIZES) + 1))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    return on_pg_lane("publish", lambda stack, env: run(args, stack, env), keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
