"""Every alert kind of issue #6, end to end through the health evaluation:

condition → one alert (counted on repeat) → notified once per transport (e-mail
to ops, webhook) → condition clears → resolved and notified once more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail

from channels_app import services as channel_services
from channels_app.connectors.base import OrderData, OrderLineData
from channels_app.health import webhook_refusal_record
from channels_app.models import (
    ChannelAlertSettings,
    ChannelListing,
    ChannelOrder,
    ChannelOrderLine,
    ChannelSyncState,
    SyncMarker,
)
from channels_app.orders.apply import order_apply, orders_oversell_settle
from channels_app.sync import breaker
from channels_app.sync.markers import markers_release_after_poll
from inventory import services
from synclog import services as synclog
from synclog.models import Alert, ChannelHealthSnapshot, Notification
from tests.support.alerts import deliver, evaluate, open_alerts, record, stuck_marker, told

pytestmark = pytest.mark.django_db


def assert_told(hook, kind: str, *events: str) -> None:
    """Exactly one e-mail and one webhook per state change of this kind's alert."""
    deliver()
    deliver()  # a second run sends nothing more
    expected = [("email", e, kind) for e in events] + [("webhook", e, kind) for e in events]
    assert [t for t in told(hook) if t[2] == kind] == expected


def the_alert(kind: str) -> Alert:
    return Alert.objects.get(kind=kind)


# --- dead channel -----------------------------------------------------------------------------


def test_dead_channel_opens_counts_notifies_and_resolves(shop, ops, hook):
    now = datetime.now(UTC)
    marker = stuck_marker(shop.listings.get(), now=now, minutes=10)

    report = evaluate(now)
    evaluate(now, minutes=1)

    alert = the_alert("dead_channel")
    assert (alert.channel_id, alert.sku, alert.count, alert.severity) == (
        shop.pk,
        "",
        2,
        "critical",
    )
    assert "No successful push for 5 min" in alert.message
    assert report.states[shop.pk] == "dead"
    assert_told(hook, "dead_channel", "opened")
    assert mail.outbox[0].to == ["olga@ops.example"]

    marker.delete()
    record(shop, "SKU-1", "success")
    evaluate(now, minutes=2)

    assert the_alert("dead_channel").resolved_at is not None
    assert ChannelHealthSnapshot.objects.latest().state == "healthy"
    assert_told(hook, "dead_channel", "opened", "resolved")


def test_pending_work_younger_than_the_threshold_is_not_dead(shop, ops, hook):
    now = datetime.now(UTC)
    stuck_marker(shop.listings.get(), now=now, minutes=4)

    assert evaluate(now).states[shop.pk] == "healthy"
    assert open_alerts("dead_channel") == []


def test_a_recent_success_keeps_a_channel_with_old_failing_work_alive(shop, hook):
    now = datetime.now(UTC)
    stuck_marker(shop.listings.get(), now=now, minutes=30)
    record(shop, "SKU-1", "success")

    assert evaluate(now, minutes=2).states[shop.pk] == "healthy"


def test_no_pending_work_is_never_dead_however_long_the_silence(shop, hook):
    record(shop, "SKU-1", "success")

    assert evaluate(minutes=600).states[shop.pk] == "healthy"


# --- degraded ----------------------------------------------------------------------------------


def test_degraded_opens_over_the_error_rate_and_resolves_when_the_window_passes(shop, ops, hook):
    record(shop, "SKU-1", "success", n=15)
    record(shop, "SKU-1", "retrying", n=5)  # 25 % of 20 attempts
    now = datetime.now(UTC)

    evaluate(now)
    evaluate(now, minutes=1)

    alert = the_alert("degraded")
    assert (alert.count, alert.severity) == (2, "warning")
    assert "5 of 20 SKU attempts failed (25 %)" in alert.message
    assert_told(hook, "degraded", "opened")

    evaluate(now, minutes=16)  # the 15-minute window no longer holds them

    assert the_alert("degraded").resolved_at is not None
    assert_told(hook, "degraded", "opened", "resolved")


@pytest.mark.parametrize(("ok", "failed"), [(0, 1), (0, 19), (17, 3)])
def test_too_few_attempts_or_a_low_rate_is_not_degraded(shop, hook, ok, failed):
    record(shop, "SKU-1", "success", n=ok)
    record(shop, "SKU-1", "failed", n=failed)

    assert evaluate().states[shop.pk] == "healthy"
    assert open_alerts("degraded") == []


def test_degraded_threshold_is_the_channels_own(shop, hook):
    ChannelAlertSettings.objects.create(
        channel=shop, degraded_error_percent=50, degraded_min_attempts=4
    )
    record(shop, "SKU-1", "success", n=2)
    record(shop, "SKU-1", "failed", n=2)

    assert evaluate().states[shop.pk] == "degraded"


