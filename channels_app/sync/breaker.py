"""Circuit breaker per channel: after K consecutive failed calls the channel is
open for T seconds, then one probe call decides. Every open and close is logged
and alerted; state lives in ChannelSyncState so all workers share it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from synclog import services as synclog

from ..models import ChannelSyncState

log = logging.getLogger(__name__)
Breaker = ChannelSyncState.Breaker
PROBE_SECONDS = 60


@dataclass(frozen=True)
class Permit:
    allowed: bool
    probe: bool = False
    retry_at: datetime | None = None


def _locked_state(channel_id: int) -> ChannelSyncState:
    ChannelSyncState.objects.get_or_create(channel_id=channel_id)
    return ChannelSyncState.objects.select_for_update().get(channel_id=channel_id)


def breaker_permit(channel_id: int, *, now: datetime) -> Permit:
    """May the channel be called now? An open breaker past its time lets exactly
    one caller through as the probe (half-open)."""
    with transaction.atomic():
        state = _locked_state(channel_id)
        if state.breaker == Breaker.CLOSED:
            return Permit(True)
        if state.open_until and now < state.open_until:
            # Open and cooling down, or half-open with a probe in flight.
            return Permit(False, retry_at=state.open_until)
        # Open past its time, or a probe that never reported back (its worker
        # died): let one caller probe; it has PROBE_SECONDS to report.
        state.breaker = Breaker.HALF_OPEN
        state.open_until = now + timedelta(seconds=PROBE_SECONDS)
        state.save(update_fields=["breaker", "open_until"])
        log.info("channel %s circuit half-open: probing", channel_id)
        return Permit(True, probe=True)


def breaker_record_success(channel_id: int, *, now: datetime) -> None:
    with transaction.atomic():
        state = _locked_state(channel_id)
        was = state.breaker
        state.breaker, state.consecutive_failures, state.open_until = Breaker.CLOSED, 0, None
        state.last_success_at = now
        state.save(
            update_fields=["breaker", "consecutive_failures", "open_until", "last_success_at"]
        )
    if was != Breaker.CLOSED:
        log.warning("channel %s circuit closed after a successful probe", channel_id)
        synclog.alert_resolve(kind="circuit_open", channel_id=channel_id, sku="", now=now)


def breaker_record_failure(channel_id: int, *, now: datetime, reason: str) -> bool:
    """Count a failed call; returns True when this failure opened the circuit."""
    threshold = settings.PIMSYNC_BREAKER_FAILURES
    open_for = timedelta(seconds=settings.PIMSYNC_BREAKER_OPEN_SECONDS)
    with transaction.atomic():
        state = _locked_state(channel_id)
        state.consecutive_failures += 1
        state.last_failure_at = now
        opens = state.breaker == Breaker.HALF_OPEN or (
            state.breaker == Breaker.CLOSED and state.consecutive_failures >= threshold
        )
        if opens:
            state.breaker, state.open_until = Breaker.OPEN, now + open_for
        state.save(
            update_fields=["consecutive_failures", "last_failure_at", "breaker", "open_until"]
        )
        failures = state.consecutive_failures
    if opens:
        log.warning(
            "channel %s circuit open for %ss after %s failures",
            channel_id,
            open_for.seconds,
            failures,
        )
        synclog.alert_raise(
            kind="circuit_open",
            channel_id=channel_id,
            severity="critical",
            message=f"{failures} consecutive failed calls ({reason}); pushes paused for "
            f"{int(open_for.total_seconds())} s, then one probe call.",
            now=now,
        )
    return opens


def breaker_probe_abandoned(channel_id: int, *, now: datetime) -> None:
    """The probe found nothing to send: back to open, so the next caller probes."""
    ChannelSyncState.objects.filter(channel_id=channel_id, breaker=Breaker.HALF_OPEN).update(
        breaker=Breaker.OPEN, open_until=now
    )
