"""Sandbox fixtures for every test folder (registered in tests/conftest.py).

``sandbox``: the channel sandbox in-process on an ephemeral loopback port with
every rate limit raised 1000x (a test that needs the documented limits starts
its own with ``start_sandbox()``). ``webhook_receiver``: a loopback endpoint
recording what the sandbox delivers. Helpers are in tests/support/sandbox.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sandbox.server import RunningSandbox, start_sandbox
from tests.support.sandbox import Received, WebhookReceiver


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    running = start_sandbox(scale_limits=1000)
    yield running
    running.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver.received.append(Received(dict(self.headers.items()), body, self.path))
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
