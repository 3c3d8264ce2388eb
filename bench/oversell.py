"""Oversell and stale values under real selling: shoppers on four channels, stock
changes through the API, and a storm of orders for one SKU (issue #12).

Run from the repository root::

    .venv/bin/python bench/oversell.py [--minutes 3] [--skus 300] [--storm-orders 1000]

The stack is production-like and all on loopback: throwaway PostgreSQL + Redis
(scripts/pg-redis.sh), gunicorn with the production settings, one Celery worker
for the default queue, one for pushes (``-Q push`` once pushes are routed to
their own queue; until then ``-Q push,celery``, so the push worker takes pushes
from the default queue: see ``_stack.push_queues``), celery beat, and the
channel sandbox at its documented limits. Everything it started is stopped on
exit.

Catalog: ``--skus`` SKUs with ``--stock-min``..``--stock-max`` units (one
location) on Shopify, WooCommerce, eBay and Amazon, plus one storm SKU with
``--storm-stock`` units, pushed once (at 10x limits, not measured). Channel
settings: eBay and Amazon are polled every ``--poll-seconds`` (10, the smallest
interval pimsync accepts; Amazon's searchOrders quota, a burst of 20 and then one
call per three minutes, lets pimsync make about 20 of them before its shared bucket
defers the rest as QuotaWait without calling); Shopify and WooCommerce, which send webhooks, keep
the default 300 s fallback poll. Beat checks which polls are due every 2 s
(PIMSYNC_POLL_DUE_SECONDS) and a poll re-reads ``--poll-overlap`` seconds (30;
the default 300 would make every 10 s Amazon poll read the items of every
order of the last five minutes again, which Amazon's documented getOrderItems
rate, 0.5/s, cannot serve).

Phases and the JSON lines they print:

1. ``steady``: for ``--minutes`` shoppers buy one unit of a random SKU
   (``--hot-share`` of them among ``--hot`` SKUs) on each channel at its rate
   (``--rates``, orders/s per channel, exponential gaps) through the sandbox's
   control API; a store refuses a checkout when it shows 0 (``in_stock_only``).
   Shopify and WooCommerce deliver signed webhooks, ``--webhook-drop`` (10 %)
   of them dropped by the sandbox's fault; eBay and Amazon orders are found by
   polling. Meanwhile ``--api-rate`` requests/s arrive through pimsync's REST API
   (token auth): stock receipts (half), cycle counts (a quarter: the counted
   on-hand is the API's figure off by -1..+2) and price edits (a quarter), most
   on the hot SKUs. A watcher reads every channel's quantities from the sandbox
   every ``--watch-ms`` (20) ms. After the phase every channel is polled once
   more and the queues drain. It prints:

   * ``stale_overwrites`` per channel (the sandbox's score, goal 0) and the
     first few in detail;
   * orders placed, refused and imported per channel; ``oversold_units``
     (pimsync's oversell conflicts) split into ``unavoidable`` and
     ``avoidable``. The propagation window W is the goal for a change to reach
     every channel, 1 s. A conflict on channel C is unavoidable when C would
     still rightly have shown the unit at the moment it was sold: the stock at
     the phase start, plus every ledger change pimsync knew at least W before
     the sale (a channel's order counts from when pimsync received it: the
     first webhook or poll that brought it, not when pimsync applied it; an
     API change from its ledger time), minus C's own earlier sales (a store
     knows its own at once), still covers the order. Otherwise a channel
     showed stock pimsync knew was gone for longer than W: avoidable.
   * ``atp_zero_to_channel_zero``: for every time pimsync's ATP of a SKU
     reached 0 (the ledger movement that took available to 0 or below), the
     seconds until each channel showed 0 in the sandbox, p50/p95/max per
     channel (goal p95 <= 1 s); not counted: a channel already at 0 (its own
     sale took the last unit), and episodes that ended (stock back above 0)
     before the channel showed 0. ``never`` counts those that did neither.

2. ``storm``: ``--storm-orders`` one-unit orders of the storm SKU over the four
   channels (``--storm-split``): Shopify and WooCommerce as signed webhooks
   sent by this script from ``--senders`` (50) concurrent keep-alive senders
   (bench/ingest.py's sender, bodies and signatures made by the sandbox's own
   platform code), eBay and Amazon orders created in the sandbox (not taking
   its stock, so only pimsync's pushes move those channels) and polled. It
   prints pimsync's sales and oversell conflicts for the SKU (goal: exactly
   ``--storm-stock`` and the rest), each channel's seconds from ATP 0 to
   showing 0 (goal <= 1 s), and orders applied per second from the first send
   to the last order applied, overall and for the webhook orders alone (goal
   >= 250/s; the polled ones also wait for their channel's poll).

3. ``machine_noise`` before and after; ``total_seconds``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

import propagation  # noqa: E402
import requests  # noqa: E402
from _production import PLATFORMS, Production, production_stack, production_up, slug  # noqa: E402
from _stack import (  # noqa: E402
    bench_main,
    check_alive,
    emit,
)
from ingest import Delivery, send_all  # noqa: E402
from propagation import (  # noqa: E402
    Sandbox,
    percentile,
    wait_drained,
)

WEBHOOK_PLATFORMS = ("shopify", "woocommerce")
WINDOW_S = 1.0  # the propagation window: the goal for ATP 0 to reach every channel
GOAL_ZERO_P95_S = 1.0
GOAL_STORM_PER_S = 250
LOCATION = "bench"
STORM_SKU_INDEX = -1  # the catalog's last SKU is the storm's, never bought in the steady phase


# --------------------------------------------------------------------------- the channels


def configure_channels(prod: Production, args: argparse.Namespace, secret: str) -> None:
    """Webhook secrets and targets, poll intervals, and the sandbox's webhook drops."""
    from channels_app.models import Channel

    for platform in PLATFORMS:
        channel = Channel.objects.get(slug=slug(platform))
        if platform in WEBHOOK_PLATFORMS:
            channel.webhook_secret = secret
        else:
            channel.poll_interval_seconds = args.poll_seconds
        channel.save()
    prod.sandbox.control(
        "POST",
        "webhooks",
        {
            p: {"url": f"{prod.base}/webhooks/{slug(p)}/", "secret": secret}
            for p in WEBHOOK_PLATFORMS
        },
    )
    prod.sandbox.control(
        "POST",
        "faults",
        {
            p: {"webhook_drop": args.webhook_drop, "seed": args.seed + n}
            for n, p in enumerate(WEBHOOK_PLATFORMS)
        },
    )


