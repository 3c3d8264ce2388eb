"""HTTP server of the channel sandbox: platform dispatch and the /_control/ API.

``/shopify/...``, ``/woocommerce/...``, ``/ebay/...``, ``/amazon/...``,
``/magento/...`` go to the
platform objects (see ``platform.py``); ``/_control/...`` lets a test, the demo or a
person seed the catalog, edit values, create orders (delivered as signed
webhooks), inject faults, change rate limits and the lifetime of the OAuth access
tokens eBay and Login with Amazon issue (``/_control/tokens``). docs/sandbox.md
lists it all.

Start it in-process (tests)::

    sandbox = start_sandbox(scale_limits=1000)       # port 0, background thread
    sandbox.url                                      # "http://127.0.0.1:<port>"
    sandbox.platform("shopify").catalog.get("SKU-1")
    sandbox.stop()

``start_sandbox(clock=fake)`` runs every deadline (rate limits, outages, the held
answer of a simulated timeout) on ``fake`` instead of ``time.monotonic``.

From the command line: ``python manage.py run_sandbox --port 8700``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .clock import Clock
from .http import ApiError, JsonDict, Request, Response, to_decimal
from .platform import OutOfStock, SandboxPlatform
from .webhooks import WebhookTarget

logger = logging.getLogger(__name__)

# Imported lazily so one unfinished platform module never stops the others.
PLATFORM_CLASSES: dict[str, str] = {
    "shopify": "sandbox.shopify:ShopifySandbox",
    "woocommerce": "sandbox.woocommerce:WooCommerceSandbox",
    "ebay": "sandbox.ebay:EbaySandbox",
    "amazon": "sandbox.amazon:AmazonSandbox",
    "magento": "sandbox.magento:MagentoSandbox",
}

ACTION_EVENTS = {"pay": "paid", "cancel": "cancelled", "fulfil": "fulfilled", "refund": "refunded"}

ControlHandler = Callable[[Request, "re.Match[str]"], Response]

# How often a held answer reads the clock again: a fake clock a test advances by
# hand is seen within this much real time. On time.monotonic the last slice ends
# at the deadline, so the answer goes out when it always did.
HOLD_SLICE_SECONDS = 0.05


def load_platform_class(dotted: str) -> type[SandboxPlatform]:
    module_name, _, class_name = dotted.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, SandboxPlatform)):
        raise TypeError(f"{dotted} is not a SandboxPlatform")
    return cls


def bad_request(message: str, status: int = 400) -> ApiError:
    return ApiError(Response.json(status, {"error": message}))


class SandboxApp:
    """All platforms plus the control API; pure request -> response (no sockets)."""

    def __init__(
        self,
        *,
        platforms: Mapping[str, str] | None = None,
        limits: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
        scale_limits: float | None = None,
        state_file: str | Path | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.state_file = Path(state_file) if state_file else None
        self.clock = clock
        self.platforms: dict[str, SandboxPlatform] = {}
        self.missing: dict[str, str] = {}
        self._dirty = threading.Event()
        for name, dotted in (platforms or PLATFORM_CLASSES).items():
            try:
                cls = load_platform_class(dotted)
            except (ImportError, AttributeError, TypeError) as exc:
                self.missing[name] = f"{type(exc).__name__}: {exc}"
                logger.warning("sandbox platform %s unavailable: %s", name, exc)
                continue
            platform = cls(limits=(limits or {}).get(name), on_change=self._dirty.set, clock=clock)
            if scale_limits:
                platform.scale_limits(scale_limits)
            self.platforms[name] = platform
        self._control: list[tuple[str, re.Pattern[str], ControlHandler]] = [
            ("GET", re.compile(r"/_control/health"), self._health),
            ("GET", re.compile(r"/_control/state"), self._state),
            ("POST", re.compile(r"/_control/seed"), self._seed),
            ("GET", re.compile(r"/_control/(?:values|catalog)/(?P<p>\w+)"), self._values_get),
            ("POST", re.compile(r"/_control/values"), self._values_set),
            ("GET", re.compile(r"/_control/counters(?:/(?P<p>\w+))?"), self._counters),
            ("POST", re.compile(r"/_control/counters/reset"), self._counters_reset),
            (
                "GET",
                re.compile(r"/_control/stale_overwrites(?:/(?P<p>\w+))?"),
                self._stale_overwrites,
            ),
            ("GET", re.compile(r"/_control/quantities(?:/(?P<p>\w+))?"), self._quantities),
            ("POST", re.compile(r"/_control/reset"), self._reset),
            ("GET", re.compile(r"/_control/faults"), self._faults_get),
            ("POST", re.compile(r"/_control/faults"), self._faults_set),
            ("DELETE", re.compile(r"/_control/faults(?:/(?P<p>\w+))?"), self._faults_clear),
            ("GET", re.compile(r"/_control/rate_limits"), self._limits_get),
            ("POST", re.compile(r"/_control/rate_limits"), self._limits_set),
            ("POST", re.compile(r"/_control/credentials"), self._credentials_set),
            ("GET", re.compile(r"/_control/tokens"), self._tokens_get),
            ("POST", re.compile(r"/_control/tokens"), self._tokens_set),
            ("GET", re.compile(r"/_control/refusals(?:/(?P<p>\w+))?"), self._refusals_get),
            ("DELETE", re.compile(r"/_control/refusals(?:/(?P<p>\w+))?"), self._refusals_clear),
            ("POST", re.compile(r"/_control/contracts"), self._contracts_set),
            ("GET", re.compile(r"/_control/webhooks"), self._webhooks_get),
            ("POST", re.compile(r"/_control/webhooks"), self._webhooks_set),
            ("GET", re.compile(r"/_control/orders/(?P<p>\w+)"), self._orders_get),
            ("POST", re.compile(r"/_control/orders"), self._order_create),
            ("POST", re.compile(r"/_control/orders/(?P<p>\w+)/(?P<id>[\w-]+)"), self._order_update),
        ]

    # ---- dispatch

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_control/"):
            return self._dispatch_control(request)
        prefix, _, rest = request.path.lstrip("/").partition("/")
        platform = self.platforms.get(prefix)
        if platform is None:
            detail = self.missing.get(prefix, "unknown platform")
            return Response.json(404, {"error": f"no sandbox platform {prefix!r}: {detail}"})
        request.path = "/" + rest
        return platform.handle(request)

    def _dispatch_control(self, request: Request) -> Response:
        for method, pattern, handler in self._control:
            found = pattern.fullmatch(request.path.rstrip("/"))
            if found and method == request.method:
                try:
                    response = handler(request, found)
                except ApiError as exc:
                    return exc.response
                except (ValueError, KeyError, TypeError) as exc:
                    return Response.json(400, {"error": f"{type(exc).__name__}: {exc}"})
                if request.method != "GET":
                    self._dirty.set()
                return response
        return Response.json(404, {"error": f"no control route {request.method} {request.path}"})

    def platform(self, name: str) -> SandboxPlatform:
        try:
            return self.platforms[name]
        except KeyError:
            detail = self.missing.get(name, "unknown platform")
            raise bad_request(f"no sandbox platform {name!r}: {detail}", 404) from None

    def _body(self, request: Request) -> Any:
        payload = request.json()
        if payload is None:
            return {}
        return payload

    def _each_platform(self, payload: Any) -> list[tuple[SandboxPlatform, Any]]:
        if not isinstance(payload, dict):
            raise bad_request("expected a JSON object keyed by platform")
        return [(self.platform(name), value) for name, value in payload.items()]

    # ---- control handlers

    def _health(self, request: Request, found: re.Match[str]) -> Response:
        return Response.json(
            200, {"ok": True, "platforms": sorted(self.platforms), **self._missing()}
        )

    def _missing(self) -> JsonDict:
        return {"missing": self.missing} if self.missing else {}

    def _state(self, request: Request, found: re.Match[str]) -> Response:
        states = {name: p.describe() for name, p in self.platforms.items()}
        return Response.json(200, {"platforms": states, **self._missing()})

    def _seed(self, request: Request, found: re.Match[str]) -> Response:
        result: dict[str, list[JsonDict]] = {}
        for platform, rows in self._each_platform(self._body(request)):
            result[platform.name] = [item.to_json() for item in platform.seed(rows)]
        return Response.json(200, result)

    def _values_get(self, request: Request, found: re.Match[str]) -> Response:
        platform = self.platform(found["p"])
        wanted = set(request.query.get("sku", []))
        items = [i for i in platform.catalog.items() if not wanted or i.sku in wanted]
        return Response.json(200, {item.sku: item.to_json() for item in items})

    def _values_set(self, request: Request, found: re.Match[str]) -> Response:
        """A person editing values in the channel's own console (no API call counted)."""
        result: dict[str, list[JsonDict]] = {}
        for platform, rows in self._each_platform(self._body(request)):
            changed = []
            for row in rows:
                compare_at = row.get("compare_at_price")
                item = platform.catalog.set_values(
                    str(row["sku"]),
                    price=to_decimal(row["price"]) if "price" in row else None,
                    quantity=int(row["quantity"]) if "quantity" in row else None,
                    compare_at_price=None if compare_at is None else to_decimal(compare_at),
                    clear_compare_at="compare_at_price" in row and compare_at is None,
                )
                # The store tells its webhook subscribers, as it does for any edit.
                platform.item_changed(
                    item,
                    price="price" in row or "compare_at_price" in row,
                    quantity="quantity" in row,
                    cause="console",
                )
                changed.append(item.to_json())
            result[platform.name] = changed
        return Response.json(200, result)

    def _counters(self, request: Request, found: re.Match[str]) -> Response:
        if found["p"]:
            return Response.json(200, self.platform(found["p"]).counters.snapshot())
        return Response.json(200, {n: p.counters.snapshot() for n, p in self.platforms.items()})

    def _stale_overwrites(self, request: Request, found: re.Match[str]) -> Response:
        """Per platform: the count, the orders pimsync has not seen yet, and each
        overwrite (SKU, time, from -> to, the unseen orders, the operation)."""
        targets = [self.platform(found["p"])] if found["p"] else list(self.platforms.values())
        return Response.json(
            200,
            {
                p.name: {
                    "stale_overwrites": p.counters.stale_overwrites,
                    "unseen_orders": p.score.unseen_count(),
                    "detail": p.counters.stale_overwrites_detail(),
                }
                for p in targets
            },
        )

    def _quantities(self, request: Request, found: re.Match[str]) -> Response:
        """{platform: {sku: quantity}}: small enough to poll many times a second."""
        targets = [self.platform(found["p"])] if found["p"] else list(self.platforms.values())
        return Response.json(
            200, {p.name: {i.sku: i.quantity for i in p.catalog.items()} for p in targets}
        )

    def _counters_reset(self, request: Request, found: re.Match[str]) -> Response:
        for platform in self._selected(self._body(request)):
            platform.counters.reset()
        return Response.json(200, {"ok": True})

    def _selected(self, payload: Any) -> list[SandboxPlatform]:
        names = payload.get("platforms") if isinstance(payload, dict) else None
        return [self.platform(n) for n in names] if names else list(self.platforms.values())

    def _reset(self, request: Request, found: re.Match[str]) -> Response:
        for platform in self._selected(self._body(request)):
            platform.reset()
        return Response.json(200, {"ok": True})

    def _faults_get(self, request: Request, found: re.Match[str]) -> Response:
        return Response.json(200, {n: p.faults.describe() for n, p in self.platforms.items()})

    def _faults_set(self, request: Request, found: re.Match[str]) -> Response:
        for platform, spec in self._each_platform(self._body(request)):
            platform.faults.configure(spec)
        return self._faults_get(request, found)

    def _faults_clear(self, request: Request, found: re.Match[str]) -> Response:
        targets = [self.platform(found["p"])] if found["p"] else list(self.platforms.values())
        for platform in targets:
            platform.faults.clear()
        return self._faults_get(request, found)

    def _limits_get(self, request: Request, found: re.Match[str]) -> Response:
        return Response.json(200, {n: p.limits for n, p in self.platforms.items()})

    def _limits_set(self, request: Request, found: re.Match[str]) -> Response:
        """{platform: {"reset": true} | {"drain": true} | {"scale": 100} | {key: {...}}}."""
        for platform, spec in self._each_platform(self._body(request)):
            spec = dict(spec)
            if spec.pop("reset", False):
                platform.set_limits(platform.default_limits, replace=True)
            if spec.pop("drain", False):
                platform.drain_limits()
            if "scale" in spec:
                platform.scale_limits(float(spec.pop("scale")))
            if spec:
                platform.set_limits(spec)
        return self._limits_get(request, found)

    def _credentials_set(self, request: Request, found: re.Match[str]) -> Response:
        for platform, creds in self._each_platform(self._body(request)):
            platform.credentials = {str(k): str(v) for k, v in creds.items()}
        return Response.json(200, {"ok": True})

    def _tokens_get(self, request: Request, found: re.Match[str]) -> Response:
        """Per platform with a token endpoint: TTL, live tokens, grants, refusals."""
        return Response.json(
            200,
            {n: p.tokens.describe() for n, p in self.platforms.items() if p.tokens is not None},
        )

    def _tokens_set(self, request: Request, found: re.Match[str]) -> Response:
        """{platform: {"ttl": seconds, "revoke": true, "restore": true, "expire": true}}:
        the lifetime of tokens issued from now on, revoking (or restoring) the
        platform's refresh token, expiring every issued access token at once."""
        for platform, spec in self._each_platform(self._body(request)):
            if not isinstance(spec, dict):
                raise bad_request(f"{platform.name}: expected an object")
            try:
                issuer = platform.issuer()
            except LookupError as exc:
                raise bad_request(str(exc)) from None
            issuer.configure(spec, platform.credentials.get("refresh_token", ""))
        return self._tokens_get(request, found)

    def _chosen(self, found: re.Match[str]) -> list[SandboxPlatform]:
        return [self.platform(found["p"])] if found["p"] else list(self.platforms.values())

    def _refusals_get(self, request: Request, found: re.Match[str]) -> Response:
        """Requests refused as malformed and answers that broke the definition."""
        return Response.json(
            200,
            {
                p.name: {"refusals": list(p.refusals), "answer_problems": list(p.answer_problems)}
                for p in self._chosen(found)
            },
        )

    def _refusals_clear(self, request: Request, found: re.Match[str]) -> Response:
        for platform in self._chosen(found):
            platform.refusals.clear()
            platform.answer_problems.clear()
        return self._refusals_get(request, found)

    def _contracts_set(self, request: Request, found: re.Match[str]) -> Response:
        """{platform: {"check_answers": true}}: also check the sandbox's own answers."""
        for platform, spec in self._each_platform(self._body(request)):
            platform.check_answers = bool(spec.get("check_answers", platform.check_answers))
        return Response.json(200, {n: p.check_answers for n, p in self.platforms.items()})

    def _webhooks_get(self, request: Request, found: re.Match[str]) -> Response:
        result = {
            name: {
                "url": p.webhook_target.url if p.webhook_target else None,
                "subscriptions": [sub.to_json() for sub in p.subscriptions.values()],
                "queued": p.outbox.pending,
                "deliveries": [d.to_json() for d in p.deliveries[-50:]],
            }
            for name, p in self.platforms.items()
        }
        return Response.json(200, result)

    def _webhooks_set(self, request: Request, found: re.Match[str]) -> Response:
        for platform, spec in self._each_platform(self._body(request)):
            if spec is None:
                platform.webhook_target = None
            else:
                platform.webhook_target = WebhookTarget(str(spec["url"]), str(spec["secret"]))
        return Response.json(200, {"ok": True})

    def _orders_get(self, request: Request, found: re.Match[str]) -> Response:
        platform = self.platform(found["p"])
        return Response.json(200, [platform.render_order(o) for o in platform.orders.all()])

    def _order_create(self, request: Request, found: re.Match[str]) -> Response:
        body = self._body(request)
        platform = self.platform(str(body["platform"]))
        status = str(body.get("financial_status", "paid"))
        try:
            order = platform.create_order(
                body["lines"],
                status="paid" if status == "paid" else "pending",
                currency=str(body.get("currency", "USD")),
                email=str(body.get("email", "")),
                phone=str(body.get("phone", "")),
                adjust_stock=bool(body.get("adjust_stock", True)),
                in_stock_only=bool(body.get("in_stock_only", False)),
            )
        except OutOfStock as exc:
            return Response.json(
                409, {"error": str(exc), "sku": exc.sku, "quantity_shown": exc.shown}
            )
        delivery = (
            platform.emit_order_event(order, "created") if body.get("webhook", True) else None
        )
        return Response.json(
            201,
            {
                "order": platform.render_order(order),
                "delivery": delivery.to_json() if delivery else None,
            },
        )

    def _order_update(self, request: Request, found: re.Match[str]) -> Response:
        """{"action": pay|cancel|fulfil|refund, "reason", "tracking_number", "carrier"}."""
        platform = self.platform(found["p"])
        body = self._body(request)
        action = str(body["action"])
        try:
            order = platform.order_transition(
                found["id"],
                action,
                reason=str(body.get("reason", "")),
                tracking_number=str(body.get("tracking_number", "")),
                carrier=str(body.get("carrier", "")),
            )
        except KeyError:
            raise bad_request(f"no order {found['id']} on {platform.name}", 404) from None
        event = {"pay": "paid", "cancel": "cancelled", "fulfil": "fulfilled"}.get(
            action, "refunded"
        )
        delivery = platform.emit_order_event(order, event) if body.get("webhook", True) else None
        return Response.json(
            200,
            {
                "order": platform.render_order(order),
                "delivery": delivery.to_json() if delivery else None,
            },
        )

    # ---- persistence

    def load_state(self) -> bool:
        """Load --state if the file exists; True when something was loaded."""
        if self.state_file is None or not self.state_file.exists():
            return False
        data = json.loads(self.state_file.read_text())
        for name, state in data.get("platforms", {}).items():
            if name in self.platforms:
                self.platforms[name].load(state)
        return True

    def seed_from_file(self, path: str | Path) -> None:
        data = json.loads(Path(path).read_text())
        for platform, rows in self._each_platform(data):
            platform.seed(rows)

    def save_state(self) -> None:
        if self.state_file is None:
            return
        self._dirty.clear()
        data = {"platforms": {name: p.dump() for name, p in self.platforms.items()}}
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash never leaves half a state file behind.
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".sandbox-state-")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, default=_json_default)
        Path(tmp).replace(self.state_file)

    def save_if_dirty(self) -> None:
        if self._dirty.is_set():
            self.save_state()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class _Handler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: the connectors reuse connections

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request.build(self.command, self.path, dict(self.headers.items()), body)
        try:
            response = self.server.app.dispatch(request)
        except Exception as exc:  # a sandbox bug must look like a 500, not a dead socket
            logger.exception("sandbox handler crashed")
            response = Response.json(500, {"error": f"sandbox crash: {exc}"})
        if response.delay and self.server.hold(response.delay):
            self.close_connection = True
            return
        self._write(response)

    def _write(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its read timeout): nothing left to tell it.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox %s - %s", self.address_string(), format % args)


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        self.stopping = threading.Event()
        self._held = 0
        self._held_changed = threading.Condition()
        super().__init__(address, _Handler)

    def hold(self, seconds: float) -> bool:
        """Wait ``seconds`` on the app's clock before an answer; True if the server stops."""
        clock = self.app.clock
        deadline = clock() + seconds
        self._count_held(+1)
        try:
            while (remaining := deadline - clock()) > 0:
                if self.stopping.wait(min(remaining, HOLD_SLICE_SECONDS)):
                    return True
            return False
        finally:
            self._count_held(-1)

    def _count_held(self, delta: int) -> None:
        with self._held_changed:
            self._held += delta
            self._held_changed.notify_all()

    def wait_held(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` answers are on hold; False if not so within ``timeout``.

        With it a test sees that a simulated timeout still holds its answer (or
        has let it go) without measuring how long anything took.
        """
        with self._held_changed:
            return self._held_changed.wait_for(lambda: self._held == count, timeout)


@dataclass
class RunningSandbox:
    """A sandbox serving in background threads (see :func:`start_sandbox`)."""

    server: SandboxHTTPServer
    app: SandboxApp
    url: str
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def clock(self) -> Clock:
        return self.app.clock

    def platform(self, name: str) -> SandboxPlatform:
        return self.app.platforms[name]

    def platform_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def stop(self) -> None:
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)
        self.app.save_if_dirty()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_app(
    *,
    state_file: str | Path | None = None,
    seed_file: str | Path | None = None,
    limits: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    scale_limits: float | None = None,
    platforms: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
    token_ttl: float | None = None,
) -> SandboxApp:
    """The app with state loaded: --state wins when it exists, else --seed-file."""
    app = SandboxApp(
        platforms=platforms,
        limits=limits,
        scale_limits=scale_limits,
        state_file=state_file,
        clock=clock,
    )
    if token_ttl is not None:
        for platform in app.platforms.values():
            if platform.tokens is not None:
                platform.tokens.default_ttl = platform.tokens.ttl = float(token_ttl)
    if not app.load_state() and seed_file:
        app.seed_from_file(seed_file)
        app.save_if_dirty()
    return app


def start_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    state_file: str | Path | None = None,
    seed_file: str | Path | None = None,
    limits: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    scale_limits: float | None = None,
    platforms: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
    token_ttl: float | None = None,
) -> RunningSandbox:
    """Serve in daemon threads and return at once (port 0 picks a free port).

    ``scale_limits`` multiplies every documented rate limit (tests pass e.g.
    1000); ``limits`` overrides per platform and limit key; ``clock`` is the
    monotonic time every deadline reads (a test passes a fake it advances);
    ``token_ttl`` the lifetime of issued OAuth access tokens (eBay, Amazon).
    """
    app = build_app(
        state_file=state_file,
        seed_file=seed_file,
        limits=limits,
        scale_limits=scale_limits,
        platforms=platforms,
        clock=clock,
        token_ttl=token_ttl,
    )
    server = SandboxHTTPServer((host, port), app)
    # A short poll interval makes stop() quick (tests start and stop many sandboxes).
    serve = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="sandbox-http",
        daemon=True,
    )
    serve.start()
    threads = [serve]
    if state_file:
        saver = threading.Thread(target=_save_loop, args=(server, app), daemon=True)
        saver.start()
        threads.append(saver)
    bound_host, bound_port = server.server_address[:2]
    return RunningSandbox(server, app, f"http://{bound_host}:{bound_port}", threads)


def _save_loop(server: SandboxHTTPServer, app: SandboxApp) -> None:
    # Writes at most twice a second, so a burst of pushes costs one file write.
    while not server.stopping.wait(0.5):
        with contextlib.suppress(OSError):
            app.save_if_dirty()


def serve_forever(
    *,
    host: str = "127.0.0.1",
    port: int = 8700,
    state_file: str | Path | None = None,
    seed_file: str | Path | None = None,
    token_ttl: float | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Blocking variant for the management command; Ctrl-C stops and saves."""
    sandbox = start_sandbox(
        host=host, port=port, state_file=state_file, seed_file=seed_file, token_ttl=token_ttl
    )
    if on_ready is not None:
        on_ready(sandbox.url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
