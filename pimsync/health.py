"""What GET /healthz reports: database, broker and per-channel state.

Each check is bounded in time and catches its own failures, so the endpoint
answers quickly and never with a 500. Load balancers look at the status code
(200 when this node can serve: database and broker reachable, 503 otherwise);
monitoring reads the channel states in the body.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from time import perf_counter
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.utils import timezone

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
GOOD_CHANNEL_STATES = frozenset({"healthy", "disabled"})


def _elapsed_ms(started: float) -> float:
    return round((perf_counter() - started) * 1000, 1)


def _failure(started: float, error: BaseException) -> dict[str, Any]:
    # The class only: messages can name hosts and users, and this endpoint is public.
    return {"ok": False, "latency_ms": _elapsed_ms(started), "error": type(error).__name__}


def database_check() -> dict[str, Any]:
    started = perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any database failure means unhealthy, whatever its class
        logger.warning("healthz: database check failed", exc_info=True)
        return _failure(started, error)
    return {"ok": True, "latency_ms": _elapsed_ms(started), "vendor": connection.vendor}


def _folder_problem(folder: str) -> str | None:
    if not os.path.isdir(folder):
        return "missing"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "not writable"
    return None


def _filesystem_broker_check(started: float) -> dict[str, Any]:
    """The embedded broker is a set of folders: each must exist and be writable."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    names = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
    problems = {
        name: problem
        for name in names
        if options.get(name) and (problem := _folder_problem(options[name])) is not None
    }
    if problems:
        return {
            "ok": False,
            "kind": "filesystem",
            "latency_ms": _elapsed_ms(started),
            "error": ", ".join(f"{name} {problem}" for name, problem in sorted(problems.items())),
        }
    return {"ok": True, "kind": "filesystem", "latency_ms": _elapsed_ms(started)}


def _redis_broker_check(url: str, timeout: float, started: float) -> dict[str, Any]:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # RESP2: a plain PING without the HELLO handshake, answered by every Redis version.
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # one try: the timeout is the whole budget
        protocol=2,
    )
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True, "kind": "redis", "latency_ms": _elapsed_ms(started)}


def _kombu_broker_check(url: str, timeout: float, started: float) -> dict[str, Any]:
    from kombu import Connection

    with Connection(url, connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_max=0, timeout=timeout)
    return {"ok": True, "kind": urlsplit(url).scheme, "latency_ms": _elapsed_ms(started)}


def broker_check(*, timeout: float | None = None) -> dict[str, Any]:
    """Can tasks be published? Redis: one PING with short socket timeouts; the
    embedded filesystem broker: its folders exist and are writable."""
    timeout = settings.PIMSYNC_HEALTHZ_TIMEOUT_SECONDS if timeout is None else timeout
    url = settings.CELERY_BROKER_URL
    scheme = urlsplit(url).scheme
    started = perf_counter()
    try:
        if scheme in ("pimsyncfs", "filesystem"):
            return _filesystem_broker_check(started)
        if scheme == "memory":
            return {"ok": True, "kind": "memory", "latency_ms": _elapsed_ms(started)}
        if scheme in ("redis", "rediss"):
            return _redis_broker_check(url, timeout, started)
        return _kombu_broker_check(url, timeout, started)
    except Exception as error:  # a broker check must report, never raise
        logger.warning("healthz: broker check failed", exc_info=True)
        return {**_failure(started, error), "kind": scheme}


def _live_state(channel: Any, snapshot_state: str | None) -> tuple[str, str]:
    """(state, source): what the push loop knows right now beats the last snapshot."""
    if not channel.is_enabled:
        return "disabled", "settings"
    sync_state = getattr(channel, "sync_state", None)
    if sync_state is not None:
        if sync_state.auth_failed_at is not None:
            return "auth_failed", "live"
        if sync_state.breaker != "closed":
            return "circuit_open", "live"
    if snapshot_state:
        return snapshot_state, "snapshot"
    return UNKNOWN, "none"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def channel_states(*, now: datetime) -> list[dict[str, Any]]:
    """Per channel: the live breaker/auth state over the newest health snapshot (one query)."""
    from channels_app.models import Channel
    from synclog.models import ChannelHealthSnapshot

    newest = ChannelHealthSnapshot.objects.filter(channel=OuterRef("pk")).order_by(
        "-taken_at", "-id"
    )
    channels = (
        Channel.objects.select_related("sync_state")
        # Never the (encrypted) credentials: a load balancer polls this every few seconds.
        .only(
            "slug",
            "platform",
            "is_enabled",
            "sync_state__breaker",
            "sync_state__auth_failed_at",
            "sync_state__last_success_at",
        )
        .annotate(
            snapshot_state=Subquery(newest.values("state")[:1]),
            snapshot_at=Subquery(newest.values("taken_at")[:1]),
            snapshot_queue=Subquery(newest.values("queue_depth")[:1]),
        )
        .order_by("slug")
    )
    stale_after = timedelta(seconds=settings.PIMSYNC_DASHBOARD_STALE_SECONDS)
    states = []
    for channel in channels:
        state, source = _live_state(channel, channel.snapshot_state)
        sync_state = getattr(channel, "sync_state", None)
        states.append(
            {
                "slug": channel.slug,
                "platform": channel.platform,
                "state": state,
                "source": source,
                "snapshot_at": _iso(channel.snapshot_at),
                "snapshot_stale": bool(
                    channel.snapshot_at and now - channel.snapshot_at > stale_after
                ),
                "queue_depth": channel.snapshot_queue,
                "breaker": sync_state.breaker if sync_state else "closed",
                "last_success_at": _iso(sync_state.last_success_at if sync_state else None),
            }
        )
    return states


def health_report() -> tuple[dict[str, Any], int]:
    """The /healthz body and status code: 200 when database and broker are ok
    (status "ok", or "degraded" when a channel is not healthy), else 503 ("down")."""
    now = timezone.now()
    database = database_check()
    broker = broker_check()
    report: dict[str, Any] = {"checked_at": now.isoformat(), "database": database, "broker": broker}
    channels: list[dict[str, Any]] = []
    if database["ok"]:
        try:
            channels = channel_states(now=now)
        except Exception as error:  # the node may still serve; say what could not be read
            logger.warning("healthz: channel states unavailable", exc_info=True)
            report["channels_error"] = type(error).__name__
    report["channels"] = channels
    if not (database["ok"] and broker["ok"]):
        report["status"] = "down"
        return report, 503
    all_good = "channels_error" not in report and all(
        c["state"] in GOOD_CHANNEL_STATES and not c["snapshot_stale"] for c in channels
    )
    report["status"] = "ok" if all_good else "degraded"
    return report, 200
