"""Reconciliation with a scripted channel: comparison, thresholds, the pending
skip, forced resync of only the drifted fields, read-back resolution, alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from channels_app.connectors.base import ItemResult, ListingState
from channels_app.connectors.errors import FailureKind
from channels_app.models import ChannelListing, SyncMarker
from channels_app.selectors import channel_atp_bulk, channel_price_bulk
from channels_app.sync import reconcile
from channels_app.sync.markers import listings_mark_dirty
from channels_app.sync.reconcile import (
    ReconcileBusyError,
    Thresholds,
    price_drift,
    quantity_drift,
    reconciliation_check,
    reconciliation_start,
    reconciliation_verify,
)
from inventory import services
from synclog.models import Alert, DriftFinding, ReconciliationRun

pytestmark = pytest.mark.django_db

D = Decimal


@dataclass
class ScriptedChannel:
    """Answers read_listings from `live` (sku -> (price, quantity)); records reads."""

    live: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)  # sku -> [ItemResult, ...] served in turn
    reads: list = field(default_factory=list)

    def read_listings(self, listings):
        self.reads.append([ref.sku for ref in listings])
        states = []
        for ref in listings:
            queue = self.errors.get(ref.sku) or []
            if queue:
                states.append(ListingState(ref.sku, None, None, error=queue.pop(0)))
            elif ref.sku in self.live:
                price, quantity = self.live[ref.sku]
                states.append(ListingState(ref.sku, price, quantity))
            else:
                states.append(ListingState(ref.sku, None, None, found=False))
        return states


@pytest.fixture
def channel(channel_factory, channel_location_factory, location):
    ch = channel_factory(platform="woocommerce")
    channel_location_factory(channel=ch, location=location)
    return ch


@pytest.fixture
def listings(channel, location, variant_factory, listing_factory):
    made = []
    for i in range(6):
        v = variant_factory(sku=f"R-{i}", price=D("20.00"))
        services.stock_adjust(
            variant=v,
            location=location,
            quantity=10,
            reason="receive",
            source="t",
            idempotency_key=f"r-{i}",
        )
        made.append(listing_factory(channel=channel, variant=v))
    SyncMarker.objects.all().delete()
    return made


@pytest.fixture
def scripted(monkeypatch, channel, listings):
    """A channel that shows exactly what pimsync should publish."""
    ids = [lst.variant_id for lst in listings]
    prices = channel_price_bulk(channel=channel, variant_ids=ids)
    atp = channel_atp_bulk(channel=channel, variant_ids=ids)
    fake = ScriptedChannel(
        live={lst.variant.sku: (prices[lst.variant_id], atp[lst.variant_id]) for lst in listings}
    )
    monkeypatch.setattr(reconcile, "channel_connector", lambda ch: fake)
    monkeypatch.setattr(reconcile.time, "sleep", lambda s: None)
    return fake


def run_check(channel, **kwargs):
    run = reconciliation_start(channel=channel, trigger="manual", **kwargs)
    return reconciliation_check(run.pk, listing_ids=kwargs.get("listing_ids"))


# --- pure comparison ------------------------------------------------------------------------


def thresholds(units=1, amount="0.01", percent="0"):
    return Thresholds(quantity_units=units, price_amount=D(amount), price_percent=D(percent))


def test_quantity_drift_beyond_or_within_the_units_threshold():
    assert quantity_drift(expected=10, found=10, thresholds=thresholds(3)) is None
    small = quantity_drift(expected=10, found=8, thresholds=thresholds(3))
    big = quantity_drift(expected=10, found=13, thresholds=thresholds(3))
    assert (small.difference, small.beyond_threshold) == (D(-2), False)
    assert (big.difference, big.beyond_threshold) == (D(3), True)


def test_price_drift_needs_the_amount_and_if_set_the_percentage():
    assert price_drift(expected=D("19.99"), found=D("19.990"), thresholds=thresholds()) is None
    assert price_drift(expected=D("20"), found=D("20.01"), thresholds=thresholds()).beyond_threshold
    within_amount = price_drift(
        expected=D("20"), found=D("20.40"), thresholds=thresholds(1, "0.50")
    )
    assert within_amount.beyond_threshold is False
    # 0.60 is beyond 0.50 but only 3 % of 20: a 5 % tolerance keeps it within
    pct = thresholds(1, "0.50", "5")
    assert price_drift(expected=D("20"), found=D("20.60"), thresholds=pct).beyond_threshold is False
    assert price_drift(expected=D("20"), found=D("21.00"), thresholds=pct).beyond_threshold is True
    assert price_drift(expected=D("20"), found=D("19.00"), thresholds=pct).difference == D("-1.00")


# --- a run --------------------------------------------------------------------------------


def test_a_channel_in_sync_finishes_with_no_findings(channel, listings, scripted):
    run = run_check(channel)
    assert (run.status, run.total, run.checked, run.drifted, run.resynced, run.errors) == (
        "finished",
        6,
        6,
        0,
        0,
        0,
    )
    assert not DriftFinding.objects.exists()
    assert not SyncMarker.objects.exists()
    assert scripted.reads == [[f"R-{i}" for i in range(6)]]  # one bulk read for the page
    # a redelivered task for the same run does not check again
    assert reconciliation_check(run.pk).finished_at == run.finished_at
    assert len(scripted.reads) == 1


def test_drift_beyond_threshold_forces_a_resync_of_only_that_field(channel, listings, scripted):
    # given: R-0's quantity and R-1's price were edited on the channel; R-2 is 1 unit off
    channel.drift_quantity_threshold = 2
    channel.save()
    price, quantity = scripted.live["R-0"]
    scripted.live["R-0"] = (price, quantity + 5)
    scripted.live["R-1"] = (price + D("2.00"), quantity)
    scripted.live["R-2"] = (price, quantity - 1)
    # when
    run = run_check(channel)
    # then
    assert (run.status, run.checked, run.drifted, run.resynced) == ("running", 6, 3, 2)
    findings = {f.sku: f for f in DriftFinding.objects.filter(run=run)}
    assert set(findings) == {"R-0", "R-1", "R-2"}
    assert (findings["R-0"].field, findings["R-0"].difference) == ("quantity", D(5))
    assert (findings["R-1"].field, findings["R-1"].difference) == ("price", D("2.00"))
    assert findings["R-2"].beyond_threshold is False
    assert findings["R-2"].resync_requested is False
    markers = set(SyncMarker.objects.values_list("listing__variant__sku", "kind", "is_forced"))
    assert markers == {("R-0", "quantity", True), ("R-1", "price", True)}
    alert = Alert.objects.get(kind=Alert.Kind.DRIFT, channel=channel, resolved_at__isnull=True)
    assert "2 listing(s)" in alert.message


def test_a_pending_push_is_skipped_not_reported_as_drift(channel, listings, scripted):
    # given: R-3's quantity changed in pimsync and its push is still queued, so the
    # channel still shows the old quantity
    price, quantity = scripted.live["R-3"]
    scripted.live["R-3"] = (price + D("1.00"), quantity - 4)
    listings_mark_dirty(ChannelListing.objects.filter(pk=listings[3].pk), kinds=["quantity"])
    # when
    run = run_check(channel)
    # then: the quantity is not drift (its value is on its way) but the price, with no
    # push pending, is
    assert (run.checked, run.skipped, run.drifted) == (6, 1, 1)
    assert list(DriftFinding.objects.values_list("sku", "field")) == [("R-3", "price")]


def test_retryable_read_failures_are_read_again_and_auth_fails_the_run(channel, listings, scripted):
    throttled = ItemResult("R-4", FailureKind.RETRYABLE, "429", "slow down", retry_after=0.5)
    scripted.errors["R-4"] = [throttled, throttled]
    run = run_check(channel)
    assert (run.status, run.errors) == ("finished", 0)
    assert scripted.reads[1:] == [["R-4"], ["R-4"]]
    scripted.errors["R-5"] = [ItemResult("R-5", FailureKind.AUTH, "401", "bad token")]
    failed = run_check(channel)
    assert failed.status == "failed"
    assert "refused our credentials" in failed.error_message


def test_listings_missing_on_the_channel_count_as_errors(channel, listings, scripted):
    del scripted.live["R-5"]
    run = run_check(channel)
    assert (run.status, run.checked, run.errors, run.drifted) == ("finished", 6, 1, 0)
    assert "R-5: not listed on the channel" in run.error_message


def test_one_running_run_per_channel(channel, listings, scripted):
    reconciliation_start(channel=channel, trigger="manual")
    with pytest.raises(ReconcileBusyError):
        reconciliation_start(channel=channel, trigger="scheduled")


def test_selected_listings_only(channel, listings, scripted):
    run = run_check(channel, listing_ids=[listings[0].pk, listings[2].pk])
    assert (run.total, run.checked) == (2, 2)
    assert scripted.reads == [["R-0", "R-2"]]


# --- verification -------------------------------------------------------------------------


def push_what_pimsync_publishes(scripted, channel, listings, skus):
    """Stand-in for the engine: the forced push lands on the channel, markers go."""
    ids = [lst.variant_id for lst in listings]
    prices = channel_price_bulk(channel=channel, variant_ids=ids)
    atp = channel_atp_bulk(channel=channel, variant_ids=ids)
    for lst in listings:
        if lst.variant.sku in skus:
            scripted.live[lst.variant.sku] = (prices[lst.variant_id], atp[lst.variant_id])
    SyncMarker.objects.filter(listing__variant__sku__in=skus).delete()


def test_read_back_waits_for_the_push_then_resolves_what_matches(channel, listings, scripted):
    # given: two listings drifted beyond the threshold and were marked for resync
    price, quantity = scripted.live["R-0"]
    scripted.live["R-0"] = (price, 0)
    scripted.live["R-1"] = (price + D("5"), quantity)
    run = run_check(channel)
    # when: the pushes are still queued
    assert reconciliation_verify(run.pk) is False
    # and then only R-0's push lands (R-1's channel keeps its console price)
    push_what_pimsync_publishes(scripted, channel, listings, {"R-0"})
    SyncMarker.objects.all().delete()
    assert reconciliation_verify(run.pk) is True
    # then
    run.refresh_from_db()
    assert (run.status, run.drifted, run.resynced, run.fixed) == ("finished", 2, 2, 1)
    r0, r1 = DriftFinding.objects.filter(run=run).order_by("sku")
    assert r0.resolved_at is not None
    assert r0.read_back_value == D(quantity)
    assert r1.resolved_at is None
    assert r1.read_back_value == price + D("5")
    # the drift is not cleared: the alert stays open
    assert Alert.objects.filter(kind="drift", channel=channel, resolved_at__isnull=True).exists()
    assert reconciliation_verify(run.pk) is True  # a finished run is left alone


def test_drift_alert_resolves_when_a_later_run_finds_the_channel_clean(channel, listings, scripted):
    price, quantity = scripted.live["R-1"]
    scripted.live["R-1"] = (price + D("5"), quantity)
    first = run_check(channel)
    SyncMarker.objects.all().delete()
    reconciliation_verify(first.pk)
    assert Alert.objects.get(kind="drift", channel=channel).resolved_at is None
    # someone fixed it on the channel
    scripted.live["R-1"] = (price, quantity)
    second = run_check(channel)
    assert second.status == "finished"
    assert Alert.objects.get(kind="drift", channel=channel).resolved_at is not None
    # the earlier finding was seen cleared and is resolved too
    assert not DriftFinding.objects.filter(resolved_at__isnull=True).exists()
    assert ReconciliationRun.objects.filter(channel=channel).count() == 2
