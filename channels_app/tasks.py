"""Celery entry points: ids in, one service call, nothing else (the top layer).

Nothing in channels_app imports this module; work is requested by task name
through ``channels_app.dispatch``, and a test checks that every name it sends
is registered here.
"""

from __future__ import annotations

from celery import shared_task

from . import dispatch
from .health import health_evaluate_unless_recent
from .onboarding.importer import catalog_import_run, catalog_imports_sweep
from .orders.events import inbound_events_process, inbound_sweep
from .orders.on_channel import order_channel_calls_run, order_channel_calls_sweep
from .orders.polling import channel_poll, channels_poll_due
from .services import retention_purge
from .sync import engine
from .sync.batches import batch_watch_step, batches_sweep
from .sync.edits import channel_edits_recheck, channel_edits_sweep
from .sync.reconcile import reconciliation_run, reconciliation_verify_or_later
from .webhook_subscriptions import channel_webhooks_register_saved


# Generous limits: an Amazon listings feed may legitimately run for many minutes;
# the engine stops claiming new work after its own time budget.
@shared_task(time_limit=1800, soft_time_limit=1700, ignore_result=True, acks_late=False)
def channel_push_task(channel_id: int) -> dict:
    """Push a channel's due markers. Running it twice at once is harmless (claims)."""
    report = engine.channel_push(channel_id)
    if report.stopped == "budget":
        dispatch.channel_push_request(channel_id)  # more work is due right now
    # Markers waiting for a backoff, Retry-After, the circuit or an interval
    # carry their due time; the sweeper enqueues them when it comes.
    return {"pushed": report.pushed, "failed": report.failed, "stopped": report.stopped}


@shared_task(time_limit=300, soft_time_limit=270, ignore_result=True, acks_late=False)
def channel_push_urgent_task(channel_id: int) -> dict:
    """Push a channel's urgent markers only (zeros, low stock), on the urgent lane."""
    report = engine.channel_push(channel_id, urgent_only=True)
    if report.stopped == "budget":
        dispatch.channel_urgent_push_request(channel_id)
    return {"pushed": report.pushed, "failed": report.failed, "stopped": report.stopped}


@shared_task(time_limit=30, soft_time_limit=25, ignore_result=True)
def sync_sweep_task() -> int:
    """Beat, every few seconds: re-request pushes a lost task left behind, the
    orders polls that held pushes wait for, the watch of submitted batches, the
    comparison of edited values that waited for a push or for orders, and catalog
    imports whose worker was lost."""
    return (
        len(dispatch.sweep_due_channels())
        + len(dispatch.sweep_held_pushes())
        + len(batches_sweep())
        + channel_edits_sweep()
        + len(catalog_imports_sweep())
    )


@shared_task(time_limit=120, soft_time_limit=110, ignore_result=True, acks_late=False)
def channel_batch_watch_task(batch_id: int) -> str:
    """One step of a batch the channel is processing (an Amazon feed)."""
    return batch_watch_step(batch_id)


# --- channel-side edits and webhook subscriptions ------------------------------------------


@shared_task(time_limit=60, soft_time_limit=50, ignore_result=True)
def channel_edits_recheck_task(channel_id: int) -> dict:
    """Compare a channel's waiting edited values again (a push of theirs was on its way)."""
    return dict(channel_edits_recheck(channel_id=channel_id))


@shared_task(time_limit=120, soft_time_limit=110, ignore_result=True)
def channel_webhooks_register_task(channel_id: int, refresh_secret: bool = False) -> str:
    """Create or repair a saved channel's webhook subscriptions."""
    return channel_webhooks_register_saved(channel_id, refresh_secret=refresh_secret)


# --- inbound orders (webhooks and polling) -------------------------------------------------


@shared_task(time_limit=120, soft_time_limit=110, ignore_result=True, acks_late=False)
def inbound_event_process_task(event_id: int) -> int:
    """Process a stored inbound event, in a batch with any other never-tried ones.
    Running it twice is harmless (row locks + pending check); a lost task is
    caught by inbound_sweep_task. Returns how many events this run applied."""
    return inbound_events_process([event_id])


