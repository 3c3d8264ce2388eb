"""One rate budget per channel for every call: reconciliation of every listing, a price
change of every SKU and order polls at the same time, on the real stack, against
the sandbox at its DOCUMENTED limits; the sandbox counts every call it had to refuse.

Run from the repository root::

    .venv/bin/python bench/budget.py [--listings 10000] [--ebay-listings 2500]

The pg lane of bench/propagation.py: throwaway PostgreSQL + Redis (broker and
the shared rate limiter), ``manage.py run_sandbox`` on a free loopback port,
two Celery worker processes (``celery`` queue for reconciliation and polls,
``push`` queue for pushes; ``--concurrency`` children each) and beat's part in a
thread of this process (push sweeper every second, due polls every 5 s).

Channels as the demo's (eBay and Amazon with refresh-token credentials: the
token calls spend from the same budget), ``--listings`` listings on Shopify
(products of 4 variants), WooCommerce and Amazon, ``--ebay-listings`` on eBay
(its reconciliation reads each SKU's offer one call at a time: 10,000 listings
are 10,400 calls, 17 minutes at 10 calls/s). pimsync's budgets: Shopify the
shop's cost bucket in points (learnt from the answers), WooCommerce 5 calls/s,
eBay 10/s, Amazon 4.5/s (the documented 5/s of its listings operations, less a
margin). Orders are polled every 60 s (Amazon's searchOrders allows a burst of 20).

At t0 this process asks for a reconciliation of every channel, changes the
price of every SKU in one call (every listing on every channel gets a price
push; Amazon's goes as one JSON_LISTINGS_FEED) and creates ``--orders`` paid
orders on each platform (imported by the polls). It waits until nothing is
pending, every run finished and every order is imported.

JSON lines: ``setup``; per platform ``budget``: the sandbox's ``rate_limited``
(refused for exceeding the platform's limit: must stay 0), its calls by
operation, ``seconds`` until the channel was done (last price confirmed,
reconciliation finished, orders imported), the reconciliation's counts, price
pushes confirmed and mismatches left; ``all`` (``met``: rate_limited 0 on every
platform and everything done); ``lane_seconds``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from _channels import Beat, build_channels, on_pg_lane, sync_log_figures  # noqa: E402
from _stack import Stack, check_alive, start_sandbox, start_workers  # noqa: E402
from propagation import Sandbox, emit  # noqa: E402

PLATFORMS = ("shopify", "woocommerce", "ebay", "amazon")
# Shopify's figure is not used: its budget is the shop's cost bucket in points.
RATES = {
    "shopify": Decimal("1"),
    "woocommerce": Decimal("5"),
    "ebay": Decimal("10"),
    "amazon": Decimal("4.5"),
}
POLL_SECONDS = 60
NEW_PRICE = Decimal("11.00")


def start(sandbox: Sandbox, channels: dict[str, Any], orders: int, seed: int) -> None:
    """t0: reconcile every channel, change every price, place channel orders."""
    from channels_app.models import Channel, ChannelListing
    from channels_app.services import reconcile_request
    from inventory.models import Variant
    from inventory.services import variant_set_prices

    reconcile_request(channels=Channel.objects.order_by("pk"), trigger="manual")
    variant_set_prices(
        prices=dict.fromkeys(Variant.objects.values_list("pk", flat=True), NEW_PRICE)
    )
    rng = random.Random(seed)
    for platform, channel in channels.items():
        skus = list(
            ChannelListing.objects.filter(channel=channel)
            .select_related("variant")
            .values_list("listing_sku", "variant__sku")[:500]
        )
        for _ in range(orders):
            listing_sku, sku = rng.choice(skus)
            body = {
                "platform": platform,
                "lines": [{"sku": listing_sku or sku, "quantity": 1}],
                "webhook": False,
            }
            sandbox.control("POST", "orders", body)


def done_at(channel: Any, orders: int, t0: float) -> float | None:
    """When the channel had nothing left (monotonic seconds since t0), else None."""
    from channels_app.models import ChannelOrder, SyncMarker
    from synclog.models import ReconciliationRun

    if SyncMarker.objects.filter(channel=channel, status=SyncMarker.Status.PENDING).exists():
        return None
    if ReconciliationRun.objects.filter(channel=channel, status="running").exists():
        return None
    if ChannelOrder.objects.filter(channel=channel).count() < orders:
        return None
    return time.monotonic() - t0


def wait_done(
    channels: dict[str, Any], orders: int, workers: list[Any], timeout: float
) -> dict[str, float | None]:
    t0 = time.monotonic()
    finished: dict[str, float | None] = dict.fromkeys(channels)
    while time.monotonic() - t0 < timeout and None in finished.values():
        check_alive(workers)
        for platform, channel in channels.items():
            if finished[platform] is None:
                finished[platform] = done_at(channel, orders, t0)
        time.sleep(2)
    return finished


def mismatched_prices(sandbox: Sandbox, platform: str) -> int:
    values = sandbox.control("GET", f"values/{platform}", timeout=120)
    return sum(1 for item in values.values() if Decimal(str(item["price"])) != NEW_PRICE)


def figures(sandbox: Sandbox, platform: str, channel: Any, seconds: float | None) -> dict[str, Any]:
    from synclog.models import ReconciliationRun

    counters = sandbox.control("GET", f"counters/{platform}")
    run = ReconciliationRun.objects.filter(channel=channel).order_by("-pk").first()
    return {
        "metric": "budget",
        "platform": platform,
        "listings": channel.listings.count(),
        "rate_limited": counters["rate_limited"],
        "calls": counters["calls"],
        "calls_by_operation": counters["by_endpoint"],
        "max_calls_in_1s": counters["max_rate_1s"],
        "seconds": None if seconds is None else round(seconds, 1),
        "reconcile": None
        if run is None
        else {
            "status": run.status,
            "total": run.total,
            "checked": run.checked,
            "skipped_in_flight": run.skipped,
            "drifted": run.drifted,
            "errors": run.errors,
        },
        "prices_not_new": mismatched_prices(sandbox, platform),
        **sync_log_figures(channel),
    }


def run(args: argparse.Namespace, stack: Stack, env: dict[str, str]) -> None:
    counts = dict.fromkeys(PLATFORMS, args.listings) | {"ebay": args.ebay_listings}
    sandbox = Sandbox(start_sandbox(stack, env))
    channels = build_channels(
        sandbox, counts=counts, rates=RATES, poll_seconds=dict.fromkeys(PLATFORMS, POLL_SECONDS)
    )
    workers = [
        *start_workers(
            stack, env, count=1, concurrency=args.concurrency, queues="celery", name="rec"
        ),
        *start_workers(
            stack, env, count=1, concurrency=args.concurrency, queues="push", name="push"
        ),
    ]
    sandbox.control("POST", "counters/reset", {})
    emit(
        {
            "metric": "setup",
            "database": "postgresql",
            "broker": "redis",
            "rate_limiter": "redis",
            "listings": counts,
            "sandbox_limits": sandbox.control("GET", "rate_limits"),
            "pimsync_budgets": {
                "shopify": "the shop's cost bucket in points (extensions.cost)",
                **{p: f"{RATES[p]} calls/s" for p in PLATFORMS if p != "shopify"},
            },
            "poll_seconds": POLL_SECONDS,
            "orders_per_platform": args.orders,
            "workers": "1 x celery queue, 1 x push queue",
            "concurrency": args.concurrency,
        }
    )
    with Beat() as beat:
        start(sandbox, channels, args.orders, args.seed)
        finished = wait_done(channels, args.orders, workers, timeout=args.timeout)
    lines = [figures(sandbox, p, channels[p], finished[p]) for p in PLATFORMS]
    for line in lines:
        emit(line)
    emit(
        {
            "metric": "all",
            "rate_limited": {line["platform"]: line["rate_limited"] for line in lines},
            "seconds": max((round(s, 1) for s in finished.values() if s is not None), default=None),
            "met": all(
                line["rate_limited"] == 0
                and line["seconds"] is not None
                and line["prices_not_new"] == 0
                for line in lines
            ),
            **beat.figures(),
        }
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--ebay-listings", type=int, default=2_500)
    parser.add_argument("--orders", type=int, default=10, help="paid orders per platform")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    return on_pg_lane("budget", lambda stack, env: run(args, stack, env), keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