# --- repeated failure of one SKU ---------------------------------------------------------------


def test_two_consecutive_failures_of_one_sku_alert_that_sku(shop, ops, hook):
    now = datetime.now(UTC)
    marker = stuck_marker(shop.listings.get(), now=now, minutes=1, attempts=2)
    inbound = synclog.alert_raise(
        kind="repeated_failure", channel_id=shop.pk, message="inbound event failed"
    )

    evaluate(now)
    evaluate(now, minutes=0.5)

    alert = Alert.objects.get(kind="repeated_failure", sku="SKU-1")
    assert (alert.channel_id, alert.count, alert.source) == (shop.pk, 2, "health")
    assert "failed 2 times in a row" in alert.message

    marker.delete()
    evaluate(now, minutes=1)

    assert Alert.objects.get(pk=alert.pk).resolved_at is not None
    # The inbound alert is not the evaluator's to clear.
    assert Alert.objects.get(pk=inbound.pk).resolved_at is None
    deliver()
    sku_alert = [
        (t, e) for t, e, k in told(hook) if k == "repeated_failure"
    ]  # inbound's opened + SKU's opened and resolved, per transport
    per_transport = [("opened"), ("opened"), ("resolved")]
    assert sorted(sku_alert) == sorted(
        [(t, e) for t in ("email", "webhook") for e in per_transport]
    )


def test_one_failure_is_not_repeated(shop, hook):
    now = datetime.now(UTC)
    stuck_marker(shop.listings.get(), now=now, minutes=1, attempts=1)

    evaluate(now)

    assert open_alerts("repeated_failure") == []


def test_no_sku_alerts_while_the_channel_itself_is_down(shop, hook):
    now = datetime.now(UTC)
    stuck_marker(shop.listings.get(), now=now, minutes=10, attempts=4)

    evaluate(now)

    assert len(open_alerts("dead_channel")) == 1
    assert open_alerts("repeated_failure") == []


# --- queue depth -----------------------------------------------------------------------------


def test_queue_depth_over_the_channels_limit(shop, ops, hook, variant_factory, listing_factory):
    ChannelAlertSettings.objects.create(channel=shop, queue_depth_limit=2)
    for sku in ("SKU-2", "SKU-3"):
        listing_factory(channel=shop, variant=variant_factory(sku=sku))
    now = datetime.now(UTC)
    markers = [
        stuck_marker(lst, now=now, minutes=0.1, attempts=0)
        for lst in ChannelListing.objects.filter(channel=shop)
    ]

    evaluate(now)
    evaluate(now, minutes=1)

    alert = the_alert("queue_depth")
    assert alert.count == 2
    assert "3 pushes pending on Shop (limit 2)" in alert.message
    assert_told(hook, "queue_depth", "opened")

    markers[0].delete()
    evaluate(now, minutes=2)

    assert the_alert("queue_depth").resolved_at is not None
    assert_told(hook, "queue_depth", "opened", "resolved")


# --- ATP below the safety stock of a top seller ------------------------------------------------


def sell(channel, variant, quantity: int, *, ext: str, days_ago: float = 1) -> None:
    placed = datetime.now(UTC) - timedelta(days=days_ago)
    order = ChannelOrder.objects.create(
        channel=channel,
        external_id=ext,
        status="paid",
        placed_at=placed,
        channel_updated_at=placed,
        first_seen_via="poll",
    )
    ChannelOrderLine.objects.create(
        order=order,
        external_line_id="1",
        sku=variant.sku,
        variant=variant,
        quantity=quantity,
        state="committed",
    )


def test_low_atp_of_a_top_seller(shop, ops, hook, location, variant_factory, listing_factory):
    ChannelAlertSettings.objects.create(channel=shop, top_sellers=1, top_seller_safety_stock=5)
    best = shop.listings.get().variant
    slow = variant_factory(sku="SKU-SLOW")  # ATP 0, but sells less: not watched
    listing_factory(channel=shop, variant=slow)
    sell(shop, best, 9, ext="A")
    sell(shop, slow, 1, ext="B")
    sell(shop, slow, 50, ext="OLD", days_ago=40)  # outside the 30 days

    evaluate()
    assert open_alerts("low_atp") == []

    services.stock_adjust(
        variant=best,
        location=location,
        quantity=-47,
        reason="adjust",
        source="t",
        idempotency_key="drop",
    )
    evaluate()
    evaluate(minutes=1)

    alert = the_alert("low_atp")
    assert (alert.sku, alert.count, alert.severity) == ("SKU-1", 2, "warning")
    assert "top seller #1 on Shop" in alert.message
    assert "ATP 3" in alert.message
    assert_told(hook, "low_atp", "opened")

    services.stock_adjust(
        variant=best,
        location=location,
        quantity=10,
        reason="receive",
        source="t",
        idempotency_key="refill",
    )
    evaluate(minutes=2)

    assert the_alert("low_atp").resolved_at is not None
    assert_told(hook, "low_atp", "opened", "resolved")