# --------------------------------------------------------------------------- watching


class Watcher:
    """Reads every channel's quantities from the sandbox every ``interval`` seconds
    (GET /_control/quantities) and keeps, per (platform, sku), when it changed."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.times: dict[tuple[str, str], list[float]] = {}
        self.values: dict[tuple[str, str], list[int]] = {}
        self.samples = 0
        self.errors = 0
        self.longest_gap = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        last = None
        while not self._stop.is_set():
            sent = time.time()
            try:
                data = session.get(f"{self.url}/_control/quantities", timeout=5).json()
            except (requests.RequestException, ValueError):
                self.errors += 1
                continue
            seen = (sent + time.time()) / 2  # the answer was built in between
            if last is not None:
                self.longest_gap = max(self.longest_gap, seen - last)
            last = seen
            self._record(seen, data)
            self._stop.wait(max(0.0, self.interval - (time.time() - sent)))

    def _record(self, at: float, data: dict[str, dict[str, int]]) -> None:
        with self._lock:
            self.samples += 1
            for platform, quantities in data.items():
                for sku, quantity in quantities.items():
                    key = (platform, sku)
                    values = self.values.setdefault(key, [])
                    if not values or values[-1] != quantity:
                        self.times.setdefault(key, []).append(at)
                        values.append(quantity)

    def value_at(self, platform: str, sku: str, at: float) -> int | None:
        """What the channel showed at ``at`` (the last reading before it)."""
        with self._lock:
            times = self.times.get((platform, sku), [])
            index = bisect.bisect_right(times, at) - 1
            return self.values[(platform, sku)][index] if index >= 0 else None

    def first_zero(self, platform: str, sku: str, start: float, end: float | None) -> float | None:
        """When the channel first showed 0 (or less) in [start, end), None if not."""
        with self._lock:
            times = self.times.get((platform, sku), [])
            values = self.values.get((platform, sku), [])
            for index in range(bisect.bisect_left(times, start), len(times)):
                if end is not None and times[index] >= end:
                    return None
                if values[index] <= 0:
                    return times[index]
            return None

    def wait_all(self, sku: str, quantity: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = time.time()
            if all(self.value_at(p, sku, now) == quantity for p in PLATFORMS):
                return True
            time.sleep(0.1)
        return False

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def figures(self, seconds: float) -> dict[str, Any]:
        return {
            "interval_ms": round(self.interval * 1000),
            "samples": self.samples,
            "mean_interval_ms": round(seconds / max(self.samples, 1) * 1000, 1),
            "longest_gap_ms": round(self.longest_gap * 1000, 1),
            "errors": self.errors,
        }


# --------------------------------------------------------------------------- shoppers


@dataclass(frozen=True)
class Placed:
    platform: str
    order_id: str
    sku: str
    at: float  # epoch seconds when the checkout was sent


ORDER_ID_FIELD = {
    "shopify": "id",
    "woocommerce": "id",
    "ebay": "orderId",
    "amazon": "orderId",  # Orders 2026-01-01
}


class Shoppers:
    """One buyer per channel, each at its own rate (exponential gaps), buying one
    unit of a random SKU through the sandbox; a store refuses what it shows as 0."""

    def __init__(
        self,
        url: str,
        rates: dict[str, float],
        skus: Sequence[str],
        hot: Sequence[str],
        hot_share: float,
        seed: int,
    ) -> None:
        self.url = url
        self.rates = rates
        self.skus = list(skus)
        self.hot = list(hot)
        self.hot_share = hot_share
        self.seed = seed
        self.placed: list[Placed] = []
        self.refused: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, seconds: float) -> None:
        ends = time.monotonic() + seconds
        for n, platform in enumerate(PLATFORMS):
            if self.rates.get(platform, 0) <= 0:
                continue
            rng = random.Random(self.seed * 100 + n)
            thread = threading.Thread(
                target=self._shop, args=(platform, rng, ends), name=f"shopper-{platform}"
            )
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def _shop(self, platform: str, rng: random.Random, ends: float) -> None:
        session = requests.Session()
        due = time.monotonic()
        while not self._stop.is_set():
            due += rng.expovariate(self.rates[platform])
            if due >= ends:
                return
            self._stop.wait(max(0.0, due - time.monotonic()))
            pool = self.hot if self.hot and rng.random() < self.hot_share else self.skus
            self.buy(session, platform, rng.choice(pool))

    def buy(self, session: requests.Session, platform: str, sku: str) -> None:
        body = {
            "platform": platform,
            "lines": [{"sku": sku, "quantity": 1}],
            "in_stock_only": True,
        }
        sent = time.time()
        try:
            reply = session.post(f"{self.url}/_control/orders", json=body, timeout=30)
        except requests.RequestException as exc:
            with self._lock:
                self.errors[type(exc).__name__] += 1
            return
        with self._lock:
            self.latencies[platform].append(time.time() - sent)
            if reply.status_code == 201:
                order = reply.json()["order"]
                order_id = str(order[ORDER_ID_FIELD[platform]])
                self.placed.append(Placed(platform, order_id, sku, sent))
            elif reply.status_code == 409:
                self.refused[platform] += 1
            else:
                self.errors[f"{platform}:{reply.status_code}"] += 1


# --------------------------------------------------------------------------- API traffic


class ApiTraffic:
    """Stock receipts, cycle counts and price edits through pimsync's REST API."""

    def __init__(
        self,
        base: str,
        token: str,
        variants: dict[str, int],
        hot: Sequence[str],
        rate: float,
        seed: int,
    ) -> None:
        self.base = base
        self.variants = variants
        self.hot = list(hot)
        self.rate = rate
        self.rng = random.Random(seed)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-traffic", daemon=True)

    def start(self, seconds: float) -> None:
        self._ends = time.monotonic() + seconds
        if self.rate > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            due += self.rng.expovariate(self.rate)
            if due >= self._ends:
                return
            self._stop.wait(max(0.0, due - time.monotonic()))
            sku = self.rng.choice(self.hot if self.rng.random() < 0.7 else list(self.variants))
            roll = self.rng.random()
            action = "receive" if roll < 0.5 else ("count" if roll < 0.75 else "price")
            sent = time.monotonic()
            try:
                status = getattr(self, action)(sku)
            except requests.RequestException as exc:
                self.statuses[f"{action}:{type(exc).__name__}"] += 1
                continue
            self.latencies.append(time.monotonic() - sent)
            self.statuses[f"{action}:{status}"] += 1

    def _key(self) -> dict[str, str]:
        return {"Idempotency-Key": uuid.uuid4().hex}

    def receive(self, sku: str) -> int:
        body = {
            "sku": sku,
            "location": LOCATION,
            "reason": "receive",
            "quantity": self.rng.randint(1, 3),
        }
        url = f"{self.base}/api/v1/stock-movements/"
        return self.session.post(url, json=body, headers=self._key(), timeout=30).status_code

    def count(self, sku: str) -> int:
        variant = self.session.get(
            f"{self.base}/api/v1/variants/{self.variants[sku]}/", timeout=30
        ).json()
        counted = max(0, int(variant["on_hand"]) + self.rng.randint(-1, 2))
        body = {"sku": sku, "location": LOCATION, "counted_on_hand": counted}
        url = f"{self.base}/api/v1/cycle-counts/"
        return self.session.post(url, json=body, headers=self._key(), timeout=30).status_code

    def price(self, sku: str) -> int:
        price = Decimal(self.rng.randint(900, 2500)) / 100
        return self.session.patch(
            f"{self.base}/api/v1/variants/{self.variants[sku]}/",
            json={"price": str(price)},
            timeout=30,
        ).status_code

    def figures(self) -> dict[str, Any]:
        return {
            "requests_per_s_offered": self.rate,
            "statuses": dict(sorted(self.statuses.items())),
            "latency_ms_p95": round((percentile(self.latencies, 95) or 0) * 1000, 1),
        }


