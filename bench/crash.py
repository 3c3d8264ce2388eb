"""Crash recovery: a large price change while the push worker is killed again and
again, and a broker outage (issue #12).

Run from the repository root::

    .venv/bin/python bench/crash.py [--skus 2000] [--kills 5] [--broker-outage 60]

The stack is bench/oversell.py's: throwaway PostgreSQL + Redis, gunicorn
(production settings), a default-queue worker, a push worker (``-Q push``, or
``-Q push,celery`` while pushes have no queue of their own), celery beat and the
channel sandbox at its documented limits; ``--skus`` SKUs on Shopify,
WooCommerce, eBay and Amazon, pushed once at 10x limits (not measured).

JSON lines:

1. ``broker_outage`` (with ``--broker-outage SECONDS``, run first): Redis (broker and
   rate limiter) is stopped; during the outage ``--outage-changes`` (50) price
   changes are made through the API (``PATCH /api/v1/variants/{id}/``, spread
   over the first half of it; their answers are counted); Redis comes back
   (empty, as after a crash); then the seconds from its return until every
   channel shows every change, per channel and overall, against the goal of
   10 s plus the floor of those changes (measured before this work: 39.6 s).
2. ``crash``: one ``POST /api/v1/bulk/prices/`` with a new price for every SKU;
   then ``--kills`` times, at a random moment (0.5 to ``--max-gap`` s after the
   previous restart was ready), the push worker gets SIGKILL on its whole
   process group and is started again 5 s later. The channels' values are read
   from the sandbox every second until every SKU on every channel equals
   pimsync's price and quantity, or until the last restart + 30 s + the slowest
   floor + ``--grace`` s. Prints: ``values_lost`` per channel (SKUs still
   different at the end, goal 0), per channel the seconds from the price change
   and from the last restart until it converged, its rate floor for the change
   (bench/propagation.py's ``burst_floor``: the calls the connector needs at its
   largest batch over the documented limit), and ``met`` per channel:
   converged within 30 s of the last restart plus its floor.
3. ``machine_noise`` before and after; ``total_seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import propagation  # noqa: E402
import requests  # noqa: E402
from _production import PLATFORMS, Production, production_stack, production_up  # noqa: E402
from _stack import (  # noqa: E402
    Stack,
    Started,
    bench_main,
    emit,
    kill_group,
    redis_start,
    redis_stop,
    start_workers,
)
from propagation import Sandbox, burst_floor, wait_drained  # noqa: E402

PER_PRODUCT = 4
RESTART_AFTER_S = 5.0
GOAL_AFTER_RESTART_S = 30.0
GOAL_AFTER_BROKER_S = 10.0
BROKER_OUTAGE_BEFORE_S = 39.6  # 50 changes after a 60 s Redis outage, before #12


# --------------------------------------------------------------------------- comparing


class Expected:
    """What every channel should show (price and quantity) per channel SKU, read from
    pimsync once the change is committed; compared with the sandbox's values."""

    def __init__(self, skus: Sequence[str] | None = None) -> None:
        from channels_app.models import Channel, ChannelListing
        from channels_app.selectors import channel_atp_bulk, channel_price_bulk

        self.values: dict[str, dict[str, tuple[Decimal, int]]] = {}
        for channel in Channel.objects.all():
            listings = ChannelListing.objects.filter(channel=channel).select_related("variant")
            if skus is not None:
                listings = listings.filter(variant__sku__in=skus)
            ids = [listing.variant_id for listing in listings]
            prices = channel_price_bulk(channel=channel, variant_ids=ids)
            atp = channel_atp_bulk(channel=channel, variant_ids=ids)
            self.values[channel.platform] = {
                listing.channel_sku: (prices[listing.variant_id], atp[listing.variant_id])
                for listing in listings
            }

    def wrong(self, sandbox: Sandbox, platform: str) -> int:
        """SKUs the channel shows differently from pimsync now."""
        wanted = self.values[platform]
        query = "" if len(wanted) > 200 else "?" + "&".join(f"sku={s}" for s in wanted)
        live = sandbox.control("GET", f"values/{platform}{query}", timeout=120)
        return sum(
            1
            for sku, (price, quantity) in wanted.items()
            if sku not in live
            or Decimal(live[sku]["price"]) != price
            or int(live[sku]["quantity"]) != quantity
        )


def converge(
    sandbox: Sandbox, expected: Expected, *, since: float, until: float, every: float
) -> tuple[dict[str, float | None], dict[str, int]]:
    """Seconds after ``since`` (monotonic) at which each channel first showed every
    expected value (None: not by ``until``), and what is still wrong at the end."""
    converged: dict[str, float | None] = dict.fromkeys(PLATFORMS)
    wrong = dict.fromkeys(PLATFORMS, -1)
    while True:
        for platform in PLATFORMS:
            if converged[platform] is None:
                wrong[platform] = expected.wrong(sandbox, platform)
                if wrong[platform] == 0:
                    converged[platform] = round(time.monotonic() - since, 2)
        if all(v is not None for v in converged.values()) or time.monotonic() > until:
            return converged, wrong
        time.sleep(every)


