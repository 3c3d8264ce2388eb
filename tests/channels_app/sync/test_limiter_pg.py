"""Urgent calls first in a channel's shared bucket, under real parallel workers
(PostgreSQL + Redis lane): routine callers in many threads keep the bucket busy;
a zero's call is never queued behind more than about one second of their calls,
and all of them together still keep to the rate."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection

from channels_app.sync.limiter import rate_limit_wait, rate_limiter, take_in_turn, urgent_calls

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RATE = 2.0  # calls per second: each call holds the bucket 0.5 s
ROUTINE_WORKERS = 8
QUEUE_SECONDS = 0.5


def _forget_bucket(channel_id: int) -> None:
    """A channel id may repeat across test databases; Redis outlives them."""
    client = getattr(rate_limiter(), "_client", None)
    if client is not None:
        client.delete(f"pimsync:ratelimit:{channel_id}")


def test_an_urgent_call_passes_routine_calls_queued_by_other_workers(
    channel_factory: Any, settings: Any
) -> None:
    settings.PIMSYNC_RATE_LIMIT_QUEUE_SECONDS = QUEUE_SECONDS
    if not settings.PIMSYNC_RATE_LIMIT_REDIS_URL:
        pytest.fail("the PostgreSQL + Redis lane shares the limiter through Redis")
    channel = channel_factory()
    _forget_bucket(channel.pk)
    stop = threading.Event()
    sent: list[float] = []  # when each call may go out (its turn in the bucket)
    lock = threading.Lock()

    def routine_worker() -> None:
        try:
            while not stop.is_set():
                rate_limit_wait(channel.pk, rate=RATE, burst=1.0)
                with lock:
                    sent.append(time.monotonic())
        finally:
            connection.close()

    threads = [threading.Thread(target=routine_worker) for _ in range(ROUTINE_WORKERS)]
    for t in threads:
        t.start()
    urgent_waits = []
    try:
        for _ in range(3):
            time.sleep(1.5)  # the routine workers keep the bucket busy meanwhile
            with urgent_calls():
                wait = take_in_turn(channel.pk, rate=RATE, burst=1.0)
            urgent_waits.append(wait)
            time.sleep(wait)
            with lock:
                sent.append(time.monotonic())
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    # Eight routine workers would queue 8 x 0.5 s = 4 s ahead in a plain FIFO bucket;
    # here at most 0.5 s + one routine call (0.5 s) are ahead of the urgent call.
    assert max(urgent_waits) <= QUEUE_SECONDS + 2 / RATE + 0.1, urgent_waits
    # Together they kept to the rate: in any window, at most rate x window + burst calls.
    sent.sort()
    span = sent[-1] - sent[0]
    assert len(sent) <= RATE * span + 1 + 1, (len(sent), span)
    assert len(sent) >= RATE * span * 0.8, "the routine workers kept the bucket busy"