# --- oversell conflict --------------------------------------------------------------------------


def paid_order(ext: str, quantity: int) -> OrderData:
    when = datetime.now(UTC)
    return OrderData(
        external_id=ext,
        name=f"#{ext}",
        status="paid",
        financial_status="paid",
        fulfillment_status="",
        currency="USD",
        total=Decimal("10"),
        created_at=when,
        updated_at=when,
        lines=[OrderLineData("L1", "SKU-1", quantity, Decimal("10"))],
    )


def test_oversell_stays_open_while_a_conflict_is_unsettled(
    shop, ops, hook, location, channel_factory, channel_location_factory, listing_factory
):
    woo = channel_factory(name="Woo", slug="woo", platform="woocommerce")
    channel_location_factory(channel=woo, location=location)
    listing_factory(channel=woo, variant=shop.listings.get().variant)
    order_apply(channel=shop, data=paid_order("S-1", 50), source="webhook")

    order_apply(channel=woo, data=paid_order("W-1", 2), source="webhook")
    evaluate()
    order_apply(channel=woo, data=paid_order("W-2", 1), source="webhook")  # a second conflict
    evaluate(minutes=1)

    alert = the_alert("oversell")
    assert (alert.channel_id, alert.sku, alert.count) == (woo.pk, "SKU-1", 2)
    assert_told(hook, "oversell", "opened")

    orders_oversell_settle(orders=ChannelOrder.objects.filter(external_id="W-1"))
    evaluate(minutes=2)
    assert the_alert("oversell").resolved_at is None  # W-2 is still unsettled

    orders_oversell_settle(orders=ChannelOrder.objects.filter(external_id="W-2"))
    evaluate(minutes=3)

    assert the_alert("oversell").resolved_at is not None
    assert_told(hook, "oversell", "opened", "resolved")


# --- auth failure ---------------------------------------------------------------------------------


def test_auth_failure_is_kept_open_from_the_channel_state_and_resolved_on_resume(shop, ops, hook):
    ChannelSyncState.objects.create(
        channel=shop, auth_failed_at=datetime.now(UTC), auth_error="401 Invalid API key"
    )

    evaluate()  # the engine's alert was lost: the state alone opens it
    evaluate(minutes=1)
    synclog.alert_raise(  # the engine hits the refusal again
        kind="auth_failed", channel_id=shop.pk, severity="critical", message="again"
    )

    alert = the_alert("auth_failed")
    assert alert.count == 2
    assert evaluate(minutes=1.5).states[shop.pk] == "auth_failed"
    assert_told(hook, "auth_failed", "opened")

    channel_services.channel_resume(channel=shop)  # credentials fixed
    evaluate(minutes=2)

    assert the_alert("auth_failed").resolved_at is not None
    assert_told(hook, "auth_failed", "opened", "resolved")


# --- circuit open ---------------------------------------------------------------------------------


def test_circuit_open_counts_each_opening_and_resolves_on_a_good_probe(shop, ops, hook, settings):
    now = datetime.now(UTC)
    for _ in range(settings.PIMSYNC_BREAKER_FAILURES):
        breaker.breaker_record_failure(shop.pk, now=now, reason="503")
    evaluate(now)
    later = now + timedelta(seconds=settings.PIMSYNC_BREAKER_OPEN_SECONDS + 1)
    assert breaker.breaker_permit(shop.pk, now=later).probe
    breaker.breaker_record_failure(shop.pk, now=later, reason="503")  # the probe failed

    alert = the_alert("circuit_open")
    assert alert.count == 2
    assert evaluate(now, minutes=1).states[shop.pk] == "circuit_open"
    assert_told(hook, "circuit_open", "opened")

    breaker.breaker_record_success(shop.pk, now=later)
    evaluate(now, minutes=2)

    assert the_alert("circuit_open").resolved_at is not None
    assert_told(hook, "circuit_open", "opened", "resolved")


# --- bad webhook signatures -------------------------------------------------------------------