# --------------------------------------------------------------------------- killing


class Killer(threading.Thread):
    """Kills the push worker (SIGKILL, whole process group) ``kills`` times at random
    moments and starts a new one ``RESTART_AFTER_S`` later."""

    def __init__(
        self,
        stack: Stack,
        env: dict[str, str],
        prod: Production,
        *,
        kills: int,
        max_gap: float,
        concurrency: int,
        seed: int,
    ) -> None:
        super().__init__(name="killer", daemon=True)
        self.stack = stack
        self.env = env
        self.prod = prod
        self.kills = kills
        self.max_gap = max_gap
        self.concurrency = concurrency
        self.rng = random.Random(seed)
        self.events: list[dict[str, float]] = []
        self.last_ready = 0.0  # monotonic
        self.error = ""
        self.started_at = time.monotonic()

    def run(self) -> None:
        try:
            for _ in range(self.kills):
                time.sleep(self.rng.uniform(0.5, self.max_gap))
                [victim] = self.prod.push_workers
                killed = time.monotonic()
                kill_group(victim)
                time.sleep(RESTART_AFTER_S)
                restarted = time.monotonic()
                self.prod.push_workers = self._restart()
                self.last_ready = time.monotonic()
                self.events.append(
                    {
                        "killed_at_s": round(killed - self.started_at, 2),
                        "restarted_at_s": round(restarted - self.started_at, 2),
                        "ready_at_s": round(self.last_ready - self.started_at, 2),
                    }
                )
        except Exception as exc:  # reported in the JSON line; the bench goes on measuring
            self.error = f"{type(exc).__name__}: {exc}"

    def _restart(self) -> list[Started]:
        workers = start_workers(
            self.stack,
            self.env,
            count=1,
            concurrency=self.concurrency,
            queues=self.prod.queues[1],
            name="push",
        )
        propagation.WORKERS[:] = [*self.prod.default_workers, *workers]
        return workers


# --------------------------------------------------------------------------- phases


def api_session(prod: Production) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {prod.token}"
    return session


def floors(prod: Production, skus: int) -> dict[str, float]:
    limits = prod.sandbox.control("GET", "rate_limits")
    found = burst_floor(limits, skus=skus, per_product=PER_PRODUCT, woo="simple")
    return {p: round(found[p]["seconds"], 2) for p in PLATFORMS}


def crash_phase(
    stack: Stack, env: dict[str, str], prod: Production, args: argparse.Namespace
) -> None:
    floor = floors(prod, len(prod.skus))
    prod.sandbox.limits_reset()  # full buckets: the floor counts their capacity
    prod.sandbox.control("POST", "counters/reset", {})
    time.sleep(1.5)  # pimsync's own buckets refill too
    rows = [
        {"sku": sku, "price": str(Decimal("30.00") + Decimal(i % 500) / 100)}
        for i, sku in enumerate(prod.skus)
    ]
    changed_at = time.monotonic()
    reply = api_session(prod).post(
        f"{prod.base}/api/v1/bulk/prices/", json={"prices": rows}, timeout=300
    )
    reply.raise_for_status()
    expected = Expected()
    killer = Killer(
        stack,
        env,
        prod,
        kills=args.kills,
        max_gap=args.max_gap,
        concurrency=args.push_concurrency,
        seed=args.seed,
    )
    killer.started_at = changed_at
    killer.start()
    killer.join()
    last_restart = killer.last_ready or time.monotonic()
    until = last_restart + GOAL_AFTER_RESTART_S + max(floor.values()) + args.grace
    converged, wrong = converge(
        prod.sandbox, expected, since=changed_at, until=until, every=args.check_every
    )
    restart_offset = last_restart - changed_at
    after_restart = {
        p: (round(v - restart_offset, 2) if v is not None else None) for p, v in converged.items()
    }
    counters = prod.sandbox.control("GET", "counters")
    emit(
        {
            "metric": "crash",
            "skus": len(prod.skus),
            "channels": len(PLATFORMS),
            "bulk_prices_status": reply.status_code,
            "bulk_prices_answer": reply.json(),
            "kills": killer.events,
            "killer_error": killer.error or None,
            "push_worker_queues": prod.queues[1],
            "values_lost": {p: max(0, n) for p, n in wrong.items()},
            "values_lost_total": sum(max(0, n) for n in wrong.values()),
            "converged_after_change_s": converged,
            "converged_after_last_restart_s": after_restart,
            "floor_s": floor,
            "goal": f"each channel within {GOAL_AFTER_RESTART_S:.0f} s of the last restart "
            "plus its floor",
            "met": {
                p: after_restart[p] is not None
                and after_restart[p] <= GOAL_AFTER_RESTART_S + floor[p]
                and wrong[p] == 0
                for p in PLATFORMS
            },
            "calls": {p: counters[p]["calls"] for p in PLATFORMS},
            "rate_limited": {p: counters[p]["rate_limited"] for p in PLATFORMS},
        }
    )


