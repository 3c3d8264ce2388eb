"""Core of the channel sandbox: the pieces every platform module builds on.

The sandbox is dev/test tooling (stdlib only, no Django). ``server.py`` owns the
HTTP server and the ``/_control/`` API; each platform module (``shopify.py``,
``woocommerce.py``, ``ebay.py``, ``amazon.py``) defines ONE subclass of
:class:`SandboxPlatform` that speaks that platform's wire format.

Interface a platform module implements
--------------------------------------
::

    class EbaySandbox(SandboxPlatform):
        name = "ebay"                       # URL prefix: /ebay/...
        default_limits = {"default": {"rate": 5.0, "burst": 5.0}}   # documented values
        default_credentials = {"token": "sandbox-ebay-token"}

        def register_routes(self) -> None:      # called once from __init__
            self.add_route("POST", r"/sell/inventory/v1/bulk_update_price_quantity",
                           self.bulk_update, name="bulkUpdatePriceQuantity",
                           limit_key="default")   # limit_key=None: not rate limited

        def bulk_update(self, request: Request) -> Response:
            body = request.json()               # raises ApiError(400) on bad JSON
            with self.lock:                     # one RLock guards catalog + orders
                item = self.catalog.get("SKU-1")
                if self.faults.item_fails(item.sku):       # partial batch failure
                    ...                                     # platform's per-item error
                self.catalog.set_values(item.sku, price=Decimal("9.99"), quantity=3)
                self.counters.count_items("price", 1)
            return Response.json(200, {...})

    Optional overrides (all have working defaults):
      check_auth(request) -> Response | None     # default: accept everything
      error_response(status, code, message) -> Response   # platform's error JSON shape
      rate_limited_response(wait_seconds, request) -> Response  # default 429 + Retry-After
      admit(request, route) -> Response | None    # default: token bucket per route.limit_key
      assign_ids(sku, ids, group) -> dict[str,str]   # ids for a seeded item missing them
      render_order(order) -> dict                 # the platform's order JSON
      webhook_request(order, event, target) -> WebhookRequest | None   # None = no HTTP webhooks
      dump_extra() / load_extra(state)            # extra state to persist

The base class's :meth:`SandboxPlatform.handle` runs, in order: call counting,
outage (503), injected 401 / 5xx / timeout faults, ``check_auth``, ``admit``
(rate limits) and then the route handler. A handler may raise :class:`ApiError`
carrying a ready :class:`Response` to stop early.

Shared state per platform
-------------------------
* ``catalog`` (:class:`Catalog`): sku -> :class:`CatalogItem` (ids dict whose
  keys mirror ``ListingRef``: product_id, variant_id, inventory_item_id,
  offer_id, listing_sku; price; quantity; compare_at_price).
  Look-ups by id: ``catalog.find_by_id("variant_id", "gid://...")``.
* ``orders`` (:class:`OrderStore`): :class:`SandboxOrder` with lines and a
  normalised status (pending | paid | cancelled | fulfilled | refunded);
  ``orders.updated_since(dt)`` sorted by (updated_at, id). Use
  ``self.order_transition(order_id, "cancel" | "pay" | "fulfil" | "refund")`` so
  stock and webhooks follow the same rules as the control API.
* ``counters`` (:class:`Counters`): calls, per-endpoint counts, rate-limited
  answers, faults given, items written, max observed calls in any 1 s window.
* ``faults`` (:class:`Faults`): shares of 5xx / timeouts / 401, partial batch
  failures (``item_fails(sku)``), outage for N seconds, optional endpoint filter.
* ``limits``: ``{limit_key: {"rate": r, "burst": b, ...}}``; the documented
  values are the defaults, tests raise them (``set_limits`` / ``scale_limits``).
  :class:`TokenBucket` (rate/burst) and :class:`CostBucket` (Shopify-style
  leaky bucket of query cost) are the primitives.
* ``next_id()``: a per-platform increasing integer for new ids.

Timeouts are simulated by a :class:`Response` with ``delay`` set: the HTTP layer
waits that long before answering, past the client's read timeout; the request
has no effect (a write that timed out is not applied).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

JsonDict = dict[str, Any]
Handler = Callable[["Request"], "Response"]

ORDER_STATUSES = ("pending", "paid", "cancelled", "fulfilled", "refunded")
# Which normalised status each transition leads to, and from which states it is allowed.
ORDER_TRANSITIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pay": ("paid", ("pending",)),
    "cancel": ("cancelled", ("pending", "paid")),
    "fulfil": ("fulfilled", ("paid", "pending")),
    "refund": ("refunded", ("paid", "fulfilled")),
}


def utcnow() -> datetime:
    return datetime.now(tz=UTC)


def iso(dt: datetime) -> str:
    """ISO-8601 in UTC with a Z suffix and whole seconds (what the platforms render)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime:
    """Parse ISO-8601 (``Z`` or offset; naive values are taken as UTC)."""
    parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def hmac_sha256_base64(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)): how Shopify and WooCommerce sign webhooks."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def to_decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a decimal: {value!r}") from exc


