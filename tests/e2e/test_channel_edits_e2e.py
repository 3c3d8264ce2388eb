"""Channel-side edits end to end: the sandbox over HTTP delivers its webhooks to
pimsync's live endpoint (the registered subscriptions), real worker processes
process them, push and poll. A quantity edited in the Shopify and WooCommerce
consoles is handled per conflict policy, and the time from the edit to the
outcome is printed and recorded; pimsync's own pushes raise no finding."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from channels_app.dispatch import sweep_due_channels, sweep_held_pushes
from channels_app.models import Channel, ChannelEdit, ChannelListing, ChannelOrder, InboundEvent
from channels_app.sync.edits import channel_edits_sweep
from channels_app.sync.markers import listings_mark_dirty
from channels_app.webhook_subscriptions import channel_webhooks_register
from inventory import services
from inventory.models import Location, MovementReason, StockMovement
from synclog.models import Alert, DriftFinding
from tests.support.e2e import build_catalog, control, wait_until_drained

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PLATFORMS = ("shopify", "woocommerce")
SECRETS = {"shopify": "shpss_sandbox", "woocommerce": "whsec-e2e-woo"}  # Shopify: the app's


def connect_webhooks(sandbox, live_server) -> dict[str, Channel]:
    """Shopify and WooCommerce channels delivering to the live server, the others off."""
    Channel.objects.exclude(platform__in=PLATFORMS).update(is_enabled=False)
    channels = {}
    for platform in PLATFORMS:
        channel = Channel.objects.get(platform=platform)
        channel.webhook_secret = SECRETS[platform]
        channel.public_url = live_server.url
        channel.save()
        registration = channel_webhooks_register(channel=channel)
        assert registration.ok, str(registration)
        channels[platform] = channel
    return channels


def beat_sweep() -> None:
    """What beat's sync sweeper does every few seconds (no beat runs here)."""
    sweep_due_channels()
    sweep_held_pushes()
    channel_edits_sweep()


def quiet() -> bool:
    """Nothing received is waiting to be processed or compared."""
    return not (
        InboundEvent.objects.filter(status="pending").exists() or ChannelEdit.objects.exists()
    )


def wait_for(condition: Callable[[], bool], *, timeout: float, step: float = 0.02) -> float:
    """Seconds until ``condition()`` holds, doing what beat's sweepers would meanwhile."""
    started = time.monotonic()
    swept = started
    while not condition():
        now = time.monotonic()
        if now - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        if now - swept > 1.0:
            beat_sweep()
            swept = now
        time.sleep(step)
    return time.monotonic() - started


def shows(sandbox, platform: str, sku: str) -> int:
    return int(control(sandbox, "GET", f"values/{platform}?sku={sku}")[sku]["quantity"])


def test_console_edits_are_handled_per_policy(
    sandbox_server, start_worker, live_server, record_property
):
    # given: pimsync and both channels in sync, their webhooks registered at the live endpoint
    build_catalog(sandbox_server, n_variants=16)
    channels = connect_webhooks(sandbox_server, live_server)
    start_worker("edits", concurrency=2)
    listings_mark_dirty(ChannelListing.objects.filter(channel__in=channels.values()), forced=True)
    wait_until_drained(beat_sweep, timeout=120)
    wait_for(quiet, timeout=30)
    assert not DriftFinding.objects.exists()  # the echoes of the initial push are no edits

    skus = iter(ChannelListing.objects.order_by("pk").values_list("variant__sku", flat=True))
    seconds = {}
    for policy in ("trust_pimsync", "trust_channel", "flag"):
        Channel.objects.filter(pk__in=[c.pk for c in channels.values()]).update(
            conflict_policy=policy
        )
        for platform, channel in channels.items():
            sku = next(skus)
            # when: a person sets 80 units in the channel's console (pimsync publishes 50)
            control(sandbox_server, "POST", "values", {platform: [{"sku": sku, "quantity": 80}]})
            # then: found and handled per policy
            outcome = OUTCOMES[policy](sandbox_server, channel, platform, sku)
            seconds[f"{platform} {policy}"] = wait_for(outcome, timeout=20)
            finding = DriftFinding.objects.get(channel=channel, sku=sku)
            assert (finding.source, finding.found, finding.expected) == (
                "webhook",
                Decimal(80),
                Decimal(50),
            )

    # a lower quantity is compared once an orders poll has imported what was sold meanwhile
    Channel.objects.filter(pk__in=[c.pk for c in channels.values()]).update(
        conflict_policy="trust_pimsync"
    )
    for platform, channel in channels.items():
        sku = next(skus)
        control(sandbox_server, "POST", "values", {platform: [{"sku": sku, "quantity": 20}]})
        outcome = pushed_back(sandbox_server, channel, platform, sku)
        seconds[f"{platform} trust_pimsync, lower (after an orders poll)"] = wait_for(
            outcome, timeout=20
        )

    for name, took in seconds.items():
        record_property(name, round(took, 3))
        print(f"{name}: {took:.3f} s")
    assert not InboundEvent.objects.filter(status="failed").exists()


