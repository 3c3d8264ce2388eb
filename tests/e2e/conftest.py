"""End-to-end harness: real Celery worker processes and the channel sandbox over HTTP.

Needs a broker and a database that other processes can reach: the SQLite lane
runs these tests in their own pytest call with a file database and the
filesystem broker (`make test`), the PostgreSQL lane with Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from channels_app.models import Channel, ChannelListing, ChannelLocation, SyncMarker
from inventory import services
from inventory.models import Location, Product, Variant
from pimsync.demo import SANDBOX_CHANNELS, listing_ids
from sandbox.server import RunningSandbox, start_sandbox

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.fixture
def worker_env() -> dict[str, str]:
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("memory://"):
        pytest.fail(
            "End-to-end tests need a broker shared with worker processes: run them through "
            "`make test` or `make test-pg`."
        )
    if connection.vendor == "sqlite" and not str(connection.settings_dict["NAME"]).endswith(
        ".sqlite3"
    ):
        pytest.fail("End-to-end tests on SQLite need PIMSYNC_TEST_DB_FILE (a file database).")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pimsync.settings.base",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker,
        "PIMSYNC_PUSH_LEASE_SECONDS": os.environ.get("PIMSYNC_PUSH_LEASE_SECONDS", "5"),
        "PIMSYNC_RETRY_CAP_SECONDS": "4",
        "PIMSYNC_RETRY_BASE_SECONDS": "0.2",
        "PIMSYNC_BREAKER_OPEN_SECONDS": "2",
        "DJANGO_DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def start_worker(worker_env, tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:
    procs: list[subprocess.Popen] = []

    def start(name: str = "e2e", concurrency: int = 2) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{name}-{len(procs)}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(  # noqa: S603 - our own worker command
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "pimsync",
                "worker",
                "-l",
                "warning",
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"{name}{len(procs)}@%h",
            ],
            cwd=ROOT,
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def sandbox_server() -> Iterator[RunningSandbox]:
    running = start_sandbox(scale_limits=10)
    yield running
    running.stop()


def control(sandbox: RunningSandbox, method: str, path: str, payload: object = None) -> object:
    response = requests.request(method, f"{sandbox.url}/_control/{path}", json=payload, timeout=10)
    response.raise_for_status()
    return response.json()


# pimsync calls per second per channel: below the sandbox's limits scaled ×10
# (Shopify's cost bucket restores 500 points/s there, ~10 per call).
E2E_RATES = {"shopify": "20", "woocommerce": "40", "ebay": "30", "amazon": "30"}


def build_catalog(sandbox: RunningSandbox, n_variants: int = 200) -> list[Channel]:
    """pimsync and the sandbox with the same listings; the sandbox starts at 0 / 0.00."""
    location = Location.objects.create(code="e2e", name="E2E warehouse")
    variants = []
    for p in range(n_variants // 4):
        product = Product.objects.create(title=f"E2E {p}", handle=f"e2e-{p}")
        variants.extend(
            Variant.objects.create(
                product=product, sku=f"E2E-{p:03d}-{size}", price=Decimal("10.00")
            )
            for size in ("S", "M", "L", "XL")
        )
    for v in variants:
        services.stock_adjust(
            variant=v,
            location=location,
            quantity=50,
            reason="receive",
            source="t",
            idempotency_key=f"e2e-seed-{v.sku}",
        )
    channels, seed = [], {}
    for spec in SANDBOX_CHANNELS:
        channel = Channel.objects.create(
            name=spec["name"],
            slug=spec["slug"],
            platform=spec["platform"],
            base_url=f"{sandbox.url}/{spec['platform']}",
            credentials=spec["credentials"],
            platform_config=spec["platform_config"],
            rate_limit_per_second=Decimal(E2E_RATES[spec["platform"]]),
        )
        ChannelLocation.objects.create(channel=channel, location=location)
        rows = []
        for i, v in enumerate(variants):
            ids = listing_ids(spec["platform"], i, i // 4, v.sku)
            ChannelListing.objects.create(channel=channel, variant=v, **ids)
            rows.append(
                {
                    "sku": ids.get("listing_sku") or v.sku,
                    "product_id": ids.get("external_product_id", ""),
                    "variant_id": ids.get("external_variant_id", ""),
                    "inventory_item_id": ids.get("inventory_item_id", ""),
                    "offer_id": ids.get("offer_id", ""),
                    "price": "0.00",
                    "quantity": 0,
                }
            )
        seed[spec["platform"]] = rows
        channels.append(channel)
    control(sandbox, "POST", "seed", seed)
    return channels


def wait_until_drained(sweep: Callable[[], object], timeout: float) -> float:
    """Run the sweeper like beat would until no marker is pending; returns seconds taken."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        sweep()
        if not SyncMarker.objects.filter(status=SyncMarker.Status.PENDING).exists():
            return time.monotonic() - start
        time.sleep(0.5)
    pending = SyncMarker.objects.filter(status="pending").values_list(
        "channel__platform", "attempts", "last_error"
    )[:10]
    raise AssertionError(f"queue did not drain in {timeout} s; e.g. {list(pending)}")