# --------------------------------------------------------------------------- after a phase


AMAZON_POLL_QUOTA_S = 1 / (0.0056 * 0.9)  # searchOrders after its burst, paced at 90 %


def poll_all_and_drain(channel_ids: Sequence[int], timeout: float, stall: float) -> dict[str, Any]:
    """Poll every channel once more, here and now (orders whose webhook was dropped,
    the last polled ones), then wait until inbound events are processed and no push
    is pending. Returns what each poll found and how the queues ended."""
    from channels_app.models import Channel, InboundEvent
    from channels_app.orders.polling import channel_poll

    time.sleep(1.1)  # whole-second order timestamps: the last orders are behind the cursor
    started = time.monotonic()
    polls = {}
    for channel_id in channel_ids:
        report = channel_poll(channel_id)
        platform = Channel.objects.get(pk=channel_id).platform
        refused = []
        # Amazon's searchOrders quota (one call per 3 minutes once its burst of 20 is
        # spent) may not allow this poll yet: ask again until it does.
        while report.error and time.monotonic() - started < timeout:
            refused.append(report.error)
            time.sleep(5)
            report = channel_poll(channel_id)
        polls[platform] = {"orders": report.orders, "new": report.new_events}
        if refused:
            polls[platform]["refused_first"] = len(refused)
            polls[platform]["first_refusal"] = refused[0][:120]
        if report.error:
            polls[platform]["error"] = report.error
    while InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).exists():
        check_alive(propagation.WORKERS)
        if time.monotonic() - started > timeout:
            break
        time.sleep(0.5)
    # A push held for an Amazon orders poll (the channel shows fewer units than pimsync
    # last confirmed) waits for a poll that starts after the hold: one per three
    # minutes once searchOrders' burst is spent.
    _, dead = wait_drained(timeout, max(stall, AMAZON_POLL_QUOTA_S + 30))
    return {
        "final_polls": polls,
        "final_poll_and_drain_s": round(time.monotonic() - started, 1),
        "dead_markers": dead,
        "events_by_status": dict(
            Counter(InboundEvent.objects.values_list("status", flat=True).order_by())
        ),
    }