# --------------------------------------------------------------------------- HTTP types


@dataclass
class Request:
    """One request as a platform sees it (path without the platform prefix)."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # keys lower-cased
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route regex
    route_name: str = ""

    @classmethod
    def build(cls, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Request:
        path, _, query = target.partition("?")
        return cls(
            method=method.upper(),
            path=path,
            query=parse_qs(query, keep_blank_values=True),
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
        )

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The body as JSON; a malformed body is the platform's 400."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise ApiError(Response.json(400, {"error": "malformed JSON body"})) from exc


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (simulated timeout)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload, default=str).encode(), all_headers)

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode(), {"Content-Type": f"{content_type}; charset=utf-8"})

    def payload(self) -> Any:
        return json.loads(self.body)


class ApiError(Exception):
    """Raised inside a handler to answer with ``response`` at once."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status}")
        self.response = response


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str
    limit_key: str | None = "default"


# --------------------------------------------------------------------------- rate limits


class TokenBucket:
    """Classic token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_take(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` if available and return 0.0, else return the seconds to wait."""
        with self._lock:
            self._refill()
            if self._tokens >= tokens:
                self._tokens -= tokens
                return 0.0
            return (tokens - self._tokens) / self.rate if self.rate > 0 else float("inf")

    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens


@dataclass(frozen=True)
class CostStatus:
    maximum_available: float
    currently_available: float
    restore_rate: float


