"""Catalog import of 5 channels x N items against the sandbox at its DEFAULT limits.

Run from the repository root::

    .venv/bin/python bench/catalog_import.py [--items 10000] [--platforms shopify,ebay]

It migrates a throwaway SQLite database and seeds a pimsync catalog and, per
platform, a channel catalog of N items whose class is known (the seed is the
answer key):

* ``exact`` (40 %): the channel SKU is the pimsync SKU;
* ``barcode`` (20 %): another SKU, the variant's barcode;
* ``title`` (20 %): another SKU, no barcode, the product title and options written
  as a store would (other case and punctuation, plural, "Medium" for "M", options
  in another order, sometimes one extra word) -> to be *proposed*;
* ``duplicate`` (10 %): a conflict, in three kinds: two channel items with the
  barcode of one variant (claimed twice), a barcode two pimsync variants share,
  and a title two identical pimsync products fit equally;
* ``unknown`` (10 %): products pimsync does not have, a fifth of them "near
  misses" (a pimsync product's title with a size it does not sell).

Each platform's items are imported by the real connector, page by page through
the channel's shared rate limiter (``catalog_import_run``, the task's code, one
thread per channel as five workers would), then matched. Seeding per platform:
Shopify variants grouped by product; WooCommerce simple products (one call per
100 items; a variable product would cost one more call per parent); eBay
inventory items (each needs its own ``getOffers`` call: no bulk offer read);
Amazon listings created one second apart (a search pages through 1000 at most,
the read goes on from the last creation second); Magento simple products under
one configurable per product.

JSON lines: ``machine_noise`` before and after; per platform ``catalog_import``
with the read time against the read floor (the documented limits: the calls the
platform needs at its page maximum, less the bucket's burst, over its rate;
Shopify: the requested query cost of those pages less the 1000-point bucket, over
100 points/s), the matcher's counts per class beside the seed's, and the precision
and recall of the title proposals; a ``catalog_import_all`` summary. ``met``:
read ratio <= 1.2 and counts equal to the seed's.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
SIZES = ("XS", "S", "M", "L", "XL")
SIZE_WORDS = {"XS": "Extra Small", "S": "Small", "M": "Medium", "L": "Large", "XL": "Extra Large"}
COLOURS = ("Red", "Blue", "Green", "Black", "Grey")
ADJECTIVES = [
    "Alpine",
    "Arctic",
    "Coastal",
    "Desert",
    "Forest",
    "Glacier",
    "Harbor",
    "Highland",
    "Island",
    "Jungle",
    "Lakeside",
    "Meadow",
    "Midnight",
    "Mountain",
    "Northern",
    "Ocean",
    "Prairie",
    "Rapid",
    "Ridge",
    "River",
    "Summit",
    "Tundra",
    "Urban",
    "Valley",
]
MATERIALS = [
    "Wool",
    "Cotton",
    "Linen",
    "Merino",
    "Fleece",
    "Nylon",
    "Canvas",
    "Leather",
    "Bamboo",
    "Hemp",
    "Denim",
    "Cashmere",
    "Silk",
    "Corduroy",
    "Flannel",
    "Suede",
    "Tweed",
    "Velvet",
    "Jersey",
    "Twill",
]
NOUNS = [
    "Beanie",
    "Sock",
    "Glove",
    "Scarf",
    "Jacket",
    "Vest",
    "Hoodie",
    "Shirt",
    "Short",
    "Trouser",
    "Cap",
    "Belt",
    "Poncho",
    "Parka",
    "Sweater",
    "Legging",
    "Mitten",
    "Bandana",
    "Blazer",
    "Cardigan",
]
# Words no pimsync product uses: what the channel sells that pimsync does not.
OTHER_WORDS = [
    "Quasar",
    "Nebula",
    "Photon",
    "Plasma",
    "Zenith",
    "Vortex",
    "Ion",
    "Comet",
    "Meteor",
    "Orbit",
    "Pulsar",
    "Nova",
    "Tent",
    "Stake",
    "Lantern",
    "Kettle",
    "Stove",
    "Hammock",
    "Compass",
    "Carabiner",
]
EXTRA_WORDS = ("New", "Classic", "Original")


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line, default=str), flush=True)


# --------------------------------------------------------------------------- the seed


@dataclass
class Seed:
    """The pimsync catalog and one channel catalog whose answer key is known."""

    products: list[dict[str, Any]] = field(default_factory=list)  # {title, variants: [...]}
    items: list[dict[str, Any]] = field(default_factory=list)  # channel rows + "expect"

    def expected_counts(self) -> dict[str, int]:
        status = {
            "exact": "matched",
            "barcode": "matched",
            "title": "proposed",
            "duplicate": "conflict",
            "unknown": "unmatched",
        }
        return dict(Counter(status[i["expect"]] for i in self.items))


def _barcode(n: int) -> str:
    return f"40{n:011d}"


def build_seed(n: int, rng: random.Random) -> Seed:
    """N channel items: 40 % exact, 20 % barcode, 20 % title, 10 % duplicate, 10 % unknown."""
    seed = Seed()
    shares = {"exact": 0.4, "barcode": 0.2, "title": 0.2, "duplicate": 0.1}
    quota = {k: int(n * share) for k, share in shares.items()}
    quota["unknown"] = n - sum(quota.values())
    titles = [f"{a} {m} {o}" for a in ADJECTIVES for m in MATERIALS for o in NOUNS]
    rng.shuffle(titles)
    title_iter = iter(titles)
    counter = iter(range(1, 10**9))

    def product(title: str, sizes: Sequence[str] = SIZES, colour: str = "") -> list[dict[str, Any]]:
        colour = colour or rng.choice(COLOURS)
        variants = []
        for size in sizes:
            k = next(counter)
            variants.append(
                {
                    "sku": f"PIM-{k:06d}",
                    "barcode": _barcode(k),
                    "options": {"size": size, "colour": colour},
                    "price": Decimal(10 + k % 50) + Decimal("0.99"),
                }
            )
        seed.products.append({"title": title, "variants": variants})
        return variants

    # exact, barcode and title items each take a pimsync variant of their own, sizes of
    # the same products mixed across the three classes.
    plain = quota["exact"] + quota["barcode"] + quota["title"]
    pool: list[tuple[str, dict[str, Any]]] = []
    while len(pool) < plain:
        title = next(title_iter)
        pool += [(title, v) for v in product(title)]
    rng.shuffle(pool)
    classes = ["exact"] * quota["exact"] + ["barcode"] * quota["barcode"]
    classes += ["title"] * quota["title"]
    for (title, variant), expect in zip(pool, classes, strict=False):
        seed.items.append(_item(expect, title, variant, next(counter), rng))
    _duplicates(seed, quota["duplicate"], title_iter, product, counter, rng)
    _unknown(seed, quota["unknown"], counter, rng)
    rng.shuffle(seed.items)
    return seed


def _item(
    expect: str, title: str, variant: dict[str, Any], k: int, rng: random.Random
) -> dict[str, Any]:
    size, colour = variant["options"]["size"], variant["options"]["colour"]
    item = {
        "expect": expect,
        "truth": variant["sku"],
        "product_title": title,
        "options": {"Size": size, "Colour": colour},
        "price": f"{variant['price'] + Decimal('1.00'):.2f}",
        "quantity": k % 40,
    }
    if expect == "exact":
        return item | {"sku": variant["sku"], "barcode": variant["barcode"]}
    if expect == "barcode":
        return item | {"sku": f"CH-B-{k:06d}", "barcode": variant["barcode"]}
    # title only: written as a store would
    words = title.split()
    text = " ".join(w.upper() if rng.random() < 0.3 else w.lower() for w in words)
    if rng.random() < 0.5:
        text = text.replace(" ", "-", 1)
    if rng.random() < 0.5:
        text += "s"
    if rng.random() < 0.3:
        text = f"{rng.choice(EXTRA_WORDS)} {text}"
    options = {"Colour": colour, "Size": SIZE_WORDS[size] if rng.random() < 0.5 else size}
    return item | {"sku": f"CH-T-{k:06d}", "barcode": "", "product_title": text, "options": options}


def _duplicates(
    seed: Seed, count: int, titles: Any, product: Any, counter: Any, rng: random.Random
) -> None:
    """A third claimed twice (pairs), a third a shared barcode, a third a title tie."""
    pairs, rest = count // 3 // 2 * 2, count - count // 3 // 2 * 2
    shared, ties = rest // 2, rest - rest // 2
    for _ in range(pairs // 2):  # two channel items, one variant's barcode
        title = next(titles)
        variant = product(title, ("M",))[0]
        for copy in range(2):
            item = _item("barcode", title, variant, next(counter), rng)
            seed.items.append(item | {"expect": "duplicate", "sku": f"CH-D{copy}-{item['sku']}"})
    for _ in range(shared):  # pimsync holds one barcode twice
        first = product(next(titles), ("M",))[0]
        second = product(next(titles), ("M",))[0]
        second["barcode"] = first["barcode"]
        item = _item("barcode", "Any title", first, next(counter), rng)
        seed.items.append(item | {"expect": "duplicate", "truth": ""})
    for _ in range(ties):  # two pimsync products with the same title, size and colour
        title = next(titles)
        colour = rng.choice(COLOURS)
        product(title, ("M",), colour)
        twin = product(title, ("M",), colour)[0]
        item = _item("title", title, twin, next(counter), rng)
        seed.items.append(item | {"expect": "duplicate", "truth": ""})


def _unknown(seed: Seed, count: int, counter: Any, rng: random.Random) -> None:
    """Products pimsync lacks; a fifth near misses (a known title, a size it lacks)."""
    near = count // 5
    known = [p["title"] for p in seed.products]
    for i in range(count):
        k = next(counter)
        if i < near:
            title, size = rng.choice(known), "XXXL"
        else:
            title = " ".join(rng.sample(OTHER_WORDS, 3))
            size = rng.choice(SIZES)
        seed.items.append(
            {
                "expect": "unknown",
                "truth": "",
                "sku": f"CH-U-{k:06d}",
                "barcode": _barcode(900_000_000 + k),
                "product_title": title,
                "options": {"Size": size, "Colour": rng.choice(COLOURS)},
                "price": "19.99",
                "quantity": k % 40,
            }
        )


# --------------------------------------------------------------------------- pimsync and channels


def seed_pimsync(seed: Seed) -> None:
    from inventory.models import Location, Product, Variant

    Location.objects.create(code="bench", name="Bench warehouse")
    products = Product.objects.bulk_create(
        (Product(title=p["title"], handle=f"bench-{i}") for i, p in enumerate(seed.products)),
        batch_size=1000,
    )
    Variant.objects.bulk_create(
        (
            Variant(
                product=product,
                sku=v["sku"],
                barcode=v["barcode"],
                options=v["options"],
                price=v["price"],
            )
            for product, spec in zip(products, seed.products, strict=True)
            for v in spec["variants"]
        ),
        batch_size=1000,
    )


def channel_rows(platform: str, seed: Seed) -> list[dict[str, Any]]:
    """The seed's items as the platform's sandbox catalog rows."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for i, item in enumerate(seed.items):
        row = {k: item[k] for k in ("sku", "barcode", "options", "price", "quantity")}
        row["product_title"] = item["product_title"]
        if platform in ("shopify", "magento"):
            row["group"] = f"G-{item['product_title']}"
        if platform == "amazon":
            # Listings created over time, one a second (a search pages through 1000 at most).
            row["created_at"] = (start + timedelta(seconds=i)).isoformat()
        rows.append(row)
    return rows


