"""Magento 2 / Adobe Commerce connector: REST ``{base_url}/rest/{store_code}/V1/...``.

Facts and their sources: docs/channels.md, section "Magento 2". ``base_url`` is
the shop root (``https://shop.example.com``, the sandbox's
``http://127.0.0.1:<port>/magento``); ``platform_config`` is read by
:func:`magento_options` (keys and defaults in :class:`MagentoOptions`).

* Auth: an integration access token as ``Authorization: Bearer``
  (``credentials["access_token"]``). Magento 2.4.4+ accepts that only when the
  merchant set *Allow OAuth Access Tokens to be used as standalone Bearer
  tokens* (``oauth/consumer/enable_integration_as_bearer``); otherwise every
  call is a 401, which pauses the channel like any auth failure.
* Prices: ``POST /V1/products/base-prices`` ``{"prices": [{sku, price,
  store_id}]}`` (BasePriceStorageInterface). Magento saves the valid rows and
  answers the refused ones as ``[{message, parameters}]``; each is mapped back
  to its SKU through the parameters (``Invalid attribute %fieldName =
  %fieldValue.`` with ``["SKU", sku]``; ``Requested store is not found. Row ID:
  SKU = %SKU, Store ID: %storeId.`` with ``[sku, store]``). A refusal that names
  no SKU makes the connector send that call's SKUs again one per call, so the
  refusal lands on the right SKU (re-sending an absolute price is harmless).
  Magento has no compare-at price in this interface: ``compare_at_price`` is not
  sent (a special price would be a separate, dated interface).
* Quantities (MSI, the default): ``POST /V1/inventory/source-items``
  ``{"sourceItems": [{sku, source_code, quantity, status}]}``, all-or-nothing:
  one invalid row refuses the call (HTTP 400) without naming it, so a refused
  call is halved until the refused SKU stands alone. What a buyer can order is
  the *salable* quantity: the quantity of the stock's in-stock sources minus
  the reservations of orders not yet shipped. pimsync's ATP already left those
  orders out, so the first source gets ``ATP + reserved - units of the stock's
  other sources`` (never below 0) and the other configured sources 0: salable
  is then the ATP, and the reserved units stay on the shelf to be shipped.
  ``reserved`` is read just before the write (source items and the salable
  quantity of the same SKUs, in bulk).
* Quantities without MSI (``"msi": false``): the legacy single-source
  ``PUT /V1/products/{sku}/stockItems/{itemId}`` ``{"stockItem": {qty,
  is_in_stock}}``, one call per SKU (the item ids come from one product search).
* Large pushes (more SKUs than ``async_threshold``): one asynchronous bulk
  request ``POST /rest/{store}/async/bulk/V1/products/base-prices`` (or
  ``.../inventory/source-items``) whose body is the list of request bodies
  (one operation per ``sync_batch_size`` SKUs); Magento answers 202 with
  ``bulk_uuid`` and queues the operations for its consumer. The connector reads
  ``GET /V1/bulk/{uuid}/detailed-status`` until no operation is open (status
  4), maps each operation back to its SKUs through its ``serialized_data``
  (the request body it carries), reads the price refusals from
  ``result_serialized_data`` and sends the SKUs of a failed operation (status
  2, 3 or 5) again through the synchronous path, which names the refused ones.
* Batch size: Magento's optional Web API input limits cap arrays (20 per
  synchronous call, 5,000 per asynchronous one, both when enabled). A refusal
  ``Maximum items of type "%type" is %max`` makes this instance use ``max`` and
  send the call again; ``sync_batch_size`` sets it up front.
* Reads (reconciliation, read-before-write): ``GET /V1/products`` with
  ``searchCriteria`` ``sku in (...)`` (``read_page_size`` SKUs per call; the
  price is the one of the URL's store view) and, with MSI,
  ``GET /V1/inventory/export-stock-salable-qty/website/{code}`` with the same
  criteria for the salable quantity (the website of ``stock_id``). A configurable
  parent is reported as an error: pimsync lists its simple children.
* Catalog import: ``GET /V1/products`` sorted by ``entity_id``, up to 300 per page
  (``fields``-trimmed: id, sku, name, type, price, custom attributes, configurable
  links) plus, with MSI, one salable-quantity export of the page's SKUs.
  Configurables are returned as groups of their children's entity ids; the
  barcode is the first of the custom attributes ``gtin``, ``ean``, ``upc``,
  ``isbn``, ``barcode`` that is set (Magento has no standard barcode attribute).
* Orders: ``GET /V1/orders`` filtered ``updated_at gteq`` the cursor, sorted by
  ``updated_at`` then ``entity_id``. Magento stores whole seconds in UTC and
  answers the last page again for a page number past the end, so the next page
  starts at the last ``updated_at`` seen (repeats are deduplicated downstream)
  and paging stops on ``total_count``. Items with a ``parent_item_id`` are the
  simple halves of a configurable line: the line is counted once, from the
  parent item (which carries the child's SKU and the price).
* Webhooks: Magento Open Source sends none; Adobe Commerce's webhooks and I/O
  Events are signed with Adobe's keys, not a shared secret. Orders are polled:
  ``verify_webhook`` answers False and ``parse_webhook`` raises.
* Cancel ``POST /V1/orders/{id}/cancel`` (``true``/``false``; Magento refuses an
  invoiced order: it needs a credit memo). Ship ``POST /V1/order/{id}/ship``
  with all open items and a track (``track_number``, ``title``,
  ``carrier_code``). Both are idempotent here: a refusal is checked against the
  order's state.
* Errors: Magento's ``{"message": "...%1...", "parameters": [...] | {...}}``
  is rendered with its parameters into the message. 401/403 are auth failures
  (the channel pauses), 429 and 5xx retryable; a 503 HTML page is maintenance
  mode (code ``maintenance``): an outage the breaker sits out.
* Pacing: Magento has no rate limit, its host may. ``requests_per_second``
  (and ``burst``) pace this instance's calls; 429 honours ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from .base import (
    CatalogGroup,
    CatalogItem,
    CatalogPage,
    ChannelConfig,
    ConnectionCheck,
    ItemResult,
    ListingRef,
    ListingState,
    OrderData,
    OrderLineData,
    OrdersPage,
    PriceUpdate,
    QuantityUpdate,
    WebhookEvent,
)
from .errors import ConnectorError, FailureKind, PermanentError, RetryableError
from .http import (
    HttpClient,
    HttpResult,
    TokenBucket,
    body_snippet,
    decode_page_cursor,
    encode_page_cursor,
    error_for_kind,
    error_results,
    item_result,
    ok_result,
    parse_timestamp,
)
from .magento_content import MagentoContent

logger = logging.getLogger(__name__)

ASYNC_MAX_ITEMS = 5000  # Web API input limit of an asynchronous request (when enabled)
MAX_PAGE_SIZE = 300  # Web API input limit on searchCriteria pageSize (when enabled)
STORE_CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SOURCE_CODE_RE = re.compile(r"^\S+$")
ATTRIBUTE_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
TEMPLATE_PARAM_RE = re.compile(r"%(\w+)")
INPUT_LIMIT_MESSAGE = "Maximum items of type"
# Bulk operation statuses (Magento\AsynchronousOperations\Api\Data\OperationInterface).
OPERATION_COMPLETE = 1
OPERATION_OPEN = 4
# Magento's carrier codes; anything else ships as "custom" with the name as title.
CARRIER_CODES = frozenset({"ups", "usps", "fedex", "dhl", "custom"})
ORDER_STATE_STATUS = {
    "new": "pending",
    "pending_payment": "pending",
    "payment_review": "pending",
    "processing": "paid",
    "complete": "fulfilled",
    "closed": "refunded",
    "canceled": "cancelled",
}
MAGENTO_TIME = "%Y-%m-%d %H:%M:%S"
ORDER_LOOKBACK = timedelta(days=30)  # first poll of a channel without any cursor
CATALOG_FIELDS = (
    "items[id,sku,name,type_id,price,custom_attributes,"
    "extension_attributes[configurable_product_links,stock_item[qty]]],total_count"
)
# Custom attributes merchants keep a product's GTIN in (Magento has no standard one);
# the first non-empty one is the barcode.
BARCODE_ATTRIBUTES = ("gtin", "ean", "upc", "isbn", "barcode")
PRODUCT_FIELDS = (
    "items[id,sku,type_id,price,status,extension_attributes[stock_item[item_id,qty,is_in_stock]]],"
    "total_count"
)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class MagentoOptions:
    """A Magento channel's non-secret settings (``Channel.platform_config``)."""

    store_code: str = "default"  # store view in the URL: /rest/{store_code}/V1/...
    price_store_id: int = 0  # store_id of base prices: 0 = default scope
    msi: bool = True  # Multi-Source Inventory; False: legacy stockItems
    source_codes: tuple[str, ...] = (
        "default",
    )  # MSI sources pimsync writes; the first holds the stock
    stock_id: int = 1  # MSI stock whose salable quantity buyers see
    async_threshold: int = 500  # more SKUs than this in one push: async bulk (0: never)
    sync_batch_size: int = 100  # rows per synchronous call (20 when input limits are on)
    read_page_size: int = 100  # SKUs per search call
    requests_per_second: float = 0.0  # client-side pacing (0: none)
    burst: float = 0.0  # pacing burst (0: the rate, at least 1)
    bulk_poll_seconds: float = 2.0  # longest wait between two bulk status reads
    bulk_max_wait_seconds: float = 90.0  # give up waiting for a bulk after this (retryable)
    # Publishing (docs/publishing.md): the attribute set and website of new products,
    # the select attribute a pimsync option is (default: its name in lower case), and
    # the attribute holding the barcode ("" = Magento has none: not sent).
    attribute_set_id: int = 4
    website_id: int = 1
    option_attributes: tuple[tuple[str, str], ...] = ()
    barcode_attribute: str = ""


