"""Calls to an order's channel: report a shipment, cancel an oversell loser.

Each call is an OrderChannelCall row written in the transaction that decided it
(an outbox): after commit a task makes the call, and every attempt goes to the
sync log like any push (event type ``order``). The channel failing retryably
(429, 5xx, a timeout, anything unexpected) makes the call due again after the
one backoff (pimsync.backoff) — the channel's Retry-After is a floor — until
PIMSYNC_ORDER_CALL_MAX_ATTEMPTS; a refusal (4xx, auth) or the last attempt
makes it dead, with a ``repeated_failure`` alert. A person re-drives dead calls
("Retry on channel", admin or API). A worker takes a call under a lease, so a
call is never made twice at once and a killed worker's call is due again when
the lease ends; the sweeper (beat) sends due retries and calls whose task was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from pimsync.backoff import backoff_delay
from synclog import services as synclog

from ..connectors.base import ItemResult
from ..connectors.errors import ConnectorError, FailureKind
from ..dispatch import order_channel_calls_send, order_channel_calls_send_on_commit
from ..models import ChannelOrder, ChannelOrderLine, OrderChannelCall
from ..sync.connection import channel_connector

log = logging.getLogger(__name__)
Kind = OrderChannelCall.Kind
Status = OrderChannelCall.Status
ERROR_MAX_CHARS = 2000


# --- requesting --------------------------------------------------------------------------------


def order_channel_calls_request(
    *, order_ids: Iterable[int], kind: str, payload: Mapping[str, Any]
) -> list[int]:
    """Record that these orders' channels must be told (``kind``, ``payload``) and
    send the calls after commit; returns the calls' ids.

    One call per order and kind: asking again updates a pending or dead call (new
    payload, attempts afresh, due now); a call the channel confirmed is left alone.
    """
    order_ids = sorted(set(order_ids))
    if not order_ids:
        return []
    now = timezone.now()
    with transaction.atomic():
        OrderChannelCall.objects.bulk_create(
            [
                OrderChannelCall(order_id=pk, kind=kind, payload=dict(payload), next_attempt_at=now)
                for pk in order_ids
            ],
            ignore_conflicts=True,
        )
        calls = OrderChannelCall.objects.filter(order_id__in=order_ids, kind=kind).exclude(
            status=Status.DONE
        )
        calls.update(payload=dict(payload), status=Status.PENDING, attempts=0, next_attempt_at=now)
        ids = list(calls.order_by("pk").values_list("pk", flat=True))
        order_channel_calls_send_on_commit(ids)
    return ids


def order_fulfil_request(*, order: ChannelOrder, tracking_number: str, carrier: str) -> None:
    """Tell the order's channel that it shipped (after commit, retried until confirmed)."""
    order_channel_calls_request(
        order_ids=[order.pk],
        kind=Kind.FULFIL,
        payload={"tracking_number": tracking_number, "carrier": carrier},
    )