def stale_overwrites(sandbox: Sandbox, detail: int) -> dict[str, Any]:
    score = sandbox.control("GET", "stale_overwrites")
    return {
        "per_channel": {p: score[p]["stale_overwrites"] for p in PLATFORMS},
        "total": sum(score[p]["stale_overwrites"] for p in PLATFORMS),
        "unseen_orders_at_end": {p: score[p]["unseen_orders"] for p in PLATFORMS},
        "first": {p: score[p]["detail"][:detail] for p in PLATFORMS if score[p]["detail"]},
        "goal": 0,
    }


@dataclass(frozen=True)
class Move:
    """One ledger row of the phase, as the oversell and ATP-0 analysis reads it."""

    at: float
    known_at: float  # when pimsync could first have known of the change
    delta_available: int
    available_after: int
    channel_id: int | None  # the channel of an order's movement


def ledger_since(
    started: datetime, skus: Sequence[str]
) -> tuple[dict[str, list[Move]], dict[str, int]]:
    """Per SKU: the phase's movements in ledger order, and available at the phase start."""
    from django.db.models import Min

    from channels_app.models import InboundEvent
    from inventory.models import StockMovement

    received = {
        (channel_id, order_id): at.timestamp()
        for channel_id, order_id, at in InboundEvent.objects.filter(received_at__gte=started)
        .values_list("channel_id", "external_order_id")
        .annotate(first=Min("received_at"))
        .values_list("channel_id", "external_order_id", "first")
    }
    moves: dict[str, list[Move]] = defaultdict(list)
    before: dict[str, int] = {}
    rows = (
        StockMovement.objects.filter(variant__sku__in=skus, created_at__gte=started)
        .order_by("id")
        .values_list(
            "variant__sku",
            "created_at",
            "delta_on_hand",
            "delta_committed",
            "delta_reserved",
            "delta_damaged",
            "available_after",
            "source",
            "source_ref",
        )
    )
    for sku, created, on_hand, committed, reserved, damaged, after, source, ref in rows:
        delta = on_hand - committed - reserved - damaged
        before.setdefault(sku, after - delta)
        channel_id = int(source.split(":", 1)[1]) if source.startswith("channel:") else None
        at = created.timestamp()
        known = received.get((channel_id, ref), at) if channel_id is not None else at
        moves[sku].append(Move(at, min(known, at), delta, after, channel_id))
    return moves, before


def oversold(
    placed: Sequence[Placed],
    moves: dict[str, list[Move]],
    start_available: dict[str, int],
    channel_of: dict[str, int],
) -> dict[str, Any]:
    """pimsync's oversell conflicts among the placed orders, unavoidable or not (see
    the module docstring for the rule)."""
    from channels_app.models import ChannelOrder, ChannelOrderLine

    platform_of = {cid: p for p, cid in channel_of.items()}
    by_key = {(channel_of[o.platform], o.order_id): o for o in placed}
    imported = Counter(
        platform_of[cid]
        for cid, ext in ChannelOrder.objects.filter(channel_id__in=platform_of).values_list(
            "channel_id", "external_id"
        )
        if (cid, ext) in by_key
    )
    conflicts = ChannelOrderLine.objects.filter(
        state=ChannelOrderLine.State.OVERSOLD, order__channel_id__in=platform_of
    ).values_list("order__channel_id", "order__external_id", "sku", "quantity")
    own_sales: dict[tuple[int, str], list[float]] = defaultdict(list)
    for order in placed:
        own_sales[(channel_of[order.platform], order.sku)].append(order.at)
    units: Counter[str] = Counter()
    unavoidable: Counter[str] = Counter()
    for channel_id, external_id, sku, quantity in conflicts:
        order = by_key.get((channel_id, external_id))
        if order is None:
            continue  # not a steady-phase order
        platform = platform_of[channel_id]
        units[platform] += quantity
        could_show = start_available.get(sku, 0) + sum(
            m.delta_available
            for m in moves.get(sku, [])
            if m.channel_id != channel_id and m.known_at <= order.at - WINDOW_S
        )
        could_show -= sum(1 for at in own_sales[(channel_id, sku)] if at < order.at)
        if could_show >= quantity:
            unavoidable[platform] += quantity
    return {
        "placed": dict(Counter(o.platform for o in placed)),
        "imported": dict(imported),
        "not_imported": {
            p: n - imported.get(p, 0) for p, n in Counter(o.platform for o in placed).items()
        },
        "oversold_units": dict(units),
        "unavoidable_units": dict(unavoidable),
        "avoidable_units": {p: units[p] - unavoidable[p] for p in units},
        "oversold_total": sum(units.values()),
        "unavoidable_total": sum(unavoidable.values()),
        "window_s": WINDOW_S,
    }


