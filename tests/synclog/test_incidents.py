"""Incidents group the alerts of one outage and record its time to recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from synclog import services
from synclog.incidents import incident_recovery_report
from synclog.models import Alert, Incident

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def raise_(kind: str, channel, sku: str = "", minute: float = 0) -> Alert:
    return services.alert_raise(
        kind=kind, channel_id=channel.pk, sku=sku, message=kind, now=at(minute)
    )


def resolve(kind: str, channel, sku: str | None = None, minute: float = 0) -> int:
    return services.alert_resolve(kind=kind, channel_id=channel.pk, sku=sku, now=at(minute))


def test_an_outage_alert_opens_an_incident_and_symptoms_on_its_channel_join(shop, channel_factory):
    dead = raise_("dead_channel", shop)
    failing = raise_("repeated_failure", shop, sku="SKU-1", minute=1)
    business = raise_("low_atp", shop, sku="SKU-1", minute=1)
    elsewhere = raise_("repeated_failure", channel_factory(), sku="SKU-9", minute=1)

    incident = Incident.objects.get()
    assert incident.title == "Shop: Channel dead"
    assert incident.detected_at == T0
    assert list(incident.channels.all()) == [shop]
    assert set(incident.alerts.all()) == {dead, failing}
    assert Alert.objects.get(pk=business.pk).incident_id is None
    assert Alert.objects.get(pk=elsewhere.pk).incident_id is None
    assert incident.skus == ["SKU-1"]


def test_a_symptom_alone_opens_no_incident(shop):
    raise_("repeated_failure", shop, sku="SKU-1")
    raise_("queue_depth", shop)

    assert Incident.objects.count() == 0


def test_it_recovers_when_its_last_alert_resolves_with_the_time_to_recovery(shop):
    raise_("circuit_open", shop)
    raise_("dead_channel", shop, minute=2)
    raise_("repeated_failure", shop, sku="SKU-1", minute=3)

    resolve("circuit_open", shop, minute=10)
    resolve("dead_channel", shop, minute=11)
    assert Incident.objects.get().recovered_at is None  # a SKU still fails

    resolve("repeated_failure", shop, sku="SKU-1", minute=14)

    incident = Incident.objects.get()
    assert incident.recovered_at == at(14)
    assert incident.ttr_seconds == 14 * 60
    assert incident.alerts.count() == 3


def test_skus_affected_include_those_that_failed_during_it(shop):
    raise_("dead_channel", shop, minute=0)
    services.sync_log_record(
        [
            services.Attempt(shop.pk, sku, None, "inventory", "1", "retrying")
            for sku in ("SKU-1", "SKU-2", "SKU-2")
        ]
        + [services.Attempt(shop.pk, "SKU-OK", None, "inventory", "1", "success")]
    )

    services.alert_resolve(kind="dead_channel", channel_id=shop.pk)  # now: after the log rows

    incident = Incident.objects.get()
    assert (incident.skus, incident.sku_count) == (["SKU-1", "SKU-2"], 2)


def test_a_flap_reopens_the_recovered_incident(shop):
    raise_("dead_channel", shop)
    resolve("dead_channel", shop, minute=5)
    assert Incident.objects.get().ttr_seconds == 300

    raise_("dead_channel", shop, minute=7)  # back within the reopen window

    incident = Incident.objects.get()
    assert (incident.recovered_at, incident.ttr_seconds) == (None, None)
    resolve("dead_channel", shop, minute=9)
    assert Incident.objects.get().ttr_seconds == 9 * 60


def test_outages_of_two_channels_close_together_are_one_incident(shop, channel_factory, settings):
    settings.PIMSYNC_INCIDENT_CORRELATION_SECONDS = 300
    woo, amazon = channel_factory(name="Woo"), channel_factory(name="Amazon")
    raise_("dead_channel", shop)
    raise_("dead_channel", woo, minute=3)  # same cause: joins
    raise_("dead_channel", amazon, minute=30)  # much later, the first still open: its own

    first, second = Incident.objects.order_by("detected_at")
    assert sorted(c.name for c in first.channels.all()) == ["Shop", "Woo"]
    assert [c.name for c in second.channels.all()] == ["Amazon"]


def test_recovery_report_per_channel_over_30_days(shop, channel_factory):
    woo = channel_factory(name="Woo")

    def incident(channels, minutes_ago_detected: float, ttr_minutes: float | None):
        detected = T0 - timedelta(minutes=minutes_ago_detected)
        i = Incident.objects.create(
            title="x",
            detected_at=detected,
            recovered_at=None if ttr_minutes is None else detected + timedelta(minutes=ttr_minutes),
            ttr_seconds=None if ttr_minutes is None else int(ttr_minutes * 60),
        )
        i.channels.set(channels)

    incident([shop], 60, 2)
    incident([shop], 600, 10)
    incident([shop, woo], 1000, 30)
    incident([woo], 30, None)  # ongoing
    incident([shop], 31 * 24 * 60, 500)  # older than 30 days: not in the report

    overall, per_channel = incident_recovery_report(days=30, now=T0)

    rows = {s.label: s for s in per_channel}
    shop_stats = rows["Shop"]
    assert (shop_stats.incidents, shop_stats.recovered, shop_stats.still_open) == (3, 3, 0)
    assert (shop_stats.mean_seconds, shop_stats.p50_seconds, shop_stats.max_seconds) == (
        840.0,
        600,
        1800,
    )
    woo_stats = rows["Woo"]
    assert (woo_stats.incidents, woo_stats.recovered, woo_stats.still_open) == (2, 1, 1)
    assert (woo_stats.mean_seconds, woo_stats.p50_seconds, woo_stats.max_seconds) == (
        1800.0,
        1800,
        1800,
    )
    assert (overall.incidents, overall.recovered, overall.p50_seconds) == (4, 3, 600)