class CostBucket:
    """Shopify-style leaky bucket of query cost.

    The requested cost must be free before a query runs; the unused part
    (requested - actual) is refunded afterwards.
    """

    def __init__(
        self,
        maximum: float,
        restore_rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum = float(maximum)
        self.restore_rate = float(restore_rate)
        self._clock = clock
        self._available = float(maximum)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        restored = (now - self._stamp) * self.restore_rate
        self._available = min(self.maximum, self._available + restored)
        self._stamp = now

    def try_take(self, cost: float) -> tuple[bool, CostStatus]:
        """Take ``cost`` points if free; the status is after the attempt."""
        with self._lock:
            self._refill()
            granted = self._available >= cost
            if granted:
                self._available -= cost
            return granted, self._status()

    def refund(self, points: float) -> CostStatus:
        with self._lock:
            self._refill()
            self._available = min(self.maximum, self._available + max(0.0, points))
            return self._status()

    def status(self) -> CostStatus:
        with self._lock:
            self._refill()
            return self._status()

    def _status(self) -> CostStatus:
        return CostStatus(self.maximum, self._available, self.restore_rate)


# --------------------------------------------------------------------------- faults


@dataclass
class Faults:
    """Injected failures for one platform. Shares are probabilities in [0, 1]."""

    error_5xx: float = 0.0
    error_status: int = 503
    timeout: float = 0.0
    timeout_seconds: float = 30.0
    auth: float = 0.0
    throttle: float = 0.0  # share answered as over the rate limit (the platform's 429/THROTTLED)
    item_failure: float = 0.0
    fail_skus: set[str] = field(default_factory=set)  # always fail these items
    outage_until: float = 0.0  # time.monotonic() deadline
    endpoints: set[str] = field(default_factory=set)  # empty: every endpoint
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = (
        "error_5xx",
        "error_status",
        "timeout",
        "timeout_seconds",
        "auth",
        "throttle",
        "item_failure",
        "fail_skus",
        "outage_seconds",
        "endpoints",
        "seed",
    )

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Apply a control-API fault spec (unknown keys are rejected)."""
        unknown = set(spec) - set(self.FIELDS)
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        for key in ("error_5xx", "timeout", "auth", "throttle", "item_failure"):
            if key in spec:
                share = float(spec[key])
                if not 0.0 <= share <= 1.0:
                    raise ValueError(f"{key} must be a share between 0 and 1")
                setattr(self, key, share)
        if "error_status" in spec:
            self.error_status = int(spec["error_status"])
        if "timeout_seconds" in spec:
            self.timeout_seconds = float(spec["timeout_seconds"])
        if "fail_skus" in spec:
            self.fail_skus = {str(s) for s in spec["fail_skus"]}
        if "endpoints" in spec:
            self.endpoints = {str(e) for e in spec["endpoints"]}
        if "outage_seconds" in spec:
            self.outage_until = time.monotonic() + float(spec["outage_seconds"])
        if "seed" in spec:
            self.seed = None if spec["seed"] is None else int(spec["seed"])
            self._rng = random.Random(self.seed)  # noqa: S311 - fault dice, not crypto

    def clear(self) -> None:
        fresh = Faults()
        for name in ("error_5xx", "error_status", "timeout", "timeout_seconds", "auth", "throttle"):
            setattr(self, name, getattr(fresh, name))
        self.item_failure = 0.0
        self.fail_skus = set()
        self.outage_until = 0.0
        self.endpoints = set()

    def applies_to(self, route_name: str) -> bool:
        return not self.endpoints or route_name in self.endpoints

    def roll(self, share: float) -> bool:
        # Not security relevant: a reproducible stream when a seed is set.
        return share > 0.0 and (share >= 1.0 or self._rng.random() < share)

    def in_outage(self) -> bool:
        return time.monotonic() < self.outage_until

    def item_fails(self, sku: str) -> bool:
        """Whether one item of a batch should fail (partial batch failure)."""
        return sku in self.fail_skus or self.roll(self.item_failure)

    def describe(self) -> JsonDict:
        return {
            "error_5xx": self.error_5xx,
            "error_status": self.error_status,
            "timeout": self.timeout,
            "timeout_seconds": self.timeout_seconds,
            "auth": self.auth,
            "throttle": self.throttle,
            "item_failure": self.item_failure,
            "fail_skus": sorted(self.fail_skus),
            "outage_remaining": max(0.0, round(self.outage_until - time.monotonic(), 3)),
            "endpoints": sorted(self.endpoints),
        }


# --------------------------------------------------------------------------- counters


class Counters:
    """What a platform has seen; read by tests, the bench and /_control/counters."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls = 0
            self.by_endpoint: dict[str, int] = {}
            self.rate_limited = 0
            self.faults: dict[str, int] = {}
            self.items: dict[str, int] = {}
            self.max_rate_1s = 0
            self._window: deque[float] = deque()

    def record_call(self, endpoint: str) -> None:
        now = self._clock()
        with self._lock:
            self.calls += 1
            self.by_endpoint[endpoint] = self.by_endpoint.get(endpoint, 0) + 1
            self._window.append(now)
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            self.max_rate_1s = max(self.max_rate_1s, len(self._window))

    def record_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def count_items(self, kind: str, n: int) -> None:
        with self._lock:
            self.items[kind] = self.items.get(kind, 0) + n

    def snapshot(self) -> JsonDict:
        with self._lock:
            return {
                "calls": self.calls,
                "by_endpoint": dict(self.by_endpoint),
                "rate_limited": self.rate_limited,
                "faults": dict(self.faults),
                "items": dict(self.items),
                "max_rate_1s": self.max_rate_1s,
            }


# --------------------------------------------------------------------------- catalog


@dataclass
class CatalogItem:
    sku: str
    ids: dict[str, str]
    price: Decimal
    quantity: int
    compare_at_price: Decimal | None = None
    updated_at: datetime = field(default_factory=utcnow)

    def to_json(self) -> JsonDict:
        return {
            "sku": self.sku,
            **self.ids,
            "price": money(self.price),
            "compare_at_price": money(self.compare_at_price),
            "quantity": self.quantity,
            "updated_at": iso(self.updated_at),
        }


ID_KEYS = ("product_id", "variant_id", "inventory_item_id", "offer_id", "listing_sku")


class Catalog:
    """sku -> CatalogItem with id indexes; guarded by the platform's lock."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._items: dict[str, CatalogItem] = {}
        self._by_id: dict[tuple[str, str], str] = {}

    def put(self, item: CatalogItem) -> None:
        with self._lock:
            old = self._items.get(item.sku)
            if old is not None:
                for key, value in old.ids.items():
                    self._by_id.pop((key, value), None)
            self._items[item.sku] = item
            for key, value in item.ids.items():
                if value:
                    self._by_id[(key, value)] = item.sku

    def get(self, sku: str) -> CatalogItem | None:
        with self._lock:
            return self._items.get(sku)

    def find_by_id(self, key: str, value: str) -> CatalogItem | None:
        with self._lock:
            sku = self._by_id.get((key, str(value)))
            return self._items.get(sku) if sku is not None else None

    def items(self) -> list[CatalogItem]:
        with self._lock:
            return list(self._items.values())

    def set_values(
        self,
        sku: str,
        *,
        price: Decimal | None = None,
        quantity: int | None = None,
        compare_at_price: Decimal | None = None,
        clear_compare_at: bool = False,
    ) -> CatalogItem:
        """Change price and/or quantity of one SKU (KeyError if unknown)."""
        with self._lock:
            item = self._items[sku]
            if price is not None:
                item.price = price
            if quantity is not None:
                item.quantity = quantity
            if compare_at_price is not None or clear_compare_at:
                item.compare_at_price = compare_at_price
            item.updated_at = utcnow()
            return item

    def adjust_quantity(self, sku: str, delta: int) -> None:
        with self._lock:
            item = self._items.get(sku)
            if item is not None:
                item.quantity += delta
                item.updated_at = utcnow()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._by_id.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


# --------------------------------------------------------------------------- orders


@dataclass
class OrderLine:
    line_id: str
    sku: str
    quantity: int
    price: Decimal
    ids: dict[str, str] = field(default_factory=dict)


@dataclass
class SandboxOrder:
    id: str
    number: int
    status: str  # normalised: pending | paid | cancelled | fulfilled | refunded
    lines: list[OrderLine]
    created_at: datetime
    updated_at: datetime
    currency: str = "USD"
    email: str = ""
    phone: str = ""
    cancel_reason: str = ""
    tracking_number: str = ""
    carrier: str = ""
    stock_adjusted: bool = True  # whether creating it took units from the catalog

    @property
    def total(self) -> Decimal:
        return sum((line.price * line.quantity for line in self.lines), Decimal("0"))

    def to_state(self) -> JsonDict:
        return {
            "id": self.id,
            "number": self.number,
            "status": self.status,
            "lines": [
                {
                    "line_id": ln.line_id,
                    "sku": ln.sku,
                    "quantity": ln.quantity,
                    "price": str(ln.price),
                    "ids": ln.ids,
                }
                for ln in self.lines
            ],
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "currency": self.currency,
            "email": self.email,
            "phone": self.phone,
            "cancel_reason": self.cancel_reason,
            "tracking_number": self.tracking_number,
            "carrier": self.carrier,
            "stock_adjusted": self.stock_adjusted,
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> SandboxOrder:
        lines = [
            OrderLine(
                line_id=str(ln["line_id"]),
                sku=str(ln["sku"]),
                quantity=int(ln["quantity"]),
                price=Decimal(str(ln["price"])),
                ids=dict(ln.get("ids", {})),
            )
            for ln in data["lines"]
        ]
        return cls(
            id=str(data["id"]),
            number=int(data["number"]),
            status=str(data["status"]),
            lines=lines,
            created_at=parse_iso(data["created_at"]),
            updated_at=parse_iso(data["updated_at"]),
            currency=data.get("currency", "USD"),
            email=data.get("email", ""),
            phone=data.get("phone", ""),
            cancel_reason=data.get("cancel_reason", ""),
            tracking_number=data.get("tracking_number", ""),
            carrier=data.get("carrier", ""),
            stock_adjusted=bool(data.get("stock_adjusted", True)),
        )


class OrderStore:
    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._orders: dict[str, SandboxOrder] = {}

    def add(self, order: SandboxOrder) -> None:
        with self._lock:
            self._orders[order.id] = order

    def get(self, order_id: str) -> SandboxOrder | None:
        with self._lock:
            return self._orders.get(str(order_id))

    def all(self) -> list[SandboxOrder]:
        with self._lock:
            return sorted(self._orders.values(), key=lambda o: (o.updated_at, int_or_zero(o.id)))

    def updated_since(self, since: datetime | None) -> list[SandboxOrder]:
        """Orders with updated_at strictly after ``since``, oldest first (stable by id)."""
        return [o for o in self.all() if since is None or o.updated_at > since]

    def clear(self) -> None:
        with self._lock:
            self._orders.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._orders)


def int_or_zero(value: str) -> int:
    return int(value) if value.isdigit() else 0


# --------------------------------------------------------------------------- webhooks


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


# --------------------------------------------------------------------------- platform base


class SandboxPlatform:
    """Base class of one platform's stand-in API. See the module docstring."""

    name: ClassVar[str] = ""
    # {limit_key: {"rate": per second, "burst": tokens}} with the documented values.
    default_limits: ClassVar[Mapping[str, Mapping[str, float]]] = {}
    default_credentials: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        *,
        limits: Mapping[str, Mapping[str, float]] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.catalog = Catalog(self.lock)
        self.orders = OrderStore(self.lock)
        self.counters = Counters()
        self.faults = Faults()
        self.credentials: dict[str, str] = dict(self.default_credentials)
        self.webhook_target: WebhookTarget | None = None
        self.deliveries: list[WebhookDelivery] = []
        self.routes: list[Route] = []
        self.limits: dict[str, dict[str, float]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._next_id = 1000
        self._last_stamp = datetime.min.replace(tzinfo=UTC)
        self._on_change = on_change
        self.set_limits(self.default_limits, replace=True)
        if limits:
            self.set_limits(limits)
        self.register_routes()

    # ---- routing

    def register_routes(self) -> None:
        """Subclasses add their routes here with :meth:`add_route`."""

    def add_route(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        name: str,
        limit_key: str | None = "default",
    ) -> None:
        self.routes.append(Route(method.upper(), re.compile(pattern), handler, name, limit_key))

    def match(self, request: Request) -> Route | None:
        for route in self.routes:
            found = route.pattern.fullmatch(request.path)
            if found and route.method == request.method:
                request.params = {k: v for k, v in found.groupdict().items() if v is not None}
                request.route_name = route.name
                return route
        return None

    def handle(self, request: Request) -> Response:
        """Answer one API request (faults, auth, rate limit, then the handler)."""
        route = self.match(request)
        if route is None:
            message = f"no route {request.method} {request.path}"
            return self.error_response(404, "not_found", message)
        self.counters.record_call(route.name)
        early = self._injected_fault(route, request)
        if early is not None:
            return early
        try:
            denied = self.check_auth(request)
            if denied is not None:
                return denied
            limited = self.admit(request, route)
            if limited is not None:
                self.counters.record_rate_limited()
                return limited
            response = route.handler(request)
        except ApiError as exc:
            return exc.response
        if request.method != "GET":
            self.changed()
        return response

    def _injected_fault(self, route: Route, request: Request) -> Response | None:
        faults = self.faults
        if faults.in_outage():
            self.counters.record_fault("outage")
            return self.error_response(503, "outage", "service unavailable (sandbox outage)")
        if not faults.applies_to(route.name):
            return None
        if faults.roll(faults.auth):
            self.counters.record_fault("auth")
            return self.error_response(401, "unauthorized", "invalid credentials (injected)")
        if faults.roll(faults.error_5xx):
            self.counters.record_fault("5xx")
            status = faults.error_status
            return self.error_response(status, "server_error", "internal error (injected)")
        if faults.roll(faults.throttle):
            # Counted as a fault, not in rate_limited: that counter is for real overruns.
            self.counters.record_fault("throttle")
            return self.rate_limited_response(1.0, request)
        if faults.roll(faults.timeout):
            self.counters.record_fault("timeout")
            slow = self.error_response(504, "timeout", "gateway timeout (injected)")
            slow.delay = faults.timeout_seconds
            return slow
        return None

    # ---- overridable hooks

    def check_auth(self, request: Request) -> Response | None:
        """None when the request is authenticated, else the platform's 401."""
        return None

    def error_response(self, status: int, code: str, message: str) -> Response:
        return Response.json(status, {"error": {"code": code, "message": message}})

    def rate_limited_response(self, wait_seconds: float, request: Request) -> Response:
        response = self.error_response(429, "rate_limited", "too many requests")
        response.headers["Retry-After"] = str(max(1, int(wait_seconds + 0.999)))
        return response

    def admit(self, request: Request, route: Route) -> Response | None:
        """Default: one token from the bucket named by ``route.limit_key``."""
        bucket = self.bucket(route.limit_key) if route.limit_key else None
        if bucket is None:
            return None
        wait = bucket.try_take(1.0)
        return None if wait == 0.0 else self.rate_limited_response(wait, request)

    def assign_ids(self, sku: str, ids: Mapping[str, str], group: str) -> dict[str, str]:
        """Fill the ids a seeded item lacks; default: a numeric variant id."""
        result = dict(ids)
        result.setdefault("variant_id", str(self.next_id()))
        return result

    def render_order(self, order: SandboxOrder) -> JsonDict:
        return order.to_state()

    def webhook_request(
        self, order: SandboxOrder, event: str, target: WebhookTarget
    ) -> WebhookRequest | None:
        """The signed HTTP delivery for an order event, or None (no HTTP webhooks)."""
        return None

    def dump_extra(self) -> JsonDict:
        return {}

    def load_extra(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`dump_extra` wrote."""

    # ---- limits

    def set_limits(
        self, limits: Mapping[str, Mapping[str, float]], *, replace: bool = False
    ) -> None:
        with self.lock:
            if replace:
                self.limits = {}
            for key, values in limits.items():
                merged = {**self.limits.get(key, {}), **{k: float(v) for k, v in values.items()}}
                self.limits[key] = merged
            # Built now, full, so a client created after this call never runs ahead.
            self._buckets = {
                key: TokenBucket(spec["rate"], spec.get("burst", spec["rate"]))
                for key, spec in self.limits.items()
                if "rate" in spec
            }
            self.on_limits_changed()

    def scale_limits(self, factor: float) -> None:
        """Multiply every rate/burst/maximum (tests raise limits this way)."""
        scaled = {
            key: {k: v * factor for k, v in values.items()} for key, values in self.limits.items()
        }
        self.set_limits(scaled, replace=True)

    def drain_limits(self) -> None:
        """Empty every rate-limit bucket, so a measurement starts in steady state."""
        for key in list(self.limits):
            bucket = self.bucket(key)
            if bucket is not None:
                bucket.try_take(bucket.available())

    def on_limits_changed(self) -> None:
        """Subclasses rebuild custom limiters (e.g. a CostBucket) here."""

    def bucket(self, key: str) -> TokenBucket | None:
        with self.lock:
            spec = self.limits.get(key)
            if not spec or "rate" not in spec:
                return None
            if key not in self._buckets:
                burst = spec.get("burst", spec["rate"])
                self._buckets[key] = TokenBucket(spec["rate"], burst)
            return self._buckets[key]

    # ---- ids, seeding, values

    def next_id(self) -> int:
        with self.lock:
            self._next_id += 1
            return self._next_id

    def _reserve_ids(self, values: Iterable[str]) -> None:
        """Keep next_id() above ids a seed brings, so generated ids never collide."""
        for value in values:
            digits = re.search(r"(\d+)$", value)
            if digits and len(digits.group(1)) < 12:
                self._next_id = max(self._next_id, int(digits.group(1)))

    def stamp(self) -> datetime:
        """Now, strictly after every earlier stamp: polling by updated_at stays exact."""
        with self.lock:
            now = max(utcnow(), self._last_stamp + timedelta(microseconds=1))
            self._last_stamp = now
            return now

    def seed(self, rows: Iterable[Mapping[str, Any]]) -> list[CatalogItem]:
        """Add or replace catalog items: {sku, price, quantity, [ids...], [group]}."""
        created = []
        with self.lock:
            for row in rows:
                sku = str(row["sku"])
                ids = {k: str(row[k]) for k in ID_KEYS if row.get(k) not in (None, "")}
                self._reserve_ids(ids.values())
                existing = self.catalog.get(sku)
                if existing is not None:
                    ids = {**existing.ids, **ids}
                ids = self.assign_ids(sku, ids, str(row.get("group", "")))
                compare_at = row.get("compare_at_price")
                item = CatalogItem(
                    sku=sku,
                    ids=ids,
                    price=to_decimal(row.get("price", "0")),
                    quantity=int(row.get("quantity", 0)),
                    compare_at_price=None if compare_at in (None, "") else to_decimal(compare_at),
                )
                self.catalog.put(item)
                created.append(item)
        self.changed()
        return created

    def changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # ---- orders

    def create_order(
        self,
        lines: Iterable[Mapping[str, Any]],
        *,
        status: str = "paid",
        currency: str = "USD",
        email: str = "",
        phone: str = "",
        adjust_stock: bool = True,
    ) -> SandboxOrder:
        """Create an order from {sku, quantity, [price]} lines, as a buyer would.

        With ``adjust_stock`` the catalog loses the units at once (what the
        platforms do on checkout); a cancellation gives them back.
        """
        if status not in ("pending", "paid"):
            raise ValueError("a new order is pending or paid")
        with self.lock:
            now = self.stamp()
            order_lines = []
            for raw in lines:
                sku = str(raw["sku"])
                item = self.catalog.get(sku)
                if item is None:
                    raise ValueError(f"unknown sku {sku!r} on {self.name}")
                quantity = int(raw.get("quantity", 1))
                if quantity <= 0:
                    raise ValueError("line quantity must be positive")
                price = to_decimal(raw["price"]) if "price" in raw else item.price
                order_lines.append(
                    OrderLine(str(self.next_id()), sku, quantity, price, dict(item.ids))
                )
            if not order_lines:
                raise ValueError("an order needs at least one line")
            number = len(self.orders) + 1001
            order = SandboxOrder(
                id=str(self.next_id()),
                number=number,
                status=status,
                lines=order_lines,
                created_at=now,
                updated_at=now,
                currency=currency,
                email=email,
                phone=phone,
                stock_adjusted=adjust_stock,
            )
            if adjust_stock:
                for line in order_lines:
                    self.catalog.adjust_quantity(line.sku, -line.quantity)
            self.orders.add(order)
        self.changed()
        return order

    def order_transition(
        self,
        order_id: str,
        action: str,
        *,
        reason: str = "",
        tracking_number: str = "",
        carrier: str = "",
    ) -> SandboxOrder:
        """Move an order (pay, cancel, fulfil, refund); ValueError if not allowed."""
        if action not in ORDER_TRANSITIONS:
            raise ValueError(f"unknown action {action!r}")
        target, allowed_from = ORDER_TRANSITIONS[action]
        with self.lock:
            order = self.orders.get(order_id)
            if order is None:
                raise KeyError(order_id)
            if order.status not in allowed_from:
                raise ValueError(f"cannot {action} an order that is {order.status}")
            order.status = target
            order.updated_at = self.stamp()
            if action == "cancel":
                order.cancel_reason = reason or "other"
                if order.stock_adjusted:
                    for line in order.lines:
                        self.catalog.adjust_quantity(line.sku, line.quantity)
            if action == "fulfil":
                order.tracking_number = tracking_number
                order.carrier = carrier
        self.changed()
        return order

    def emit_order_event(self, order: SandboxOrder, event: str) -> WebhookDelivery | None:
        """Deliver a signed webhook for ``event`` (created, paid, cancelled, fulfilled,
        refunded, updated) to the registered target; None without target/support."""
        target = self.webhook_target
        if target is None:
            return None
        prepared = self.webhook_request(order, event, target)
        if prepared is None:
            return None
        status, error = post_webhook(target.url, prepared)
        delivery = WebhookDelivery(
            platform=self.name,
            topic=prepared.topic,
            order_id=order.id,
            url=target.url,
            status=status,
            error=error,
            delivery_id=prepared.delivery_id,
        )
        with self.lock:
            self.deliveries.append(delivery)
            del self.deliveries[:-500]  # bounded history
        return delivery

    # ---- state

    def reset(self) -> None:
        with self.lock:
            self.catalog.clear()
            self.orders.clear()
            self.counters.reset()
            self.faults.clear()
            self.deliveries.clear()
            self.set_limits(self.default_limits, replace=True)

    def dump(self) -> JsonDict:
        with self.lock:
            return {
                "next_id": self._next_id,
                "catalog": [
                    {**item.to_json(), "updated_at": item.updated_at.isoformat()}
                    for item in self.catalog.items()
                ],
                "orders": [order.to_state() for order in self.orders.all()],
                "webhook_target": (
                    {"url": self.webhook_target.url, "secret": self.webhook_target.secret}
                    if self.webhook_target
                    else None
                ),
                "credentials": dict(self.credentials),
                "extra": self.dump_extra(),
            }

    def load(self, state: Mapping[str, Any]) -> None:
        with self.lock:
            self.catalog.clear()
            self.orders.clear()
            for row in state.get("catalog", []):
                compare_at = row.get("compare_at_price")
                self.catalog.put(
                    CatalogItem(
                        sku=row["sku"],
                        ids={k: str(row[k]) for k in ID_KEYS if row.get(k) not in (None, "")},
                        price=to_decimal(row["price"]),
                        quantity=int(row["quantity"]),
                        compare_at_price=None if compare_at is None else to_decimal(compare_at),
                        updated_at=parse_iso(row["updated_at"]),
                    )
                )
            for data in state.get("orders", []):
                self.orders.add(SandboxOrder.from_state(data))
            target = state.get("webhook_target")
            self.webhook_target = WebhookTarget(target["url"], target["secret"]) if target else None
            self.credentials = dict(state.get("credentials") or self.default_credentials)
            self._next_id = max(self._next_id, int(state.get("next_id", 1000)))
            stamps = [o.updated_at for o in self.orders.all()]
            self._last_stamp = max([self._last_stamp, *stamps])
            self.load_extra(state.get("extra", {}))

    def describe(self) -> JsonDict:
        return {
            "platform": self.name,
            "skus": len(self.catalog),
            "orders": len(self.orders),
            "limits": self.limits,
            "faults": self.faults.describe(),
            "webhook_url": self.webhook_target.url if self.webhook_target else None,
            "routes": [
                {
                    "method": r.method,
                    "pattern": r.pattern.pattern,
                    "name": r.name,
                    "limit_key": r.limit_key,
                }
                for r in self.routes
            ],
        }
