"""The suite runs against the database and broker its lane promises.

`make test` uses SQLite and a broker that needs no server; `make test-pg`
(scripts/test-pg.sh, PIMSYNC_TEST_LANE=pg) a throwaway PostgreSQL + Redis.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection
from kombu import Connection

IS_PG_LANE = os.environ.get("PIMSYNC_TEST_LANE") == "pg"


@pytest.mark.django_db
def test_database_vendor_matches_the_lane() -> None:
    expected = "postgresql" if IS_PG_LANE else "sqlite"

    assert connection.vendor == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_broker_matches_the_lane_and_accepts_a_connection() -> None:
    # Only the pg lane has a Redis server; the embedded lane must never need one.
    assert settings.CELERY_BROKER_URL.startswith("redis://") is IS_PG_LANE

    with Connection(
        settings.CELERY_BROKER_URL,
        transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        connect_timeout=2,
    ) as broker:
        broker.ensure_connection(max_retries=1)
        assert broker.connected


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_lane_server_is_tuned_for_concurrency_tests() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        (max_connections,) = cursor.fetchone()
        cursor.execute("SHOW fsync")
        (fsync,) = cursor.fetchone()

    assert connection.vendor == "postgresql"
    assert int(max_connections) >= 200
    assert fsync == "off"
