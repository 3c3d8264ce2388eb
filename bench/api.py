"""The REST API through a production-like stack: gunicorn (production settings),
PostgreSQL, Redis (broker, rate limiter, API throttle counters), Celery workers,
celery beat and the channel sandbox at its default limits, all on loopback.

Run from the repository root::

    .venv/bin/python bench/api.py [--skus 10000] [--seconds 15] [--clients 8]

It starts throwaway PostgreSQL + Redis (scripts/pg-redis.sh), migrates, seeds
``--skus`` SKUs (products of 4 variants, one location) on four sandbox channels
with the same ids as bench/propagation.py (``--initial-sync`` pushes them all once
first, not measured), starts gunicorn (``--gunicorn-workers`` × gthread) and makes a
staff user with an API token. Everything it started is stopped on exit.

JSON lines (one object per line):

1. ``variant_read``: ``GET /api/v1/variants/{id}/`` of random variants (the variant
   with every channel's price, ATP, listing and sync state), ``--clients``
   keep-alive clients for ``--seconds``: requests/s, p50/p95/p99 latency.
2. ``variant_list_100``: ``GET /api/v1/variants/?page_size=100`` following the
   cursor from random starting SKUs: requests/s, p50/p95/p99.
3. ``movement_post``: ``POST /api/v1/stock-movements/`` (receive 1 unit of a random
   SKU, a fresh Idempotency-Key each) while the workers push the new quantities:
   requests/s, p50/p95/p99; afterwards the ledger must hold exactly one row per 201.
4. ``bulk_prices``: one ``POST /api/v1/bulk/prices/`` with a new price for every SKU;
   the request's own time, then the time until every channel confirmed every SKU
   (a success sync log entry per SKU and channel), against the slowest channel's
   rate-limit floor (bench/propagation.py's ``burst_floor``).
5. ``machine_noise`` before and after (cores, load average, a fixed CPU loop).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import propagation  # noqa: E402
import requests  # noqa: E402
from _production import api_user_token, production_stack  # noqa: E402
from _stack import (  # noqa: E402
    bench_main,
    start_beat,
    start_gunicorn,
    start_sandbox,
    start_workers,
)
from propagation import (  # noqa: E402
    PLATFORMS,
    Sandbox,
    build_catalog,
    burst_floor,
    default_rates,
    emit,
    initial_sync,
    mismatches,
    percentile,
    wait_drained,
)

PER_PRODUCT = 4


# --------------------------------------------------------------------------- load


def load(
    base: str,
    token: str,
    request: Callable[[requests.Session, random.Random], requests.Response],
    *,
    clients: int,
    seconds: float,
    seed: int,
    expect: frozenset[int] = frozenset({200}),
) -> dict[str, Any]:
    """``clients`` threads, each with its own keep-alive session, sending for ``seconds``."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        mine: list[float] = []
        seen: Counter[int] = Counter()
        start.wait()
        while time.monotonic() < stop_at[0]:
            began = time.perf_counter()
            response = request(session, rng)
            mine.append((time.perf_counter() - began) * 1000)
            seen[response.status_code] += 1
        with lock:
            latencies.extend(mine)
            statuses.update(seen)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    stop_at.append(time.monotonic() + seconds)
    began = time.monotonic()
    start.wait()
    for t in threads:
        t.join()
    took = time.monotonic() - began
    unexpected = {str(k): v for k, v in statuses.items() if k not in expect}
    return {
        "requests": len(latencies),
        "clients": clients,
        "seconds": round(took, 2),
        "requests_per_s": round(len(latencies) / took, 1),
        "p50_ms": round(percentile(latencies, 50) or 0, 1),
        "p95_ms": round(percentile(latencies, 95) or 0, 1),
        "p99_ms": round(percentile(latencies, 99) or 0, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "unexpected_statuses": unexpected,
    }


# --------------------------------------------------------------------------- phases


def read_phases(base: str, token: str, args: argparse.Namespace) -> None:
    from inventory.models import Variant

    ids = list(Variant.objects.values_list("pk", flat=True))

    def read(session: requests.Session, rng: random.Random) -> requests.Response:
        return session.get(f"{base}/api/v1/variants/{rng.choice(ids)}/", timeout=30)

    def list_first(session: requests.Session, rng: random.Random) -> requests.Response:
        return session.get(f"{base}/api/v1/variants/?page_size=100", timeout=30)

    kwargs = {"clients": args.clients, "seconds": args.seconds, "seed": args.seed}
    load(base, token, read, clients=2, seconds=2, seed=0)  # warm every gunicorn worker
    emit({"metric": "variant_read", "channels": 4, **load(base, token, read, **kwargs)})
    emit(
        {
            "metric": "variant_list_100",
            "page_size": 100,
            **load(base, token, list_first, **kwargs),
        }
    )


def movement_phase(base: str, token: str, args: argparse.Namespace) -> None:
    from inventory.models import StockMovement, Variant

    skus = list(Variant.objects.values_list("sku", flat=True))
    before = StockMovement.objects.filter(source="api").count()

    def post(session: requests.Session, rng: random.Random) -> requests.Response:
        body = {"sku": rng.choice(skus), "location": "bench", "reason": "receive", "quantity": 1}
        return session.post(
            f"{base}/api/v1/stock-movements/",
            json=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
            timeout=30,
        )

    result = load(
        base,
        token,
        post,
        clients=args.clients,
        seconds=args.seconds,
        seed=args.seed,
        expect=frozenset({201}),
    )
    ledger = StockMovement.objects.filter(source="api").count() - before
    emit(
        {
            "metric": "movement_post",
            **result,
            "ledger_rows": ledger,
            "ledger_matches_201s": ledger == result["statuses"].get("201", 0),
        }
    )


def bulk_prices_phase(
    base: str, token: str, sandbox: Sandbox, args: argparse.Namespace
) -> dict[str, Any]:
    from django.db.models import Count, Max
    from django.utils import timezone

    from channels_app.models import Channel
    from inventory.models import Variant
    from synclog.models import SyncLogEntry

    limits = sandbox.control("GET", "rate_limits")
    floors = burst_floor(limits, skus=args.skus, per_product=PER_PRODUCT, woo=args.woo)
    floor = max(f["seconds"] for f in floors.values())
    platform_of = dict(Channel.objects.values_list("pk", "platform"))
    rows = [
        {"sku": sku, "price": str(Decimal("30.00") + Decimal(n % 700) / 100)}
        for n, sku in enumerate(Variant.objects.order_by("pk").values_list("sku", flat=True))
    ]
    sandbox.limits_reset()  # full buckets: the floor counts their capacity
    time.sleep(1.5)
    before, clock = timezone.now(), time.monotonic()
    response = requests.post(
        f"{base}/api/v1/bulk/prices/",
        json={"prices": rows},
        headers={"Authorization": f"Token {token}", "Idempotency-Key": uuid.uuid4().hex},
        timeout=300,
    )
    request_s = time.monotonic() - clock
    response.raise_for_status()
    stopped, confirmed, progress_at = "", -1, time.monotonic()
    done: dict[int, dict[str, Any]] = {}
    while True:
        counted = (
            SyncLogEntry.objects.filter(
                event_type="price", status="success", created_at__gte=before
            )
            .values("channel_id")
            .annotate(n=Count("sku", distinct=True), last=Max("created_at"))
        )
        done = {row["channel_id"]: row for row in counted}
        if all(done.get(cid, {}).get("n", 0) >= args.skus for cid in platform_of):
            break
        propagation.check_alive(propagation.WORKERS)
        total = sum(row["n"] for row in done.values())
        if total != confirmed:
            confirmed, progress_at = total, time.monotonic()
        if time.monotonic() - progress_at > args.stall:
            stopped = f"no confirmation for {args.stall:.0f} s"
            break
        time.sleep(0.5)
    channels = {}
    for cid, platform in sorted(platform_of.items(), key=lambda kv: PLATFORMS.index(kv[1])):
        row = done.get(cid)
        took = (row["last"] - before).total_seconds() if row else None
        channels[platform] = {
            "confirmed": row["n"] if row else 0,
            "seconds": round(took, 1) if took is not None else None,
            "floor_seconds": round(floors[platform]["seconds"], 1),
        }
    confirmed_by = max((c["seconds"] or 0) for c in channels.values())
    return {
        "metric": "bulk_prices",
        "skus": args.skus,
        "response": response.json(),
        "request_s": round(request_s, 2),
        "all_channels_confirmed_s": None if stopped else round(confirmed_by, 1),
        "incomplete": stopped or None,
        "floor_seconds": round(floor, 1),
        "slowest_floor_channel": max(floors, key=lambda p: floors[p]["seconds"]),
        "ratio_to_floor": round(confirmed_by / floor, 3) if floor and not stopped else None,
        "channels": channels,
        "mismatches": mismatches(sandbox, quantities=False),
    }


# --------------------------------------------------------------------------- run


def run(args: argparse.Namespace, tmp: Path, pg_dir: Path) -> None:
    from django.db import connection

    def unthrottled(exported: dict[str, str]) -> dict[str, str]:
        # The bench measures the API, not its throttle: rates far above the load.
        return {
            "PIMSYNC_API_RATE": "10000000/minute",
            "PIMSYNC_API_BULK_RATE": "1000/minute",
            "PIMSYNC_API_THROTTLE_REDIS_URL": exported["REDIS_URL"],
        }

    with production_stack(tmp, pg_dir, unthrottled) as (stack, env):
        sandbox = Sandbox(start_sandbox(stack, env))
        rates = default_rates(sandbox.control("GET", "rate_limits"))
        build_catalog(sandbox, skus=args.skus, per_product=PER_PRODUCT, woo=args.woo, rates=rates)
        workers = start_workers(stack, env, count=1, concurrency=args.concurrency)
        propagation.WORKERS[:] = workers
        start_beat(stack, env)
        sync = (
            initial_sync(sandbox, rates, scale=10, timeout=args.timeout, stall=args.stall)
            if args.initial_sync
            else {"seconds": None, "mismatches": None}
        )
        _gunicorn, port = start_gunicorn(
            stack, env, workers=args.gunicorn_workers, worker_class="gthread", threads=4
        )
        base = f"http://127.0.0.1:{port}"
        token = api_user_token()
        emit(
            {
                "metric": "setup",
                "database": connection.vendor,
                "skus": args.skus,
                "channels": len(PLATFORMS),
                "initial_sync_s": sync["seconds"],
                "initial_sync_mismatches": sync["mismatches"],
                "gunicorn": f"{args.gunicorn_workers} x gthread(4)",
                "celery": f"1 worker x {args.concurrency}",
            }
        )
        read_phases(base, token, args)
        movement_phase(base, token, args)
        wait_drained(args.timeout, args.stall)
        emit(bulk_prices_phase(base, token, sandbox, args))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=15.0, help="per load phase")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="Celery pool size")
    parser.add_argument("--timeout", type=float, default=1200.0, help="per wait, seconds")
    parser.add_argument("--stall", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--woo",
        choices=("simple", "variations"),
        default="variations",
        help="WooCommerce products: simple (100 per batch call) or 4-variation parents",
    )
    parser.add_argument(
        "--initial-sync",
        action="store_true",
        help="push every listing once before measuring (sandbox limits x10; slow at 10k "
        "SKUs, and no phase depends on it: the bulk phase counts price confirmations)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    return bench_main("api", partial(run, args), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
