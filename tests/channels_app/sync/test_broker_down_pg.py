"""With the production broker settings, a dead Redis never hangs the caller."""

import socket
import time

import pytest

from channels_app.tasks import channel_push_task
from pimsync.celery import app

pytestmark = pytest.mark.postgres  # the PostgreSQL + Redis lane runs the Redis transport options


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_publishing_to_a_dead_redis_fails_fast():
    assert app.conf.broker_url.startswith("redis://"), "run in the PostgreSQL + Redis lane"
    dead = f"redis://127.0.0.1:{closed_port()}/0"
    start = time.monotonic()
    with pytest.raises(Exception), app.connection_for_write(dead) as conn:  # noqa: B017
        channel_push_task.apply_async(args=[1], connection=conn, retry=False)
    assert time.monotonic() - start < 3.0
