"""GET /healthz: database, broker and per-channel state; 200 when this node can
serve, 503 when the database or broker is down; quick and never a 500."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from channels_app.models import ChannelSyncState
from synclog.models import ChannelHealthSnapshot

pytestmark = pytest.mark.django_db


class FakeRedis:
    """A loopback TCP server speaking just enough RESP: PONG to PING, OK to the rest,
    or (hang=True) accepting connections and never answering."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.pings = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            if not self.hang:
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        while chunk := conn.recv(4096):
            buffer += chunk
            while buffer.startswith(b"*"):
                parts = buffer.split(b"\r\n")
                count = int(parts[0][1:])
                needed = 1 + 2 * count
                if len(parts) <= needed:
                    break
                command = parts[2].upper()
                buffer = b"\r\n".join(parts[needed:])
                if command == b"PING":
                    self.pings += 1
                    conn.sendall(b"+PONG\r\n")
                else:
                    conn.sendall(b"+OK\r\n")

    def close(self) -> None:
        self.server.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def fake_redis() -> Iterator[FakeRedis]:
    server = FakeRedis()
    yield server
    server.close()


@pytest.fixture
def hung_redis() -> Iterator[FakeRedis]:
    server = FakeRedis(hang=True)
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_up_anonymous_200_with_database_and_broker(client, settings):
    settings.CELERY_BROKER_URL = "memory://"

    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["latency_ms"] >= 0
    assert body["broker"] == {
        "ok": True,
        "kind": "memory",
        "latency_ms": body["broker"]["latency_ms"],
    }
    assert body["channels"] == []
    assert "no-cache" in response["Cache-Control"]


def test_head_allowed_post_refused(client):
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_channel_states_live_breaker_and_auth_over_the_snapshot(client, channel_factory):
    now = timezone.now()
    healthy = channel_factory(slug="a-healthy")
    auth = channel_factory(slug="b-auth")
    breaker = channel_factory(slug="c-breaker")
    off = channel_factory(slug="d-off", is_enabled=False)
    channel_factory(slug="e-new")
    for channel in (healthy, auth, breaker, off):
        ChannelHealthSnapshot.objects.create(
            channel=channel, taken_at=now - timedelta(minutes=2), state="dead"
        )
        ChannelHealthSnapshot.objects.create(
            channel=channel, taken_at=now, state="healthy", queue_depth=3
        )
    ChannelSyncState.objects.create(channel=auth, auth_failed_at=now, auth_error="401")
    ChannelSyncState.objects.create(channel=breaker, breaker="open", open_until=now)
    ChannelSyncState.objects.create(channel=healthy, last_success_at=now)

    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    states = {c["slug"]: (c["state"], c["source"]) for c in body["channels"]}
    assert states == {
        "a-healthy": ("healthy", "snapshot"),
        "b-auth": ("auth_failed", "live"),
        "c-breaker": ("circuit_open", "live"),
        "d-off": ("disabled", "settings"),
        "e-new": ("unknown", "none"),
    }
    first = body["channels"][0]
    assert first["queue_depth"] == 3
    assert first["last_success_at"] == now.isoformat()
    assert first["snapshot_stale"] is False


def test_only_healthy_and_disabled_channels_is_ok(client, channel_factory, settings):
    settings.PIMSYNC_DASHBOARD_STALE_SECONDS = 300
    channel = channel_factory()
    channel_factory(is_enabled=False)
    snapshot = ChannelHealthSnapshot.objects.create(
        channel=channel, taken_at=timezone.now(), state="healthy"
    )
    assert client.get("/healthz").json()["status"] == "ok"

    # A snapshot older than the stale limit: the health evaluation has stopped.
    snapshot.taken_at = timezone.now() - timedelta(seconds=301)
    snapshot.save()
    body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert body["channels"][0]["snapshot_stale"] is True


