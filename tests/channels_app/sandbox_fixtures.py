"""Shared sandbox fixtures and helpers for connector and sandbox tests.

Import what a test module needs, e.g.
``from tests.channels_app.sandbox_fixtures import sandbox, webhook_receiver``.
The sandbox runs in-process on an ephemeral loopback port with every rate
limit raised 1000x, except where a test builds its own with the defaults.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from channels_app.connectors.base import ChannelConfig, ListingRef
from sandbox.platform import SandboxPlatform
from sandbox.server import RunningSandbox, start_sandbox
from sandbox.store import ID_KEYS

SHOPIFY_TOKEN = "shpat_sandbox"
SHOPIFY_LOCATION = "gid://shopify/Location/1"
WOO_KEY, WOO_SECRET = "ck_sandbox", "cs_sandbox"
WEBHOOK_SECRET = "whsec-test-secret"


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    running = start_sandbox(scale_limits=1000)
    yield running
    running.stop()


def shopify_config(base_url: str, **overrides: Any) -> ChannelConfig:
    values: dict[str, Any] = {
        "channel_id": 1,
        "platform": "shopify",
        "base_url": base_url,
        "credentials": {"access_token": SHOPIFY_TOKEN},
        "webhook_secret": WEBHOOK_SECRET,
        "platform_config": {"location_id": SHOPIFY_LOCATION},
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
    }
    values.update(overrides)
    return ChannelConfig(**values)


def woocommerce_config(base_url: str, **overrides: Any) -> ChannelConfig:
    values: dict[str, Any] = {
        "channel_id": 2,
        "platform": "woocommerce",
        "base_url": base_url,
        "credentials": {"consumer_key": WOO_KEY, "consumer_secret": WOO_SECRET},
        "webhook_secret": WEBHOOK_SECRET,
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
    }
    values.update(overrides)
    return ChannelConfig(**values)


def seed_listings(platform: SandboxPlatform, rows: Sequence[Mapping[str, Any]]) -> list[ListingRef]:
    """Seed the sandbox catalog and return the ListingRefs pimsync would hold."""
    items = platform.seed(rows)
    return [
        ListingRef(sku=item.sku, **{k: v for k, v in item.ids.items() if k in ID_KEYS})
        for item in items
    ]


def control(base_url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the sandbox control API; returns (status, parsed JSON)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """A tiny HTTP endpoint that records what the sandbox delivers."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.received.append(Received(dict(self.headers.items()), body))
            receiver.arrived.set()
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/test/"
    yield receiver
    server.shutdown()
    server.server_close()