OPTION_KEYS = frozenset(MagentoOptions.__dataclass_fields__)


def _int_option(raw: Mapping[str, Any], key: str, low: int, high: int, problems: list[str]) -> Any:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{key}: a whole number from {low} to {high}")
        return None
    return value


def _number_option(raw: Mapping[str, Any], key: str, low: float, problems: list[str]) -> Any:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        problems.append(f"{key}: a number of at least {low:g}")
        return None
    return float(value)


def _parse_options(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    problems = [f"{key}: not a Magento setting" for key in sorted(set(raw) - OPTION_KEYS)]
    values: dict[str, Any] = {}
    if "store_code" in raw:
        code = raw["store_code"]
        if isinstance(code, str) and STORE_CODE_RE.fullmatch(code):
            values["store_code"] = code
        else:
            problems.append("store_code: a store view code such as default or all")
    if "msi" in raw:
        if isinstance(raw["msi"], bool):
            values["msi"] = raw["msi"]
        else:
            problems.append("msi: true or false")
    if "source_codes" in raw:
        codes = raw["source_codes"]
        if (
            isinstance(codes, list)
            and codes
            and all(isinstance(c, str) and SOURCE_CODE_RE.fullmatch(c) for c in codes)
            and len(set(codes)) == len(codes)
        ):
            values["source_codes"] = tuple(codes)
        else:
            problems.append('source_codes: a list of distinct MSI source codes, e.g. ["default"]')
    if "option_attributes" in raw:
        mapping = raw["option_attributes"]
        if isinstance(mapping, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) and ATTRIBUTE_CODE_RE.fullmatch(v)
            for k, v in mapping.items()
        ):
            values["option_attributes"] = tuple(sorted(mapping.items()))
        else:
            problems.append('option_attributes: {"<option name>": "<attribute code>"}')
    if "barcode_attribute" in raw:
        code = raw["barcode_attribute"]
        if isinstance(code, str) and (code == "" or ATTRIBUTE_CODE_RE.fullmatch(code)):
            values["barcode_attribute"] = code
        else:
            problems.append("barcode_attribute: an attribute code such as gtin, or empty")
    ranges = {
        "attribute_set_id": (1, 2**31),
        "website_id": (1, 2**31),
        "price_store_id": (0, 2**31),
        "stock_id": (1, 2**31),
        "async_threshold": (0, 10**9),
        "sync_batch_size": (1, ASYNC_MAX_ITEMS),
        "read_page_size": (1, MAX_PAGE_SIZE),
    }
    for key, (low, high) in ranges.items():
        if key in raw:
            values[key] = _int_option(raw, key, low, high, problems)
    floors = {
        "requests_per_second": 0.0,
        "burst": 0.0,
        "bulk_poll_seconds": 0.01,
        "bulk_max_wait_seconds": 0.01,
    }
    for name, floor in floors.items():
        if name in raw:
            values[name] = _number_option(raw, name, floor, problems)
    return values, problems


def platform_config_problems(raw: Any) -> list[str]:
    """What is wrong with a Magento channel's platform_config ([] when nothing)."""
    if not isinstance(raw, Mapping):
        return ["platform_config: a JSON object"]
    return _parse_options(raw)[1]


def magento_options(raw: Mapping[str, Any]) -> MagentoOptions:
    """The settings of a platform_config; PermanentError naming every problem."""
    values, problems = _parse_options(raw)
    if problems:
        raise PermanentError("invalid Magento settings: " + "; ".join(problems), code="bad_config")
    return MagentoOptions(**values)