def test_bad_signatures_alert_at_the_threshold_and_resolve_when_the_window_is_quiet(
    shop, ops, hook
):
    for _ in range(2):
        assert webhook_refusal_record(channel=shop, reason="bad hmac", delivery="d") is False
    assert open_alerts("bad_signature") == []

    assert webhook_refusal_record(channel=shop, reason="bad hmac", delivery="d3") is True
    webhook_refusal_record(channel=shop, reason="bad hmac", delivery="d4")
    evaluate()

    alert = the_alert("bad_signature")
    assert alert.count == 2
    assert "4 webhook deliveries to /webhooks/shop/ refused" in alert.message
    assert_told(hook, "bad_signature", "opened")

    evaluate(minutes=16)

    assert the_alert("bad_signature").resolved_at is not None
    assert_told(hook, "bad_signature", "opened", "resolved")


# --- drift (reconciliation's) and dead letters (the engine's) ---------------------------------


def test_the_evaluator_never_resolves_drift(shop, hook):
    synclog.alert_raise(
        kind="drift", channel_id=shop.pk, sku="SKU-1", message="3 ≠ 5", source="recon"
    )

    evaluate()
    evaluate(minutes=30)

    alert = the_alert("drift")
    assert (alert.resolved_at, alert.count) == (None, 1)


def test_a_dead_letter_resolves_once_its_push_is_no_longer_dead(shop, ops, hook):
    now = datetime.now(UTC)
    marker = stuck_marker(shop.listings.get(), now=now, minutes=1)
    SyncMarker.objects.filter(pk=marker.pk).update(status="dead")
    synclog.alert_raise(
        kind="dead_letter", channel_id=shop.pk, sku="SKU-1", message="400 refused", source="engine"
    )

    evaluate(now)
    assert the_alert("dead_letter").resolved_at is None

    marker.delete()  # re-driven and pushed
    evaluate(now, minutes=1)

    assert the_alert("dead_letter").resolved_at is not None
    assert_told(hook, "dead_letter", "opened", "resolved")


# --- acknowledgement ------------------------------------------------------------------------------


def test_acknowledgement_records_the_person_and_keeps_the_alert_open(shop, ops, hook):
    now = datetime.now(UTC)
    stuck_marker(shop.listings.get(), now=now, minutes=10)
    evaluate(now)
    alert = the_alert("dead_channel")

    assert synclog.alert_acknowledge(alert_ids=[alert.pk], user=ops) == 1
    assert synclog.alert_acknowledge(alert_ids=[alert.pk], user=ops) == 0  # once

    alert.refresh_from_db()
    assert alert.acknowledged_by == ops
    assert alert.acknowledged_at is not None
    assert alert.resolved_at is None
    assert Notification.objects.filter(alert=alert).count() == 2  # acknowledging tells nobody


# --- pushes held for an orders import ----------------------------------------------------------


def test_a_push_held_too_long_for_an_orders_poll_alerts_with_the_polls_error(shop, ops, hook):
    now = datetime.now(UTC)
    listing = ChannelListing.objects.filter(channel=shop).first()
    marker = stuck_marker(listing, now=now, minutes=1, attempts=0)
    marker.held_for_poll_at = now - timedelta(seconds=30)
    marker.save()
    ChannelSyncState.objects.update_or_create(
        channel=shop, defaults={"poll_error": "retryable 503: Service Unavailable"}
    )
    evaluate()  # 30 s: still within PIMSYNC_PUSH_HELD_ALERT_SECONDS
    assert open_alerts("push_held") == []

    evaluate(minutes=2)  # the polls keep failing: the push stays held, and it says so
    [alert] = open_alerts("push_held")
    assert alert.severity == "critical"
    assert "1 quantity push(es)" in alert.message
    assert "503: Service Unavailable" in alert.message
    assert SyncMarker.objects.get(pk=marker.pk).held_for_poll_at is not None

    markers_release_after_poll(channel_id=shop.pk, poll_started_at=now)  # a poll got through
    evaluate(minutes=3)
    assert open_alerts("push_held") == []
    assert_told(hook, "push_held", "opened", "resolved")


def test_the_sweeper_asks_again_for_the_poll_held_pushes_wait_for(shop, task_sends, settings):
    from channels_app import dispatch

    settings.PIMSYNC_HELD_POLL_SECONDS = 5
    now = datetime.now(UTC)
    listing = ChannelListing.objects.filter(channel=shop).first()
    marker = stuck_marker(listing, now=now, minutes=1, attempts=0)
    marker.held_for_poll_at = now
    marker.save()

    assert dispatch.sweep_held_pushes() == [shop.pk]
    assert dispatch.sweep_held_pushes() == []  # asked a moment ago: not again yet
    assert task_sends.args_of(dispatch.POLL) == [[shop.pk]]
    ChannelSyncState.objects.filter(channel=shop).update(
        poll_requested_at=now - timedelta(seconds=6)
    )
    assert dispatch.sweep_held_pushes() == [shop.pk]