def pushed_back(sandbox, channel: Channel, platform: str, sku: str) -> Callable[[], bool]:
    return lambda: (
        DriftFinding.objects.filter(channel=channel, sku=sku, decision="pushed_back").exists()
        and shows(sandbox, platform, sku) == 50
    )


def counted(sandbox, channel: Channel, platform: str, sku: str) -> Callable[[], bool]:
    return lambda: StockMovement.objects.filter(
        variant__sku=sku, reason=MovementReason.COUNT, source=f"channel:{channel.pk}"
    ).exists()


def flagged(sandbox, channel: Channel, platform: str, sku: str) -> Callable[[], bool]:
    return lambda: Alert.objects.filter(
        kind="channel_edit", channel=channel, sku=sku, resolved_at__isnull=True
    ).exists()


OUTCOMES = {"trust_pimsync": pushed_back, "trust_channel": counted, "flag": flagged}


def test_fifty_of_pimsyncs_own_pushes_raise_no_finding(sandbox_server, start_worker, live_server):
    build_catalog(sandbox_server, n_variants=16)
    channels = connect_webhooks(sandbox_server, live_server)
    start_worker("echo", concurrency=2)
    listings_mark_dirty(ChannelListing.objects.filter(channel__in=channels.values()), forced=True)
    wait_until_drained(beat_sweep, timeout=120)
    wait_for(quiet, timeout=30)
    received = InboundEvent.objects.count()
    location = Location.objects.get(code="e2e")
    variants = [lst.variant for lst in ChannelListing.objects.filter(channel=channels["shopify"])]

    # 50 changes in pimsync, pushed while more come in
    for n in range(50):
        variant = variants[n % len(variants)]
        if n % 2:
            variant.price = Decimal("10.00") + n
            services.variant_save(variant=variant)
        else:
            services.stock_adjust(
                variant=variant,
                location=location,
                quantity=(n % 7) - 3 or 4,
                reason="adjust",
                source="t",
                idempotency_key=f"e2e-own-{n}",
            )
        time.sleep(0.05)
    wait_until_drained(beat_sweep, timeout=120)
    wait_for(quiet, timeout=30)

    # and buyers on both channels: Shopify announces each sale's level change too
    for n, platform in enumerate(PLATFORMS * 3):
        order = {"platform": platform, "lines": [{"sku": variants[n].sku, "quantity": 2}]}
        control(sandbox_server, "POST", "orders", order)
    wait_for(lambda: ChannelOrder.objects.count() == 6, timeout=30)
    wait_until_drained(beat_sweep, timeout=120)
    wait_for(quiet, timeout=30)

    echoes = InboundEvent.objects.count() - received
    assert echoes >= 50  # the channels announced pimsync's writes and the sales ...
    assert not DriftFinding.objects.exists()  # ... and none was taken for an edit
    assert not InboundEvent.objects.filter(status="failed").exists()
