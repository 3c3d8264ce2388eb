"""Thin Celery wrappers: ids in, a service call, nothing else."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import ChannelSyncState, SyncMarker
from .sync import engine
from .sync.enqueue import channel_push_request

log = logging.getLogger(__name__)


# Generous limits: an Amazon listings feed may legitimately run for many minutes;
# the engine stops claiming new work after its own time budget.
@shared_task(time_limit=1800, soft_time_limit=1700, ignore_result=True, acks_late=False)
def channel_push_task(channel_id: int) -> dict:
    """Push a channel's due markers. Running it twice at once is harmless (claims)."""
    report = engine.channel_push(channel_id)
    if report.stopped == "budget":
        channel_push_request(channel_id)  # more work is due right now
    # Markers waiting for a backoff, Retry-After, the circuit or an interval
    # carry their due time; the sweeper enqueues them when it comes.
    return {"pushed": report.pushed, "failed": report.failed, "stopped": report.stopped}


def sweep_due_channels() -> list[int]:
    """Channels with due work and no live push request: re-enqueue them.

    The recovery path for lost tasks (worker killed, broker restarted, broker
    down at enqueue time). It reads markers, not the broker.
    """
    now = timezone.now()
    due_channels = set(
        SyncMarker.objects.filter(status=SyncMarker.Status.PENDING, due_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .values_list("channel_id", flat=True)
        .distinct()
    )
    stale = now - timezone.timedelta(seconds=settings.PIMSYNC_PUSH_STALE_SECONDS)
    ChannelSyncState.objects.filter(
        channel_id__in=due_channels, push_queued=True, push_queued_at__lt=stale
    ).update(push_queued=False)
    return [cid for cid in sorted(due_channels) if channel_push_request(cid)]


@shared_task(time_limit=30, soft_time_limit=25, ignore_result=True)
def sync_sweep_task() -> int:
    return len(sweep_due_channels())


@shared_task(time_limit=60, soft_time_limit=50, ignore_result=True)
def order_cancel_oversold_task(order_id: int) -> bool:
    """Cancel, on its channel, an order that lost the last unit to another channel."""
    from .orders import order_cancel_on_channel

    return order_cancel_on_channel(order_id, reason="oversold")


# --- inbound orders (webhooks and polling) -------------------------------------------------
# Imports inside the tasks: channels_app.inbound imports the order services, which
# import this module lazily; keeping it lazy here too keeps either side importable first.


@shared_task(time_limit=120, soft_time_limit=110, ignore_result=True, acks_late=False)
def inbound_event_process_task(event_id: int) -> str | None:
    """Process one stored inbound event. Running it twice is harmless (row lock +
    pending check); a lost task is caught by inbound_sweep_task."""
    from .inbound import inbound_event_process

    return inbound_event_process(event_id)


@shared_task(time_limit=300, soft_time_limit=290, ignore_result=True, acks_late=False)
def inbound_events_process_task(event_ids: list[int]) -> int:
    """Process a web process's batch of stored events in arrival order; returns how
    many this run applied (others were already taken)."""
    from .inbound import inbound_event_process

    return sum(inbound_event_process(event_id) is not None for event_id in event_ids)


@shared_task(time_limit=600, soft_time_limit=570, ignore_result=True, acks_late=False)
def channel_poll_task(
    channel_id: int, resume_cursor: str | None = None, resume_hwm: str = ""
) -> dict:
    """Poll one channel's orders; a run cut short by its page or time bound
    enqueues its own continuation."""
    from .inbound import channel_poll, channel_poll_request

    report = channel_poll(channel_id, resume_cursor=resume_cursor, resume_hwm=resume_hwm)
    if report.next_cursor:
        channel_poll_request(channel_id, resume_cursor=report.next_cursor, resume_hwm=report.hwm)
    return report.as_dict()


@shared_task(time_limit=60, soft_time_limit=50, ignore_result=True)
def inbound_sweep_task() -> int:
    """Process pending inbound events no task took, and due retries (beat, every few s)."""
    from .inbound import inbound_sweep

    return inbound_sweep()


@shared_task(time_limit=30, soft_time_limit=25, ignore_result=True)
def channel_poll_due_task() -> list[int]:
    """Enqueue a poll for each enabled channel whose poll interval has passed (beat)."""
    from .inbound import channels_poll_due

    return channels_poll_due()


@shared_task(time_limit=60, soft_time_limit=50, ignore_result=True)
def order_fulfil_on_channel_task(
    order_id: int, tracking_number: str = "", carrier: str = ""
) -> bool:
    """Tell the channel that an order pimsync shipped has shipped."""
    from .orders import order_fulfil_on_channel

    return order_fulfil_on_channel(order_id, tracking_number=tracking_number, carrier=carrier)


# --- reconciliation and retention -------------------------------------------------------------


# A whole-channel read at the documented rate limits takes minutes (Amazon: 20 SKUs per
# call at 5 calls/s), and the run pushes its resyncs before handing over to verification.
@shared_task(time_limit=3600, soft_time_limit=3500, ignore_result=True, acks_late=False)
def channel_reconcile_task(
    channel_id: int,
    trigger: str = "scheduled",
    run_id: int | None = None,
    listing_ids: list[int] | None = None,
) -> dict:
    """Reconcile a channel (beat: no run yet; admin/API: the run it opened).
    Resyncs are pushed at once; their read-back follows in reconcile_verify_task."""
    from .models import Channel
    from .sync.reconcile import (
        ReconcileBusyError,
        reconciliation_check,
        reconciliation_start,
        reconciliation_verify,
    )

    if run_id is None:
        channel = Channel.objects.filter(pk=channel_id).first()
        if channel is None or not channel.is_enabled:
            return {"skipped": "channel missing or disabled"}
        try:
            run_id = reconciliation_start(channel=channel, trigger=trigger).pk
        except ReconcileBusyError as exc:
            return {"skipped": str(exc)}
    run = reconciliation_check(run_id, listing_ids=listing_ids)
    if run.status == "running":
        engine.channel_push(channel_id)
        if not reconciliation_verify(run_id):
            reconcile_verify_task.apply_async(
                args=[run_id], countdown=settings.PIMSYNC_RECONCILE_VERIFY_SECONDS
            )
    return {"run": run_id}


@shared_task(time_limit=900, soft_time_limit=870, ignore_result=True, acks_late=False)
def reconcile_verify_task(run_id: int) -> bool:
    """Read back a run's resynced SKUs once their pushes are out; until then
    (and at most PIMSYNC_RECONCILE_VERIFY_TIMEOUT_SECONDS) it checks again later."""
    from .sync.reconcile import reconciliation_verify

    done = reconciliation_verify(run_id)
    if not done:
        reconcile_verify_task.apply_async(
            args=[run_id], countdown=settings.PIMSYNC_RECONCILE_VERIFY_SECONDS
        )
    return done


@shared_task(time_limit=3600, soft_time_limit=3500, ignore_result=True)
def retention_purge_task() -> dict[str, int]:
    """Daily: delete sync log entries, inbound events and resolved drift findings
    older than PIMSYNC_RETENTION_DAYS, in small batches."""
    from .services import retention_purge

    return retention_purge()


# --- health -------------------------------------------------------------------------------------


@shared_task(time_limit=120, soft_time_limit=100, ignore_result=True, acks_late=False)
def channel_health_evaluate_task() -> dict:
    """Evaluate every channel's health, record snapshots, raise/resolve alerts (beat, 60 s)."""
    from synclog.models import ChannelHealthSnapshot

    from .health import health_evaluate

    # A backlog of beat messages (worker down for a while) must not evaluate
    # several times at once: each run's counters start at the previous snapshot.
    recent = timezone.now() - timedelta(seconds=settings.PIMSYNC_HEALTH_EVALUATE_SECONDS / 2)
    if ChannelHealthSnapshot.objects.filter(taken_at__gt=recent).exists():
        return {"skipped": "evaluated less than half an interval ago"}
    report = health_evaluate()
    return {"states": report.states, "opened": report.opened, "resolved": report.resolved}