def credentials_problems(credentials: Any) -> list[str]:
    """Magento needs the integration's access token."""
    if not isinstance(credentials, Mapping) or not credentials.get("access_token"):
        return ['credentials: {"access_token": "<integration access token>"}']
    unknown = sorted(set(credentials) - {"access_token"})
    return [f"credentials: {key} is not used by Magento" for key in unknown]


# --------------------------------------------------------------------------- helpers


def render_message(message: str, parameters: Any) -> str:
    """Magento's message with its template parameters filled: ``%1`` from a list,
    ``%name`` from an object (the REST error and price-refusal shapes)."""
    if isinstance(parameters, list):
        text = message
        for position in range(len(parameters), 0, -1):  # %10 before %1
            text = text.replace(f"%{position}", str(parameters[position - 1]))
        named = _named_parameters(message, parameters)
        return TEMPLATE_PARAM_RE.sub(lambda m: str(named.get(m.group(1), m.group(0))), text)
    if isinstance(parameters, Mapping):
        return TEMPLATE_PARAM_RE.sub(lambda m: str(parameters.get(m.group(1), m.group(0))), message)
    return message


def _named_parameters(message: str, parameters: Any) -> dict[str, Any]:
    """Parameters by template parameter name. A positional list follows the order in
    which the message first names its parameters (Magento re-indexes the
    named array it built into a list)."""
    if isinstance(parameters, Mapping):
        return dict(parameters)
    if not isinstance(parameters, list):
        return {}
    names = [n for n in dict.fromkeys(TEMPLATE_PARAM_RE.findall(message)) if not n.isdigit()]
    return dict(zip(names, parameters, strict=False))


def refused_sku(failure: Mapping[str, Any]) -> str | None:
    """The SKU a price refusal names, if it names one."""
    named = _named_parameters(str(failure.get("message", "")), failure.get("parameters"))
    sku = named.get("SKU") or named.get("sku")
    if sku is None and str(named.get("fieldName", "")).upper() == "SKU":
        sku = named.get("fieldValue")
    return None if sku in (None, "") else str(sku)


