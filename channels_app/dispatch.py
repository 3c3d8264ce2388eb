"""Every task request channels_app makes: pushes, polls, inbound events, calls to
orders' channels, reconciliation, channel-side edits, webhook registration, catalog
imports.

Requests name their task (``pimsync.tasking.task_send``) instead of importing it:
``tasks.py`` is the top layer and imports the services it calls; nothing below it
imports ``tasks.py``. The guarantees are the same for every request:

- **after commit** where the work was written in a transaction (``*_on_commit``),
  so a worker never looks for rows that are not there yet;
- **never blocking or failing the caller**: a broker failure is logged and the
  request reports False;
- **a sweeper is the backstop**: the work itself lives in the database (markers,
  inbound events, runs, order calls), so a lost message delays it, never loses it.

Pushes are debounced: one flag per channel (ChannelSyncState.push_queued) turns
many requests into one task; the sweeper, which looks at markers rather than at
the broker, re-requests what a lost task left behind.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pimsync.tasking import task_send

from .models import ChannelSyncState, SyncMarker

log = logging.getLogger(__name__)

# The task names this module sends (each must be registered: a test checks).
PUSH = "channels_app.tasks.channel_push_task"
URGENT_PUSH = "channels_app.tasks.channel_push_urgent_task"
POLL = "channels_app.tasks.channel_poll_task"
INBOUND_EVENT = "channels_app.tasks.inbound_event_process_task"
INBOUND_EVENTS = "channels_app.tasks.inbound_events_process_task"
ORDER_CALLS = "channels_app.tasks.order_channel_calls_task"
RECONCILE = "channels_app.tasks.channel_reconcile_task"
RECONCILE_VERIFY = "channels_app.tasks.reconcile_verify_task"
BATCH_WATCH = "channels_app.tasks.channel_batch_watch_task"
CATALOG_IMPORT = "channels_app.tasks.catalog_import_task"
EDITS_RECHECK = "channels_app.tasks.channel_edits_recheck_task"
WEBHOOKS_REGISTER = "channels_app.tasks.channel_webhooks_register_task"
TASK_NAMES = (
    BATCH_WATCH,
    CATALOG_IMPORT,
    EDITS_RECHECK,
    WEBHOOKS_REGISTER,
    PUSH,
    URGENT_PUSH,
    POLL,
    INBOUND_EVENT,
    INBOUND_EVENTS,
    ORDER_CALLS,
    RECONCILE,
    RECONCILE_VERIFY,
)


# --- pushes -------------------------------------------------------------------------------------


def channel_sync_state(channel_id: int) -> ChannelSyncState:
    state, _ = ChannelSyncState.objects.get_or_create(channel_id=channel_id)
    return state


def _send_unless_queued(
    channel_id: int,
    send: Callable[[], bool],
    *,
    free: Q,
    queued: dict[str, object],
    cleared: dict[str, object],
) -> bool:
    """Set the channel's request flag (``queued``) where it is ``free``, then ``send``;
    a broker refusal clears the flag again (``cleared``). True when a task was sent."""
    channel_sync_state(channel_id)
    state = ChannelSyncState.objects.filter(channel_id=channel_id)
    if not state.filter(free).update(**queued):
        return False
    if send():
        return True
    state.update(**cleared)
    return False


def channel_push_request(channel_id: int, *, countdown: float | None = None) -> bool:
    """Enqueue one push task for the channel unless one is already queued.

    Returns True when a task was sent. Safe to call from anywhere, any number
    of times; a broker failure clears the flag again, so the sweeper retries.
    """
    send = partial(
        task_send,
        PUSH,
        args=[channel_id],
        countdown=countdown,
        what=f"push for channel {channel_id}",
        fallback="the sweeper will retry",
    )
    return _send_unless_queued(
        channel_id,
        send,
        free=Q(push_queued=False),
        queued={"push_queued": True, "push_queued_at": timezone.now()},
        cleared={"push_queued": False},
    )


def channel_push_request_on_commit(channel_id: int) -> None:
    # partial, not a lambda: a lambda in a caller's loop would see the last id (B023).
    transaction.on_commit(partial(channel_push_request, channel_id))


def channel_urgent_push_request(channel_id: int) -> bool:
    """Enqueue a push of the channel's urgent markers on the urgent lane unless one
    is queued and not started yet (it will claim this change too): a burst of sales
    asked one task per mark and channel, and the runs that found nothing left took the
    lane's processes from the next zero. A request not started within
    PIMSYNC_URGENT_STALE_SECONDS is taken as lost (or stuck behind busy processes) and
    asked again. The routine push requested beside it (and the sweeper) carries the
    same markers when no urgent worker runs."""
    now = timezone.now()
    lost = now - timedelta(seconds=settings.PIMSYNC_URGENT_STALE_SECONDS)
    send = partial(
        task_send,
        URGENT_PUSH,
        args=[channel_id],
        what=f"urgent push for channel {channel_id}",
        fallback="the routine push carries it",
    )
    return _send_unless_queued(
        channel_id,
        send,
        free=Q(urgent_queued_at__isnull=True) | Q(urgent_queued_at__lt=lost),
        queued={"urgent_queued_at": now},
        cleared={"urgent_queued_at": None},
    )


def channel_urgent_push_request_on_commit(channel_id: int) -> None:
    transaction.on_commit(partial(channel_urgent_push_request, channel_id))


def sweep_due_channels() -> list[int]:
    """Channels with due work and no live push request: request them again.

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
    stale = now - timedelta(seconds=settings.PIMSYNC_PUSH_STALE_SECONDS)
    ChannelSyncState.objects.filter(
        channel_id__in=due_channels, push_queued=True, push_queued_at__lt=stale
    ).update(push_queued=False)
    return [cid for cid in sorted(due_channels) if channel_push_request(cid)]