def make_channel(sandbox: Any, platform: str) -> Any:
    from channels_app.models import Channel, ChannelLocation
    from inventory.models import Location
    from pimsync.demo import SANDBOX_CHANNELS

    spec = next(s for s in SANDBOX_CHANNELS if s["platform"] == platform)
    config = dict(spec["platform_config"])
    if platform in ("woocommerce", "magento"):
        # No rate limit of their own: the host's capacity (5/s, burst 10) is the pacing.
        config |= {"requests_per_second": 4.8, "burst": 9}
    channel = Channel.objects.create(
        name=f"{platform} (bench)",
        slug=f"bench-{platform}",
        platform=platform,
        base_url=sandbox.platform_url(platform),
        credentials=spec["credentials"],
        platform_config=config,
        # The shared limiter sees every call; the platforms' own limits bind first.
        rate_limit_per_second=Decimal("50"),
    )
    ChannelLocation.objects.create(channel=channel, location=Location.objects.get(code="bench"))
    return channel


# --------------------------------------------------------------------------- the floor


def read_floor(platform: str, limits: dict[str, dict[str, float]], n: int, rows: int) -> dict:
    """Seconds the documented limits need to read the catalog at the page maximum.

    ``rows`` counts what a page lists besides the items (Magento's configurables)."""
    from channels_app.connectors.shopify import CATALOG_NODE_COST, CATALOG_PAGE_MAX

    page = 250  # PIMSYNC_CATALOG_IMPORT_PAGE_SIZE (each platform caps it)
    if platform == "shopify":
        # Each query must find its *requested* cost (2 + 4 x 249) free in the bucket
        # before it runs (the unused part of the last, shorter page is refunded after).
        pages = math.ceil(n / CATALOG_PAGE_MAX)
        points = pages * (2 + CATALOG_NODE_COST * CATALOG_PAGE_MAX)
        cost = limits["cost"]
        seconds = max(0.0, points - cost["maximum"]) / cost["restore_rate"]
        return {"calls": pages, "points": points, "seconds": round(seconds, 2)}
    if platform == "woocommerce":
        calls, spec = math.ceil(n / 100), limits["default"]
    elif platform == "ebay":
        calls, spec = math.ceil(n / 200) + n, limits["default"]
    elif platform == "amazon":
        # 20 per page; every new search after 1000 repeats the last second's listing.
        restarts = max(0, math.ceil(n / 1000) - 1)
        calls, spec = math.ceil((n + restarts) / 20), limits["searchListingsItems"]
    else:
        pages = math.ceil(rows / page)
        calls, spec = 2 * pages + 2, limits["default"]  # search + salable export; the stock
    seconds = bucket_floor(calls, burst=spec["burst"], rate=spec["rate"])
    return {"calls": calls, "seconds": round(seconds, 2)}