def settled_skus(prod: Production, count: int, wait: float) -> tuple[list[str], int]:
    """``count`` SKUs (whole products first, as burst_floor groups them) with no push
    pending on any channel, after waiting up to ``wait`` s for the queues to drain;
    and how many pushes were still pending (work the crash phase left behind)."""
    from channels_app.models import SyncMarker

    with contextlib.suppress(TimeoutError):
        wait_drained(wait, wait)
    pending = SyncMarker.objects.filter(status=SyncMarker.Status.PENDING)
    busy = set(pending.values_list("listing__variant__sku", flat=True))
    return [sku for sku in prod.skus if sku not in busy][:count], pending.count()


def outage_phase(prod: Production, args: argparse.Namespace, pg_dir: Path) -> None:
    from inventory.models import Variant

    skus, pending = settled_skus(prod, args.outage_changes, args.settle)
    changes = len(skus)
    if not changes:
        raise RuntimeError(f"no SKU without a pending push for the outage ({pending} pending)")
    floor = floors(prod, changes)
    variant_ids = dict(Variant.objects.filter(sku__in=skus).values_list("sku", "pk"))
    session = api_session(prod)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    redis_stop(pg_dir)
    stopped = time.monotonic()
    spacing = args.broker_outage / 2 / max(changes, 1)
    for n, sku in enumerate(skus):
        time.sleep(max(0.0, stopped + n * spacing - time.monotonic()))
        sent = time.monotonic()
        try:
            reply = session.patch(
                f"{prod.base}/api/v1/variants/{variant_ids[sku]}/",
                json={"price": str(Decimal("60.00") + Decimal(n) / 100)},
                timeout=30,
            )
            statuses[str(reply.status_code)] += 1
        except requests.RequestException as exc:
            statuses[type(exc).__name__] += 1
        latencies.append(time.monotonic() - sent)
    time.sleep(max(0.0, stopped + args.broker_outage - time.monotonic()))
    redis_start(pg_dir)
    back = time.monotonic()
    expected = Expected(skus)
    converged, wrong = converge(
        prod.sandbox,
        expected,
        since=back,
        until=back + GOAL_AFTER_BROKER_S + max(floor.values()) + args.grace,
        every=0.2,
    )
    slowest = None if None in converged.values() else max(v for v in converged.values() if v)
    goal = GOAL_AFTER_BROKER_S + max(floor.values())
    emit(
        {
            "metric": "broker_outage",
            "outage_s": args.broker_outage,
            "changes": changes,
            "pushes_pending_before": pending,
            "api_statuses_during_outage": dict(statuses),
            "api_latency_max_s": round(max(latencies), 2) if latencies else None,
            "converged_after_broker_back_s": converged,
            "all_channels_s": slowest,
            "values_missing": wrong,
            "floor_s": floor,
            "goal_s": round(goal, 2),
            "met": slowest is not None and slowest <= goal,
            "before_this_work_s": BROKER_OUTAGE_BEFORE_S,
        }
    )


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace, tmp: Path, pg_dir: Path) -> None:
    with production_stack(tmp, pg_dir) as (stack, env):
        prod = production_up(
            stack,
            env,
            skus=args.skus,
            stock=lambda index: 20 + index % 30,
            default_concurrency=args.default_concurrency,
            push_concurrency=args.push_concurrency,
            gunicorn_workers=2,
            timeout=args.timeout,
            stall=args.stall,
        )
        emit(prod.setup_line() | {"restart_after_s": RESTART_AFTER_S})
        # The outage first: the crash phase may leave pushes leased for a long time
        # (a killed worker's Amazon feed), which would leave no settled SKU to change.
        if args.broker_outage > 0:
            outage_phase(prod, args, pg_dir)
        if args.kills > 0:
            wait_drained(args.timeout, args.stall)
            crash_phase(stack, env, prod, args)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=5, help="0: skip the crash phase")
    parser.add_argument(
        "--max-gap", type=float, default=6.0, help="longest wait before the next kill (s)"
    )
    parser.add_argument(
        "--broker-outage",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="stop Redis this long while prices change (0: skip)",
    )
    parser.add_argument("--outage-changes", type=int, default=50)
    parser.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="wait this long for pending pushes before the outage; SKUs still pending "
        "are left out of it",
    )
    parser.add_argument("--grace", type=float, default=120.0, help="extra wait for convergence")
    parser.add_argument("--check-every", type=float, default=1.0)
    parser.add_argument("--default-concurrency", type=int, default=2)
    parser.add_argument("--push-concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=900.0, help="per wait, seconds")
    parser.add_argument("--stall", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    return bench_main("crash", partial(run, args), keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