# --- order polls --------------------------------------------------------------------------------


def channel_poll_request(
    channel_id: int,
    *,
    resume_cursor: str | None = None,
    resume_hwm: str = "",
    resume_started: str = "",
) -> bool:
    """Enqueue one poll of the channel (or the continuation of a long one); beat
    asks again at the next interval when the broker refused."""
    kwargs = (
        {"resume_cursor": resume_cursor, "resume_hwm": resume_hwm, "resume_started": resume_started}
        if resume_cursor
        else {}
    )
    return task_send(
        POLL,
        args=[channel_id],
        kwargs=kwargs,
        what=f"poll of channel {channel_id}",
        fallback="beat asks again at the next interval",
    )


def channel_poll_request_on_commit(channel_id: int) -> None:
    transaction.on_commit(partial(channel_poll_request, channel_id))


def channel_poll_request_for_holds(channel_id: int, *, now: datetime | None = None) -> bool:
    """Ask for an orders poll on behalf of pushes held for one, at most once per
    PIMSYNC_HELD_POLL_SECONDS per channel (the sweeper calls this every few seconds)."""
    now = now or timezone.now()
    recent = now - timedelta(seconds=settings.PIMSYNC_HELD_POLL_SECONDS)
    channel_sync_state(channel_id)
    claimed = (
        ChannelSyncState.objects.filter(channel_id=channel_id)
        .filter(Q(poll_requested_at__isnull=True) | Q(poll_requested_at__lt=recent))
        .update(poll_requested_at=now)
    )
    return bool(claimed) and channel_poll_request(channel_id)


def sweep_held_pushes() -> list[int]:
    """Channels with pushes held for an orders poll that has not come: ask again
    (the request after the hold may have been lost, or the poll failed)."""
    channel_ids = sorted(
        set(
            SyncMarker.objects.filter(
                held_for_poll_at__isnull=False, status=SyncMarker.Status.PENDING
            ).values_list("channel_id", flat=True)
        )
    )
    return [cid for cid in channel_ids if channel_poll_request_for_holds(cid)]


# --- inbound events -----------------------------------------------------------------------------


def inbound_event_enqueue(event_id: int) -> bool:
    """Ask a worker to process the stored event; with the broker down the event
    stays pending and the inbound sweeper takes it."""
    return task_send(
        INBOUND_EVENT,
        args=[event_id],
        what=f"inbound event {event_id}",
        fallback="the sweeper will process it",
    )


def inbound_events_enqueue(event_ids: Sequence[int]) -> bool:
    """One task message for several stored events (see inbound_event_enqueue)."""
    return task_send(
        INBOUND_EVENTS,
        args=[list(event_ids)],
        what=f"{len(event_ids)} inbound event(s)",
        fallback="the sweeper will process them",
    )


class EnqueueBatcher:
    """Collects one web process's new event ids and sends them as one task per window.

    A Celery publish costs a web process more CPU than verifying and storing the
    delivery; at hundreds of deliveries a second, one message per few milliseconds
    keeps ingestion cheap for at most ``window`` seconds of added latency. Nothing
    depends on the message: ids lost with a dying process are left pending, and the
    sweeper processes them after its grace period.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._ids: list[int] = []
        self._thread_pid: int | None = None

    def add(self, event_id: int) -> None:
        with self._lock:
            self._ids.append(event_id)
            if self._thread_pid != os.getpid():  # first use, or a forked child (no threads)
                self._thread_pid = os.getpid()
                threading.Thread(target=self._run, name="inbound-enqueue", daemon=True).start()
        self._wake.set()

    def flush(self) -> int:
        """Send what is waiting now; returns how many ids were sent."""
        with self._lock:
            ids, self._ids = self._ids, []
            self._wake.clear()
        if ids:
            inbound_events_enqueue(ids)
        return len(ids)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.window)
            self.flush()


_batcher: EnqueueBatcher | None = None
_batcher_lock = threading.Lock()


def _enqueue_batcher() -> EnqueueBatcher:
    global _batcher
    with _batcher_lock:
        if _batcher is None:
            _batcher = EnqueueBatcher(settings.PIMSYNC_INBOUND_ENQUEUE_WINDOW_MS / 1000)
            atexit.register(_batcher.flush)
        return _batcher


def inbound_event_enqueue_soon(event_id: int) -> None:
    """Enqueue at once, or with the next batch when batching is on (web processes)."""
    if settings.PIMSYNC_INBOUND_ENQUEUE_WINDOW_MS <= 0:
        inbound_event_enqueue(event_id)
    else:
        _enqueue_batcher().add(event_id)


def inbound_event_enqueue_on_commit(event_id: int) -> None:
    # partial, not a lambda: a caller's loop would hand every lambda the last id (B023).
    transaction.on_commit(partial(inbound_event_enqueue_soon, event_id))


# --- order calls to channels --------------------------------------------------------------------


# Calls sent by one task: a batch of oversold orders' cancels goes out in a few tasks.
ORDER_CALLS_PER_TASK = 50


def order_channel_calls_send(call_ids: Sequence[int], *, countdown: float | None = None) -> bool:
    """Ask a worker to make these calls to orders' channels; with the broker down they
    stay pending and the order-call sweeper sends them."""
    sent = True
    for start in range(0, len(call_ids), ORDER_CALLS_PER_TASK):
        chunk = list(call_ids[start : start + ORDER_CALLS_PER_TASK])
        sent = (
            task_send(
                ORDER_CALLS,
                args=[chunk],
                countdown=countdown,
                what=f"{len(chunk)} call(s) to orders' channels",
                fallback="the order-call sweeper will send them",
            )
            and sent
        )
    return sent


def order_channel_calls_send_on_commit(call_ids: Sequence[int]) -> None:
    """order_channel_calls_send once the calls' rows are committed."""
    if call_ids:
        transaction.on_commit(partial(order_channel_calls_send, list(call_ids)))