# --------------------------------------------------------------------------- running


def import_one(channel: Any, seed: Seed, floor: dict, out: dict) -> None:
    from django.db import connection

    from channels_app.models import CatalogImport
    from channels_app.onboarding.importer import catalog_import_run, catalog_import_start

    try:
        run = catalog_import_start(channel=channel)
        started = time.perf_counter()
        outcome = catalog_import_run(run.pk)
        total = time.perf_counter() - started
        run = CatalogImport.objects.get(pk=run.pk)
        read_wall = (
            (run.read_done_at - run.started_at).total_seconds() if run.read_done_at else None
        )
        out[channel.platform] = {
            "metric": "catalog_import",
            "platform": channel.platform,
            "outcome": outcome,
            "items": run.items_read,
            "pages": run.pages,
            "calls": run.calls,
            "read_wall_seconds": round(read_wall, 2) if read_wall else None,
            "read_seconds_in_connector": round(run.read_seconds, 2),
            "import_seconds": round(total, 2),
            "match_seconds": round(total - (read_wall or 0), 2),
            "floor": floor,
            "ratio": round(read_wall / floor["seconds"], 3)
            if read_wall and floor["seconds"]
            else None,
            **_verdict(run, seed),
            "error_message": run.error_message[:300],
        }
    except Exception as exc:  # one line saying why; the other channels go on
        out[channel.platform] = {
            "metric": "catalog_import",
            "platform": channel.platform,
            "error": f"{type(exc).__name__}: {exc}",
        }
    finally:
        connection.close()


