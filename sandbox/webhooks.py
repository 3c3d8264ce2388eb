"""Signed order webhooks: where they go, the prepared request, and the delivery log."""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from .http import JsonDict, iso, utcnow


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str


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
    order_id: str
    url: str
    status: int | None
    error: str
    delivery_id: str
    at: datetime = field(default_factory=utcnow)

    def to_json(self) -> JsonDict:
        return {
            "platform": self.platform,
            "topic": self.topic,
            "order_id": self.order_id,
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
