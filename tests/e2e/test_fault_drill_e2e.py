"""Fault drill (issue #6): a channel goes down for "2 minutes" against the sandbox.

Real worker process, real sandbox over HTTP (its ``outage_seconds`` fault answers
503 to everything), the real health evaluation and alert logic. Time is
compressed: the outage lasts PIMSYNC_DRILL_OUTAGE_SECONDS (default 24 s, i.e. a
2-minute outage at 1:5) and the dead-channel threshold is scaled the same way
(1 minute → 12 s); the evaluation, run by beat every 60 s in production, runs
every second here so the scaled thresholds are observed at their resolution.
``PIMSYNC_DRILL_OUTAGE_SECONDS=120`` runs the drill at full scale.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from channels_app import services as channel_services
from channels_app.dispatch import sweep_due_channels
from channels_app.health import health_evaluate
from channels_app.models import Channel, ChannelAlertSettings, ChannelListing, SyncMarker
from channels_app.sync.markers import listings_mark_dirty
from inventory import services
from inventory.models import Variant
from synclog.models import Alert, ChannelHealthSnapshot, DriftFinding, Incident, SyncLogEntry
from tests.support.e2e import (
    assert_every_channel_matches,
    build_catalog,
    control,
    wait_for_runs,
    wait_until_drained,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = float(os.environ.get("PIMSYNC_DRILL_OUTAGE_SECONDS", "24"))
SCALE = OUTAGE_SECONDS / 120  # the 2-minute outage
DEAD_AFTER = timedelta(seconds=60 * SCALE)


def reprice(variants: list[Variant], cents: int) -> None:
    for v in variants:
        v.price = Decimal(cents) / 100
        services.variant_save(variant=v)


def pending(channels: list[Channel]) -> int:
    return SyncMarker.objects.filter(channel__in=channels, status="pending").count()


def tick() -> dict[int, str]:
    """What beat does: re-enqueue due pushes, evaluate health."""
    sweep_due_channels()
    return health_evaluate().states


def open_alert(kind: str, channel: Channel) -> Alert | None:
    return Alert.objects.filter(kind=kind, channel=channel, resolved_at__isnull=True).first()


def test_two_minute_outage_of_one_channel_opens_dead_channel_and_an_incident_that_recovers(
    sandbox_server, start_worker
):
    channels = build_catalog(sandbox_server, n_variants=80)
    for channel in channels:
        ChannelAlertSettings.objects.create(channel=channel, dead_after=DEAD_AFTER)
    down = next(c for c in channels if c.platform == "woocommerce")
    others = [c for c in channels if c != down]
    start_worker()
    listings_mark_dirty(ChannelListing.objects.all())
    wait_until_drained(sweep_due_channels, timeout=120)
    assert set(tick().values()) == {"healthy"}
    assert not Alert.objects.exists()
    variants = list(Variant.objects.order_by("pk"))

    # --- the outage -------------------------------------------------------------------------
    control(sandbox_server, "POST", "faults", {"woocommerce": {"outage_seconds": OUTAGE_SECONDS}})
    started = time.monotonic()
    reprice(variants[:20], 1234)
    dead_after_s = others_drained_s = None
    second_batch = False
    while (elapsed := time.monotonic() - started) < OUTAGE_SECONDS - 1:
        states = tick()
        assert all(states[c.pk] == "healthy" for c in others), states
        if dead_after_s is None and open_alert("dead_channel", down):
            dead_after_s = elapsed
        if not second_batch and elapsed > OUTAGE_SECONDS / 2:
            reprice(variants[20:40], 2345)  # changes keep coming mid-outage
            second_batch, batch_at = True, elapsed
        if second_batch and others_drained_s is None and pending(others) == 0:
            others_drained_s = elapsed - batch_at
        time.sleep(1)

    assert dead_after_s is not None, "no dead-channel alert during the outage"
    assert dead_after_s >= DEAD_AFTER.total_seconds()
    assert others_drained_s is not None, "the healthy channels stopped syncing"
    assert pending([down]) > 0, "the channel that was down has its backlog waiting"
    incident = Incident.objects.get(recovered_at__isnull=True)
    assert list(incident.channels.all()) == [down]
    dead = open_alert("dead_channel", down)
    assert dead.incident_id == incident.pk
    assert dead.count >= 2  # counted at every evaluation while it lasted
    assert not Alert.objects.filter(kind="dead_channel").exclude(channel=down).exists()
    assert ChannelHealthSnapshot.objects.filter(channel=down, state="dead").exists()

    # --- recovery ----------------------------------------------------------------------------
    while time.monotonic() - started < OUTAGE_SECONDS + 1:
        time.sleep(0.2)
    wait_until_drained(sweep_due_channels, timeout=120)
    drained_s = time.monotonic() - started
    deadline = time.monotonic() + 30
    while Alert.objects.filter(incident=incident, resolved_at__isnull=True).exists():
        assert time.monotonic() < deadline, list(
            Alert.objects.filter(resolved_at__isnull=True).values_list("kind", "sku")
        )
        tick()
        time.sleep(0.5)

    dead.refresh_from_db()
    incident.refresh_from_db()
    assert dead.resolved_at is not None
    assert incident.recovered_at is not None
    assert incident.ttr_seconds == int(
        (incident.recovered_at - incident.detected_at).total_seconds()
    )
    # Detected within the outage, recovered once its backlog drained after it.
    assert OUTAGE_SECONDS - dead_after_s - 2 <= incident.ttr_seconds <= drained_s + 30
    assert set(incident.alerts.values_list("kind", flat=True)) >= {"dead_channel"}
    # Not dead any more. The degraded rule looks back over the channel's error window
    # (15 minutes by default), which right after a long outage still holds its failed
    # attempts: degraded until the window has moved past the outage, then healthy.
    states = tick()
    assert states[down.pk] in ("healthy", "degraded"), states
    assert all(states[c.pk] == "healthy" for c in others), states
    window = ChannelAlertSettings.objects.get(channel=down).degraded_window
    later = health_evaluate(now=timezone.now() + window + timedelta(minutes=1))
    assert later.states[down.pk] == "healthy"
    assert open_alert("degraded", down) is None
    assert assert_every_channel_matches(sandbox_server) == 5 * 80
    print(
        f"\noutage {OUTAGE_SECONDS:.0f} s: dead-channel after {dead_after_s:.1f} s, other "
        f"channels drained a mid-outage batch in {others_drained_s:.1f} s, backlog drained "
        f"{drained_s:.1f} s after the start, incident TTR {incident.ttr_seconds} s "
        f"({incident.alerts.count()} alerts)"
    )


def test_magento_maintenance_window_the_others_sync_through_and_reconciliation_heals(
    sandbox_server, start_worker
):
    """The seed's partial failure: Magento answers 503 (maintenance mode) for a while.
    The other four channels keep syncing, the sync log shows Magento's failures per
    SKU, the backlog goes out once Magento is back, and the values a maintenance-time
    import overwrote in Magento are found and healed by the reconciliation."""
    outage = OUTAGE_SECONDS / 2
    channels = build_catalog(sandbox_server, n_variants=80)
    magento = next(c for c in channels if c.platform == "magento")
    others = [c for c in channels if c != magento]
    start_worker()
    listings_mark_dirty(ChannelListing.objects.all())
    wait_until_drained(sweep_due_channels, timeout=120)
    variants = list(Variant.objects.order_by("pk"))

    # --- the maintenance window ------------------------------------------------------------
    control(sandbox_server, "POST", "faults", {"magento": {"outage_seconds": outage}})
    started = time.monotonic()
    repriced = variants[:20]
    # One transaction, as a bulk price edit: the first run claims all 20 and Magento's
    # one batched call refuses them together. SKU by SKU, the run started by the first
    # commit took only those committed by then, and the open circuit let the rest
    # through one probe at a time - fewer than 20 attempts fitted in the window.
    with transaction.atomic():
        reprice(repriced, 3456)
    # ... and an import run during the window overwrites ten other SKUs in Magento
    imported = variants[40:50]
    control(
        sandbox_server,
        "POST",
        "values",
        {"magento": [{"sku": v.sku, "price": "1.11", "quantity": 999} for v in imported]},
    )
    others_drained_s = None
    while time.monotonic() - started < outage - 1:
        states = tick()
        assert all(states[c.pk] == "healthy" for c in others), states
        if others_drained_s is None and pending(others) == 0:
            others_drained_s = time.monotonic() - started
        time.sleep(0.5)

    assert others_drained_s is not None, "the other channels stopped syncing"
    assert pending([magento]) == 20  # the price markers of the 20 SKUs wait
    failed = SyncLogEntry.objects.filter(channel=magento, error_code="maintenance")
    assert set(failed.values_list("sku", flat=True)) == {v.sku for v in repriced}
    assert not SyncLogEntry.objects.filter(channel__in=others).exclude(status="success").exists()

    # --- back: the backlog drains, the reconciliation heals the import ----------------------
    while time.monotonic() - started < outage + 1:
        time.sleep(0.2)
    wait_until_drained(sweep_due_channels, timeout=120)
    assert not failed.filter(resolved_at__isnull=True).exists(), "a later success resolves each"
    requested = channel_services.reconcile_request(channels=[magento], trigger="manual")
    [run] = wait_for_runs([run_id for _, run_id, _ in requested.started], timeout=120)

    findings = DriftFinding.objects.filter(run=run)
    assert {f.sku for f in findings} == {v.sku for v in imported}
    assert (run.status, run.checked, run.errors) == ("finished", 80, 0), run.error_message
    assert run.drifted == run.fixed == len(imported)
    assert not findings.filter(resolved_at__isnull=True).exists()
    assert assert_every_channel_matches(sandbox_server) == 5 * 80
    print(
        f"\nmagento maintenance {outage:.0f} s: others drained a batch in "
        f"{others_drained_s:.1f} s, "
        f"{failed.count()} failed magento attempts logged per SKU, reconciliation fixed "
        f"{run.fixed} imported values"
    )
