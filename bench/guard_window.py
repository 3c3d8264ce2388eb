"""The window read-before-write leaves open, per platform, at its documented limits.

Run: ``.venv/bin/python bench/guard_window.py [--skus 200] [--only woocommerce,ebay,amazon]``

On platforms without compare-and-set (WooCommerce, eBay, Amazon) the push engine
reads a group of SKUs' current quantities right before writing them
(channels_app/sync/guard.py): a sale on the channel between that read and the
write reaching the channel is the one case a stale write can still happen. This
bench drives each connector exactly as the engine does — the engine's chunks
(channels_app.sync.engine._chunks rules: the connector's largest batch, one
WooCommerce parent per call, one Amazon patch per SKU) grouped by the guard's
read group (channels_app.sync.rules.READ_GROUP) — against the sandbox at its DEFAULT limits,
and prints per SKU the time from the start of its read call to the end of its
write call (an upper bound of the window), p50 / p95 / max, as JSON lines with
the machine's noise. Database work between read and write (milliseconds in the
engine) is not included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _stack import emit, noise_line

from channels_app.connectors.base import ChannelConfig, ListingRef, QuantityUpdate
from channels_app.connectors.registry import connector_class
from channels_app.sync.rules import READ_GROUP, READ_GROUP_DEFAULT
from sandbox.server import RunningSandbox, start_sandbox
from sandbox.store import ID_KEYS

PLATFORM_CONFIG: dict[str, dict[str, Any]] = {
    "woocommerce": {},
    "ebay": {"marketplace_id": "EBAY_US"},
    "amazon": {"seller_id": "A1BENCHSELLER", "marketplace_id": "ATVPDKIKX0DER"},
}


def seed(box: RunningSandbox, platform: str, count: int) -> list[ListingRef]:
    rows = [{"sku": f"WIN-{n:05d}", "price": "5.00", "quantity": 10} for n in range(count)]
    return [
        ListingRef(sku=item.sku, **{k: v for k, v in item.ids.items() if k in ID_KEYS})
        for item in box.platform(platform).seed(rows)
    ]


def chunks(platform: str, refs: list[ListingRef], batch: int) -> list[list[ListingRef]]:
    """The engine's chunking for quantities (below Amazon's feed threshold)."""
    limit = 1 if platform == "amazon" else batch
    return [refs[i : i + limit] for i in range(0, len(refs), limit)]


def groups(platform: str, parts: list[list[ListingRef]]) -> list[list[list[ListingRef]]]:
    size = READ_GROUP.get(platform, READ_GROUP_DEFAULT)
    out: list[list[list[ListingRef]]] = []
    count = 0
    for part in parts:
        if not out or count + len(part) > size:
            out.append([])
            count = 0
        out[-1].append(part)
        count += len(part)
    return out


def measure(box: RunningSandbox, platform: str, skus: int) -> dict[str, Any]:
    sandbox_platform = box.platform(platform)
    sandbox_platform.set_limits(sandbox_platform.limits)  # documented limits, full buckets
    sandbox_platform.counters.reset()
    refs = seed(box, platform, skus)
    connector = connector_class(platform)(
        ChannelConfig(
            channel_id=1,
            platform=platform,
            base_url=box.platform_url(platform),
            credentials=dict(sandbox_platform.credentials),
            platform_config=PLATFORM_CONFIG[platform],
        )
    )
    windows: list[float] = []
    started = time.monotonic()
    for group in groups(platform, chunks(platform, refs, connector.max_quantity_batch)):
        read_started = time.monotonic()
        read = getattr(connector, "read_quantities", None) or connector.read_listings
        read([ref for part in group for ref in part])
        for part in group:
            connector.push_quantities([QuantityUpdate(ref, 11) for ref in part])
            windows += [time.monotonic() - read_started] * len(part)
    seconds = time.monotonic() - started
    counters = sandbox_platform.counters.snapshot()
    ordered = sorted(windows)
    return {
        "bench": "guard_window",
        "platform": platform,
        "skus": skus,
        "read_group": READ_GROUP.get(platform, READ_GROUP_DEFAULT),
        "window_ms_p50": round(statistics.median(ordered) * 1000, 1),
        "window_ms_p95": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        "window_ms_max": round(ordered[-1] * 1000, 1),
        "seconds": round(seconds, 2),
        "http_calls": counters["calls"],
        "rate_limited": counters["rate_limited"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--only", default="woocommerce,ebay,amazon")
    args = parser.parse_args()
    emit(noise_line("before"))
    box = start_sandbox()
    try:
        for platform in args.only.split(","):
            skus = min(args.skus, 50) if platform == "amazon" else args.skus
            emit(measure(box, platform, skus))
    finally:
        box.stop()
    emit(noise_line("after"))


if __name__ == "__main__":
    main()
