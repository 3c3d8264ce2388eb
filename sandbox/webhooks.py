"""Signed webhooks: the subscriptions a platform holds, where deliveries go, the
prepared request, the asynchronous outbox and the delivery log."""

from __future__ import annotations

import http.client
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .http import JsonDict, iso, parse_iso, utcnow


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str
    # The subscription's id on the platform ("" for the console-configured target):
    # WooCommerce names it in X-WC-Webhook-ID.
    webhook_id: str = ""


@dataclass
class Subscription:
    """A webhook subscription registered through the platform's API (Shopify
    webhookSubscriptionCreate, WooCommerce POST /webhooks)."""

    id: str
    topic: str  # the delivery header's value: "inventory_levels/update", "order.created"
    address: str
    secret: str = ""  # WooCommerce: per webhook; Shopify signs with the app's client secret
    status: str = "active"  # WooCommerce: active | paused | disabled
    name: str = ""
    failures: int = 0  # consecutive failed deliveries
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def to_json(self) -> JsonDict:
        """What the control API shows (never the secret)."""
        return {
            "id": self.id,
            "topic": self.topic,
            "address": self.address,
            "status": self.status,
            "name": self.name,
            "failures": self.failures,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    def to_state(self) -> JsonDict:
        return {
            **self.to_json(),
            "secret": self.secret,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Subscription:
        return cls(
            id=str(data["id"]),
            topic=str(data["topic"]),
            address=str(data["address"]),
            secret=str(data.get("secret", "")),
            status=str(data.get("status", "active")),
            name=str(data.get("name", "")),
            failures=int(data.get("failures", 0)),
            created_at=parse_iso(data["created_at"]),
            updated_at=parse_iso(data["updated_at"]),
        )


@dataclass(frozen=True)
class WebhookRequest:
    """A signed delivery ready to POST (built by the platform module)."""

    topic: str
    headers: dict[str, str]
    body: bytes
    delivery_id: str = ""  # the platform's delivery id header value, for the log


@dataclass
class WebhookDelivery:
    platform: str
    topic: str
    order_id: str  # the order's id for order topics, "" otherwise
    url: str
    status: int | None
    error: str
    delivery_id: str
    subject: str = ""  # what changed: the order id, or the SKU of a product or level
    at: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_json(self) -> JsonDict:
        return {
            "platform": self.platform,
            "topic": self.topic,
            "order_id": self.order_id,
            "subject": self.subject,
            "url": self.url,
            "status": self.status,
            "error": self.error,
            "delivery_id": self.delivery_id,
            "at": iso(self.at),
        }


def post_webhook(url: str, request: WebhookRequest, timeout: float = 5.0) -> tuple[int | None, str]:
    """POST one delivery; returns (HTTP status or None, error text).

    http.client rather than urllib: urllib re-cases header names
    ("X-wc-webhook-topic"), and the deliveries should look like the platform's.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None, f"refusing non-http url {url!r}"
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request("POST", target, body=request.body, headers=request.headers)
        reply = connection.getresponse()
        reply.read()
        return reply.status, "" if reply.status < 400 else reply.reason
    except (OSError, http.client.HTTPException) as exc:
        return None, str(exc)
    finally:
        connection.close()


@dataclass(frozen=True)
class Outgoing:
    """One queued delivery and what to do with its outcome."""

    target: WebhookTarget
    request: WebhookRequest
    subject: str
    done: Callable[[WebhookTarget, WebhookRequest, str, int | None, str], object]
    # Asked right before sending: a webhook disabled meanwhile delivers nothing more.
    wanted: Callable[[WebhookTarget], bool] = lambda target: True


class Outbox:
    """Deliveries sent by one background thread, in the order they were queued.

    The platforms deliver webhooks after the change, not inside the API call that
    made it: an API write answers at once and its webhooks follow (so pimsync's own
    pushes are not slowed down by the deliveries they cause)."""

    def __init__(self, name: str, post: Callable[[str, WebhookRequest], tuple[int | None, str]]):
        self._name = name
        self._post = post
        self._queue: queue.Queue[Outgoing] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, outgoing: Outgoing) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"sandbox-webhooks-{self._name}", daemon=True
                )
                self._thread.start()
        self._queue.put(outgoing)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was delivered; False on timeout."""
        finished = threading.Event()
        done = threading.Thread(target=lambda: (self._queue.join(), finished.set()), daemon=True)
        done.start()
        return finished.wait(timeout)

    @property
    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            outgoing = self._queue.get()
            try:
                if not outgoing.wanted(outgoing.target):
                    continue
                status, error = self._post(outgoing.target.url, outgoing.request)
                outgoing.done(outgoing.target, outgoing.request, outgoing.subject, status, error)
            finally:
                self._queue.task_done()
