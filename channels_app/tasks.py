"""Thin Celery wrappers: ids in, a service call, nothing else."""

from __future__ import annotations

import logging

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
