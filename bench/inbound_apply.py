"""A storm of orders for one SKU, applied by real Celery worker processes on
PostgreSQL + Redis: orders applied per second, and the ledger kept exact.

Run from the repository root::

    .venv/bin/python bench/inbound_apply.py [--orders 1000] [--stock 100] [--workers 2,4]

It starts throwaway PostgreSQL + Redis (scripts/pg-redis.sh) and the channel
sandbox (documented limits), runs ``manage.py migrate`` and builds four
channels (one per platform) with bench/propagation.py's catalog. For each worker
count K in ``--workers`` it then takes a fresh SKU with ``--stock`` units
received through the ledger, stores ``--orders`` one-unit orders for it as
inbound events spread over the four channels — signed-webhook bodies for
Shopify and WooCommerce, poll events (normalised orders) for eBay and Amazon,
as the endpoint and the poller store them — starts K Celery worker processes
(one pool process each, the production settings) and sends the events' ids as
tasks of ``--chunk`` ids each, as web processes do. The clock runs from the
first task sent until no event of the storm is pending.

JSON lines (one object per line):

1. ``machine_noise`` before and after (cores, load average, a fixed CPU loop):
   the two cores are shared, so read the figures next to it.
2. ``inbound_storm`` per K: orders applied per second (goal >= 250), sales
   (must equal ``--stock``), oversell conflicts (the rest), the stock level and
   whether it equals the sum of its ledger rows, event outcomes, how many
   deadlocks the workers logged, CPU seconds of PostgreSQL and the workers.
   With ``--settle``, ``channels_zero_after_storm_s``: seconds from the storm's
   last order applied until each channel showed 0 for the SKU in the sandbox
   (the pushes share the workers and their queue with the storm's tasks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import requests  # noqa: E402
from _stack import (  # noqa: E402
    Stack,
    Started,
    bench_folders,
    check_alive,
    django_migrated,
    pg_redis_start,
    process_tree,
    start_sandbox,
    start_workers,
)
from ingest import cpu_seconds, pid_file, production_env  # noqa: E402
from propagation import (  # noqa: E402
    PLATFORMS,
    SEED_KEYS,
    Sandbox,
    build_catalog,
    default_rates,
    emit,
    listing_ids,
    noise_line,
)

GOAL_ORDERS_PER_S = 250
TASK = "channels_app.tasks.inbound_events_process_task"
FIRST_ORDER_ID = 4_000_000


# --------------------------------------------------------------------------- events


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shopify_event(order_id: int, sku: str, variant_ref: str, now: datetime) -> dict[str, Any]:
    """An orders/paid delivery as the endpoint stores it (headers kept, signature dropped)."""
    body = {
        "id": order_id,
        "name": f"#{order_id}",
        "email": f"shopper{order_id}@example.com",
        "created_at": _iso(now),
        "updated_at": _iso(now),
        "financial_status": "paid",
        "fulfillment_status": None,
        "cancelled_at": None,
        "currency": "USD",
        "total_price": "10.00",
        "line_items": [
            {
                "id": order_id * 10,
                "variant_id": int(variant_ref.rsplit("/", 1)[-1]),
                "sku": sku,
                "quantity": 1,
                "price": "10.00",
            }
        ],
    }
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Webhook-Id": f"storm-{order_id}",
        "X-Shopify-Triggered-At": _iso(now),
    }
    return {"topic": "orders/paid", "delivery_id": f"storm-{order_id}", "headers": headers,
            "body": json.dumps(body)}  # fmt: skip


def woo_event(order_id: int, sku: str, variation: str, now: datetime) -> dict[str, Any]:
    body = {
        "id": order_id,
        "number": str(order_id),
        "status": "processing",
        "currency": "USD",
        "total": "10.00",
        "date_created_gmt": _iso(now)[:-1],
        "date_modified_gmt": _iso(now)[:-1],
        "billing": {"email": f"shopper{order_id}@example.com", "phone": ""},
        "line_items": [
            {
                "id": order_id * 10,
                "product_id": int(variation),
                "variation_id": 0,
                "sku": sku,
                "quantity": 1,
                "subtotal": "10.00",
                "price": 10,
            }
        ],
    }
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "updated",
        "X-WC-Webhook-Delivery-ID": f"storm-{order_id}",
    }
    return {"topic": "order.updated", "delivery_id": f"storm-{order_id}", "headers": headers,
            "body": json.dumps(body)}  # fmt: skip


def poll_event(order_id: int, sku: str, now: datetime) -> dict[str, Any]:
    """A poll finding as the poller stores it: the normalised order as JSON."""
    from channels_app.connectors.base import OrderData, OrderLineData
    from channels_app.orders.events import order_data_to_json
    from channels_app.orders.polling import poll_delivery_id

    order = OrderData(
        external_id=str(order_id),
        name=f"#{order_id}",
        status="paid",
        financial_status="paid",
        fulfillment_status="",
        currency="USD",
        total=Decimal("10.00"),
        updated_at=now,
        created_at=now,
        lines=[OrderLineData(str(order_id * 10), sku, 1, Decimal("10.00"))],
        customer_email=f"shopper{order_id}@example.com",
    )
    return {"topic": "poll", "delivery_id": poll_delivery_id(order), "headers": {},
            "body": order_data_to_json(order)}  # fmt: skip


def store_storm(run: int, sku: str, orders: int) -> list[int]:
    """The storm's events, spread round-robin over the four channels, received
    one millisecond apart (arrival order); returns their ids in that order."""
    from channels_app.models import Channel, ChannelListing, InboundEvent

    channels = {c.platform: c for c in Channel.objects.all()}
    refs = {
        lst.channel.platform: lst.external_variant_id
        for lst in ChannelListing.objects.filter(variant__sku=sku).select_related("channel")
    }
    now = datetime.now(UTC)
    rows = []
    for n in range(orders):
        platform = PLATFORMS[n % len(PLATFORMS)]
        order_id = FIRST_ORDER_ID + run * 100_000 + n
        if platform == "shopify":
            spec, source = shopify_event(order_id, sku, refs[platform], now), "webhook"
        elif platform == "woocommerce":
            spec, source = woo_event(order_id, sku, refs[platform], now), "webhook"
        else:
            spec, source = poll_event(order_id, sku, now), "poll"
        rows.append(
            InboundEvent(
                channel=channels[platform],
                source=source,
                delivery_id=spec["delivery_id"],
                topic=spec["topic"],
                headers=spec["headers"],
                raw_body=spec["body"],
                external_order_id=str(order_id),
                received_at=now + timedelta(milliseconds=n),
            )
        )
    created = InboundEvent.objects.bulk_create(rows, batch_size=500)
    return [event.pk for event in created]


# --------------------------------------------------------------------------- the SKU


def fresh_sku(sandbox: Sandbox, run: int, stock: int) -> str:
    """A new SKU listed on every channel (sandbox too, showing ``stock``), with
    ``stock`` units received through the ledger at the bench location."""
    from channels_app.models import Channel, ChannelListing
    from inventory import services
    from inventory.models import Location, Product, Variant

    index = 900 + run  # listing ids of bench/propagation.py's scheme, clear of the catalog's
    sku = f"STORM{run:03d}"
    product = Product.objects.create(title=f"Storm {run}", handle=f"storm-{run}")
    variant = Variant.objects.create(product=product, sku=sku, price=Decimal("10.00"))
    seed = {}
    for channel in Channel.objects.all():
        ids = listing_ids(channel.platform, index, 900 + run, sku, "simple")
        ChannelListing.objects.create(channel=channel, variant=variant, **ids)
        row = {SEED_KEYS[k]: value for k, value in ids.items() if value}
        seed[channel.platform] = [
            {"sku": ids.get("listing_sku") or sku, **row, "price": "10.00", "quantity": stock}
        ]
    sandbox.control("POST", "seed", seed)
    services.stock_adjust(
        variant=variant,
        location=Location.objects.get(code="bench"),
        quantity=stock,
        reason="receive",
        source="bench",
        idempotency_key=f"storm-seed-{run}",
    )
    return sku


def ledger_figures(sku: str) -> dict[str, Any]:
    from django.db.models import Sum

    from channels_app.models import ChannelOrderLine
    from inventory.models import StockLevel, StockMovement

    level = StockLevel.objects.get(variant__sku=sku)
    sums = StockMovement.objects.filter(variant__sku=sku).aggregate(
        on_hand=Sum("delta_on_hand"),
        committed=Sum("delta_committed"),
        reserved=Sum("delta_reserved"),
        damaged=Sum("delta_damaged"),
    )
    buckets = {b: getattr(level, b) for b in ("on_hand", "committed", "reserved", "damaged")}
    states = Counter(
        ChannelOrderLine.objects.filter(variant__sku=sku).values_list("state", flat=True)
    )
    return {
        "sales": states.get("committed", 0),
        "conflicts": states.get("oversold", 0),
        "line_states": dict(states),
        "level": buckets,
        "ledger_equals_level": {k: v or 0 for k, v in sums.items()} == buckets,
    }


# --------------------------------------------------------------------------- a run


def wait_applied(event_ids: list[int], timeout: float, workers: list[Started]) -> float:
    from channels_app.models import InboundEvent

    started = time.perf_counter()
    pending = InboundEvent.objects.filter(pk__in=event_ids, status="pending")
    while pending.exists():
        check_alive(workers)
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{pending.count()} storm events still pending after {timeout} s")
        time.sleep(0.01)
    return time.perf_counter()


def deadlocks_logged(workers: list[Started]) -> int:
    found = 0
    for worker in workers:
        with contextlib.suppress(OSError):
            found += worker.log_path.read_text(errors="replace").count("deadlock detected")
    return found


def storm_run(
    stack_logs: Path,
    env: dict[str, str],
    sandbox: Sandbox,
    args: argparse.Namespace,
    run: int,
    workers_count: int,
    pg_pids: list[int],
) -> dict[str, Any]:
    from celery import current_app

    from channels_app.models import InboundEvent

    sku = fresh_sku(sandbox, run, args.stock)
    event_ids = store_storm(run, sku, args.orders)
    run_logs = stack_logs / f"run-{run}"
    run_logs.mkdir()
    with Stack(run_logs) as stack:
        workers = start_workers(stack, env, count=workers_count, concurrency=1)
        pids = [w.proc.pid for w in workers]
        cpu_before = {
            "postgres": cpu_seconds(process_tree(pg_pids)),
            "workers": cpu_seconds(process_tree(pids)),
        }
        started = time.perf_counter()
        for start in range(0, len(event_ids), args.chunk):
            current_app.send_task(TASK, args=[event_ids[start : start + args.chunk]])
        finished = wait_applied(event_ids, args.timeout, workers)
        cpu = {
            "postgres": round(cpu_seconds(process_tree(pg_pids)) - cpu_before["postgres"], 2),
            "workers": round(cpu_seconds(process_tree(pids)) - cpu_before["workers"], 2),
        }
        seconds = finished - started
        deadlocks = deadlocks_logged(workers)
        figures = ledger_figures(sku)
        outcomes = Counter(
            InboundEvent.objects.filter(pk__in=event_ids).values_list("status", flat=True)
        )
        if args.settle:
            channels = wait_channels_zero(sandbox, sku, args.settle, workers)
        rate = args.orders / seconds
    line = {
        "metric": "inbound_storm",
        "database": "postgresql",
        "workers": workers_count,
        "worker_pool": "prefork, 1 process per worker",
        "orders": args.orders,
        "stock": args.stock,
        "platform_mix": "1/4 each: shopify + woocommerce webhook events, ebay + amazon poll events",
        "task_chunk": args.chunk,
        "batch_size": int(env.get("PIMSYNC_INBOUND_BATCH_SIZE", "200")),
        "seconds": round(seconds, 3),
        "orders_per_s": round(rate, 1),
        **figures,
        "sales_ok": figures["sales"] == args.stock,
        "conflicts_ok": figures["conflicts"] == args.orders - args.stock,
        "event_statuses": dict(outcomes),
        "deadlocks_logged": deadlocks,
        "cpu_seconds": cpu,
        "cpu_cores": os.cpu_count(),
        "goal_orders_per_s": GOAL_ORDERS_PER_S,
        "met": rate >= GOAL_ORDERS_PER_S
        and figures["sales"] == args.stock
        and figures["ledger_equals_level"]
        and deadlocks == 0,
    }
    if args.settle:
        line["channels_zero_after_storm_s"] = channels
    return line


def wait_channels_zero(
    sandbox: Sandbox, sku: str, timeout: float, workers: list[Started]
) -> dict[str, Any]:
    """Each channel's quantity of the SKU once it shows 0 (or at the timeout)."""
    started = time.monotonic()
    seen: dict[str, Any] = {}
    while time.monotonic() - started < timeout:
        check_alive(workers)
        for platform in PLATFORMS:
            if platform in seen:
                continue
            response = requests.get(
                f"{sandbox.url}/_control/values/{platform}", params={"sku": sku}, timeout=10
            )
            response.raise_for_status()
            item = response.json().get(sku)
            if item is not None and int(item["quantity"]) == 0:
                seen[platform] = round(time.monotonic() - started, 2)
        if len(seen) == len(PLATFORMS):
            break
        time.sleep(0.05)
    return {p: seen.get(p, "not 0") for p in PLATFORMS}


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, tmp: Path, pg_dir: Path) -> None:
    var_dir = tmp / "var"
    var_dir.mkdir()
    env = production_env(pg_redis_start(pg_dir), var_dir)
    env["PIMSYNC_INBOUND_BATCH_SIZE"] = str(args.batch)
    django_migrated(env)
    logs = tmp / "logs"
    logs.mkdir()
    with Stack(logs) as stack:
        sandbox = Sandbox(start_sandbox(stack, env))
        limits = sandbox.control("GET", "rate_limits")
        build_catalog(sandbox, skus=1, per_product=1, woo="simple", rates=default_rates(limits))
        pg_pids = pid_file(pg_dir / "pg" / "postmaster.pid")
        for n, count in enumerate(args.workers):
            emit(storm_run(logs, env, sandbox, args, n + 1, count, pg_pids))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[2, 4],
        help="worker process counts, one run each (comma separated)",
    )
    parser.add_argument("--chunk", type=int, default=10, help="event ids per task")
    parser.add_argument("--batch", type=int, default=200, help="PIMSYNC_INBOUND_BATCH_SIZE")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds to wait for every channel to show 0 after the storm (0: skip)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: processes are stopped


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    emit(noise_line("before"))
    with bench_folders("pimsync-storm", keep=args.keep) as (tmp, pg_dir):
        run(args, tmp, pg_dir)
    emit(noise_line("after"))
    emit({"metric": "total_seconds", "value": round(time.monotonic() - started, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
