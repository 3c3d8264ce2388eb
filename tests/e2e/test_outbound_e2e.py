"""Outbound sync end to end: a real worker process, the sandbox over HTTP, faults on."""

from __future__ import annotations

import os
import random
import signal
import time
from decimal import Decimal

import pytest

from channels_app.dispatch import sweep_due_channels
from channels_app.models import Channel, ChannelListing, SyncMarker
from channels_app.sync.markers import listings_mark_dirty
from inventory import services
from inventory.models import Location, Variant
from synclog.models import SyncLogEntry
from tests.support.e2e import (
    assert_every_channel_matches,
    build_catalog,
    control,
    wait_until_drained,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def random_changes(n: int, rng: random.Random) -> None:
    variants = list(Variant.objects.all())
    location = Location.objects.get(code="e2e")
    for i in range(n):
        v = rng.choice(variants)
        if rng.random() < 0.5:
            v.price = Decimal(rng.randrange(500, 9000)) / 100
            services.variant_save(variant=v)
        else:
            services.stock_adjust(
                variant=v,
                location=location,
                quantity=rng.choice([-3, -1, 1, 2, 5]),
                reason="adjust",
                source="t",
                idempotency_key=f"e2e-{i}",
            )


def test_thousand_changes_converge_under_faults_without_exceeding_limits(
    sandbox_server, start_worker
):
    build_catalog(sandbox_server)
    listings_mark_dirty(ChannelListing.objects.all())  # initial sync of 200 SKUs × 5 channels
    faults = {"error_5xx": 0.10, "throttle": 0.05, "seed": 7}
    control(
        sandbox_server,
        "POST",
        "faults",
        dict.fromkeys(("shopify", "woocommerce", "ebay", "amazon", "magento"), faults),
    )
    control(sandbox_server, "POST", "counters/reset", {})
    start_worker()
    try:
        random_changes(1000, random.Random(42))
    except Exception:
        pytest.fail("a change failed while the worker was pushing")
    seconds = wait_until_drained(sweep_due_channels, timeout=300)
    counters = control(sandbox_server, "GET", "counters")
    control(sandbox_server, "DELETE", "faults")
    assert assert_every_channel_matches(sandbox_server) == 5 * 200
    for platform, c in counters.items():
        assert c["rate_limited"] == 0, f"pimsync exceeded {platform}'s limit: {c}"
        assert sum(c["faults"].values()) > 0, f"no fault was injected on {platform}: {c}"
    failures = SyncLogEntry.objects.exclude(status="success")
    assert failures.exists()
    assert not failures.filter(resolved_at__isnull=True).exists(), (
        "every failure is resolved by a later success"
    )
    assert not failures.filter(status="dead").exists()
    print(f"\ndrained in {seconds:.1f} s; {failures.count()} failed attempts, all resolved")


def test_worker_killed_mid_batch_loses_nothing(sandbox_server, start_worker):
    build_catalog(sandbox_server)
    control(sandbox_server, "POST", "rate_limits", {"amazon": {"reset": True}})  # slow: 5 patches/s
    Channel.objects.filter(platform="amazon").update(rate_limit_per_second=Decimal("4"))
    listings_mark_dirty(ChannelListing.objects.all())
    worker = start_worker("victim")
    deadline = time.monotonic() + 120
    while not SyncLogEntry.objects.filter(channel__platform="amazon", status="success").exists():
        assert time.monotonic() < deadline, "the worker never pushed"
        sweep_due_channels()
        time.sleep(0.2)
    os.killpg(worker.pid, signal.SIGKILL)  # mid-batch: amazon still has most SKUs to go
    worker.wait(timeout=10)
    leased = SyncMarker.objects.filter(claimed_until__isnull=False).count()
    assert SyncMarker.objects.filter(channel__platform="amazon").count() > 100
    control(sandbox_server, "POST", "rate_limits", {"amazon": {"scale": 10}})
    Channel.objects.filter(platform="amazon").update(rate_limit_per_second=Decimal("30"))
    start_worker("survivor")
    wait_until_drained(sweep_due_channels, timeout=240)
    assert assert_every_channel_matches(sandbox_server) == 5 * 200
    print(f"\n{leased} markers were leased by the killed worker; all converged after restart")