# --- reconciliation -----------------------------------------------------------------------------


def reconcile_request(
    channel_id: int, trigger: str, run_id: int | None, listing_ids: list[int] | None
) -> bool:
    """Run a reconciliation (the run is opened by the caller, or by the task when
    ``run_id`` is None)."""
    return task_send(
        RECONCILE,
        args=[channel_id, trigger, run_id, listing_ids],
        what=f"reconciliation of channel {channel_id}",
        fallback="the run is failed so the next one can start",
    )


def reconcile_verify_later(run_id: int) -> bool:
    """Read back a run's resynced SKUs after PIMSYNC_RECONCILE_VERIFY_SECONDS."""
    return task_send(
        RECONCILE_VERIFY,
        args=[run_id],
        countdown=settings.PIMSYNC_RECONCILE_VERIFY_SECONDS,
        what=f"read-back of reconciliation #{run_id}",
        fallback="the channel's next run fails it as abandoned",
    )


# --- asynchronous batches (Amazon feeds) ---------------------------------------------------------


def batch_watch(batch_id: int, *, countdown: float | None = None) -> bool:
    """Ask a worker to check a submitted batch (the batch sweeper is the backstop)."""
    return task_send(
        BATCH_WATCH,
        args=[batch_id],
        countdown=countdown,
        what=f"watching batch {batch_id}",
        fallback="the sweeper will watch it",
    )


def batch_watch_later(batch_id: int) -> None:
    """Once the batch's record is committed, check it after PIMSYNC_BATCH_CHECK_SECONDS."""
    transaction.on_commit(
        partial(batch_watch, batch_id, countdown=settings.PIMSYNC_BATCH_CHECK_SECONDS)
    )


# --- channel-side edits and webhook subscriptions --------------------------------------------


def channel_edits_recheck(channel_id: int) -> bool:
    """Compare the channel's waiting edit reports again in a moment (a push of
    their field was on its way); the sweeper is the backstop."""
    return task_send(
        EDITS_RECHECK,
        args=[channel_id],
        countdown=settings.PIMSYNC_EDIT_RECHECK_SECONDS,
        what=f"re-check of channel {channel_id}'s edited values",
        fallback="the sweeper will re-check them",
    )


def channel_edits_recheck_later(channel_id: int) -> None:
    transaction.on_commit(partial(channel_edits_recheck, channel_id))


def channel_webhooks_register_request(channel_id: int, refresh_secret: bool = False) -> bool:
    """Create or repair the channel's webhook subscriptions (after a save)."""
    return task_send(
        WEBHOOKS_REGISTER,
        args=[channel_id],
        kwargs={"refresh_secret": refresh_secret},
        what=f"registering channel {channel_id}'s webhooks",
        fallback="use the channel's 'Register webhooks' action or test its connection",
    )


def channel_webhooks_register_request_on_commit(channel_id: int, *, refresh_secret: bool) -> None:
    transaction.on_commit(
        partial(channel_webhooks_register_request, channel_id, refresh_secret=refresh_secret)
    )


# --- catalog imports ----------------------------------------------------------------------------


def catalog_import_request(import_id: int, *, countdown: float | None = None) -> bool:
    """Read (or go on reading) a catalog import; the sweeper takes it up otherwise."""
    return task_send(
        CATALOG_IMPORT,
        args=[import_id],
        countdown=countdown,
        what=f"catalog import #{import_id}",
        fallback="the sweeper resumes it once its lease has run out",
    )


def catalog_import_request_on_commit(import_id: int) -> None:
    transaction.on_commit(partial(catalog_import_request, import_id))