def order_channel_calls_retry(*, calls: QuerySet[OrderChannelCall]) -> int:
    """Re-drive calls that did not get through (dead, or pending with failures):
    attempts afresh, due now, sent after commit. Confirmed calls are left alone.
    Returns how many were re-driven."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(calls.exclude(status=Status.DONE).order_by("pk").values_list("pk", flat=True))
        OrderChannelCall.objects.filter(pk__in=ids).update(
            status=Status.PENDING, attempts=0, next_attempt_at=now
        )
        order_channel_calls_send_on_commit(ids)
    return len(ids)


def orders_channel_calls_retry(*, orders: QuerySet[ChannelOrder]) -> int:
    """order_channel_calls_retry for every call of these orders."""
    return order_channel_calls_retry(
        calls=OrderChannelCall.objects.filter(order_id__in=orders.values("pk"))
    )


# --- sending -----------------------------------------------------------------------------------


def _claim(call_id: int, now: datetime) -> OrderChannelCall | None:
    """Take a due pending call under a lease (its next attempt moves to the lease's
    end, so nobody else takes it meanwhile); the attempt is counted now."""
    lease = timedelta(seconds=settings.PIMSYNC_ORDER_CALL_LEASE_SECONDS)
    taken = OrderChannelCall.objects.filter(
        pk=call_id, status=Status.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + lease, attempts=F("attempts") + 1)
    if not taken:
        return None
    return OrderChannelCall.objects.select_related("order__channel").get(pk=call_id)


def _call(call: OrderChannelCall) -> ItemResult:
    order = call.order
    try:
        connector = channel_connector(order.channel)
        if call.kind == Kind.CANCEL:
            return connector.cancel_order(
                order.external_id, reason=str(call.payload.get("reason", ""))
            )
        return connector.fulfil_order(
            order.external_id,
            tracking_number=str(call.payload.get("tracking_number", "")),
            carrier=str(call.payload.get("carrier", "")),
        )
    except ConnectorError as exc:
        return ItemResult(
            order.external_id, exc.kind, exc.code, exc.message, exc.retry_after, exc.status
        )
    except Exception as exc:  # a bug or an unforeseen answer: retried, and logged in full
        log.exception("call %s to the channel of order %s failed", call.pk, order.pk)
        return ItemResult(
            order.external_id, FailureKind.RETRYABLE, "connector_error", str(exc)[:500]
        )


def _skus(call: OrderChannelCall) -> str:
    lines = call.order.lines.all()
    if call.kind == Kind.CANCEL:
        lines = lines.filter(state=ChannelOrderLine.State.OVERSOLD)
    return ", ".join(lines.order_by("pk").values_list("sku", flat=True))[:100]


def _log(call: OrderChannelCall, result: ItemResult, skus: str) -> None:
    synclog.sync_log_record(
        [
            synclog.Attempt(
                channel_id=call.order.channel_id,
                sku=skus,
                listing_id=None,
                event_type="order",
                value_sent=f"{call.kind} {call.order.external_id}"[:64],
                status="success" if result.ok else "failed",
                error_code=result.code[:64],
                message=result.message,
                retry_count=call.attempts - 1,
                http_status=result.http_status,
            )
        ]
    )


def _outcome(call: OrderChannelCall, result: ItemResult, now: datetime) -> tuple[str, float]:
    """The call's new status, and for a retry the seconds until it is due."""
    if result.ok:
        return Status.DONE, 0.0
    retryable = result.kind is FailureKind.RETRYABLE
    if not retryable or call.attempts >= settings.PIMSYNC_ORDER_CALL_MAX_ATTEMPTS:
        return Status.DEAD, 0.0
    delay = backoff_delay(
        call.attempts,
        base=settings.PIMSYNC_ORDER_CALL_RETRY_BASE_SECONDS,
        cap=settings.PIMSYNC_ORDER_CALL_RETRY_CAP_SECONDS,
        retry_after=result.retry_after,
    )
    return Status.PENDING, delay


def _action(call: OrderChannelCall) -> str:
    order = call.order
    label = order.name or order.external_id
    if call.kind == Kind.CANCEL:
        return f"Cancelling order {label} on {order.channel}"
    return f"Telling {order.channel} that order {label} shipped"


def order_channel_call_run(call_id: int, *, now: datetime | None = None) -> str | None:
    """Make one due call to an order's channel and record the outcome; returns the
    call's new status, or None when it was not due (done, dead, waiting, or being
    made by another worker).

    A retry is due after its backoff; the sweeper sends it then. A dead call
    opens (or counts) the ``repeated_failure`` alert of the order's channel and
    SKUs, a confirmed one resolves it.
    """
    now = now or timezone.now()
    call = _claim(call_id, now)
    if call is None:
        return None
    result = _call(call)
    skus = _skus(call)
    _log(call, result, skus)
    status, delay = _outcome(call, result, now)
    error = "" if result.ok else f"{result.code} {result.message}".strip()[:ERROR_MAX_CHARS]
    OrderChannelCall.objects.filter(pk=call.pk).update(
        status=status,
        next_attempt_at=now + timedelta(seconds=delay),
        last_error_code=result.code[:64] if not result.ok else "",
        last_error=error,
        done_at=now if status == Status.DONE else None,
    )
    channel_id = call.order.channel_id
    if status == Status.DONE:
        synclog.alert_resolve(kind="repeated_failure", channel_id=channel_id, sku=skus)
    elif status == Status.DEAD:
        message = (
            f"{_action(call)} failed after {call.attempts} attempt(s): {error}. "
            "Fix the cause, then use Retry on channel on the order."
        )
        synclog.alert_raise(
            kind="repeated_failure", channel_id=channel_id, sku=skus, message=message[:1000]
        )
    return status


def order_channel_calls_run(call_ids: Iterable[int]) -> dict[int, str]:
    """order_channel_call_run for each call; the statuses of those that were due."""
    outcomes = {}
    for call_id in call_ids:
        status = order_channel_call_run(call_id)
        if status is not None:
            outcomes[call_id] = status
    return outcomes


def order_channel_calls_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send the due pending calls (retries whose time came, calls whose task was
    lost, leases of killed workers that ran out); returns how many were asked for."""
    now = now or timezone.now()
    ids = list(
        OrderChannelCall.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        order_channel_calls_send(ids)
    return len(ids)