def test_database_down_is_503_without_channels(client, monkeypatch):
    class BrokenConnection:
        vendor = "sqlite"

        def cursor(self):
            raise OperationalError("could not connect to server")

    monkeypatch.setattr("pimsync.health.connection", BrokenConnection())

    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "down"
    assert body["database"]["ok"] is False
    assert body["database"]["error"] == "OperationalError"
    assert "could not connect" not in response.content.decode()
    assert body["channels"] == []


def test_channel_read_failure_reports_but_keeps_200(client, monkeypatch):
    def broken(**kwargs):
        raise OperationalError("no such table")

    monkeypatch.setattr("pimsync.health.channel_states", broken)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["channels_error"] == "OperationalError"


def test_unexpected_failure_is_503_never_500(client, monkeypatch):
    def explode():
        raise RuntimeError("boom")

    monkeypatch.setattr("pimsync.views.health_report", explode)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["status"] == "down"


def test_redis_broker_up_is_one_ping(client, settings, fake_redis):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{fake_redis.port}/0"

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["broker"]["ok"] is True
    assert response.json()["broker"]["kind"] == "redis"
    assert fake_redis.pings == 1


def test_redis_broker_refusing_connections_is_503(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"

    started = time.monotonic()
    response = client.get("/healthz")

    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.json()["broker"] == {
        "ok": False,
        "kind": "redis",
        "latency_ms": response.json()["broker"]["latency_ms"],
        "error": "ConnectionError",
    }


def test_hung_redis_broker_is_503_within_the_timeout(client, settings, hung_redis):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{hung_redis.port}/0"
    settings.PIMSYNC_HEALTHZ_TIMEOUT_SECONDS = 0.3

    started = time.monotonic()
    response = client.get("/healthz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False
    assert elapsed < 1.5


def test_other_broker_unreachable_is_503_within_the_timeout(client, settings):
    settings.CELERY_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{closed_port()}//"
    settings.PIMSYNC_HEALTHZ_TIMEOUT_SECONDS = 0.3

    started = time.monotonic()
    response = client.get("/healthz")

    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False
    assert response.json()["broker"]["kind"] == "amqp"


def test_channel_states_are_one_query(client, channel_factory, django_assert_num_queries):
    for _ in range(3):
        channel = channel_factory()
        ChannelSyncState.objects.create(channel=channel)
        ChannelHealthSnapshot.objects.create(
            channel=channel, taken_at=timezone.now(), state="healthy"
        )
    channel_factory()

    with django_assert_num_queries(2):  # SELECT 1, channels with state and newest snapshot
        body = client.get("/healthz").json()

    assert sorted(c["state"] for c in body["channels"]) == ["healthy"] * 3 + ["unknown"]


def filesystem_broker(settings, root) -> None:
    settings.CELERY_BROKER_URL = "pimsyncfs://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "processed_folder": str(root / "processed"),
        "control_folder": str(root / "control"),
    }


def test_filesystem_broker_folders_present_is_ok(client, settings, tmp_path):
    for name in ("queue", "processed", "control"):
        (tmp_path / name).mkdir()
    filesystem_broker(settings, tmp_path)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["broker"]["ok"] is True
    assert response.json()["broker"]["kind"] == "filesystem"


def test_filesystem_broker_missing_folder_is_503(client, settings, tmp_path):
    (tmp_path / "processed").mkdir()
    (tmp_path / "control").mkdir()
    filesystem_broker(settings, tmp_path)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"]["error"] == "data_folder_in missing, data_folder_out missing"


def test_filesystem_broker_unwritable_folder_is_503(client, settings, tmp_path, monkeypatch):
    for name in ("queue", "processed", "control"):
        (tmp_path / name).mkdir()
    filesystem_broker(settings, tmp_path)
    real_access = __import__("os").access
    # Root may write anywhere, so the permission answer is what is simulated here.
    monkeypatch.setattr(
        "pimsync.health.os.access",
        lambda path, mode: False if str(path).endswith("control") else real_access(path, mode),
    )

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"]["error"] == "control_folder not writable"
