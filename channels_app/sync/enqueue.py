"""Asking for a channel push: debounced, after commit, never hanging the caller.

One flag per channel (ChannelSyncState.push_queued) turns many requests into
one task. If the broker is down the flag is cleared again and the sweeper,
which looks at markers rather than at the broker, catches up.
"""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from ..models import ChannelSyncState

log = logging.getLogger(__name__)


def channel_sync_state(channel_id: int) -> ChannelSyncState:
    state, _ = ChannelSyncState.objects.get_or_create(channel_id=channel_id)
    return state


def channel_push_request(channel_id: int, *, countdown: float | None = None) -> bool:
    """Enqueue one push task for the channel unless one is already queued.

    Returns True when a task was sent. Safe to call from anywhere, any number
    of times; a broker failure is logged, not raised.
    """
    channel_sync_state(channel_id)
    claimed = ChannelSyncState.objects.filter(channel_id=channel_id, push_queued=False).update(
        push_queued=True, push_queued_at=timezone.now()
    )
    if not claimed:
        return False
    from ..tasks import channel_push_task

    try:
        channel_push_task.apply_async(args=[channel_id], countdown=countdown, retry=False)
    except Exception as exc:
        log.warning(
            "push for channel %s not enqueued (%s); the sweeper will retry", channel_id, exc
        )
        ChannelSyncState.objects.filter(channel_id=channel_id).update(push_queued=False)
        return False
    return True


def channel_push_request_on_commit(channel_id: int) -> None:
    # partial, not a lambda: a lambda in a caller's loop would see the last id (B023).
    transaction.on_commit(partial(channel_push_request, channel_id))


def task_send_safely(task: object, *args: object) -> bool:
    """Send a task; a broker failure is logged, never raised (callers are
    request handlers and after-commit hooks)."""
    try:
        task.apply_async(args=list(args), retry=False)  # type: ignore[attr-defined]
    except Exception as exc:
        log.warning("task %s not enqueued: %s", getattr(task, "name", task), exc)
        return False
    return True
