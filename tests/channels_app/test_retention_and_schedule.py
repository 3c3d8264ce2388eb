"""The daily retention purge, and the per-channel reconcile schedule in beat."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from channels_app import dispatch, services
from channels_app.models import InboundEvent
from channels_app.tasks import retention_purge_task
from synclog.models import (
    Alert,
    ChannelHealthSnapshot,
    DriftFinding,
    Notification,
    ReconciliationRun,
    SyncLogEntry,
)

pytestmark = pytest.mark.django_db


def backdate(model, pks, field_name, when):
    model.objects.filter(pk__in=pks).update(**{field_name: when})


def make_rows(channel, now):
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    entries = [
        SyncLogEntry.objects.create(
            channel=channel, sku=f"S{i}", event_type="price", status="success"
        ).pk
        for i in range(7)
    ]
    backdate(SyncLogEntry, entries[:5], "created_at", old)
    backdate(SyncLogEntry, entries[5:], "created_at", recent)
    events = [
        InboundEvent.objects.create(
            channel=channel, source="poll", delivery_id=f"d{i}", status=status
        ).pk
        for i, status in enumerate(["processed", "ignored", "failed", "pending", "processed"])
    ]
    backdate(InboundEvent, events[:4], "received_at", old)
    run = ReconciliationRun.objects.create(channel=channel, trigger="scheduled", started_at=old)
    findings = []
    for i, resolved in enumerate([old, old, recent, None]):
        findings.append(
            DriftFinding.objects.create(
                run=run,
                channel=channel,
                listing_id=i,
                sku=f"S{i}",
                field="quantity",
                expected=1,
                found=2,
                difference=1,
                found_at=old,
                resolved_at=resolved,
            ).pk
        )
    alert = Alert.objects.create(kind="dead_channel", channel=channel, last_seen=old)
    notes = [
        Notification.objects.create(
            alert=alert,
            state_version=i,
            event="opened",
            transport="email",
            status=status,
            subject="s",
            next_attempt_at=when,
            created_at=when,
        ).pk
        for i, (status, when) in enumerate(
            [("sent", old), ("failed", old), ("skipped", old), ("pending", old), ("sent", recent)]
        )
    ]
    snapshots = [
        ChannelHealthSnapshot.objects.create(channel=channel, taken_at=when, state="healthy").pk
        for when in (old, old, recent)
    ]
    return entries, events, findings, notes, snapshots


NOTHING = {
    "sync_log_entries": 0,
    "inbound_events": 0,
    "drift_findings": 0,
    "notifications": 0,
    "health_snapshots": 0,
}


def test_purge_deletes_only_what_is_older_than_the_retention(channel_factory, settings):
    # given: rows either side of 30 days; a pending event and an open finding, however old
    now = timezone.now()
    channel = channel_factory()
    entries, events, findings, notes, snapshots = make_rows(channel, now)
    # when: batches of 2 rows
    counts = services.retention_purge(now=now, days=30, batch_size=2)
    # then
    assert counts == {
        "sync_log_entries": 5,
        "inbound_events": 3,
        "drift_findings": 2,
        "notifications": 3,
        "health_snapshots": 2,
    }
    assert set(SyncLogEntry.objects.values_list("pk", flat=True)) == set(entries[5:])
    assert set(InboundEvent.objects.values_list("pk", flat=True)) == {events[3], events[4]}
    assert set(DriftFinding.objects.values_list("pk", flat=True)) == set(findings[2:])
    # a notification still to be delivered is kept however old; the alert itself too
    assert set(Notification.objects.values_list("pk", flat=True)) == set(notes[3:])
    assert set(ChannelHealthSnapshot.objects.values_list("pk", flat=True)) == {snapshots[2]}
    assert Alert.objects.count() == 1
    # and a second run has nothing left to do
    assert services.retention_purge(now=now, days=30, batch_size=2) == NOTHING


def test_purge_deletes_in_small_batches(channel_factory):
    now = timezone.now()
    channel = channel_factory()
    make_rows(channel, now)
    with CaptureQueriesContext(connection) as ctx:
        services.retention_purge(now=now, days=30, batch_size=2)
    deletes = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("DELETE")]
    # 5 entries -> 3 batches, 3 events -> 2, 2 findings -> 1, 3 notifications -> 2,
    # 2 snapshots -> 1: never one statement for all
    assert len(deletes) == 9


def test_purge_task_uses_the_retention_setting(channel_factory, settings):
    settings.PIMSYNC_RETENTION_DAYS = 60
    channel = channel_factory()
    make_rows(channel, timezone.now())
    assert retention_purge_task() == NOTHING


def test_purge_refuses_a_meaningless_period():
    with pytest.raises(ValueError, match="at least 1 day"):
        services.retention_purge(days=0)


def test_channel_save_keeps_its_reconcile_schedule_in_beat(channel_factory):
    # given: a new channel saved through the service
    channel = channel_factory.build(reconcile_interval_minutes=240)
    services.channel_save(channel=channel)
    task = PeriodicTask.objects.get(name=services.reconcile_schedule_name(channel.pk))
    assert (task.task, json.loads(task.args), json.loads(task.kwargs)) == (
        "channels_app.tasks.channel_reconcile_task",
        [channel.pk],
        {"trigger": "scheduled"},
    )
    assert (task.interval.every, task.interval.period, task.enabled) == (240, "minutes", True)
    # when: the interval changes, then the channel is disabled
    channel.reconcile_interval_minutes = 30
    services.channel_save(channel=channel, changed_fields=["reconcile_interval_minutes"])
    task.refresh_from_db()
    assert (task.interval.every, task.enabled) == (30, True)
    channel.is_enabled = False
    services.channel_save(channel=channel, changed_fields=["is_enabled"])
    task.refresh_from_db()
    assert task.enabled is False
    # and 0 means on demand only
    channel.is_enabled, channel.reconcile_interval_minutes = True, 0
    services.channel_save(channel=channel, changed_fields=["is_enabled"])
    task.refresh_from_db()
    assert task.enabled is False
    assert PeriodicTask.objects.filter(task=dispatch.RECONCILE).count() == 1