def zero_episodes(
    moves: dict[str, list[Move]], start_available: dict[str, int]
) -> list[tuple[str, float, float | None]]:
    """(sku, when ATP reached 0, when it rose above 0 again or None) for every time a
    movement took available from above 0 to 0 or below."""
    episodes = []
    for sku, rows in moves.items():
        available = start_available.get(sku, 0)
        opened: float | None = None
        for move in rows:
            if available > 0 >= move.available_after:
                opened = move.at
            elif available <= 0 < move.available_after and opened is not None:
                episodes.append((sku, opened, move.at))
                opened = None
            available = move.available_after
        if opened is not None:
            episodes.append((sku, opened, None))
    return episodes


def zero_latencies(
    watcher: Watcher, episodes: Sequence[tuple[str, float, float | None]], detail: int = 5
) -> dict[str, Any]:
    """Per channel: seconds from ATP 0 until the channel showed 0 (see the docstring)."""
    found: dict[str, list[float]] = defaultdict(list)
    outcome: dict[str, Counter[str]] = defaultdict(Counter)
    slow: list[tuple[float, str, str, float]] = []
    for sku, at, until in episodes:
        for platform in PLATFORMS:
            shown = watcher.value_at(platform, sku, at)
            if shown is not None and shown <= 0:
                outcome[platform]["already_zero"] += 1
                continue
            zero = watcher.first_zero(platform, sku, at, until)
            if zero is not None:
                found[platform].append(zero - at)
                outcome[platform]["measured"] += 1
                if zero - at > GOAL_ZERO_P95_S:
                    slow.append((zero - at, platform, sku, at))
            elif until is not None:
                outcome[platform]["stock_back_first"] += 1
            else:
                outcome[platform]["never"] += 1
    per_channel = {
        p: {
            "n": len(found[p]),
            "p50_s": _round(percentile(found[p], 50)),
            "p95_s": _round(percentile(found[p], 95)),
            "max_s": _round(max(found[p]) if found[p] else None),
            **dict(outcome[p]),
        }
        for p in PLATFORMS
    }
    p95s = [v["p95_s"] for v in per_channel.values() if v["p95_s"] is not None]
    return {
        "episodes": len(episodes),
        "per_channel": per_channel,
        "slowest": [_slow_detail(*row) for row in sorted(slow, reverse=True)[:detail]],
        "goal_p95_s": GOAL_ZERO_P95_S,
        "met": bool(p95s) and max(p95s) <= GOAL_ZERO_P95_S,
    }


