"""Token refresh end to end on the real stack: eBay and Amazon channels with
refresh-token credentials, pushing and polling for ``--minutes`` while the sandbox
issues ``--ttl``-second access tokens.

Run from the repository root::

    .venv/bin/python bench/tokens.py [--minutes 10] [--ttl 60] [--skus 200]

The pg lane of bench/propagation.py: throwaway PostgreSQL + Redis (broker and
shared rate limiter), ``manage.py run_sandbox`` on a free loopback port at its
documented limits, ``--workers`` Celery worker processes (``--concurrency``
children each, default and push queues) and beat's part in a thread of this
process (the push sweeper every second, due polls every 5 s).

The channels are configured as the demo's (pimsync/demo.py): client id, client
secret and refresh token, no access token; the sandbox's token endpoints (eBay
``/identity/v1/oauth2/token``, Login with Amazon ``/auth/o2/token``) issue tokens
that expire after ``--ttl`` seconds and refuse them afterwards with the
platform's 401/403. For ``--minutes`` this process changes the stock of a random
SKU ``--changes-per-second`` times a second (each change is pushed to both
channels by the workers) and creates a paid order on each platform every
``--orders-every`` seconds (imported by the orders poll: every
``--poll-seconds`` on eBay; every 60 s on Amazon, whose searchOrders allows a
burst of 20 and then one call every three minutes). Then it waits until nothing
is pending and the orders are imported.

JSON lines: ``setup``; per platform ``tokens``: refreshes (pimsync's count and
the grants the sandbox answered: one per refresh when the workers refresh once
for all), ``refused_expired_tokens`` (API calls the platform refused because
their token had expired: each is renewed and retried, none should reach the
sync log), the sync log (successes, anything else, auth errors), ``paused``
(the channel's auth pause), open auth alerts, orders created and imported,
poll failures and the sandbox's ``rate_limited``; ``lane_seconds``. ``met``:
no pause, no auth error and nothing but successes in the sync log (and "held":
a push waiting for an orders poll because the channel sold a unit pimsync had
not imported yet, not a failure), every order imported, more than one refresh,
grants == refreshes.
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

PLATFORMS = ("ebay", "amazon")
RATES = {"ebay": Decimal("5"), "amazon": Decimal("4.5")}
AMAZON_POLL_SECONDS = 60


def drive(
    args: argparse.Namespace, sandbox: Sandbox, channels: dict[str, Any], workers: list[Any]
) -> dict[str, int]:
    """Stock changes and channel orders for ``args.minutes``; returns orders created."""
    from channels_app.models import ChannelListing
    from inventory import services
    from inventory.models import Location, Variant

    rng = random.Random(args.seed)
    location = Location.objects.get(code="bench")
    variants = list(Variant.objects.order_by("pk")[: args.skus])
    channel_skus = {
        platform: list(
            ChannelListing.objects.filter(channel=channel).values_list("listing_sku", flat=True)
        )
        for platform, channel in channels.items()
    }
    orders = dict.fromkeys(PLATFORMS, 0)
    started = time.monotonic()
    end = started + args.minutes * 60
    next_order = started + args.orders_every
    changes = 0
    while (now := time.monotonic()) < end:
        check_alive(workers)
        variant = rng.choice(variants)
        services.stock_adjust(
            variant=variant,
            location=location,
            quantity=rng.choice((-2, -1, 1, 2, 3)),
            reason="adjust",
            source="bench",
            idempotency_key=f"bench-tokens-{changes}",
        )
        changes += 1
        if now >= next_order:
            for platform in PLATFORMS:
                sku = rng.choice(channel_skus[platform])
                lines = [{"sku": sku, "quantity": 1}]
                body = {"platform": platform, "lines": lines, "webhook": False}
                sandbox.control("POST", "orders", body)
                orders[platform] += 1
            next_order += args.orders_every
        time.sleep(max(0.0, started + changes / args.changes_per_second - time.monotonic()))
    return orders


def settle(channels: dict[str, Any], orders: dict[str, int], timeout: float) -> float:
    """Seconds until nothing is pending and every created order is imported."""
    from channels_app.models import ChannelOrder, SyncMarker

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pending = SyncMarker.objects.filter(status=SyncMarker.Status.PENDING).count()
        imported = all(
            ChannelOrder.objects.filter(channel=channels[p]).count() >= orders[p] for p in PLATFORMS
        )
        if not pending and imported:
            break
        time.sleep(1)
    return time.monotonic() - started


def figures(sandbox: Sandbox, platform: str, channel: Any, orders: int) -> dict[str, Any]:
    from channels_app.models import ChannelOrder, ChannelSyncState, ChannelToken
    from synclog.models import Alert

    token = ChannelToken.objects.filter(channel=channel).first()
    issued = sandbox.control("GET", "tokens")[platform]
    counters = sandbox.control("GET", f"counters/{platform}")
    state = ChannelSyncState.objects.get(channel=channel)
    log = sync_log_figures(channel)
    line = {
        "metric": "tokens",
        "platform": platform,
        "refreshes": token.refresh_count if token else 0,
        "sandbox_grants": issued["grants"],
        "refused_grants": issued["refused_grants"],
        "refused_expired_tokens": issued["expired_refusals"],
        **log,
        "paused": state.auth_failed_at is not None,
        "auth_alerts_open": Alert.objects.filter(
            channel=channel, kind="auth_failed", resolved_at__isnull=True
        ).count(),
        "orders_created": orders,
        "orders_imported": ChannelOrder.objects.filter(channel=channel).count(),
        "poll_failed": state.poll_failed_at is not None,
        "poll_error": state.poll_error,
        "api_calls": counters["calls"],
        "token_calls": counters["by_endpoint"].get(
            "refreshUserAccessToken" if platform == "ebay" else "lwaRefreshAccessToken", 0
        ),
        "rate_limited": counters["rate_limited"],
    }
    line["met"] = (
        not line["paused"]
        and line["auth_alerts_open"] == 0
        and line["sync_log_auth_errors"] == 0
        and not set(line["sync_log_not_success"]) - {"held"}  # held: an unseen sale, not a failure
        and line["orders_imported"] >= orders
        and line["refreshes"] > 1
        and line["sandbox_grants"] == line["refreshes"]
    )
    return line


def run(args: argparse.Namespace, stack: Stack, env: dict[str, str]) -> None:
    sandbox = Sandbox(start_sandbox(stack, env))
    sandbox.control("POST", "tokens", {p: {"ttl": args.ttl} for p in PLATFORMS})
    channels = build_channels(
        sandbox,
        counts=dict.fromkeys(PLATFORMS, args.skus),
        rates=RATES,
        poll_seconds={"ebay": args.poll_seconds, "amazon": AMAZON_POLL_SECONDS},
    )
    workers = start_workers(stack, env, count=args.workers, concurrency=args.concurrency)
    emit(
        {
            "metric": "setup",
            "database": "postgresql",
            "broker": "redis",
            "rate_limiter": "redis",
            "platforms": list(PLATFORMS),
            "skus_per_channel": args.skus,
            "minutes": args.minutes,
            "token_ttl_s": args.ttl,
            "refresh_ahead_s": min(300, args.ttl / 4),
            "changes_per_second": args.changes_per_second,
            "orders_every_s": args.orders_every,
            "poll_seconds": {"ebay": args.poll_seconds, "amazon": AMAZON_POLL_SECONDS},
            "pimsync_rates_per_s": {p: float(r) for p, r in RATES.items()},
            "workers": args.workers,
            "concurrency": args.concurrency,
            "credentials": "client_id, client_secret, refresh_token (no access token)",
        }
    )
    with Beat() as beat:
        orders = drive(args, sandbox, channels, workers)
        settled = settle(channels, orders, timeout=240)
    for platform in PLATFORMS:
        emit(figures(sandbox, platform, channels[platform], orders[platform]))
    emit({"metric": "drain", "seconds_after_run": round(settled, 1), **beat.figures()})


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--ttl", type=float, default=60.0, help="access token lifetime, s")
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--changes-per-second", type=float, default=2.0)
    parser.add_argument("--orders-every", type=float, default=10.0)
    parser.add_argument("--poll-seconds", type=int, default=20, help="eBay's poll interval")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    return on_pg_lane("tokens", lambda stack, env: run(args, stack, env), keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
