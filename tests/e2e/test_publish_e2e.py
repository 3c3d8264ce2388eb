"""Publishing end to end: a product created in pimsync is published on all five
channels, a worker process pushes its prices and quantities, then a description
edit reaches every channel through the worker, within what the channel's rate
allows - against the sandbox over HTTP at its documented limits, with pimsync's
rates of the demo (Shopify 2 calls/s, the others 5)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from channels_app.dispatch import sweep_due_channels
from channels_app.models import Channel, ChannelListing, SyncMarker
from channels_app.publishing import product_publish
from inventory import services
from pimsync.demo import SANDBOX_CHANNELS
from sandbox.server import RunningSandbox, start_sandbox
from synclog.models import SyncLogEntry
from tests.support.e2e import control, wait_until_drained
from tests.support.publishing import PLATFORMS, publishing_channels, sock_product

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SIZES = ("S", "M", "L", "XL")
# Between the edit and the worker's first call: the commit's task request through
# the broker (the filesystem broker is polled every second) and the worker's
# start of the run; generous, the machine is shared.
DISPATCH_ALLOWANCE_SECONDS = 5.0


@pytest.fixture
def documented_sandbox():
    running = start_sandbox()
    yield running
    running.stop()


def demo_channels(sandbox: RunningSandbox) -> dict[str, Channel]:
    rates = {spec["platform"]: spec["rate"] for spec in SANDBOX_CHANNELS}
    channels: dict[str, Channel] = {}
    for platform in PLATFORMS:
        channels |= publishing_channels(sandbox, [platform], rate=rates[platform])
    return channels


def descriptions(sandbox: RunningSandbox, platform: str) -> set[str]:
    shown = control(sandbox, "GET", f"content/{platform}")
    assert isinstance(shown, dict)
    return {row["description"] for row in shown.values()}


def test_a_published_product_and_its_description_edit_reach_every_channel_within_its_rate(
    documented_sandbox, start_worker
) -> None:
    sandbox = documented_sandbox
    channels = demo_channels(sandbox)
    product = sock_product(sizes=SIZES)
    start_worker(concurrency=5)  # the five channels are pushed in parallel

    for channel in channels.values():
        outcome = product_publish(channel=channel, product=product)
        assert outcome.ok, (channel.platform, outcome.refused)
    wait_until_drained(sweep_due_channels, timeout=120)
    values = {p: control(sandbox, "GET", f"values/{p}") for p in PLATFORMS}
    for platform, shown in values.items():
        assert isinstance(shown, dict)
        assert {(Decimal(v["price"]), v["quantity"]) for v in shown.values()} == {
            (Decimal("12.00"), 7)
        }, platform

    control(sandbox, "POST", "counters/reset", {})
    edited = "<p>Merino trail sock, reinforced heel and toe.</p>"
    product.description = edited
    started = time.monotonic()
    services.product_save(product=product)
    arrived: dict[str, float] = {}
    while len(arrived) < len(PLATFORMS) and time.monotonic() - started < 120:
        for platform in set(PLATFORMS) - set(arrived):
            if descriptions(sandbox, platform) == {edited}:
                arrived[platform] = time.monotonic() - started
        sweep_due_channels()  # what beat does for a lost push request
        time.sleep(0.05)

    assert set(arrived) == set(PLATFORMS), f"not every channel shows the edit: {arrived}"
    counters = control(sandbox, "GET", "counters")
    assert isinstance(counters, dict)
    for platform, channel in channels.items():
        calls = counters[platform]["calls"]
        floor = calls / float(channel.rate_limit_per_second)
        print(
            f"\n{platform}: description shown after {arrived[platform]:.2f} s, "
            f"{calls} call(s) at {channel.rate_limit_per_second}/s (floor {floor:.2f} s)"
        )
        assert counters[platform]["rate_limited"] == 0, platform
        assert arrived[platform] <= floor + DISPATCH_ALLOWANCE_SECONDS, platform
    wait_until_drained(sweep_due_channels, timeout=60)  # the worker records what it pushed
    pushed = SyncLogEntry.objects.filter(
        event_type="attribute", value_sent="product", status="success"
    )
    assert pushed.count() == len(PLATFORMS) * len(SIZES)
    assert ChannelListing.objects.filter(sync_content=True).count() == len(PLATFORMS) * len(SIZES)
    assert not SyncMarker.objects.exists()