@shared_task(time_limit=120, soft_time_limit=110, ignore_result=True, acks_late=False)
def inbound_events_process_task(event_ids: list[int]) -> int:
    """Process a web process's stored events, and any other never-tried ones, in
    batches in arrival order; returns how many this run applied (others were
    already taken)."""
    return inbound_events_process(event_ids)


@shared_task(time_limit=600, soft_time_limit=570, ignore_result=True, acks_late=False)
def channel_poll_task(
    channel_id: int,
    resume_cursor: str | None = None,
    resume_hwm: str = "",
    resume_started: str = "",
) -> dict:
    """Poll one channel's orders; a run cut short by its page or time bound
    enqueues its own continuation."""
    report = channel_poll(
        channel_id,
        resume_cursor=resume_cursor,
        resume_hwm=resume_hwm,
        resume_started=resume_started,
    )
    if report.next_cursor:
        dispatch.channel_poll_request(
            channel_id,
            resume_cursor=report.next_cursor,
            resume_hwm=report.hwm,
            resume_started=report.started,
        )
    return report.as_dict()


@shared_task(time_limit=60, soft_time_limit=50, ignore_result=True)
def inbound_sweep_task() -> int:
    """Process pending inbound events no task took, and due retries (beat, every few s)."""
    return inbound_sweep()


@shared_task(time_limit=30, soft_time_limit=25, ignore_result=True)
def channel_poll_due_task() -> list[int]:
    """Enqueue a poll for each enabled channel whose poll interval has passed (beat)."""
    return channels_poll_due()


# --- calls to orders' channels ------------------------------------------------------------


# Each call is leased to its worker for PIMSYNC_ORDER_CALL_LEASE_SECONDS (120 s by default):
# the time limit keeps a task of up to 50 calls within reach of it.
@shared_task(time_limit=110, soft_time_limit=100, ignore_result=True, acks_late=False)
def order_channel_calls_task(call_ids: list[int]) -> dict[int, str]:
    """Report shipments / cancel orders on their channels (OrderChannelCall rows).
    Running it twice is harmless (each call is taken under a lease)."""
    return order_channel_calls_run(call_ids)


@shared_task(time_limit=30, soft_time_limit=25, ignore_result=True)
def order_channel_calls_sweep_task() -> int:
    """Send due retries and calls whose task was lost (beat)."""
    return order_channel_calls_sweep()


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
    return reconciliation_run(channel_id, trigger=trigger, run_id=run_id, listing_ids=listing_ids)


@shared_task(time_limit=900, soft_time_limit=870, ignore_result=True, acks_late=False)
def reconcile_verify_task(run_id: int) -> bool:
    """Read back a run's resynced SKUs once their pushes are out; until then
    (and at most PIMSYNC_RECONCILE_VERIFY_TIMEOUT_SECONDS) it checks again later."""
    return reconciliation_verify_or_later(run_id)


@shared_task(time_limit=3600, soft_time_limit=3500, ignore_result=True)
def retention_purge_task() -> dict[str, int]:
    """Daily: delete sync log entries, inbound events and resolved drift findings
    older than PIMSYNC_RETENTION_DAYS, in small batches."""
    return retention_purge()


# --- catalog import -----------------------------------------------------------------------------


# A read stops itself after PIMSYNC_CATALOG_IMPORT_TASK_SECONDS (default 1500) and queues its
# continuation; the time limit leaves room for the page in hand and the matching.
@shared_task(time_limit=2400, soft_time_limit=2300, ignore_result=True, acks_late=False)
def catalog_import_task(import_id: int) -> str:
    """Read a channel's catalog page by page from where the import stands, then match
    it. Running it twice at once is harmless (one worker holds the import's lease)."""
    return catalog_import_run(import_id)


# --- health -------------------------------------------------------------------------------------


@shared_task(time_limit=120, soft_time_limit=100, ignore_result=True, acks_late=False)
def channel_health_evaluate_task() -> dict:
    """Evaluate every channel's health, record snapshots, raise/resolve alerts (beat, 60 s)."""
    return health_evaluate_unless_recent()