def search_criteria(
    filters: Sequence[tuple[str, str, str]],
    *,
    page_size: int,
    current_page: int = 1,
    sort: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """``searchCriteria`` query parameters; each filter is its own group (AND)."""
    params: dict[str, str] = {}
    for group, (name, value, condition) in enumerate(filters):
        prefix = f"searchCriteria[filter_groups][{group}][filters][0]"
        params[f"{prefix}[field]"] = name
        params[f"{prefix}[value]"] = value
        params[f"{prefix}[condition_type]"] = condition
    for position, (name, direction) in enumerate(sort):
        params[f"searchCriteria[sortOrders][{position}][field]"] = name
        params[f"searchCriteria[sortOrders][{position}][direction]"] = direction
    params["searchCriteria[pageSize]"] = str(page_size)
    params["searchCriteria[currentPage]"] = str(current_page)
    return params


def magento_time(value: datetime) -> str:
    """A UTC time as Magento stores and filters it: ``YYYY-MM-DD HH:MM:SS``."""
    return value.astimezone(UTC).strftime(MAGENTO_TIME)


def _number(value: Decimal) -> int | float:
    """A JSON number for a price (Magento's price fields are floats)."""
    cents = value.quantize(Decimal("0.01"))
    return int(cents) if cents == cents.to_integral_value() else float(cents)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    number = _decimal(value)
    return None if number is None else int(number)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _state_error(sku: str, error: ConnectorError) -> ListingState:
    return ListingState(
        sku=sku, price=None, quantity=None, found=False, error=item_result(sku, error)
    )


def _not_sent(error: ConnectorError) -> ConnectorError:
    return error_for_kind(
        error.kind,
        f"not sent: {error.message}",
        code=error.code,
        status=error.status,
        retry_after=error.retry_after,
    )


# --------------------------------------------------------------------------- writes


@dataclass(frozen=True)
class _Entry:
    """One SKU of a push: the caller's position, its SKUs and its request rows."""

    index: int
    sku: str  # pimsync SKU (reported back)
    channel_sku: str
    rows: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class _Write:
    """A bulk write interface: its path below V1 and the key of its array."""

    path: str
    key: str
    answers_refusals: bool  # base prices answer refused rows; source items refuse the call


PRICES = _Write("products/base-prices", "prices", answers_refusals=True)
SOURCE_ITEMS = _Write("inventory/source-items", "sourceItems", answers_refusals=False)


@dataclass
class _Stock:
    """The MSI stock buyers see: its website (for the salable export) and sources."""

    website_code: str
    source_codes: frozenset[str]


@dataclass
class _Bulk:
    uuid: str
    entries_by_operation: list[list[_Entry]] = field(default_factory=list)


class MagentoConnector(MagentoContent):
    platform = "magento"
    # The async bulk limit: the engine hands a large burst over in one call and
    # the connector picks synchronous calls or one asynchronous bulk by size.
    max_price_batch = ASYNC_MAX_ITEMS
    max_quantity_batch = ASYNC_MAX_ITEMS

    def __init__(
        self,
        config: ChannelConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.options = magento_options(config.platform_config)
        rest = f"{config.base_url.rstrip('/')}/rest/{self.options.store_code}"
        self.api = f"{rest}/V1"
        self.async_api = f"{rest}/async/bulk/V1"
        self.sync_batch = max(1, min(self.options.sync_batch_size, config.batch_size or 10**9))
        self.async_threshold = self.options.async_threshold
        self.bulk_poll_seconds = self.options.bulk_poll_seconds
        self.bulk_max_wait_seconds = self.options.bulk_max_wait_seconds
        self._sleep = sleep
        self._clock = clock
        token = str(config.credentials.get("access_token", ""))
        self.http = HttpClient(
            config,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        rate = self.options.requests_per_second
        self.pacer = TokenBucket(
            rate, self.options.burst or max(rate, 1.0), clock=clock, sleep=sleep
        )
        self._stock: _Stock | None = None

    # ------------------------------------------------------------------ transport

    def _call(self, method: str, url: str, **kwargs: Any) -> HttpResult:
        self.pacer.acquire()
        result = self.http.request(method, url, **kwargs)
        if result.status == 429:
            self.pacer.drain()
        if result.error is not None:
            return replace(result, error=self._magento_error(result, result.error))
        return result

    def _magento_error(self, result: HttpResult, error: ConnectorError) -> ConnectorError:
        """The classified error with Magento's message rendered and a telling code."""
        data = result.data
        code, message = error.code, error.message
        if result.status == 503 and not isinstance(data, Mapping):
            code = "maintenance"
            message = (
                "HTTP 503: Magento is unavailable (maintenance mode or the host is down): "
                f"{body_snippet(result.body, 120)}"
            )
        elif isinstance(data, Mapping) and isinstance(data.get("message"), str):
            raw = data["message"]
            message = f"HTTP {result.status}: {render_message(raw, data.get('parameters'))}"
            details = [
                render_message(str(e.get("message", "")), e.get("parameters"))
                for e in data.get("errors") or []
                if isinstance(e, Mapping)
            ]
            if details:
                message += " (" + "; ".join(details) + ")"
            if raw.startswith(INPUT_LIMIT_MESSAGE):
                code = "input_limit"
        return error_for_kind(
            error.kind,
            self.http.redact(message),
            code=code,
            status=error.status,
            retry_after=error.retry_after,
        )

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        return self._call(method, url, **kwargs).unwrap()

    def _use_async(self, count: int) -> bool:
        return 0 < self.async_threshold < count

    # ------------------------------------------------------------------ prices

    def push_prices(self, items: Sequence[PriceUpdate]) -> list[ItemResult]:
        results: dict[int, ItemResult] = {}
        entries = []
        for index, item in enumerate(items):
            sku = item.listing.channel_sku
            if item.price < 0 or not sku:
                results[index] = ItemResult(
                    item.listing.sku,
                    FailureKind.PERMANENT,
                    "invalid_price",
                    f"Magento takes a price of 0 or more for a SKU, not {item.price} for {sku!r}",
                )
                continue
            row = {
                "sku": sku,
                "price": _number(item.price),
                "store_id": self.options.price_store_id,
            }
            entries.append(_Entry(index, item.listing.sku, sku, (row,)))
        results.update(self._write(PRICES, entries))
        return [results[i] for i in range(len(items))]

    # ------------------------------------------------------------------ quantities

    def push_quantities(self, items: Sequence[QuantityUpdate]) -> list[ItemResult]:
        if not self.options.msi:
            return self._legacy_quantities(items)
        skus = list(dict.fromkeys(item.listing.channel_sku for item in items))
        try:
            on_hold = self._units_to_keep(skus)
        except ConnectorError as exc:
            return error_results([item.listing.sku for item in items], exc)
        primary, *others = self.options.source_codes
        entries = []
        for index, item in enumerate(items):
            sku = item.listing.channel_sku
            quantity = max(0, max(0, item.quantity) + on_hold.get(sku, 0))
            rows = [
                {
                    "sku": sku,
                    "source_code": primary,
                    "quantity": quantity,
                    "status": int(quantity > 0),
                }
            ]
            rows += [{"sku": sku, "source_code": c, "quantity": 0, "status": 0} for c in others]
            entries.append(_Entry(index, item.listing.sku, sku, tuple(rows)))
        results = self._write(SOURCE_ITEMS, entries)
        return [results[i] for i in range(len(items))]

    def _units_to_keep(self, skus: Sequence[str]) -> dict[str, int]:
        """Per SKU, what the first source must hold beyond the salable target:
        the units reserved by unshipped orders, less what the stock's sources
        that pimsync does not write hold (they sell too)."""
        stock = self._stock_info()
        ours = set(self.options.source_codes)
        keep: dict[str, int] = {}
        for chunk in _chunks(skus, self.options.read_page_size):
            items = self._search_all(
                f"{self.api}/inventory/source-items", [("sku", ",".join(chunk), "in")], len(chunk)
            )
            in_stock: dict[str, Decimal] = {}
            foreign: dict[str, Decimal] = {}
            for row in items:
                code, sku = str(row.get("source_code")), str(row.get("sku"))
                if code not in stock.source_codes or _int(row.get("status")) != 1:
                    continue
                quantity = _decimal(row.get("quantity")) or Decimal(0)
                in_stock[sku] = in_stock.get(sku, Decimal(0)) + quantity
                if code not in ours:
                    foreign[sku] = foreign.get(sku, Decimal(0)) + quantity
            salable = self._salable(chunk, stock)
            for sku in chunk:
                if sku not in salable:
                    continue  # not in the stock yet: nothing reserved
                reserved = max(Decimal(0), in_stock.get(sku, Decimal(0)) - salable[sku])
                keep[sku] = math.ceil(reserved - foreign.get(sku, Decimal(0)))
        return keep

    def _legacy_quantities(self, items: Sequence[QuantityUpdate]) -> list[ItemResult]:
        """Without MSI: one stockItems PUT per SKU (Magento has no batch for it)."""
        skus = list(dict.fromkeys(item.listing.channel_sku for item in items))
        try:
            item_ids = {
                sku: _int(_stock_item(product).get("item_id"))
                for sku, product in self._products(skus).items()
            }
        except ConnectorError as exc:
            return error_results([item.listing.sku for item in items], exc)
        results: list[ItemResult] = []
        stop: ConnectorError | None = None
        for item in items:
            sku = item.listing.channel_sku
            item_id = item_ids.get(sku)
            if stop is not None:
                results.append(item_result(item.listing.sku, stop))
                continue
            if item_id is None:
                results.append(
                    ItemResult(
                        item.listing.sku,
                        FailureKind.PERMANENT,
                        "not_found",
                        f"Magento has no product {sku!r} with a stock item",
                    )
                )
                continue
            quantity = max(0, item.quantity)
            result = self._call(
                "PUT",
                f"{self.api}/products/{quote(sku, safe='')}/stockItems/{item_id}",
                json={"stockItem": {"qty": quantity, "is_in_stock": quantity > 0}},
            )
            if result.error is None:
                results.append(ok_result(item.listing.sku, http_status=result.status))
                continue
            results.append(item_result(item.listing.sku, result.error))
            if result.error.kind in (FailureKind.RETRYABLE, FailureKind.AUTH):
                stop = _not_sent(result.error)
        return results

    # ------------------------------------------------------------------ bulk writes

    def _write(self, write: _Write, entries: Sequence[_Entry]) -> dict[int, ItemResult]:
        if self._use_async(len(entries)):
            return self._write_async(write, entries)
        return self._write_sync(write, entries)

    def _groups(self, entries: Sequence[_Entry]) -> list[list[_Entry]]:
        """Entries in calls of at most ``sync_batch`` rows (a SKU never split)."""
        groups: list[list[_Entry]] = []
        rows = 0
        for entry in entries:
            if not groups or rows + len(entry.rows) > self.sync_batch:
                groups.append([])
                rows = 0
            groups[-1].append(entry)
            rows += len(entry.rows)
        return groups

    def _write_sync(self, write: _Write, entries: Sequence[_Entry]) -> dict[int, ItemResult]:
        results: dict[int, ItemResult] = {}
        pending = self._groups(entries)
        while pending:
            group = pending.pop(0)
            try:
                results.update(self._send(write, group))
            except ConnectorError as exc:
                if exc.code == "input_limit" and self._adopt_input_limit(exc, group):
                    pending = self._groups([e for g in [group, *pending] for e in g])
                    continue
                if exc.kind is FailureKind.PERMANENT and len(group) > 1:
                    # The call was refused as a whole without naming a row: halve it.
                    half = len(group) // 2
                    pending[:0] = [group[:half], group[half:]]
                    continue
                results.update({e.index: item_result(e.sku, exc) for e in group})
                if exc.kind in (FailureKind.RETRYABLE, FailureKind.AUTH):
                    skipped = _not_sent(exc)  # throttled, down or refused: so would the rest be
                    results.update(
                        {e.index: item_result(e.sku, skipped) for g in pending for e in g}
                    )
                    break
        return results

    def _adopt_input_limit(self, error: ConnectorError, group: Sequence[_Entry]) -> bool:
        """Magento's input limits refused the array: use its maximum from now on."""
        match = re.search(r"is (\d+)", error.message)
        limit = int(match.group(1)) if match else 0
        rows = sum(len(e.rows) for e in group)
        widest = max(len(e.rows) for e in group)
        if limit < widest or limit >= rows:
            return False
        logger.warning(
            "Magento channel %s limits arrays to %d items; sending that many per call",
            self.config.channel_id,
            limit,
        )
        self.sync_batch = limit
        return True

    def _send(self, write: _Write, group: Sequence[_Entry]) -> dict[int, ItemResult]:
        """One synchronous call; raises for a failure of the whole call."""
        body = {write.key: [row for e in group for row in e.rows]}
        result = self._call("POST", f"{self.api}/{write.path}", json=body)
        data = result.unwrap()
        if not write.answers_refusals:
            return {e.index: ok_result(e.sku, http_status=result.status) for e in group}
        if not isinstance(data, list):
            raise PermanentError(
                f"{write.path} answered {body_snippet(result.body)} instead of a list",
                code="unexpected_response",
                status=result.status,
            )
        return self._refusals(write, group, data, result.status)

    def _refusals(
        self, write: _Write, group: Sequence[_Entry], refused: list[Any], status: int | None
    ) -> dict[int, ItemResult]:
        """Per SKU: saved, or refused with Magento's reason. A refusal that names
        no SKU of the call is pinned down by sending the call's SKUs one by one."""
        by_sku: dict[str, list[str]] = {}
        unattributed = []
        for failure in refused:
            if not isinstance(failure, Mapping):
                unattributed.append(str(failure))
                continue
            message = render_message(str(failure.get("message", "")), failure.get("parameters"))
            sku = refused_sku(failure)
            if sku is None and len(group) == 1:
                sku = group[0].channel_sku
            if sku is None or sku not in {e.channel_sku for e in group}:
                unattributed.append(message)
                continue
            by_sku.setdefault(sku, []).append(message)
        results: dict[int, ItemResult] = {}
        uncertain = []
        for entry in group:
            if entry.channel_sku in by_sku:
                results[entry.index] = ItemResult(
                    entry.sku,
                    FailureKind.PERMANENT,
                    "refused",
                    "; ".join(by_sku[entry.channel_sku])[:1000],
                    http_status=status,
                )
            elif unattributed:
                uncertain.append(entry)
            else:
                results[entry.index] = ok_result(entry.sku, http_status=status)
        if uncertain:
            logger.info(
                "Magento refused %d price row(s) without naming a SKU (%s); resending one by one",
                len(unattributed),
                unattributed[0][:200],
            )
            for entry in uncertain:
                results.update(self._write_sync(write, [entry]))
        return results

    # ------------------------------------------------------------------ async bulk

    def _write_async(self, write: _Write, entries: Sequence[_Entry]) -> dict[int, ItemResult]:
        """One asynchronous bulk per ASYNC_MAX_ITEMS operations; what a failed
        operation held goes again through the synchronous path."""
        results: dict[int, ItemResult] = {}
        operations = self._groups(entries)
        for start in range(0, len(operations), ASYNC_MAX_ITEMS):
            batch = operations[start : start + ASYNC_MAX_ITEMS]
            try:
                bulk = self._submit_bulk(write, batch)
                statuses = self._wait_for_bulk(bulk)
            except ConnectorError as exc:
                rest = [e for ops in operations[start:] for e in ops]
                results.update({e.index: item_result(e.sku, exc) for e in rest})
                return results
            again: list[_Entry] = []
            for operation, group in zip(statuses, bulk.entries_by_operation, strict=True):
                if operation is None or _int(operation.get("status")) != OPERATION_COMPLETE:
                    again.extend(group)
                    continue
                results.update(self._operation_result(write, group, operation))
            if again:
                logger.info(
                    "Magento bulk %s: %d SKU(s) of failed operations go again synchronously",
                    bulk.uuid,
                    len(again),
                )
                results.update(self._write_sync(write, again))
        return results

    def _submit_bulk(self, write: _Write, operations: Sequence[Sequence[_Entry]]) -> _Bulk:
        body = [{write.key: [row for e in group for row in e.rows]} for group in operations]
        result = self._call("POST", f"{self.async_api}/{write.path}", json=body)
        data = result.unwrap()
        uuid = data.get("bulk_uuid") if isinstance(data, Mapping) else None
        if not uuid:
            raise PermanentError(
                f"async {write.path} answered without a bulk_uuid: {body_snippet(result.body)}",
                code="unexpected_response",
                status=result.status,
            )
        accepted = {
            _int(item.get("id")): str(item.get("status", ""))
            for item in data.get("request_items") or []
            if isinstance(item, Mapping)
        }
        # A rejected request item never became an operation: its SKUs form a
        # trailing group no operation answers, so they go again synchronously.
        bulk = _Bulk(str(uuid))
        rejected: list[_Entry] = []
        for position, group in enumerate(operations):
            if accepted.get(position, "accepted") == "accepted":
                bulk.entries_by_operation.append(list(group))
            else:
                bulk.entries_by_operation.append([])
                rejected.extend(group)
        if rejected:
            bulk.entries_by_operation.append(rejected)
        return bulk

    def _wait_for_bulk(self, bulk: _Bulk) -> list[Mapping[str, Any] | None]:
        """Each operation's final status (in request order) once none is open;
        RetryableError when Magento's consumer has not finished in time."""
        deadline = self._clock() + self.bulk_max_wait_seconds
        wait = min(0.25, self.bulk_poll_seconds)
        while True:
            self._sleep(wait)
            data = self._json("GET", f"{self.api}/bulk/{quote(bulk.uuid, safe='')}/detailed-status")
            operations = [
                op for op in (data or {}).get("operations_list") or [] if isinstance(op, Mapping)
            ]
            if not any(_int(op.get("status")) == OPERATION_OPEN for op in operations):
                return self._operations_in_order(bulk, operations)
            if self._clock() >= deadline:
                raise RetryableError(
                    f"Magento bulk {bulk.uuid} still has open operations after "
                    f"{self.bulk_max_wait_seconds:.0f} s (is the async.operations.all "
                    "consumer running?)",
                    code="bulk_pending",
                    retry_after=self.bulk_poll_seconds,
                )
            wait = min(wait * 2, self.bulk_poll_seconds)

    @staticmethod
    def _operations_in_order(
        bulk: _Bulk, operations: Sequence[Mapping[str, Any]]
    ) -> list[Mapping[str, Any] | None]:
        """Pair operations with the request's groups by the SKUs their request
        body carries (their ``serialized_data``), else by position."""
        by_sku: dict[str, Mapping[str, Any]] = {}
        for op in operations:
            for sku in _operation_skus(op):
                by_sku[sku] = op
        paired: list[Mapping[str, Any] | None] = []
        for position, group in enumerate(bulk.entries_by_operation):
            found = next((by_sku[e.channel_sku] for e in group if e.channel_sku in by_sku), None)
            if found is None and not by_sku and position < len(operations) and group:
                found = operations[position]
            paired.append(found if group else None)
        return paired

    def _operation_result(
        self, write: _Write, group: Sequence[_Entry], operation: Mapping[str, Any]
    ) -> dict[int, ItemResult]:
        if not write.answers_refusals:
            return {e.index: ok_result(e.sku) for e in group}
        raw = operation.get("result_serialized_data")
        try:
            refused = json.loads(raw) if isinstance(raw, str) and raw else []
        except ValueError:
            refused = None
        if not isinstance(refused, list):
            return self._write_sync(write, group)  # unreadable outcome: ask again synchronously
        return self._refusals(write, group, refused, None)

    # ------------------------------------------------------------------ reads

    def _search_all(
        self, url: str, filters: Sequence[tuple[str, str, str]], size: int, **params: str
    ) -> list[Mapping[str, Any]]:
        """Every item of a search, paged by total_count (Magento answers the last
        page again for a page number past the end)."""
        items: list[Mapping[str, Any]] = []
        page = 1
        size = max(1, min(size, MAX_PAGE_SIZE))
        while True:
            query = {**search_criteria(filters, page_size=size, current_page=page), **params}
            data = self._json("GET", url, params=query)
            if not isinstance(data, Mapping) or not isinstance(data.get("items"), list):
                raise PermanentError(
                    f"search {url.rsplit('/V1/', 1)[-1]} answered without items",
                    code="unexpected_response",
                )
            items.extend(i for i in data["items"] if isinstance(i, Mapping))
            total = _int(data.get("total_count")) or 0
            if page * size >= total or not data["items"]:
                return items
            page += 1

    def _products(self, skus: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        found: dict[str, Mapping[str, Any]] = {}
        for chunk in _chunks(skus, self.options.read_page_size):
            for product in self._search_all(
                f"{self.api}/products",
                [("sku", ",".join(chunk), "in")],
                len(chunk),
                fields=PRODUCT_FIELDS,
            ):
                found[str(product.get("sku"))] = product
        return found

    def _stock_info(self) -> _Stock:
        """The stock's website and sources, read once per connector instance."""
        if self._stock is None:
            stock_id = self.options.stock_id
            stock = self._json("GET", f"{self.api}/inventory/stocks/{stock_id}") or {}
            channels = (stock.get("extension_attributes") or {}).get("sales_channels") or []
            websites = [str(c.get("code")) for c in channels if c.get("type") == "website"]
            if not websites:
                raise PermanentError(
                    f"MSI stock {stock_id} is assigned to no website: it sells nowhere",
                    code="bad_config",
                )
            links = self._search_all(
                f"{self.api}/inventory/stock-source-links",
                [("stock_id", str(stock_id), "eq")],
                MAX_PAGE_SIZE,
            )
            self._stock = _Stock(
                websites[0], frozenset(str(link.get("source_code")) for link in links)
            )
        return self._stock

    def _salable(self, skus: Sequence[str], stock: _Stock) -> dict[str, Decimal]:
        """Salable quantity per SKU (SKUs not in the stock are absent)."""
        url = (
            f"{self.api}/inventory/export-stock-salable-qty/website/"
            f"{quote(stock.website_code, safe='')}"
        )
        return {
            str(row.get("sku")): _decimal(row.get("qty")) or Decimal(0)
            for row in self._search_all(url, [("sku", ",".join(skus), "in")], len(skus))
        }

    def read_listings(self, listings: Sequence[ListingRef]) -> list[ListingState]:
        states: list[ListingState] = []
        stop: ConnectorError | None = None
        for chunk in _chunks(list(listings), self.options.read_page_size):
            if stop is not None:
                states.extend(_state_error(ref.sku, stop) for ref in chunk)
                continue
            try:
                states.extend(self._read_chunk(chunk))
            except ConnectorError as exc:
                states.extend(_state_error(ref.sku, exc) for ref in chunk)
                if exc.kind is FailureKind.AUTH:
                    stop = exc
        return states

    def _read_chunk(self, chunk: Sequence[ListingRef]) -> list[ListingState]:
        skus = list(dict.fromkeys(ref.channel_sku for ref in chunk))
        products = self._products(skus)
        salable = self._salable(skus, self._stock_info()) if self.options.msi else {}
        return [self._state(ref, products.get(ref.channel_sku), salable) for ref in chunk]

    def _state(
        self, ref: ListingRef, product: Mapping[str, Any] | None, salable: Mapping[str, Decimal]
    ) -> ListingState:
        if product is None:
            return ListingState(sku=ref.sku, price=None, quantity=None, found=False)
        if product.get("type_id") == "configurable":
            return ListingState(
                sku=ref.sku,
                price=None,
                quantity=None,
                error=ItemResult(
                    ref.sku,
                    FailureKind.PERMANENT,
                    "configurable_parent",
                    f"{ref.channel_sku} is a configurable product in Magento; list its simple "
                    "children (Link variants to a Magento configurable)",
                ),
            )
        price = _decimal(product.get("price"))
        if self.options.msi:
            quantity = salable.get(ref.channel_sku)
        else:
            quantity = _decimal(_stock_item(product).get("qty"))
        return ListingState(
            sku=ref.sku, price=price, quantity=None if quantity is None else int(quantity)
        )

    def catalog_page(self, cursor: str | None, *, page_size: int = 100) -> CatalogPage:
        """One page of ``GET /V1/products`` by entity id (up to 300) and, with MSI, the
        page's salable quantities in one export call. Configurables are not sellable:
        they come back as groups naming their children (``configurable_product_links``),
        which the caller pairs with the children wherever they are listed."""
        state = (decode_page_cursor(cursor) if cursor else None) or {}
        page = int(state.get("page") or 1)
        size = int(state.get("size") or max(1, min(page_size, MAX_PAGE_SIZE)))
        query = {
            **search_criteria([], page_size=size, current_page=page, sort=[("entity_id", "ASC")]),
            "fields": CATALOG_FIELDS,
        }
        data = self._json("GET", f"{self.api}/products", params=query)
        if not isinstance(data, Mapping) or not isinstance(data.get("items"), list):
            raise PermanentError(
                "products search answered without items", code="unexpected_response"
            )
        rows = [row for row in data["items"] if isinstance(row, Mapping) and row.get("sku")]
        groups = [
            CatalogGroup(
                product_id=str(row["sku"]),
                title=str(row.get("name") or ""),
                variant_ids=[
                    str(i)
                    for i in (row.get("extension_attributes") or {}).get(
                        "configurable_product_links"
                    )
                    or []
                ],
            )
            for row in rows
            if row.get("type_id") == "configurable"
        ]
        simple = [row for row in rows if row.get("type_id") != "configurable"]
        calls = 1
        salable: dict[str, Decimal] = {}
        if self.options.msi and simple:
            calls += 3 if self._stock is None else 1  # the stock and its sources, once
            salable = self._salable([str(r["sku"]) for r in simple], self._stock_info())
        items = [self._catalog_item(row, salable) for row in simple]
        total = _int(data.get("total_count"))
        more = total is not None and page * size < total and bool(rows)
        return CatalogPage(
            items=items,
            next_cursor=encode_page_cursor({"page": page + 1, "size": size}) if more else None,
            total=total,
            groups=groups,
            calls=calls,
        )

    def _catalog_item(self, row: Mapping[str, Any], salable: Mapping[str, Decimal]) -> CatalogItem:
        sku = str(row["sku"])
        attributes = {
            str(a.get("attribute_code")): a.get("value")
            for a in row.get("custom_attributes") or []
            if isinstance(a, Mapping)
        }
        barcode = next(
            (str(attributes[c]) for c in BARCODE_ATTRIBUTES if attributes.get(c) not in (None, "")),
            "",
        )
        quantity = salable.get(sku) if self.options.msi else _decimal(_stock_item(row).get("qty"))
        return CatalogItem(
            key=str(row.get("id") or sku),
            sku=sku,
            title=str(row.get("name") or ""),
            barcode=barcode,
            price=_decimal(row.get("price")),
            quantity=None if quantity is None else int(quantity),
            variant_id=str(row.get("id") or ""),
        )

    def read_product_variants(self, product_ref: str) -> list[ListingRef]:
        """The simple children of a configurable product (by its SKU) as listings:
        child SKU, the parent SKU as product id, the child's entity id as variant id."""
        url = f"{self.api}/configurable-products/{quote(product_ref, safe='')}/children"
        children = self._json("GET", url)
        if not isinstance(children, list):
            raise PermanentError(
                f"configurable-products/{product_ref}/children answered no list",
                code="unexpected_response",
            )
        return [
            ListingRef(
                sku=str(child["sku"]), product_id=product_ref, variant_id=str(child.get("id", ""))
            )
            for child in children
            if isinstance(child, Mapping) and child.get("sku")
        ]

    # ------------------------------------------------------------------ orders

    def orders_since(self, cursor: str | None, *, page_size: int = 100) -> OrdersPage:
        state = decode_page_cursor(cursor) if cursor else None
        if state is None:
            since = parse_timestamp(cursor) if cursor else datetime.now(UTC) - ORDER_LOOKBACK
            state = {"since": magento_time(since), "page": 1, "hwm": cursor or ""}
        size = max(1, min(page_size, MAX_PAGE_SIZE))
        page = int(state.get("page") or 1)
        query = search_criteria(
            [("updated_at", str(state["since"]), "gteq")],
            page_size=size,
            current_page=page,
            sort=[("updated_at", "ASC"), ("entity_id", "ASC")],
        )
        data = self._json("GET", f"{self.api}/orders", params=query)
        if not isinstance(data, Mapping) or not isinstance(data.get("items"), list):
            raise PermanentError("orders search answered without items", code="unexpected_response")
        orders = [self.order_from_json(row) for row in data["items"]]
        hwm = str(state.get("hwm") or "")
        for order in orders:
            if not hwm or order.updated_at > parse_timestamp(hwm):
                hwm = order.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        total = _int(data.get("total_count")) or 0
        next_cursor = None
        if orders and page * size < total:
            last = magento_time(orders[-1].updated_at)
            # Start the next page at the last time seen: an order changed while
            # we page moves to the end instead of making us skip another.
            following = (
                {"since": last, "page": 1}
                if last > state["since"]
                else {"since": last, "page": page + 1}
            )
            next_cursor = encode_page_cursor({**following, "hwm": hwm})
        return OrdersPage(orders=orders, next_cursor=next_cursor, high_water_mark=hwm or None)

    @staticmethod
    def order_from_json(row: Any) -> OrderData:
        """One order of GET /V1/orders as OrderData (a configurable line once)."""
        if not isinstance(row, Mapping):
            raise PermanentError(f"order is {row!r}", code="unexpected_response")
        try:
            items = [i for i in row.get("items") or [] if isinstance(i, Mapping)]
            children: dict[str, Mapping[str, Any]] = {}
            for item in items:
                if item.get("parent_item_id"):
                    children.setdefault(str(item["parent_item_id"]), item)
            lines = [
                _order_line(item, children.get(str(item.get("item_id"))))
                for item in items
                if not item.get("parent_item_id")
            ]
            billing = row.get("billing_address") or {}
            created = parse_timestamp(str(row["created_at"]))
            return OrderData(
                external_id=str(row["entity_id"]),
                name=str(row.get("increment_id") or row["entity_id"]),
                status=_order_status(row, items),
                financial_status=str(row.get("status") or ""),
                fulfillment_status=_shipping_state(items),
                currency=str(row.get("order_currency_code") or row.get("base_currency_code") or ""),
                total=_decimal(row.get("grand_total")) or Decimal(0),
                updated_at=parse_timestamp(str(row.get("updated_at") or row["created_at"])),
                created_at=created,
                lines=lines,
                customer_email=str(row.get("customer_email") or billing.get("email") or ""),
                customer_phone=str(billing.get("telephone") or ""),
                raw=dict(row),
            )
        except (KeyError, TypeError, ValueError, ConnectorError) as exc:
            raise PermanentError(
                f"unreadable order {body_snippet(json.dumps(row, default=str))}: {exc}",
                code="unexpected_response",
            ) from exc

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """Always False: Magento Open Source sends no webhooks, and Adobe
        Commerce's are signed with Adobe's keys, not a secret pimsync holds."""
        del headers, raw_body
        return False

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEvent:
        del headers, raw_body
        raise PermanentError(
            "Magento order changes are read by polling GET /V1/orders; Magento sends no "
            "order webhooks pimsync can verify",
            code="webhooks_unsupported",
        )

    # ------------------------------------------------------------------ order actions

    def _order(self, external_order_id: str) -> Mapping[str, Any]:
        data = self._json("GET", f"{self.api}/orders/{quote(external_order_id, safe='')}")
        if not isinstance(data, Mapping):
            raise PermanentError("order answered no object", code="unexpected_response")
        return data

    def cancel_order(self, external_order_id: str, *, reason: str = "") -> ItemResult:
        if not external_order_id.isdigit():
            return ItemResult(external_order_id, FailureKind.PERMANENT, "bad_id", "not an order id")
        result = self._call("POST", f"{self.api}/orders/{external_order_id}/cancel")
        if result.error is not None:
            return item_result(external_order_id, result.error)
        if result.data is True:
            return ok_result(external_order_id, http_status=result.status)
        try:  # false: not cancellable now, or cancelled already
            state = str(self._order(external_order_id).get("state", ""))
        except ConnectorError as exc:
            return item_result(external_order_id, exc)
        if state == "canceled":
            return ok_result(external_order_id, http_status=result.status)
        return ItemResult(
            external_order_id,
            FailureKind.PERMANENT,
            "cancel_refused",
            f"Magento does not cancel order {external_order_id} in state {state!r}"
            + (" (an invoiced order needs a credit memo)" if state == "processing" else "")
            + (f"; pimsync's reason: {reason}" if reason else ""),
            http_status=result.status,
        )

    def fulfil_order(
        self, external_order_id: str, *, tracking_number: str = "", carrier: str = ""
    ) -> ItemResult:
        if not external_order_id.isdigit():
            return ItemResult(external_order_id, FailureKind.PERMANENT, "bad_id", "not an order id")
        body: dict[str, Any] = {"items": [], "notify": False}  # no items: every open item
        if tracking_number:
            code = carrier.strip().lower()
            body["tracks"] = [
                {
                    "track_number": tracking_number,
                    "title": carrier or "Shipment",
                    "carrier_code": code if code in CARRIER_CODES else "custom",
                }
            ]
        result = self._call("POST", f"{self.api}/order/{external_order_id}/ship", json=body)
        if result.error is None:
            return ok_result(external_order_id, http_status=result.status)
        if result.error.kind is not FailureKind.PERMANENT or result.status == 404:
            return item_result(external_order_id, result.error)
        try:  # refused: shipped already is success, anything else is Magento's reason
            order = self._order(external_order_id)
        except ConnectorError as exc:
            return item_result(external_order_id, exc)
        if _shipping_state(order.get("items") or []) == "shipped":
            return ok_result(external_order_id, http_status=result.status)
        return item_result(external_order_id, result.error)

    # ------------------------------------------------------------------ connection

    def test_connection(self) -> ConnectionCheck:
        try:
            views = self._json("GET", f"{self.api}/store/storeViews")
            codes = {str(v.get("code")): v for v in views or [] if isinstance(v, Mapping)}
            if self.options.store_code not in codes and self.options.store_code != "all":
                return ConnectionCheck(
                    False, f"Magento has no store view {self.options.store_code!r}"
                )
            message = f"connected to Magento (store view {self.options.store_code})"
            if self.options.msi:
                stock = self._stock_info()
                missing = sorted(set(self.options.source_codes) - stock.source_codes)
                if missing:
                    return ConnectionCheck(
                        False,
                        f"source(s) {', '.join(missing)} are not assigned to stock "
                        f"{self.options.stock_id}",
                    )
                message += (
                    f", MSI stock {self.options.stock_id} sells on website {stock.website_code}"
                )
        except ConnectorError as exc:
            return ConnectionCheck(False, f"{exc.kind.value}: {exc.message}")
        return ConnectionCheck(True, message)


# ---------------------------------------------------------------------- order helpers


def _stock_item(product: Mapping[str, Any]) -> Mapping[str, Any]:
    """The legacy stock item a product search carries in its extension attributes."""
    return (product.get("extension_attributes") or {}).get("stock_item") or {}


def _operation_skus(operation: Mapping[str, Any]) -> list[str]:
    """The SKUs an operation's request body (in its serialized_data) writes."""
    try:
        outer = json.loads(str(operation.get("serialized_data") or ""))
        body = json.loads(outer["meta_information"])
    except (ValueError, KeyError, TypeError):
        return []
    rows = (
        next((v for v in body.values() if isinstance(v, list)), [])
        if isinstance(body, dict)
        else []
    )
    return [str(row["sku"]) for row in rows if isinstance(row, Mapping) and "sku" in row]


def _order_line(item: Mapping[str, Any], child: Mapping[str, Any] | None) -> OrderLineData:
    """A line from a top-level item; for a configurable, its simple child names
    the variant (the parent item already carries the child's SKU and the price)."""
    quantity = _int(item.get("qty_ordered")) or 0
    price = _decimal(item.get("price")) or Decimal(0)
    if not price and child is not None:
        price = _decimal(child.get("price")) or Decimal(0)
    variant = child if child is not None else item
    return OrderLineData(
        external_line_id=str(item["item_id"]),
        sku=str(item.get("sku") or ""),
        quantity=quantity,
        unit_price=price,
        external_variant_id=str(variant.get("product_id") or ""),
        external_product_id=str(item.get("product_id") or ""),
        refunded_quantity=_int(item.get("qty_refunded")) or 0,
    )


def _open_items(items: Sequence[Any]) -> list[Mapping[str, Any]]:
    return [i for i in items if isinstance(i, Mapping) and not i.get("parent_item_id")]


def _shipping_state(items: Sequence[Any]) -> str:
    """shipped | partially_shipped | unshipped, over the top-level items."""
    rows = _open_items(items)
    wanted = sum(
        (_decimal(i.get("qty_ordered")) or Decimal(0))
        - (_decimal(i.get("qty_canceled")) or Decimal(0))
        for i in rows
    )
    shipped = sum((_decimal(i.get("qty_shipped")) or Decimal(0)) for i in rows)
    if wanted > 0 and shipped >= wanted:
        return "shipped"
    return "partially_shipped" if shipped > 0 else "unshipped"


def _order_status(row: Mapping[str, Any], items: Sequence[Any]) -> str:
    """pimsync's status from Magento's state (status codes are merchant-defined)."""
    state = str(row.get("state") or "")
    if state in ("canceled", "closed"):
        return ORDER_STATE_STATUS[state]
    if _shipping_state(items) == "shipped":
        return "fulfilled"
    if state == "holded":  # on hold keeps what payment said
        paid = (_decimal(row.get("total_paid")) or Decimal(0)) > 0 or any(
            (_decimal(i.get("qty_invoiced")) or Decimal(0)) > 0 for i in _open_items(items)
        )
        return "paid" if paid else "pending"
    return ORDER_STATE_STATUS.get(state, "pending")
