"""Admin CSV import: preview and apply times of a price file and a stock count file.

Run from the repository root::

    .venv/bin/python bench/csv_import.py [--lane embedded|pg] [--rows 10000] [--count-rows 2000]

Each lane builds what it uses and removes it afterwards: embedded = a SQLite file
in a temporary folder; pg = a throwaway PostgreSQL from ``scripts/pg-redis.sh``.
It migrates, seeds ``--rows`` variants (products of 4) stocked at two locations
and listed on ``--channels`` channels (each fed by the first location), then
times the two calls the admin's upload and confirm make (``inventory.csv_imports``):

* ``prices``: a file setting every variant's price (and compare-at price for
  every other row); ``preview_s`` = ``csv_import_preview`` (decode, parse, bulk
  checks, store the import), ``apply_s`` = ``csv_import_apply`` (lock, check
  again, one bulk price write, one price event marking every listing);
* ``counts``: a count file of ``--count-rows`` (sku, location) rows; apply runs
  the bulk cycle count (deltas under the row locks, a ledger row each).

Prints JSON lines: ``machine_noise`` before and after (a fixed CPU loop, load
average), ``setup``, one line per import kind with seconds, rows per second and
the markers / ledger rows written. Nothing is pushed (no worker runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from _stack import pg_redis_start, pg_redis_stop  # noqa: E402
from propagation import emit, noise_line  # noqa: E402

PER_PRODUCT = 4


def seed(rows: int, channels: int) -> list[str]:
    from channels_app.models import Channel, ChannelListing, ChannelLocation
    from inventory.models import Location, Product, StockLevel, StockMovement, Variant

    main = Location.objects.create(code="main", name="Main")
    store = Location.objects.create(code="store", name="Store")
    products = Product.objects.bulk_create(
        [Product(title=f"Bench {i}", handle=f"bench-{i}") for i in range(rows // PER_PRODUCT + 1)]
    )
    variants = Variant.objects.bulk_create(
        [
            Variant(product=products[i // PER_PRODUCT], sku=f"B-{i:06d}", price=Decimal("10.00"))
            for i in range(rows)
        ],
        batch_size=2000,
    )
    # Seeded as the ledger would have it: one receive per level, balances after.
    for location in (main, store):
        StockLevel.objects.bulk_create(
            [StockLevel(variant=v, location=location, on_hand=20) for v in variants],
            batch_size=2000,
        )
        StockMovement.objects.bulk_create(
            [
                StockMovement(
                    variant=v,
                    location=location,
                    delta_on_hand=20,
                    reason="receive",
                    source="bench",
                    idempotency_key=f"seed:{v.pk}:{location.pk}",
                    on_hand_after=20,
                    available_after=20,
                )
                for v in variants
            ],
            batch_size=2000,
        )
    for c in range(channels):
        channel = Channel.objects.create(
            name=f"Bench {c}", slug=f"bench-{c}", platform="shopify", base_url="http://127.0.0.1:9"
        )
        ChannelLocation.objects.create(channel=channel, location=main, priority=1)
        ChannelListing.objects.bulk_create(
            [ChannelListing(channel=channel, variant=v) for v in variants], batch_size=2000
        )
    return [v.sku for v in variants]


def price_file(skus: list[str]) -> bytes:
    lines = ["sku,price,compare_at_price"]
    lines += [
        f"{sku},{12 + i % 50}.{i % 100:02d},{'' if i % 2 else '99.00'}"
        for i, sku in enumerate(skus)
    ]
    return ("\n".join(lines) + "\n").encode()


def count_file(skus: list[str]) -> bytes:
    lines = ["sku;location;counted"]
    lines += [f"{sku};{'main' if i % 2 else 'store'};{i % 30}" for i, sku in enumerate(skus)]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")


def timed_import(kind: str, data: bytes) -> dict[str, Any]:
    from channels_app.models import SyncMarker
    from inventory.csv_imports import csv_import_apply, csv_import_preview
    from inventory.models import StockMovement

    markers, movements = SyncMarker.objects.count(), StockMovement.objects.count()
    started = time.perf_counter()
    preview, record = csv_import_preview(kind=kind, file_name=f"{kind}.csv", data=data, user=None)
    previewed = time.perf_counter()
    if record is None:
        raise RuntimeError(f"{kind}: the bench file has row errors: {preview.errors[:3]}")
    outcome = csv_import_apply(import_id=record.pk, user=None)
    applied = time.perf_counter()
    rows = len(preview.rows)
    return {
        "metric": f"csv_import_{kind}",
        "rows": rows,
        "changed_at_preview": preview.n_changed,
        "preview_s": round(previewed - started, 3),
        "apply_s": round(applied - previewed, 3),
        "rows_per_s": round(rows / (applied - started), 1),
        "status": outcome.status,
        "markers_written": SyncMarker.objects.count() - markers,
        "ledger_rows_written": StockMovement.objects.count() - movements,
        "message": outcome.message,
    }


def run(args: argparse.Namespace, tmp: Path) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    t = time.perf_counter()
    skus = seed(args.rows, args.channels)
    emit(
        {
            "metric": "setup",
            "lane": args.lane,
            "database": connection.vendor,
            "variants": args.rows,
            "channels": args.channels,
            "seed_s": round(time.perf_counter() - t, 1),
        }
    )
    emit({"lane": args.lane} | timed_import("prices", price_file(skus)))
    emit({"lane": args.lane} | timed_import("counts", count_file(skus[: args.count_rows])))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lane", choices=("embedded", "pg"), default="embedded")
    parser.add_argument("--rows", type=int, default=10_000, help="variants and price rows")
    parser.add_argument("--count-rows", type=int, default=2_000, help="stock count rows")
    parser.add_argument("--channels", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pimsync-bench-csv-"))
    pg_dir = Path(tempfile.mkdtemp(prefix="pimsync-bench-csv-pg-")) if args.lane == "pg" else None
    (tmp / "var").mkdir()
    os.environ |= {
        "DJANGO_SETTINGS_MODULE": "pimsync.settings.base",
        "PIMSYNC_VAR_DIR": str(tmp / "var"),
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "memory://",
    }
    emit(noise_line("before"))
    try:
        if pg_dir is not None:
            os.environ["DATABASE_URL"] = pg_redis_start(pg_dir)["DATABASE_URL"]
        else:
            os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'var' / 'bench.sqlite3'}"
        run(args, tmp)
    except Exception as exc:  # one JSON line saying why the run stopped
        emit({"lane": args.lane, "metric": "error", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    finally:
        from django.db import connections

        connections.close_all()
        if pg_dir is not None:
            pg_redis_stop(pg_dir)
            shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    emit(noise_line("after"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
