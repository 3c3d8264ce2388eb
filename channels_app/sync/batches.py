"""Watching the asynchronous batches a channel is processing (Amazon feeds).

The engine submits a large chunk, records the batch — the channel's id, the SKUs
and the values — and goes on with other work. Any worker then follows the batch
one step at a time:

  submitted --status read: still processing--> submitted (checked again soon)
            --status read: done / cancelled / fatal--> processed
  processed --results read--> finished: each SKU recorded like a live push
                              (success, retry, dead letter); only the SKUs the
                              results say failed are queued again

A failure of one step (a status read, the report download) retries that step
with backoff; the batch is never submitted again because a step failed. A worker
killed mid-step loses its short claim on the batch, and the sweeper hands the
batch to another worker.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pimsync.backoff import backoff_delay

from ..connectors.base import AsyncBatchConnector, BatchStatus, ItemResult, ListingRef
from ..connectors.errors import ConnectorError, FailureKind
from ..dispatch import batch_watch, channel_push_request_on_commit
from ..models import ChannelBatch, ChannelSyncState, SyncKind, SyncMarker
from . import engine
from .connection import channel_connector

log = logging.getLogger(__name__)

Status = ChannelBatch.Status
OPEN = (Status.SUBMITTED, Status.PROCESSED)
# A claim on a batch covers one step (one status read, or reading the results).
CLAIM_SECONDS = 60
# A batch whose steps keep failing is given up after this many failures in a row:
# its SKUs are queued again (the one case a batch's values are sent again).
MAX_STEP_FAILURES = 20


def _claim(batch_id: int, now: datetime) -> ChannelBatch | None:
    token = uuid.uuid4().hex
    claimed = (
        ChannelBatch.objects.filter(pk=batch_id, status__in=OPEN)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS), claim_token=token)
    )
    if not claimed:
        return None
    return ChannelBatch.objects.select_related("channel").get(pk=batch_id)


def _check_later(batch: ChannelBatch, now: datetime, delay: float, **changes: object) -> str:
    ChannelBatch.objects.filter(pk=batch.pk, claim_token=batch.claim_token).update(
        next_check_at=now + timedelta(seconds=delay), claimed_until=None, claim_token="", **changes
    )
    batch_watch(batch.pk, countdown=delay)
    return batch.status


def batch_watch_step(batch_id: int, *, clock: Callable[[], datetime] = timezone.now) -> str:
    """Take the batch one step further; returns its status afterwards ('' when it
    is not open or another worker holds it)."""
    now = clock()
    batch = _claim(batch_id, now)
    if batch is None:
        return ""
    channel = batch.channel
    if not channel.is_enabled:
        return _check_later(batch, now, settings.PIMSYNC_BATCH_CHECK_SECONDS * 12)
    connector = channel_connector(channel)
    if not isinstance(connector, AsyncBatchConnector):
        return _abandon(batch, now, f"{channel.platform} takes no asynchronous batches")
    try:
        if batch.status == Status.SUBMITTED:
            status = connector.batch_status(batch.external_id)
            if not status.final:
                return _check_later(
                    batch,
                    now,
                    settings.PIMSYNC_BATCH_CHECK_SECONDS,
                    checks=batch.checks + 1,
                    status_detail=status.detail[:40],
                    step_failures=0,
                )
            batch.status, batch.outcome = Status.PROCESSED, status.state
            batch.status_detail, batch.result_ref = status.detail[:40], status.result_ref[:200]
            ChannelBatch.objects.filter(pk=batch.pk).update(
                status=batch.status,
                outcome=batch.outcome,
                status_detail=batch.status_detail,
                result_ref=batch.result_ref,
                checks=batch.checks + 1,
                step_failures=0,
            )
        results = connector.batch_results(
            BatchStatus(batch.outcome, batch.status_detail, batch.result_ref), _refs(batch)
        )
    except ConnectorError as exc:
        return _step_failed(batch, now, exc)
    return _finish(batch, results, now)


def _refs(batch: ChannelBatch) -> list[ListingRef]:
    return [ListingRef(sku=item["sku"], listing_sku=item["channel_sku"]) for item in batch.items]


def _step_failed(batch: ChannelBatch, now: datetime, exc: ConnectorError) -> str:
    """A status read or the results download failed: that step is retried (with
    backoff); the batch itself is not sent again."""
    failures = batch.step_failures + 1
    message = f"{exc.kind.value} {exc.code}: {exc.message}"[:2000]
    log.warning("batch %s of channel %s: step failed (%s)", batch.pk, batch.channel_id, message)
    if exc.kind is FailureKind.AUTH:
        ChannelSyncState.objects.filter(channel_id=batch.channel_id).update(
            auth_failed_at=now, auth_error=message
        )
    if failures >= MAX_STEP_FAILURES:
        return _abandon(batch, now, f"gave up after {failures} failed steps: {message}")
    delay = backoff_delay(
        failures,
        base=settings.PIMSYNC_BATCH_CHECK_SECONDS,
        cap=settings.PIMSYNC_RETRY_CAP_SECONDS,
        retry_after=exc.retry_after,
    )
    return _check_later(batch, now, delay, step_failures=failures, last_error=message)


def _abandon(batch: ChannelBatch, now: datetime, why: str) -> str:
    """The batch cannot be followed any more: its SKUs are queued again."""
    with transaction.atomic():
        SyncMarker.objects.filter(batch=batch).update(batch=None, due_at=now)
        ChannelBatch.objects.filter(pk=batch.pk).update(
            status=Status.ABANDONED,
            last_error=why[:2000],
            finished_at=now,
            claimed_until=None,
            claim_token="",
        )
        channel_push_request_on_commit(batch.channel_id)
    return Status.ABANDONED


def _value(kind: str, raw: str) -> Decimal | int:
    return Decimal(raw) if kind == SyncKind.PRICE else int(raw)


def _finish(batch: ChannelBatch, results: list[ItemResult], now: datetime) -> str:
    """Record each SKU's outcome like a live push: success confirms the value sent
    (and keeps a marker re-dirtied meanwhile), a retryable failure queues that SKU
    again, a permanent one dead-letters it."""
    markers = {
        m.pk: m
        for m in SyncMarker.objects.filter(batch=batch).select_related("listing__variant__product")
    }
    work: list[engine.Work] = []
    answered: list[ItemResult] = []
    for item, result in zip(batch.items, results, strict=True):
        marker = markers.get(item["marker"])
        if marker is None:
            continue  # removed meanwhile (listing deleted)
        # The change this batch carried: a newer change keeps the marker for a new push.
        marker.change_token = item["change_token"]
        work.append(engine.Work(marker, marker.listing, _value(batch.kind, item["value"])))
        answered.append(result)
    run = engine.Run(
        channel=batch.channel,
        connector=channel_connector(batch.channel),
        token="",
        report=engine.PushReport(batch.channel_id),
        clock=lambda: now,
        deadline=0.0,
        finishing_batch=True,
    )
    with transaction.atomic():
        if work:
            engine.record_results(run, batch.kind, work, answered)
        SyncMarker.objects.filter(batch=batch).update(batch=None)
        ChannelBatch.objects.filter(pk=batch.pk).update(
            status=Status.FINISHED, finished_at=now, claimed_until=None, claim_token=""
        )
        channel_push_request_on_commit(batch.channel_id)
    log.info(
        "batch %s of channel %s finished: %s pushed, %s failed",
        batch.pk,
        batch.channel_id,
        run.report.pushed,
        run.report.failed,
    )
    return Status.FINISHED


def batches_sweep(*, now: datetime | None = None) -> list[int]:
    """Open batches whose next check is due and that nobody holds (a lost task, a
    killed worker): ask for them to be watched."""
    now = now or timezone.now()
    due = list(
        ChannelBatch.objects.filter(status__in=OPEN, next_check_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .values_list("pk", flat=True)[:200]
    )
    return [batch_id for batch_id in due if batch_watch(batch_id)]