def _slow_detail(seconds: float, platform: str, sku: str, at: float) -> dict[str, Any]:
    """Why an episode missed the goal: the SKU's sync log and stock movements on the
    channel around it, in seconds from ATP 0."""
    from inventory.models import StockMovement
    from synclog.models import SyncLogEntry

    since = datetime.fromtimestamp(at - 5, tz=UTC)
    until = datetime.fromtimestamp(at + seconds + 1, tz=UTC)
    log = SyncLogEntry.objects.filter(
        sku=sku, channel__platform=platform, created_at__range=(since, until)
    ).order_by("id")
    moves = StockMovement.objects.filter(
        variant__sku=sku, created_at__range=(since, until)
    ).order_by("id")
    return {
        "platform": platform,
        "sku": sku,
        "seconds": round(seconds, 3),
        "sync_log": [
            (
                round(e.created_at.timestamp() - at, 3),
                e.event_type,
                e.value_sent,
                e.status,
                e.error_code,
                e.message[:80],
            )
            for e in log
        ],
        "ledger": [
            (round(m.created_at.timestamp() - at, 3), m.source, m.available_after) for m in moves
        ],
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- phases


def steady_phase(prod: Production, args: argparse.Namespace, watcher: Watcher) -> None:
    from django.utils import timezone

    from channels_app.models import Channel
    from inventory.models import Variant

    steady = [s for s in prod.skus if s != prod.skus[STORM_SKU_INDEX]]
    rng = random.Random(args.seed)
    hot = rng.sample(steady, min(args.hot, len(steady)))
    channel_of = dict(
        Channel.objects.filter(slug__in=[slug(p) for p in PLATFORMS]).values_list("platform", "pk")
    )
    variants = dict(Variant.objects.filter(sku__in=steady).values_list("sku", "pk"))
    rates = dict(zip(PLATFORMS, args.rates, strict=True))
    prod.sandbox.control("POST", "counters/reset", {})
    started = timezone.now()
    seconds = args.minutes * 60
    shoppers = Shoppers(prod.sandbox.url, rates, steady, hot, args.hot_share, args.seed)
    traffic = ApiTraffic(prod.base, prod.token, variants, hot, args.api_rate, args.seed + 1)
    clock = time.monotonic()
    shoppers.start(seconds)
    traffic.start(seconds)
    try:
        while time.monotonic() - clock < seconds:
            check_alive(prod.processes)
            time.sleep(1)
    finally:
        shoppers.stop()
        traffic.stop()
    drain = poll_all_and_drain(list(channel_of.values()), args.timeout, args.stall)
    time.sleep(1)  # the watcher sees the last pushes land
    moves, before = ledger_since(started, steady)
    start_available = {sku: before.get(sku, available) for sku, available in _available(steady)}
    episodes = zero_episodes(moves, start_available)
    emit(
        {
            "metric": "steady",
            "minutes": args.minutes,
            "rates_per_s": rates,
            "hot_skus": len(hot),
            "hot_share": args.hot_share,
            "webhook_drop": args.webhook_drop,
            "poll_seconds": dict(
                Channel.objects.filter(pk__in=channel_of.values()).values_list(
                    "platform", "poll_interval_seconds"
                )
            ),
            "refused_at_zero": dict(shoppers.refused),
            "shopper_errors": dict(shoppers.errors),
            "checkout_p95_ms": {
                p: round((percentile(v, 95) or 0) * 1000, 1) for p, v in shoppers.latencies.items()
            },
            "api": traffic.figures(),
            "stale_overwrites": stale_overwrites(prod.sandbox, args.detail),
            "orders": oversold(shoppers.placed, moves, start_available, channel_of),
            "atp_zero_to_channel_zero": zero_latencies(watcher, episodes, args.detail),
            "watcher": watcher.figures(seconds),
            "webhooks": _webhook_faults(prod.sandbox),
            **drain,
        }
    )


def _available(skus: Sequence[str]) -> list[tuple[str, int]]:
    from inventory.models import StockLevel
    from inventory.selectors import stock_available_expression

    return list(
        StockLevel.objects.filter(variant__sku__in=skus)
        .annotate(free=stock_available_expression())
        .values_list("variant__sku", "free")
    )


def _webhook_faults(sandbox: Sandbox) -> dict[str, Any]:
    counters = sandbox.control("GET", "counters")
    return {p: counters[p]["faults"] for p in WEBHOOK_PLATFORMS}


def storm_deliveries(
    prod: Production, sku: str, split: dict[str, int], secret: str
) -> list[Delivery]:
    """Signed order webhooks for Shopify and WooCommerce, made by the sandbox's own
    platform code (same body and headers as the platform sends) in this process."""
    from sandbox.server import PLATFORM_CLASSES, load_platform_class
    from sandbox.webhooks import WebhookTarget

    deliveries = []
    for platform in WEBHOOK_PLATFORMS:
        local = load_platform_class(PLATFORM_CLASSES[platform])()
        row = prod.sandbox.control("GET", f"values/{platform}?sku={sku}")[sku]
        local.seed([row])
        local._next_id = 90_000_000  # far above the remote sandbox's ids: no clash
        target = WebhookTarget(f"{prod.base}/webhooks/{slug(platform)}/", secret)
        for _ in range(split[platform]):
            order = local.create_order([{"sku": sku, "quantity": 1}], adjust_stock=False)
            topic = local.order_webhook_topic("created")
            assert topic is not None
            body = json.dumps(local.render_order(order)).encode()
            request = local.webhook_request(
                topic, body, target, stamp=order.updated_at, subject=order.id
            )
            deliveries.append(
                Delivery(
                    order_id=int(order.id),
                    webhook_id=request.delivery_id,
                    body=request.body,
                    headers=request.headers,
                    path=f"/webhooks/{slug(platform)}/",
                )
            )
    return deliveries


def polled_storm_orders(
    url: str, sku: str, split: dict[str, int], threads: int
) -> tuple[threading.Thread, list[str]]:
    """A thread creating the eBay and Amazon storm orders in the sandbox (not taking
    its stock: the channels move only by pimsync's pushes) from ``threads`` clients."""
    work = [p for p in PLATFORMS if p not in WEBHOOK_PLATFORMS for _ in range(split[p])]
    random.Random(5).shuffle(work)
    errors: list[str] = []

    def create(chunk: list[str]) -> None:
        session = requests.Session()
        for platform in chunk:
            body = {
                "platform": platform,
                "lines": [{"sku": sku, "quantity": 1}],
                "adjust_stock": False,
                "webhook": False,
            }
            reply = session.post(f"{url}/_control/orders", json=body, timeout=30)
            if reply.status_code != 201:
                errors.append(f"{platform}:{reply.status_code}")

    def run() -> None:
        workers = [
            threading.Thread(target=create, args=(work[n::threads],)) for n in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return threading.Thread(target=run, name="storm-polled"), errors


def busy_seconds(spans: Sequence[tuple[float, float]]) -> float:
    """Length of the union of [received, applied] spans: the time pimsync held orders
    it had received and not yet applied (a polled order waits for its poll before it
    is received; that wait is the poll cadence's, not the apply's)."""
    total, end = 0.0, -math.inf
    for start, stop in sorted(spans):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def apply_throughput(sku: str) -> dict[str, Any]:
    from channels_app.models import InboundEvent

    rows = InboundEvent.objects.filter(skus__contains=[sku], processed_at__isnull=False)
    spans = [
        (r.timestamp(), p.timestamp()) for r, p in rows.values_list("received_at", "processed_at")
    ]
    busy = busy_seconds(spans)
    latency = sorted(stop - start for start, stop in spans)
    return {
        "events": len(spans),
        "busy_s": _round(busy),
        "per_s": _round(len(spans) / busy, 1) if busy else None,
        "received_to_applied_p50_s": _round(percentile(latency, 50)),
        "received_to_applied_p95_s": _round(percentile(latency, 95)),
    }


def storm_phase(prod: Production, args: argparse.Namespace, watcher: Watcher, secret: str) -> None:
    from django.db.models import Count, Max

    from channels_app.models import Channel, ChannelOrder, ChannelOrderLine
    from inventory.models import StockMovement

    sku = prod.skus[STORM_SKU_INDEX]
    split = dict(zip(PLATFORMS, args.storm_split, strict=True))
    total = sum(split.values())
    if not watcher.wait_all(sku, args.storm_stock, timeout=60):
        raise RuntimeError(f"the channels do not all show {args.storm_stock} of {sku}")
    prod.sandbox.control("POST", "counters/reset", {})
    deliveries = storm_deliveries(prod, sku, split, secret)
    random.Random(args.seed).shuffle(deliveries)
    channel_of = dict(
        Channel.objects.filter(slug__in=[slug(p) for p in PLATFORMS]).values_list("pk", "platform")
    )
    polled, polled_errors = polled_storm_orders(prod.sandbox.url, sku, split, threads=4)
    first_send = time.time()
    polled.start()
    result, send_seconds = send_all(prod.port, deliveries, args.senders)
    polled.join()
    lines = ChannelOrderLine.objects.filter(sku=sku)
    started, progress, applied = time.monotonic(), time.monotonic(), -1
    while True:
        check_alive(prod.processes)
        done = lines.exclude(state=ChannelOrderLine.State.OPEN).count()
        if done >= total:
            break
        if done != applied:
            applied, progress = done, time.monotonic()
        # Amazon's storm orders wait for a searchOrders call its quota allows.
        stall = max(args.stall, AMAZON_POLL_QUOTA_S + 30)
        if time.monotonic() - progress > stall or time.monotonic() - started > args.timeout:
            break
        time.sleep(0.2)
    time.sleep(2)  # the watcher sees the zeros land
    states = Counter(lines.values_list("state", flat=True))
    zero = (
        StockMovement.objects.filter(variant__sku=sku, available_after__lte=0)
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    zero_at = zero.timestamp() if zero else None
    shown: dict[str, float | None] = {}
    for platform in PLATFORMS:
        shown_zero = watcher.first_zero(platform, sku, first_send, None)
        shown[platform] = _round(shown_zero - zero_at) if zero_at and shown_zero else None
    orders = ChannelOrder.objects.filter(lines__sku=sku)
    last = orders.aggregate(last=Max("updated_at"))["last"]
    hooks = orders.filter(channel__platform__in=WEBHOOK_PLATFORMS)
    hooks_last = hooks.aggregate(last=Max("updated_at"))["last"]
    by_channel = {
        channel_of[row["channel_id"]]: row["n"]
        for row in orders.values("channel_id").annotate(n=Count("pk")).order_by()
    }
    sales = sum(n for state, n in states.items() if state != ChannelOrderLine.State.OVERSOLD)
    conflicts = states.get(ChannelOrderLine.State.OVERSOLD, 0)
    rate = len(orders) / (last.timestamp() - first_send) if last else None
    hook_rate = hooks.count() / (hooks_last.timestamp() - first_send) if hooks_last else None
    emit(
        {
            "metric": "storm",
            "sku": sku,
            "stock": args.storm_stock,
            "orders": total,
            "split": split,
            "senders": args.senders,
            "webhook_send_s": round(send_seconds, 2),
            "webhook_statuses": {str(k): v for k, v in result.statuses.items()},
            "webhook_client_errors": dict(result.errors),
            "polled_create_errors": Counter(polled_errors),
            "imported_by_channel": by_channel,
            "line_states": dict(states),
            "sales": sales,
            "conflicts": conflicts,
            "exact": sales == args.storm_stock and conflicts == total - args.storm_stock,
            "atp_zero_after_first_send_s": _round(zero_at - first_send) if zero_at else None,
            "channel_zero_after_atp_zero_s": shown,
            "zero_goal_s": WINDOW_S,
            "zero_met": all(v is not None and v <= WINDOW_S for v in shown.values()),
            "applied_per_s": _round(rate, 1),
            "webhook_orders_applied_per_s": _round(hook_rate, 1),
            "last_applied_after_first_send_s": _round(last.timestamp() - first_send)
            if last
            else None,
            "applied_while_received": apply_throughput(sku),
            "goal_applied_per_s": GOAL_STORM_PER_S,
            "stale_overwrites": stale_overwrites(prod.sandbox, args.detail)["per_channel"],
        }
    )


# --------------------------------------------------------------------------- main


def stock_for(args: argparse.Namespace) -> Callable[[int], int]:
    rng = random.Random(args.seed)
    steady = [rng.randint(args.stock_min, args.stock_max) for _ in range(args.skus)]

    def stock(index: int) -> int:
        return steady[index] if index < args.skus else args.storm_stock

    return stock


def run(args: argparse.Namespace, tmp: Path, pg_dir: Path) -> None:
    def polling(exported: dict[str, str]) -> dict[str, str]:
        return {
            "PIMSYNC_POLL_DUE_SECONDS": "2",
            "PIMSYNC_POLL_OVERLAP_SECONDS": str(args.poll_overlap),
        }

    secret = uuid.uuid4().hex
    with production_stack(tmp, pg_dir, polling) as (stack, env):
        prod = production_up(
            stack,
            env,
            skus=args.skus + 1,
            stock=stock_for(args),
            default_concurrency=args.default_concurrency,
            push_concurrency=args.push_concurrency,
            gunicorn_workers=args.gunicorn_workers,
            timeout=args.timeout,
            stall=args.stall,
        )
        configure_channels(prod, args, secret)
        emit(
            prod.setup_line()
            | {
                "stock_per_sku": [args.stock_min, args.stock_max],
                "storm_stock": args.storm_stock,
                "poll_due_seconds": 2,
                "poll_overlap_seconds": args.poll_overlap,
            }
        )
        with Watcher(prod.sandbox.url, args.watch_ms / 1000) as watcher:
            if args.minutes > 0:
                steady_phase(prod, args, watcher)
            if args.storm_orders > 0:
                storm_phase(prod, args, watcher, secret)


def split_of(text: str) -> list[int]:
    parts = [int(p) for p in text.split(",")]
    if len(parts) != len(PLATFORMS):
        raise argparse.ArgumentTypeError("four numbers: shopify,woocommerce,ebay,amazon")
    return parts


def rates_of(text: str) -> list[float]:
    parts = [float(p) for p in text.split(",")]
    if len(parts) != len(PLATFORMS):
        raise argparse.ArgumentTypeError("four rates: shopify,woocommerce,ebay,amazon")
    return parts


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="steady phase (0: skip)")
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--stock-min", type=int, default=1)
    parser.add_argument("--stock-max", type=int, default=4)
    parser.add_argument("--hot", type=int, default=40, help="SKUs most purchases go to")
    parser.add_argument("--hot-share", type=float, default=0.6)
    parser.add_argument(
        "--rates",
        type=rates_of,
        default=[0.5, 0.5, 0.3, 0.1],
        help="orders/s per channel: shopify,woocommerce,ebay,amazon",
    )
    parser.add_argument("--api-rate", type=float, default=0.5, help="API requests/s")
    parser.add_argument("--webhook-drop", type=float, default=0.10)
    parser.add_argument("--poll-seconds", type=int, default=10, help="eBay and Amazon")
    parser.add_argument("--poll-overlap", type=int, default=30)
    parser.add_argument("--watch-ms", type=float, default=20.0)
    parser.add_argument("--storm-orders", type=int, default=1000, help="0: skip the storm")
    parser.add_argument("--storm-stock", type=int, default=100)
    parser.add_argument(
        "--storm-split",
        type=split_of,
        default=None,
        help="orders per channel (shopify,woocommerce,ebay,amazon); default 45/45/7.5/2.5 %%",
    )
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--default-concurrency", type=int, default=2)
    parser.add_argument("--push-concurrency", type=int, default=4)
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--detail", type=int, default=5, help="stale overwrites shown")
    parser.add_argument("--timeout", type=float, default=600.0, help="per wait, seconds")
    parser.add_argument("--stall", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    args = parser.parse_args(argv)
    if args.storm_split is None:
        n = args.storm_orders
        polled = [math.floor(n * 0.075), math.floor(n * 0.025)]
        shopify = (n - sum(polled)) // 2
        args.storm_split = [shopify, n - sum(polled) - shopify, *polled]
    elif sum(args.storm_split) != args.storm_orders:
        parser.error("--storm-split must add up to --storm-orders")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    return bench_main("oversell", partial(run, args), keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
