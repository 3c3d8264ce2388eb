"""Short claim leases kept alive while their worker lives.

A push run claims markers under one token with a short lease
(PIMSYNC_PUSH_LEASE_SECONDS, 20 s by default). A heartbeat thread renews every
marker still held under that token a few times per lease, for as long as the run
goes on — however long one call to the channel takes. A worker killed mid-call
stops renewing: its markers are free again within one lease, and the sweeper
hands them to another worker.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from ..models import SyncMarker

log = logging.getLogger(__name__)


def lease_length() -> timedelta:
    return timedelta(seconds=settings.PIMSYNC_PUSH_LEASE_SECONDS)


def lease_renew(token: str) -> int:
    """Extend every marker still held under ``token`` by one lease; returns how many."""
    return SyncMarker.objects.filter(claim_token=token).update(
        claimed_until=timezone.now() + lease_length()
    )


class _Heartbeat(threading.Thread):
    def __init__(self, token: str, interval: float) -> None:
        super().__init__(name=f"lease-{token[:8]}", daemon=True)
        self.token = token
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                try:
                    lease_renew(self.token)
                except Exception:  # a missed beat is recovered by the next one
                    log.warning("lease renewal for %s failed", self.token[:8], exc_info=True)
        finally:
            connection.close()  # this thread's own connection


@contextmanager
def leased_run() -> Iterator[str]:
    """A claim token for one push run, renewed in the background until the run ends."""
    token = uuid.uuid4().hex
    beat = _Heartbeat(token, interval=max(0.5, settings.PIMSYNC_PUSH_LEASE_SECONDS / 4))
    beat.start()
    try:
        yield token
    finally:
        beat.stopped.set()
        beat.join(timeout=5)