def _verdict(run: Any, seed: Seed) -> dict[str, Any]:
    """The import's counts beside the seed's, and the proposals' precision and recall."""
    truth = {item["sku"]: item for item in seed.items}
    proposed = list(run.items.filter(status="proposed").values_list("sku", "variant__sku"))
    correct = sum(1 for sku, variant in proposed if truth[sku]["truth"] == variant)
    title_items = sum(1 for item in seed.items if item["expect"] == "title")
    counts = dict(run.counts)
    expected = seed.expected_counts()
    return {
        "counts": counts,
        "expected_counts": expected,
        "counts_match": counts == expected,
        "proposals": len(proposed),
        "proposals_correct": correct,
        "precision": round(correct / len(proposed), 4) if proposed else None,
        "recall": round(correct / title_items, 4) if title_items else None,
    }


def run(args: argparse.Namespace, tmp: Path) -> int:
    embedded_django(tmp)
    emit(noise_line("before"))
    platforms = [p for p in args.platforms.split(",") if p]
    sandbox = sandbox_at_documented_limits()
    try:
        started = time.perf_counter()
        seed = build_seed(args.items, random.Random(args.seed))
        seed_pimsync(seed)
        channels, floors = [], {}
        for platform in platforms:
            rows = channel_rows(platform, seed)
            sandbox.platform(platform).seed(rows)
            groups = len({r.get("group") for r in rows if r.get("group")})
            listed = len(rows) + (groups if platform == "magento" else 0)
            floors[platform] = read_floor(
                platform, sandbox.platform(platform).limits, len(rows), listed
            )
            channels.append(make_channel(sandbox, platform))
            sandbox.platform(platform).counters.reset()
        emit(
            {
                "metric": "seeded",
                "items_per_channel": len(seed.items),
                "pimsync_variants": sum(len(p["variants"]) for p in seed.products),
                "expected_counts": seed.expected_counts(),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        out: dict[str, dict] = {}
        wall = threads_wall(import_one, [(c, seed, floors[c.platform], out) for c in channels])
        for platform in platforms:
            line = out.get(platform, {"platform": platform, "error": "no result"})
            counters = sandbox.platform(platform).counters.snapshot()
            line["calls_by_endpoint"] = counters["by_endpoint"]
            line["rate_limited"] = counters["rate_limited"]
            line["met"] = bool(
                line.get("ratio") is not None
                and line["ratio"] <= GOAL_RATIO
                and line.get("counts_match")
            )
            emit(line)
        met = all(out.get(p, {}).get("met") for p in platforms)
        emit(
            {
                "metric": "catalog_import_all",
                "channels": len(platforms),
                "items_per_channel": len(seed.items),
                "wall_seconds": round(wall, 1),
                "goal": f"read <= {GOAL_RATIO} x floor and counts per class = the seed's",
                "met": met,
            }
        )
        emit(noise_line("after"))
        return 0 if met else 1
    finally:
        sandbox.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000, help="items per channel")
    parser.add_argument("--platforms", default=",".join(PLATFORMS))
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the temporary database")
    args = parser.parse_args(argv)
    return in_temporary_folder(run, args, "pimsync-catalog-import-")


if __name__ == "__main__":
    sys.exit(main())
