"""The base class every platform module builds on: :class:`SandboxPlatform`.

``server.py`` owns the HTTP server and the ``/_control/`` API; each platform
module (``shopify.py``, ``woocommerce.py``, ``ebay.py``, ``amazon.py``,
``magento.py``) defines
ONE subclass of :class:`SandboxPlatform` that speaks that platform's wire format.

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
                                   # (accepts_token(): static or issued, unexpired)
      error_response(status, code, message) -> Response   # platform's error JSON shape
      rate_limited_response(wait_seconds, request) -> Response  # default 429 + Retry-After
      admit(request, route) -> Response | None    # default: token bucket per route.limit_key
      assign_ids(sku, ids, group) -> dict[str,str]   # ids for a seeded item missing them
      render_order(order) -> dict                 # the platform's order JSON
      order_webhook_topic(event) -> str | None    # None = no HTTP webhooks (default)
      webhook_request(topic, body, target, stamp=, subject=) -> WebhookRequest  # signed
      item_webhooks(item, price=, quantity=, cause=) -> [(topic, body)]  # catalog changes
      subscription_secret(subscription) -> str    # what a registered webhook is signed with
      new_subscription_id() -> str                # the platform's id format
      dump_extra() / load_extra(state)            # extra state to persist

The base class's :meth:`SandboxPlatform.handle` runs, in order: call counting,
outage (503), injected 401 / 5xx / timeout faults, ``check_auth``,
``validate_request`` (the request against the platform's published definition,
``contracts``: route name -> file in sandbox/contracts/), ``admit`` (rate
limits) and then the route handler. A handler may raise :class:`ApiError`
carrying a ready :class:`Response` to stop early; with ``refusal=`` it is
recorded in ``refusals`` like a contract refusal (a rule of the definition
that no schema expresses: a limit, a date window). An unknown route is a
refusal too. With ``check_answers`` set, every 2xx answer is checked against
the documented response and what does not match lands in ``answer_problems``
(a sandbox bug). Contract tests assert both lists stay empty.

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
  failures (``item_fails(sku)``), outage for N seconds, optional endpoint filter,
  a share of order webhooks dropped (``webhook_drop``).
* ``score`` (:class:`~sandbox.score.Scorekeeper`): which orders pimsync has not
  seen yet, and the stale overwrites (counted in ``counters``). A module keeps
  it true with two calls: every API path that sets a SKU's quantity goes
  through ``self.write_quantity(item, quantity, via="<operation>")`` (never
  ``catalog.set_values(quantity=...)``), and every orders listing endpoint
  (a poll) passes the orders it returns to ``self.mark_orders_seen(orders)``.
  A delivered webhook (2xx) marks its order seen in ``emit_order_event``.
* ``limits``: ``{limit_key: {"rate": r, "burst": b, ...}}``; the documented
  values are the defaults, tests raise them (``set_limits`` / ``scale_limits``).
  :class:`TokenBucket` (rate/burst) and :class:`CostBucket` (Shopify-style
  leaky bucket of query cost) are the primitives.
* ``next_id()``: a per-platform increasing integer for new ids.
* ``clock`` (:data:`~sandbox.clock.Clock`): the monotonic time every deadline
  above reads; ``time.monotonic`` unless a test passes a fake one.
* ``subscriptions``: webhooks registered through the platform's API (id ->
  :class:`Subscription`). A topic is delivered to the active subscriptions of
  that topic. While none is registered at all, order events go to the
  console-configured ``webhook_target`` instead (``POST /_control/webhooks``: a
  webhook set up by hand in the store's settings), as they always did.

Webhooks
--------
Order events (:meth:`SandboxPlatform.emit_order_event`) are delivered within
the call that caused them (the control API answers with the delivery). Catalog
changes (:meth:`SandboxPlatform.item_changed`: an API write, a console edit, a
sale's stock) are queued and delivered by a background thread in order, as the
platforms deliver after the change; ``outbox.drain()`` waits for them.

Timeouts are simulated by a :class:`Response` with ``delay`` set: the HTTP layer
waits that long on the clock before answering, past the client's read timeout;
the request has no effect (a write that timed out is not applied).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from .clock import Clock
from .contracts import contract_path
from .contracts.openapi_contract import OpenApiContract, Operation, Problem
from .contracts.openapi_contract import load_contract as load_openapi_contract
from .counters import Counters
from .faults import Faults
from .http import (
    ApiError,
    Handler,
    JsonDict,
    Request,
    Response,
    Route,
    iso,
    parse_iso,
    to_decimal,
    utcnow,
)
from .oauth import TokenIssuer
from .ratelimit import TokenBucket
from .score import Scorekeeper
from .store import (
    ID_KEYS,
    ORDER_TRANSITIONS,
    Catalog,
    CatalogItem,
    OrderLine,
    OrderStore,
    SandboxOrder,
    content_fields,
)
from .webhooks import (
    Outbox,
    Outgoing,
    Subscription,
    WebhookDelivery,
    WebhookRequest,
    WebhookTarget,
    post_webhook,
)


class OutOfStock(ValueError):
    """A checkout the store refuses: the catalog shows fewer units than ordered."""

    def __init__(self, sku: str, shown: int) -> None:
        super().__init__(f"{sku} shows {shown} units: out of stock")
        self.sku = sku
        self.shown = shown


class SandboxPlatform:
    """Base class of one platform's stand-in API. See the module docstring."""

    name: ClassVar[str] = ""
    # {limit_key: {"rate": per second, "burst": tokens}} with the documented values.
    default_limits: ClassVar[Mapping[str, Mapping[str, float]]] = {}
    default_credentials: ClassVar[Mapping[str, str]] = {}
    # Route name (= the definition's operationId) -> trimmed definition it is checked against.
    contracts: ClassVar[Mapping[str, str]] = {}
    # Consecutive failed deliveries after which a registered webhook is disabled (None: never).
    max_failed_deliveries: ClassVar[int | None] = None
    # Platforms with an OAuth token endpoint: (access token prefix, default lifetime in s).
    issues_tokens: ClassVar[tuple[str, float] | None] = None

    def __init__(
        self,
        *,
        limits: Mapping[str, Mapping[str, float]] | None = None,
        on_change: Callable[[], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        # Set first: set_limits() below builds buckets (and subclasses' limiters) on it.
        self.clock = clock
        self.lock = threading.RLock()
        self.catalog = Catalog(self.lock)
        self.orders = OrderStore(self.lock)
        self.counters = Counters(clock)
        self.faults = Faults(clock=clock)
        self.score = Scorekeeper(self.lock)
        self.credentials: dict[str, str] = dict(self.default_credentials)
        self.webhook_target: WebhookTarget | None = None
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[WebhookDelivery] = []
        self.outbox = Outbox(self.name, post_webhook)
        self.routes: list[Route] = []
        self.limits: dict[str, dict[str, float]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._next_id = 1000
        self._last_stamp = datetime.min.replace(tzinfo=UTC)
        # Products created through the API (publishing): product key -> what the
        # platform shows of it ("title", "description", "images", "vendor", ...);
        # the key is what a catalog item's content names as its "product".
        self.products: dict[str, JsonDict] = {}
        # Requests refused as malformed, and the sandbox's own answers that broke the
        # definition (only checked with check_answers): both empty in a contract test.
        self.refusals: deque[JsonDict] = deque(maxlen=500)
        self.answer_problems: deque[JsonDict] = deque(maxlen=500)
        self.check_answers = False
        self.tokens: TokenIssuer | None = None
        if self.issues_tokens is not None:
            prefix, ttl = self.issues_tokens
            self.tokens = TokenIssuer(prefix=prefix, ttl=ttl, clock=clock)
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
            response = self.error_response(404, "not_found", message)
            self.record_refusal(request, response, [message])
            return response
        self.counters.record_call(route.name)
        early = self._injected_fault(route, request)
        if early is not None:
            return early
        try:
            denied = self.check_auth(request)
            if denied is not None:
                return denied
            self.validate_request(request, route)
            limited = self.admit(request, route)
            if limited is not None:
                self.counters.record_rate_limited()
                return limited
            response = route.handler(request)
        except ApiError as exc:
            if exc.refusal:
                self.record_refusal(request, exc.response, exc.refusal)
            return exc.response
        if request.method != "GET":
            self.changed()
        if self.check_answers and 200 <= response.status < 300:
            self.check_answer(request, route, response)
        return response

    # ---- contracts

    def _contract_operation(self, route: Route) -> tuple[OpenApiContract, Operation] | None:
        contract_file = self.contracts.get(route.name)
        if contract_file is None:
            return None
        contract = load_openapi_contract(contract_path(contract_file))
        operation = contract.operation(route.name)
        if operation is None:
            raise LookupError(f"{contract_file} has no operation {route.name}")
        return contract, operation

    def validate_request(self, request: Request, route: Route) -> None:
        """Raise ApiError(refusal=...) when the request breaks the route's definition."""
        found = self._contract_operation(route)
        if found is None:
            return
        contract, operation = found
        problems = contract.check_request(
            operation,
            path=request.path,
            query=request.query,
            headers=request.headers,
            body=request.body,
        )
        if problems:
            raise ApiError(
                self.refusal_response(problems, request),
                refusal=[describe_problem(p) for p in problems],
            )

    def refusal_response(self, problems: Sequence[Problem], request: Request) -> Response:
        """The platform's answer to a request its definition refuses (its error shape)."""
        message = "; ".join(describe_problem(p) for p in problems)
        return self.error_response(400, "invalid_request", message)

    def check_answer(self, request: Request, route: Route, response: Response) -> None:
        """Record where one of the sandbox's answers breaks the documented response."""
        found = self._contract_operation(route)
        if found is not None:
            contract, operation = found
            problems = contract.check_response(operation, response.status, response.body)
            self.record_answer_problems(request, [describe_problem(p) for p in problems])

    def record_answer_problems(self, request: Request, problems: Sequence[str]) -> None:
        if problems:
            self.answer_problems.append(
                {"operation": request.route_name, "path": request.path, "problems": list(problems)}
            )

    def record_refusal(self, request: Request, response: Response, reasons: Sequence[str]) -> None:
        self.refusals.append(
            {
                "platform": self.name,
                "operation": request.route_name,
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "problems": list(reasons),
            }
        )

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

    def issuer(self) -> TokenIssuer:
        """The platform's token issuer (LookupError for a platform without OAuth)."""
        if self.tokens is None:
            raise LookupError(f"{self.name} has no token endpoint")
        return self.tokens

    def accepts_token(self, token: str) -> bool:
        """The static ``credentials["access_token"]`` (never expires) or an access token
        the platform's token endpoint issued and that has not expired."""
        if not token:
            return False
        if token == self.credentials.get("access_token"):
            return True
        return self.tokens is not None and self.tokens.accepts(token)

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

    def order_webhook_topic(self, event: str) -> str | None:
        """The topic an order event (created, paid, cancelled, fulfilled, refunded,
        updated) is delivered as, or None: the platform sends no HTTP webhooks."""
        return None

    def webhook_request(
        self, topic: str, body: bytes, target: WebhookTarget, *, stamp: datetime, subject: str
    ) -> WebhookRequest:
        """The signed HTTP delivery of ``body`` as ``topic`` to ``target`` (``stamp``:
        when the change happened; ``subject``: what changed). Only platforms whose
        ``order_webhook_topic`` names topics deliver, and they sign in their own way."""
        raise RuntimeError(f"{self.name} sends no HTTP webhooks (it names no webhook topic)")

    def item_webhooks(
        self, item: CatalogItem, *, price: bool, quantity: bool, cause: str
    ) -> list[tuple[str, bytes]]:
        """(topic, body) the platform sends when an item's price or quantity changed;
        ``cause``: "api" (a write through the API), "console" (a person in the store's
        admin), "sale" or "restock" (an order took or gave back the units)."""
        return []

    def subscription_secret(self, subscription: Subscription) -> str:
        return subscription.secret

    def new_subscription_id(self) -> str:
        return str(self.next_id())

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
                key: TokenBucket(spec["rate"], spec.get("burst", spec["rate"]), self.clock)
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
                self._buckets[key] = TokenBucket(spec["rate"], burst, self.clock)
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
        """Add or replace catalog items: {sku, price, quantity, [ids...], [group],
        [title, product_title, barcode, options, image, created_at]}."""
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
                    created_at=(
                        parse_iso(str(row["created_at"])) if row.get("created_at") else self.stamp()
                    ),
                    **content_fields(row),
                )
                self.catalog.put(item)
                created.append(item)
        self.changed()
        return created

    def changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def write_quantity(self, item: CatalogItem, quantity: int, *, via: str) -> None:
        """Set a SKU's quantity as the platform's API does, and keep score: a write
        that raises it over a sale pimsync has not seen is a stale overwrite."""
        with self.lock:
            before = item.quantity
            self.catalog.set_values(item.sku, quantity=quantity)
            overwrite = self.score.quantity_written(item.sku, before, quantity, via=via)
            if overwrite is not None:
                self.counters.record_stale_overwrite(overwrite.to_json())

    def content_view(self, item: CatalogItem) -> JsonDict:
        """What a shopper sees of one SKU: its product's content and its own."""
        product = self.products.get(str(item.content.get("product", "")), {})
        return {
            "product": item.content.get("product", ""),
            "title": product.get("title", ""),
            "description": product.get("description", ""),
            "vendor": product.get("vendor", ""),
            "product_type": product.get("product_type", ""),
            "images": list(product.get("images", [])),
            "options": dict(item.content.get("options", {})),
            "barcode": item.content.get("barcode", ""),
            "variant_title": item.content.get("title", ""),
            "updated_at": product.get("updated_at", ""),
        }

    def product_put(self, key: str, fields: Mapping[str, Any]) -> JsonDict:
        """Create or change a product's content (only the fields given)."""
        with self.lock:
            product = self.products.setdefault(key, {"key": key})
            product.update(fields)
            product["updated_at"] = iso(utcnow())
            self.counters.count_items("content", 1)
            return product

    def mark_orders_seen(self, orders: Iterable[SandboxOrder]) -> None:
        """An orders poll returned these: pimsync has seen them from now on."""
        self.score.mark_seen(order.id for order in orders)

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
        in_stock_only: bool = False,
    ) -> SandboxOrder:
        """Create an order from {sku, quantity, [price]} lines, as a buyer would.

        With ``adjust_stock`` the catalog loses the units at once (what the
        platforms do on checkout); a cancellation gives them back. With
        ``in_stock_only`` the checkout is refused (:class:`OutOfStock`) when the
        catalog shows fewer units than ordered, as a store does; the check and
        the sale are one step under the platform's lock.
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
            if in_stock_only:
                self._check_in_stock(order_lines)
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
                    self._stock_moved(line.sku, -line.quantity, cause="sale")
            self.orders.add(order)
            self.score.order_placed(order)
        self.changed()
        return order

    def _check_in_stock(self, lines: Iterable[OrderLine]) -> None:
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
        for sku, quantity in wanted.items():
            item = self.catalog.get(sku)
            shown = item.quantity if item is not None else 0
            if shown < quantity:
                raise OutOfStock(sku, shown)

    def _stock_moved(self, sku: str, delta: int, *, cause: str) -> None:
        self.catalog.adjust_quantity(sku, delta)
        item = self.catalog.get(sku)
        if item is not None:
            self.item_changed(item, quantity=True, cause=cause)

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
                        self._stock_moved(line.sku, line.quantity, cause="restock")
                self.score.forget(order.id)
            if action == "fulfil":
                order.tracking_number = tracking_number
                order.carrier = carrier
        self.changed()
        return order

    def emit_order_event(self, order: SandboxOrder, event: str) -> WebhookDelivery | None:
        """Deliver a signed webhook for ``event`` (created, paid, cancelled, fulfilled,
        refunded, updated) to its subscribers now; returns the first delivery, or None
        when nobody subscribes or the platform sends no HTTP webhooks."""
        topic = self.order_webhook_topic(event)
        if topic is None:
            return None
        body = json.dumps(self.render_order(order)).encode()
        first = None
        for target in self.targets_for(topic, console=True):
            prepared = self.webhook_request(
                topic, body, target, stamp=order.updated_at, subject=order.id
            )
            if self.faults.webhook_dropped():
                # Lost on the platform's side: never sent, the order waits for a poll.
                self.counters.record_fault("webhook_drop")
                status, error = None, "dropped (injected fault)"
            else:
                status, error = post_webhook(target.url, prepared)
            delivery = self._delivered(target, prepared, order.id, status, error)
            first = first or delivery
        return first

    def item_changed(
        self, item: CatalogItem, *, price: bool = False, quantity: bool = False, cause: str = "api"
    ) -> int:
        """Queue the webhooks an item's change makes the platform send (to registered
        subscriptions only); returns how many were queued."""
        queued = 0
        stamp = utcnow()
        for topic, body in self.item_webhooks(item, price=price, quantity=quantity, cause=cause):
            for target in self.targets_for(topic, console=False):
                prepared = self.webhook_request(topic, body, target, stamp=stamp, subject=item.sku)
                self.outbox.put(
                    Outgoing(target, prepared, item.sku, self._delivered, self._still_active)
                )
                queued += 1
        return queued

    def targets_for(self, topic: str, *, console: bool) -> list[WebhookTarget]:
        """The active subscriptions of ``topic``; with none registered at all, the
        console-configured target for order events (``console``)."""
        with self.lock:
            if self.subscriptions:
                return [
                    WebhookTarget(sub.address, self.subscription_secret(sub), sub.id)
                    for sub in self.subscriptions.values()
                    if sub.topic == topic and sub.status == "active"
                ]
            target = self.webhook_target
        return [target] if console and target is not None else []

    def _still_active(self, target: WebhookTarget) -> bool:
        with self.lock:
            subscription = self.subscriptions.get(target.webhook_id)
            return subscription is not None and subscription.status == "active"

    def _delivered(
        self,
        target: WebhookTarget,
        request: WebhookRequest,
        subject: str,
        status: int | None,
        error: str,
    ) -> WebhookDelivery:
        if request.topic.startswith("order") and status is not None and 200 <= status < 300:
            self.score.mark_seen([subject])  # pimsync answered: it has the order
        delivery = WebhookDelivery(
            platform=self.name,
            topic=request.topic,
            order_id=subject if request.topic.startswith("order") else "",
            subject=subject,
            url=target.url,
            status=status,
            error=error,
            delivery_id=request.delivery_id,
        )
        with self.lock:
            self.deliveries.append(delivery)
            del self.deliveries[:-500]  # bounded history
            subscription = self.subscriptions.get(target.webhook_id)
            if subscription is not None:
                subscription.failures = 0 if delivery.ok else subscription.failures + 1
                limit = self.max_failed_deliveries
                if limit is not None and subscription.failures > limit:
                    subscription.status = "disabled"
        self.changed()
        return delivery

    # ---- webhook subscriptions (registered through the API)

    def subscription_add(
        self, *, topic: str, address: str, secret: str = "", name: str = "", status: str = "active"
    ) -> Subscription:
        with self.lock:
            subscription = Subscription(
                id=self.new_subscription_id(),
                topic=topic,
                address=address,
                secret=secret,
                status=status,
                name=name,
            )
            self.subscriptions[subscription.id] = subscription
        self.changed()
        return subscription

    def subscription_update(self, subscription_id: str, **changes: Any) -> Subscription:
        """Change address, secret, status, name or topic (KeyError if unknown)."""
        with self.lock:
            subscription = self.subscriptions[subscription_id]
            for key, value in changes.items():
                if key not in ("address", "secret", "status", "name", "topic"):
                    raise ValueError(f"cannot change {key!r} of a subscription")
                setattr(subscription, key, value)
            if changes.get("status") == "active":
                subscription.failures = 0
            subscription.updated_at = utcnow()
        self.changed()
        return subscription

    # ---- state

    def reset(self) -> None:
        with self.lock:
            self.catalog.clear()
            self.products.clear()
            self.orders.clear()
            self.counters.reset()
            self.score.reset()
            self.faults.clear()
            self.deliveries.clear()
            self.refusals.clear()
            self.answer_problems.clear()
            self.set_limits(self.default_limits, replace=True)
            if self.tokens is not None:
                self.tokens.reset()

    def dump(self) -> JsonDict:
        with self.lock:
            return {
                "next_id": self._next_id,
                "catalog": [
                    {
                        **item.to_json(),
                        **item.content_json(),
                        "updated_at": item.updated_at.isoformat(),
                        "content": item.content,
                    }
                    for item in self.catalog.items()
                ],
                "products": self.products,
                "orders": [order.to_state() for order in self.orders.all()],
                "webhook_target": (
                    {"url": self.webhook_target.url, "secret": self.webhook_target.secret}
                    if self.webhook_target
                    else None
                ),
                "credentials": dict(self.credentials),
                "subscriptions": [sub.to_state() for sub in self.subscriptions.values()],
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
                        content=dict(row.get("content") or {}),
                        created_at=parse_iso(row.get("created_at") or row["updated_at"]),
                        **content_fields(row),
                    )
                )
            self.products = dict(state.get("products") or {})
            for data in state.get("orders", []):
                self.orders.add(SandboxOrder.from_state(data))
            target = state.get("webhook_target")
            self.webhook_target = WebhookTarget(target["url"], target["secret"]) if target else None
            # A state file from before a credential kind existed (the OAuth client of
            # the token endpoints) keeps accepting what it stored, and the new kind.
            self.credentials = {**self.default_credentials, **(state.get("credentials") or {})}
            self.subscriptions = {
                sub.id: sub
                for sub in (Subscription.from_state(row) for row in state.get("subscriptions", []))
            }
            self._next_id = max(self._next_id, int(state.get("next_id", 1000)))
            stamps = [o.updated_at for o in self.orders.all()]
            self._last_stamp = max([self._last_stamp, *stamps])
            self.load_extra(state.get("extra", {}))

    def describe(self) -> JsonDict:
        return {
            "platform": self.name,
            "skus": len(self.catalog),
            "products": len(self.products),
            "orders": len(self.orders),
            "limits": self.limits,
            "faults": self.faults.describe(),
            "webhook_url": self.webhook_target.url if self.webhook_target else None,
            "subscriptions": len(self.subscriptions),
            "refusals": len(self.refusals),
            "tokens": self.tokens.describe() if self.tokens is not None else None,
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


def describe_problem(problem: Problem) -> str:
    where = f"{problem.location} {problem.name}".strip()
    return f"{where}: {problem.message}"
