"""Magento 2 / Adobe Commerce 2.4 stand-in: the REST endpoints pimsync uses, with MSI.

Under ``/magento/rest[/{store_code}]`` (``default``, ``admin`` or ``all``):

* ``POST V1/products/base-prices`` ``{"prices": [{sku, price, store_id}]}``:
  saves the valid rows and answers the refused ones ``[{message, parameters}]``
  (unknown SKU, a configurable parent or a negative price: ``Invalid attribute
  %fieldName = %fieldValue.`` with ``[field, value]``; an unknown store:
  ``Requested store is not found. Row ID: SKU = %SKU, Store ID: %storeId.``).
  Price scope is the website: store_id 0 is the default, 1 the default store view.
* ``POST V1/inventory/source-items`` ``{"sourceItems": [{sku, source_code,
  quantity, status}]}``: all or nothing; one invalid row refuses the call with
  ``Validation Failed: ...`` (400), an unknown source with ``Could not save
  Source Item``. Like Magento it stores source items of SKUs it has no product
  for. ``GET V1/inventory/source-items`` searches them.
* Salable quantity = quantity of the stock's in-stock source items minus the
  reservations of orders not shipped yet (placing an order reserves, shipping
  deducts from the sources by priority and releases, cancelling releases):
  ``GET V1/inventory/get-product-salable-quantity/{sku}/{stockId}`` and, in
  bulk, ``GET V1/inventory/export-stock-salable-qty/website/{code}``.
  ``GET V1/inventory/stocks/{id}``, ``.../stock-source-links``, ``.../sources``.
  One stock (1, website ``base``) with the sources ``default`` and ``store``.
* ``GET V1/products`` (searchCriteria, ``fields``), simple products and their
  configurable parents (a seeded row with ``group``, or a ``product_id`` other
  than its SKU, is a child of that configurable SKU);
  ``GET V1/configurable-products/{sku}/children``; legacy
  ``PUT V1/products/{sku}/stockItems/{itemId}`` (writes the default source, as
  MSI's legacy bridge does); ``GET V1/store/storeViews``.
* Async bulk: ``POST async/bulk/V1/products/base-prices`` and
  ``.../inventory/source-items`` take a list of request bodies and answer 202
  ``{bulk_uuid, request_items, errors}``; a simulated ``async.operations.all``
  consumer runs each operation ``async_start_seconds`` plus
  ``async_seconds_per_operation`` apart (on the platform clock; set
  ``consumer_running = False`` to stop it). ``GET V1/bulk/{uuid}/status`` and
  ``.../detailed-status`` answer Magento's operation statuses (1 complete, 3
  failed, 4 open) with ``serialized_data`` and ``result_serialized_data``.
* Orders: ``GET V1/orders`` (searchCriteria on updated_at & co., whole seconds,
  UTC), ``GET V1/orders/{id}``, ``POST V1/orders/{id}/cancel`` (``false`` for an
  invoiced, shipped or held order), ``.../hold``, ``.../unhold``,
  ``POST V1/order/{id}/ship`` (``items`` empty = everything, ``tracks``). A
  line of a configurable child is rendered as Magento does: a configurable
  parent item carrying the child's SKU and price, and a simple child item
  with ``parent_item_id``.

* Publishing (checked against sandbox/contracts/magento_v1.json, written from
  Magento's service contracts): ``POST V1/products`` and ``PUT V1/products/{sku}``
  (ProductRepositoryInterface::save: create, or change the fields given of the
  product with that SKU; a simple or configurable product, its name, price,
  visibility, custom attributes ``description``, ``url_key``, the select attributes
  ``size`` / ``color`` by option id and a barcode attribute ``gtin``);
  ``GET V1/products/attributes/{code}`` and ``POST .../{code}/options`` (the
  store's select attributes ``ATTRIBUTES`` and their options; a label already there
  is refused); ``GET|POST V1/configurable-products/{sku}/options[/all]`` (one
  option per attribute) and ``POST V1/configurable-products/{sku}/child`` (the child
  must have a value of each of the parent's option attributes). Images are not
  taken by URL (Magento's media API takes file contents): none are stored.

Refuses what Magento refuses for these operations: unknown body fields (``"%fieldName"
is not supported...``), missing required arrays (``"%fieldName" is required...``),
unknown searchCriteria keys, and, with input limits on (limit key ``input``:
``{"list": 20, "max_page_size": 300, "async": 5000}``; absent = off, Magento's
default), longer arrays (``Maximum items of type "%type" is %max``) and pages.

Auth: ``Authorization: Bearer <access_token>``; otherwise 401 ``The consumer
isn't authorized to access %resources.``. Errors are ``{"message",
"parameters"}``; an outage or an injected 503 answers Magento's maintenance
page (HTML), other 5xx ``Internal Error. ... Report ID: webapi-...``.

Rate limit: none by default (Magento has none). ``HOSTING_LIMITS`` is what the
benches configure: a small host's PHP-FPM pool serves about 5 REST calls/s with
bursts of 10; over it the host's limiter answers 429 with Retry-After.

Simplifications: one website (``base``), one stock; whole-order shipping
only; bulk operations and shipments live in memory (not in ``--state``).
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from .contracts.openapi_contract import Problem
from .http import ApiError, JsonDict, Request, Response, to_decimal, utcnow
from .platform import SandboxPlatform
from .searchcriteria import (
    Criteria,
    SearchError,
    apply_fields,
    parse_criteria,
    parse_fields,
    search,
    unsupported,
)
from .store import Catalog, CatalogItem, SandboxOrder

REST = r"/rest(?:/(?P<store>[a-z][a-z0-9_]*))?"
V1 = rf"{REST}/V1"
ASYNC = rf"{REST}/async/bulk/V1"
TIME = "%Y-%m-%d %H:%M:%S"
HOSTING_LIMITS: Mapping[str, Mapping[str, float]] = {"default": {"rate": 5.0, "burst": 10.0}}

STORE_VIEWS: list[JsonDict] = [
    {
        "id": 0,
        "code": "admin",
        "name": "Admin",
        "website_id": 0,
        "store_group_id": 0,
        "is_active": 1,
    },
    {
        "id": 1,
        "code": "default",
        "name": "Default Store View",
        "website_id": 1,
        "store_group_id": 1,
        "is_active": 1,
    },
]
STORE_CODES = {"admin": 0, "default": 1, "all": 0}
PUBLISH_CONTRACT = "magento_v1.json"
# The store's select attributes used by configurable products: code -> attribute id.
ATTRIBUTES = {"color": 93, "size": 144}
# Custom attributes a product may be given (other codes are refused).
PRODUCT_ATTRIBUTES = frozenset({"description", "short_description", "url_key", "gtin", *ATTRIBUTES})
WEBSITE = "base"
STOCK_ID = 1
SOURCES: dict[str, str] = {"default": "Default Source", "store": "City store"}
STOCK_SOURCES = ("default", "store")  # priority order

PRICE_KEYS = frozenset({"sku", "price", "store_id", "extension_attributes"})
SOURCE_ITEM_KEYS = frozenset({"sku", "source_code", "quantity", "status", "extension_attributes"})
STOCK_ITEM_KEYS = frozenset(
    {
        "item_id",
        "product_id",
        "stock_id",
        "qty",
        "is_in_stock",
        "is_qty_decimal",
        "manage_stock",
        "use_config_manage_stock",
        "min_qty",
        "backorders",
        "notify_stock_qty",
        "extension_attributes",
    }
)
SHIP_KEYS = frozenset(
    {
        "items",
        "notify",
        "appendComment",
        "append_comment",
        "comment",
        "tracks",
        "packages",
        "arguments",
    }
)
TRACK_KEYS = frozenset({"track_number", "title", "carrier_code", "extension_attributes"})
SHIP_ITEM_KEYS = frozenset({"order_item_id", "qty", "extension_attributes"})

TOPICS = {
    "prices": "async.magento.catalog.api.basepricestorageinterface.update.post",
    "sourceItems": "async.magento.inventoryapi.api.sourceitemssaveinterface.execute.post",
}
HANDLERS = {
    "prices": "Magento\\Catalog\\Model\\Product\\Price\\BasePriceStorage\\Interceptor::update",
    "sourceItems": (
        "Magento\\Inventory\\Model\\SourceItem\\Command\\SourceItemsSave\\Interceptor::execute"
    ),
}
RESOURCES = {
    "basePrices": "Magento_Catalog::catalog",
    "productsSearch": "Magento_Catalog::products",
    "configurableChildren": "Magento_Catalog::products",
    "legacyStockItem": "Magento_CatalogInventory::cataloginventory",
    "sourceItemsSave": "Magento_InventoryApi::stock_source_item_assign",
    "sourceItemsSearch": "Magento_InventoryApi::source",
    "sources": "Magento_InventoryApi::source",
    "stock": "Magento_InventoryApi::stock",
    "stockSourceLinks": "Magento_InventoryApi::stock_source_link",
    "salableQty": "Magento_InventorySalesApi::stock",
    "exportSalableQty": "Magento_InventoryApi::stock",
    "asyncBasePrices": "Magento_Catalog::catalog",
    "asyncSourceItems": "Magento_InventoryApi::stock_source_item_assign",
    "bulkStatus": "Magento_AsynchronousOperations::system_magento_logging_bulk_operations",
    "bulkDetailedStatus": "Magento_AsynchronousOperations::system_magento_logging_bulk_operations",
    "ordersSearch": "Magento_Sales::actions_view",
    "orderGet": "Magento_Sales::actions_view",
    "orderCancel": "Magento_Sales::cancel",
    "orderHold": "Magento_Sales::hold",
    "orderUnhold": "Magento_Sales::unhold",
    "orderShip": "Magento_Sales::ship",
    "storeViews": "Magento_Backend::store",
    "productSave": "Magento_Catalog::products",
    "productUpdate": "Magento_Catalog::products",
    "attributeGet": "Magento_Catalog::attributes_attributes",
    "attributeOptionAdd": "Magento_Catalog::attributes_attributes",
    "configurableOptionsList": "Magento_Catalog::products",
    "configurableOptionSave": "Magento_Catalog::products",
    "configurableChildAdd": "Magento_Catalog::products",
}
NOT_FOUND_PRODUCT = (
    "The product that was requested doesn't exist. Verify the product and try again."
)
MAINTENANCE_PAGE = (
    "<!doctype html><html><head><title>Error 503: Service Unavailable</title></head><body>"
    "<h1>Service Temporarily Unavailable</h1><p>The server is temporarily unable to service "
    "your request due to maintenance downtime or capacity problems. Please try again later."
    "</p></body></html>"
)


# (method, path pattern, handler method, route name); every route shares the host's limit.
ROUTES = (
    ("POST", rf"{V1}/products/base-prices", "base_prices", "basePrices"),
    ("GET", rf"{V1}/products", "products_search", "productsSearch"),
    (
        "GET",
        rf"{V1}/configurable-products/(?P<sku>[^/]+)/children",
        "configurable_children",
        "configurableChildren",
    ),
    (
        "PUT",
        rf"{V1}/products/(?P<sku>[^/]+)/stockItems/(?P<item>[^/]+)",
        "legacy_stock_item",
        "legacyStockItem",
    ),
    ("POST", rf"{V1}/inventory/source-items", "source_items_save", "sourceItemsSave"),
    ("GET", rf"{V1}/inventory/source-items", "source_items_search", "sourceItemsSearch"),
    ("GET", rf"{V1}/inventory/sources", "sources_search", "sources"),
    ("GET", rf"{V1}/inventory/stocks/(?P<stock>\d+)", "stock_get", "stock"),
    ("GET", rf"{V1}/inventory/stock-source-links", "stock_source_links", "stockSourceLinks"),
    (
        "GET",
        rf"{V1}/inventory/get-product-salable-quantity/(?P<sku>[^/]+)/(?P<stock>\d+)",
        "salable_quantity",
        "salableQty",
    ),
    (
        "GET",
        rf"{V1}/inventory/export-stock-salable-qty/(?P<type>[^/]+)/(?P<code>[^/]+)",
        "export_salable",
        "exportSalableQty",
    ),
    ("POST", rf"{ASYNC}/products/base-prices", "async_base_prices", "asyncBasePrices"),
    ("POST", rf"{ASYNC}/inventory/source-items", "async_source_items", "asyncSourceItems"),
    ("GET", rf"{V1}/bulk/(?P<uuid>[^/]+)/status", "bulk_status", "bulkStatus"),
    (
        "GET",
        rf"{V1}/bulk/(?P<uuid>[^/]+)/detailed-status",
        "bulk_detailed_status",
        "bulkDetailedStatus",
    ),
    ("GET", rf"{V1}/orders", "orders_search", "ordersSearch"),
    ("GET", rf"{V1}/orders/(?P<id>\d+)", "order_get", "orderGet"),
    ("POST", rf"{V1}/orders/(?P<id>\d+)/cancel", "order_cancel", "orderCancel"),
    ("POST", rf"{V1}/orders/(?P<id>\d+)/hold", "order_hold", "orderHold"),
    ("POST", rf"{V1}/orders/(?P<id>\d+)/unhold", "order_unhold", "orderUnhold"),
    ("POST", rf"{V1}/order/(?P<id>\d+)/ship", "order_ship", "orderShip"),
    ("GET", rf"{V1}/store/storeViews", "store_views", "storeViews"),
    ("POST", rf"{V1}/products", "product_save", "productSave"),
    ("PUT", rf"{V1}/products/(?P<sku>[^/]+)", "product_update", "productUpdate"),
    ("GET", rf"{V1}/products/attributes/(?P<code>[^/]+)", "attribute_get", "attributeGet"),
    (
        "POST",
        rf"{V1}/products/attributes/(?P<code>[^/]+)/options",
        "attribute_option_add",
        "attributeOptionAdd",
    ),
    (
        "GET",
        rf"{V1}/configurable-products/(?P<sku>[^/]+)/options/all",
        "configurable_options_list",
        "configurableOptionsList",
    ),
    (
        "POST",
        rf"{V1}/configurable-products/(?P<sku>[^/]+)/options",
        "configurable_option_save",
        "configurableOptionSave",
    ),
    (
        "POST",
        rf"{V1}/configurable-products/(?P<sku>[^/]+)/child",
        "configurable_child_add",
        "configurableChildAdd",
    ),
)


def magento_error(status: int, message: str, parameters: Any = None, **extra: Any) -> Response:
    body: JsonDict = {"message": message}
    if parameters:
        body["parameters"] = parameters
    body.update(extra)
    return Response.json(status, body)


def refuse(status: int, message: str, parameters: Any = None, **extra: Any) -> ApiError:
    return ApiError(magento_error(status, message, parameters, **extra))


def not_supported(name: str) -> ApiError:
    error = unsupported(name)
    return refuse(400, error.message, error.parameters)


def required(name: str) -> ApiError:
    return refuse(400, '"%fieldName" is required. Enter and try again.', {"fieldName": name})


def mtime(value: Any) -> str:
    return value.strftime(TIME)


def _float(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def _number(value: Any, type_name: str) -> Decimal:
    """A numeric body value, as Magento's type juggling reads it (numbers and numeric strings)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise refuse(
            400,
            'The "%value" value\'s type is invalid. The "%type" type was expected. Verify and '
            "try again.",
            {"value": str(value), "type": type_name},
        )
    try:
        return to_decimal(value)
    except ValueError:
        raise refuse(
            400,
            'The "%value" value\'s type is invalid. The "%type" type was expected. Verify and '
            "try again.",
            {"value": str(value), "type": type_name},
        ) from None


@dataclass
class _Operation:
    key: int
    kind: str  # "prices" | "sourceItems"
    body: JsonDict
    ready_at: float
    status: int = 4
    result_message: str | None = None
    result_serialized_data: str | None = None
    error_code: int | None = None

    def to_json(self, bulk_uuid: str, *, detailed: bool) -> JsonDict:
        data: JsonDict = {"id": self.key}
        if detailed:
            data.update(
                bulk_uuid=bulk_uuid,
                topic_name=TOPICS[self.kind],
                serialized_data=json.dumps(
                    {
                        "entity_id": None,
                        "entity_link": "",
                        "meta_information": json.dumps(self.body),
                    }
                ),
                result_serialized_data=self.result_serialized_data,
            )
        data.update(
            status=self.status, result_message=self.result_message, error_code=self.error_code
        )
        return data


@dataclass
class _Bulk:
    uuid: str
    kind: str
    started: str
    operations: list[_Operation] = field(default_factory=list)


class MagentoCatalog(Catalog):
    """The sellable (simple) products; a person's edit in the console goes
    through the platform so sources and prices stay consistent."""

    def __init__(self, lock: Any, platform: MagentoSandbox) -> None:
        super().__init__(lock)
        self._platform = platform

    def set_values(
        self,
        sku: str,
        *,
        price: Decimal | None = None,
        quantity: int | None = None,
        compare_at_price: Decimal | None = None,
        clear_compare_at: bool = False,
    ) -> CatalogItem:
        with self._lock:
            item = super().set_values(
                sku,
                compare_at_price=compare_at_price,
                clear_compare_at=clear_compare_at,
            )
            self._platform.console_edit(sku, price=price, quantity=quantity)
            return item

    def adjust_quantity(self, sku: str, delta: int) -> None:
        """Orders reserve (placing), release (cancelling) or deduct (shipping)
        through the platform's order hooks, not as a plain quantity change."""
        del sku, delta


class MagentoSandbox(SandboxPlatform):
    name = "magento"
    default_limits: ClassVar[Mapping[str, Mapping[str, float]]] = {}
    contracts: ClassVar[Mapping[str, str]] = dict.fromkeys(
        (
            "productSave",
            "productUpdate",
            "attributeGet",
            "attributeOptionAdd",
            "configurableOptionsList",
            "configurableOptionSave",
            "configurableChildAdd",
        ),
        PUBLISH_CONTRACT,
    )
    default_credentials: ClassVar[Mapping[str, str]] = {"access_token": "sandbox-magento-token"}
    # The simulated async.operations.all consumer (tests change these on the object).
    async_start_seconds = 0.5
    async_seconds_per_operation = 0.02

    def __init__(self, **kwargs: Any) -> None:
        self.parents: dict[str, int] = {}  # configurable SKU -> entity id
        self.prices: dict[str, dict[int, Decimal]] = {}  # sku -> store_id -> price
        self.sources: dict[str, dict[str, list[Any]]] = {}  # sku -> source -> [qty, status]
        self.invoiced: set[str] = set()
        self.shipped: set[str] = set()
        self.held: set[str] = set()
        self.child_items: dict[str, int] = {}  # order line id -> its simple child item id
        self.shipments: dict[str, list[JsonDict]] = {}
        self.bulks: dict[str, _Bulk] = {}
        # Select attributes: code -> {label: option id}; configurable SKU -> its options.
        self.attribute_options: dict[str, dict[str, str]] = {code: {} for code in ATTRIBUTES}
        self.configurable_options: dict[str, list[JsonDict]] = {}
        self.consumer_running = True
        self._reservations: dict[str, Decimal] | None = None
        super().__init__(**kwargs)
        self.catalog = MagentoCatalog(self.lock, self)

    # ------------------------------------------------------------------ routes

    def register_routes(self) -> None:
        for method, pattern, handler, name in ROUTES:
            self.add_route(method, pattern, getattr(self, handler), name=name)

    # ------------------------------------------------------------------ hooks

    def handle(self, request: Request) -> Response:
        self.run_consumer()
        route = self.match(request)
        store = request.params.get("store") if route is not None else None
        if store is not None and store not in STORE_CODES:
            return magento_error(
                400, "The store that was requested wasn't found. Verify the store and try again."
            )
        try:
            return super().handle(request)
        except SearchError as exc:
            return magento_error(400, exc.message, exc.parameters)

    def check_auth(self, request: Request) -> Response | None:
        token = self.credentials.get("access_token", "")
        given = request.header("Authorization")
        if token and given == f"Bearer {token}":
            return None
        resource = RESOURCES.get(request.route_name, "Magento_Backend::admin")
        return magento_error(
            401, "The consumer isn't authorized to access %resources.", {"resources": resource}
        )

    def error_response(self, status: int, code: str, message: str) -> Response:
        if status == 503:
            return Response.text(503, MAINTENANCE_PAGE, "text/html")
        if status >= 500:
            report = uuid.uuid4().hex[:13]
            return magento_error(
                status,
                "Internal Error. Details are available in Magento log file. "
                f"Report ID: webapi-{report}",
            )
        if status == 401:
            return magento_error(
                401,
                "The consumer isn't authorized to access %resources.",
                {"resources": "Magento_Backend::admin"},
            )
        if code == "not_found":
            return magento_error(404, "Request does not match any route.")
        return magento_error(status, message)

    def refusal_response(self, problems: Any, request: Request) -> Response:
        """The first problem as Magento's ServiceInputProcessor words it."""
        problem: Problem = problems[0]
        field_name = problem.path_parts[-1] if problem.path_parts else problem.name
        if problem.message.startswith("unknown field(s) "):
            field_name = problem.message.removeprefix("unknown field(s) ").split(", ")[0]
            return magento_error(
                400,
                '"%fieldName" is not supported. Correct the field name and try again.',
                {"fieldName": field_name},
            )
        if problem.message.endswith("is a required property"):
            field_name = problem.message.split("'")[1]
            return magento_error(
                400, '"%fieldName" is required. Enter and try again.', {"fieldName": field_name}
            )
        return magento_error(
            400,
            'The "%value" value\'s type is invalid. The "%type" type was expected. Verify and '
            "try again.",
            {"value": str(problem.value), "type": problem.message},
        )

    def rate_limited_response(self, wait_seconds: float, request: Request) -> Response:
        response = Response.text(
            429,
            "<html><head><title>429 Too Many Requests</title></head><body><h1>429 Too Many "
            "Requests</h1></body></html>",
            "text/html",
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(wait_seconds)))
        return response

    def assign_ids(self, sku: str, ids: Mapping[str, str], group: str) -> dict[str, str]:
        result = dict(ids)
        parent = group or result.get("product_id", "")
        if parent and parent != sku:
            result["product_id"] = parent
            with self.lock:
                if parent not in self.parents:
                    self.parents[parent] = self.next_id()
        else:
            result.pop("product_id", None)
        result.setdefault("variant_id", str(self.next_id()))
        return result

    def seed(self, rows: Iterable[Mapping[str, Any]]) -> list[CatalogItem]:
        """Seeded quantity goes to the default source, the price to the default scope."""
        items = super().seed(rows)
        with self.lock:
            for item in items:
                self.prices[item.sku] = {0: item.price}
                self.sources[item.sku] = {"default": [Decimal(max(0, item.quantity)), 1]}
                self._refresh(item.sku)
        return items

    def reset(self) -> None:
        with self.lock:
            self.attribute_options = {code: {} for code in ATTRIBUTES}
            for store in (
                self.configurable_options,
                self.parents,
                self.prices,
                self.sources,
                self.child_items,
                self.shipments,
                self.bulks,
            ):
                store.clear()
            for ids in (self.invoiced, self.shipped, self.held):
                ids.clear()
            self.consumer_running = True
            self._reservations = None
        super().reset()

    def dump_extra(self) -> JsonDict:
        return {
            "parents": self.parents,
            "prices": {s: {str(k): str(v) for k, v in p.items()} for s, p in self.prices.items()},
            "sources": {
                sku: {code: [str(q), int(st)] for code, (q, st) in rows.items()}
                for sku, rows in self.sources.items()
            },
            "invoiced": sorted(self.invoiced),
            "shipped": sorted(self.shipped),
            "held": sorted(self.held),
            "child_items": self.child_items,
            "attribute_options": self.attribute_options,
            "configurable_options": self.configurable_options,
        }

    def load_extra(self, state: Mapping[str, Any]) -> None:
        self.parents = {str(k): int(v) for k, v in (state.get("parents") or {}).items()}
        self.prices = {
            sku: {int(k): Decimal(v) for k, v in prices.items()}
            for sku, prices in (state.get("prices") or {}).items()
        }
        self.sources = {
            sku: {code: [Decimal(q), int(st)] for code, (q, st) in rows.items()}
            for sku, rows in (state.get("sources") or {}).items()
        }
        self.invoiced = set(state.get("invoiced") or [])
        self.shipped = set(state.get("shipped") or [])
        self.held = set(state.get("held") or [])
        self.child_items = {str(k): int(v) for k, v in (state.get("child_items") or {}).items()}
        self.attribute_options = {code: {} for code in ATTRIBUTES} | dict(
            state.get("attribute_options") or {}
        )
        self.configurable_options = dict(state.get("configurable_options") or {})
        self._reservations = None

    # ------------------------------------------------------------------ stock maths

    def reserved(self, sku: str) -> Decimal:
        """Units of orders placed but not shipped, cancelled or refunded (MSI reservations)."""
        if self._reservations is None:  # summed once per change of the orders
            totals: dict[str, Decimal] = {}
            for order in self.orders.all():
                if order.stock_adjusted and order.status in ("pending", "paid"):
                    for line in order.lines:
                        totals[line.sku] = totals.get(line.sku, Decimal(0)) + line.quantity
            self._reservations = totals
        return self._reservations.get(sku, Decimal(0))

    def _in_stock(self, sku: str) -> Decimal | None:
        """Quantity of the stock's in-stock sources; None if the SKU has none in it."""
        rows = self.sources.get(sku, {})
        linked = [rows[code] for code in STOCK_SOURCES if code in rows]
        if not linked:
            return None
        return sum((q for q, status in linked if status == 1), Decimal(0))

    def salable(self, sku: str) -> Decimal | None:
        in_stock = self._in_stock(sku)
        return None if in_stock is None else in_stock - self.reserved(sku)

    def store_price(self, sku: str, store_id: int) -> Decimal:
        prices = self.prices.get(sku, {})
        return prices.get(store_id, prices.get(0, Decimal(0)))

    def _refresh(self, sku: str) -> None:
        """The catalog shows what buyers of the default store view see."""
        item = self.catalog.get(sku)
        if item is None:
            return
        salable = self.salable(sku)
        item.quantity = int(salable) if salable is not None else 0
        item.price = self.store_price(sku, 1)
        item.updated_at = utcnow()

    def console_edit(self, sku: str, *, price: Decimal | None, quantity: int | None) -> None:
        """A person editing the product: the default price, and the default
        source's quantity so that the salable quantity becomes ``quantity``."""
        with self.lock:
            if price is not None:
                self.prices[sku] = {0: price}
            if quantity is not None:
                rows = self.sources.setdefault(sku, {})
                others = sum(
                    (q for code, (q, st) in rows.items() if code != "default" and st == 1),
                    Decimal(0),
                )
                stock = max(Decimal(0), quantity + self.reserved(sku) - others)
                rows["default"] = [stock, int(stock > 0)]
            self._refresh(sku)

    # ------------------------------------------------------------------ input

    def _limit(self, name: str) -> int | None:
        value = self.limits.get("input", {}).get(name)
        return None if value is None else int(value)

    def _check_list(self, rows: list[Any], type_name: str, *, limit_name: str = "list") -> None:
        limit = self._limit(limit_name)
        if limit is not None and len(rows) > limit:
            raise refuse(
                400, 'Maximum items of type "%type" is %max', {"type": type_name, "max": limit}
            )

    def _body(
        self, request: Request, key: str, allowed: frozenset[str], type_name: str
    ) -> list[JsonDict]:
        """The array of a body ``{key: [...]}``, checked as Magento's input processor does."""
        body = request.json()
        return self._rows(body, key, allowed, type_name)

    def _rows(
        self,
        body: Any,
        key: str,
        allowed: frozenset[str],
        type_name: str,
        *,
        limit_name: str = "list",
    ) -> list[JsonDict]:
        if not isinstance(body, dict):
            raise refuse(400, "Invalid request body: an object was expected.")
        for name in body:
            if name != key:
                raise not_supported(name)
        if key not in body:
            raise required(key)
        rows = body[key]
        if not isinstance(rows, list):
            raise refuse(
                400,
                'The "%value" value\'s type is invalid. The "%type" type was expected. '
                "Verify and try again.",
                {"value": str(rows), "type": f"{type_name}[]"},
            )
        self._check_list(rows, type_name, limit_name=limit_name)
        for row in rows:
            if not isinstance(row, dict):
                raise refuse(400, "Invalid request body: %1 items must be objects.", [key])
            for name in row:
                if name not in allowed:
                    raise not_supported(name)
        return rows

    # ------------------------------------------------------------------ prices

    def base_prices(self, request: Request) -> Response:
        rows = self._body(
            request, "prices", PRICE_KEYS, "\\Magento\\Catalog\\Api\\Data\\BasePriceInterface"
        )
        typed = [self._price_row(row) for row in rows]
        with self.lock:
            return Response.json(200, self._apply_prices(typed))

    def _price_row(self, row: Mapping[str, Any]) -> tuple[str, Decimal | None, int | None]:
        price = None if row.get("price") is None else _number(row["price"], "float")
        store = None if row.get("store_id") is None else int(_number(row["store_id"], "int"))
        return str(row.get("sku") or ""), price, store

    def _apply_prices(self, rows: list[tuple[str, Decimal | None, int | None]]) -> list[JsonDict]:
        """Saves the valid rows; answers the refused ones as Magento does."""
        failed: list[JsonDict] = []
        stores = {view["id"] for view in STORE_VIEWS}
        for sku, price, store in rows:
            item = self.catalog.get(sku)
            problems = []
            if item is None or self.faults.item_fails(sku):
                if item is not None:
                    self.counters.record_fault("item")
                problems.append(
                    {
                        "message": "Invalid attribute %fieldName = %fieldValue.",
                        "parameters": ["SKU", sku],
                    }
                )
            if price is None or price < 0:
                problems.append(
                    {
                        "message": "Invalid attribute %fieldName = %fieldValue.",
                        "parameters": ["Price", "" if price is None else str(price)],
                    }
                )
            if store not in stores:
                problems.append(
                    {
                        "message": "Requested store is not found. Row ID: SKU = %SKU, Store ID: "
                        "%storeId.",
                        "parameters": [sku, "" if store is None else str(store)],
                    }
                )
            if problems or price is None or store is None:
                failed.extend(problems)
                continue
            self.prices.setdefault(sku, {})[store] = price
            self._refresh(sku)
            self.counters.count_items("price", 1)
        return failed

    # ------------------------------------------------------------------ source items

    def source_items_save(self, request: Request) -> Response:
        rows = self._body(
            request,
            "sourceItems",
            SOURCE_ITEM_KEYS,
            "\\Magento\\InventoryApi\\Api\\Data\\SourceItemInterface",
        )
        with self.lock:
            self._save_source_items(rows)
        return Response.json(200, [])

    def _save_source_items(self, rows: list[JsonDict]) -> None:
        """All or nothing, as SourceItemsSaveHandler: validate every row, then save."""
        if not rows:
            raise refuse(400, "Input data is empty")
        errors: list[JsonDict] = []
        for row in rows:
            errors.extend(self._source_item_errors(row))
        if errors:
            first = errors[0]
            text = first["message"].replace("%field", str(first["parameters"]["field"]))
            raise refuse(400, f"Validation Failed: {text}", errors=errors)
        for row in rows:
            if row["source_code"] not in SOURCES or self.faults.item_fails(str(row["sku"])):
                if row["source_code"] in SOURCES:
                    self.counters.record_fault("item")
                raise refuse(400, "Could not save Source Item")
        for row in rows:
            quantity = to_decimal(row["quantity"])
            self.sources.setdefault(row["sku"], {})[row["source_code"]] = [
                quantity,
                int(row["status"]),
            ]
            self.counters.count_items("quantity", 1)
        for sku in {row["sku"] for row in rows}:
            self._refresh(sku)

    @staticmethod
    def _source_item_errors(row: Mapping[str, Any]) -> list[JsonDict]:
        errors = []
        sku = row.get("sku")
        if not isinstance(sku, str) or not sku.strip():
            errors.append({"message": '"%field" can not be empty.', "parameters": {"field": "sku"}})
        elif sku != sku.strip():
            errors.append(
                {
                    "message": '"%field" can not contain leading or trailing spaces.',
                    "parameters": {"field": "sku"},
                }
            )
        code = row.get("source_code")
        if not isinstance(code, str) or not code.strip() or any(c.isspace() for c in code):
            errors.append(
                {"message": '"%field" can not be empty.', "parameters": {"field": "source_code"}}
            )
        for name in ("quantity", "status"):
            value = row.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                errors.append(
                    {"message": '"%field" should be numeric.', "parameters": {"field": name}}
                )
        if isinstance(row.get("status"), int | float) and row.get("status") not in (0, 1):
            errors.append(
                {"message": '"%field" should a known status.', "parameters": {"field": "status"}}
            )
        return errors

    def _source_item_rows(self) -> list[JsonDict]:
        return [
            {"sku": sku, "source_code": code, "quantity": _float(q), "status": status}
            for sku, rows in sorted(self.sources.items())
            for code, (q, status) in rows.items()
        ]

    def _search(
        self, request: Request, rows: list[JsonDict], searchable: frozenset[str]
    ) -> JsonDict:
        criteria = parse_criteria(request.query)
        return search(
            rows, criteria, searchable=searchable, max_page_size=self._limit("max_page_size")
        )

    def source_items_search(self, request: Request) -> Response:
        with self.lock:
            rows = self._source_item_rows()
        keys = frozenset({"sku", "source_code", "quantity", "status"})
        return Response.json(200, self._search(request, rows, keys))

    def sources_search(self, request: Request) -> Response:
        rows = [
            {
                "source_code": code,
                "name": name,
                "enabled": True,
                "country_id": "US",
                "postcode": "10001",
            }
            for code, name in SOURCES.items()
        ]
        return Response.json(
            200, self._search(request, rows, frozenset({"source_code", "enabled"}))
        )

    def stock_get(self, request: Request) -> Response:
        if int(request.params["stock"]) != STOCK_ID:
            return magento_error(
                404, 'Stock with id "%value" does not exist.', {"value": request.params["stock"]}
            )
        return Response.json(
            200,
            {
                "stock_id": STOCK_ID,
                "name": "Default Stock",
                "extension_attributes": {"sales_channels": [{"type": "website", "code": WEBSITE}]},
            },
        )

    def stock_source_links(self, request: Request) -> Response:
        rows = [
            {"stock_id": STOCK_ID, "source_code": code, "priority": position}
            for position, code in enumerate(STOCK_SOURCES, start=1)
        ]
        keys = frozenset({"stock_id", "source_code", "priority"})
        return Response.json(200, self._search(request, rows, keys))

    def salable_quantity(self, request: Request) -> Response:
        sku = request.params["sku"]
        if int(request.params["stock"]) != STOCK_ID:
            return magento_error(
                404, 'Stock with id "%value" does not exist.', {"value": request.params["stock"]}
            )
        with self.lock:
            if self.catalog.get(sku) is None:
                return magento_error(404, NOT_FOUND_PRODUCT)
            salable = self.salable(sku)
        return Response.json(200, _float(salable if salable is not None else Decimal(0)))

    def export_salable(self, request: Request) -> Response:
        if request.params["type"] != "website":
            return magento_error(
                400, "Sales channel type %1 is not supported", [request.params["type"]]
            )
        if request.params["code"] != WEBSITE:
            return magento_error(
                404,
                "No such entity with %fieldName = %fieldValue",
                {"fieldName": "code", "fieldValue": request.params["code"]},
            )
        criteria = parse_criteria(request.query)
        with self.lock:
            found = search(
                self._product_rows(criteria),
                criteria,
                searchable=PRODUCT_FILTERS,
                max_page_size=self._limit("max_page_size"),
            )
            items = []
            for product in found["items"]:
                sku = product["sku"]
                if product["type_id"] == "configurable":
                    continue  # a composite product has no source items
                salable = self.salable(sku)
                if salable is None:
                    continue  # not assigned to the stock
                items.append({"sku": sku, "qty": _float(salable), "is_salable": salable > 0})
        # Magento counts the page's items, not the matches.
        return Response.json(
            200, {"items": items, "search_criteria": criteria.echo(), "total_count": len(items)}
        )

    def legacy_stock_item(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise refuse(400, "Invalid request body: an object was expected.")
        for name in body:
            if name != "stockItem":
                raise not_supported(name)
        if "stockItem" not in body:
            raise required("stockItem")
        item_body = body["stockItem"]
        if not isinstance(item_body, dict):
            raise refuse(400, "Invalid request body: stockItem must be an object.")
        for name in item_body:
            if name not in STOCK_ITEM_KEYS:
                raise not_supported(name)
        sku = request.params["sku"]
        with self.lock:
            item = self.catalog.get(sku)
            if item is None:
                return magento_error(404, NOT_FOUND_PRODUCT)
            row = self.sources.setdefault(sku, {}).setdefault("default", [Decimal(0), 0])
            if "qty" in item_body:
                row[0] = _number(item_body["qty"], "float")
            if "is_in_stock" in item_body:
                row[1] = int(bool(item_body["is_in_stock"]))
            self._refresh(sku)
            self.counters.count_items("quantity", 1)
            return Response.json(200, int(item.ids["variant_id"]))

    # ------------------------------------------------------------------ products

    def _product_rows(self, criteria: Criteria | None = None) -> list[JsonDict]:
        """Every product as a search row; with criteria that name SKUs (``sku in``
        or ``eq`` alone in a group), only those: a page costs its SKUs, not the catalog.
        The search still applies every filter, so the answer is the same."""
        skus = _named_skus(criteria) if criteria is not None else None
        if skus is None:
            items = self.catalog.items()
            parents = list(self.parents.items())
        else:
            items = [item for sku in skus if (item := self.catalog.get(sku)) is not None]
            parents = [(sku, self.parents[sku]) for sku in skus if sku in self.parents]
        rows = [
            {
                "entity_id": int(item.ids["variant_id"]),
                "sku": item.sku,
                "type_id": "simple",
                "_item": item,
            }
            for item in items
        ]
        rows += [
            {"entity_id": entity_id, "sku": sku, "type_id": "configurable", "_item": None}
            for sku, entity_id in parents
        ]
        rows.sort(key=lambda row: row["entity_id"])
        return rows

    def _children(self, parent: str) -> list[CatalogItem]:
        return sorted(
            (i for i in self.catalog.items() if i.ids.get("product_id") == parent),
            key=lambda i: int(i.ids["variant_id"]),
        )

    def product_json(self, row: Mapping[str, Any], store_id: int) -> JsonDict:
        item: CatalogItem | None = row["_item"]
        stamp = mtime(item.updated_at if item else utcnow())
        data: JsonDict = {
            "id": row["entity_id"],
            "sku": row["sku"],
            "name": self.products.get(row["sku"], {}).get("title") or self._product_name(row),
            "attribute_set_id": 4,
            "status": 1,
            "type_id": row["type_id"],
            "created_at": stamp,
            "updated_at": stamp,
            "custom_attributes": [],
        }
        if item is None:
            children = self._children(row["sku"])
            data.update(price=0, visibility=4)
            data["extension_attributes"] = {
                "website_ids": [1],
                "configurable_product_links": [int(c.ids["variant_id"]) for c in children],
            }
            return data
        if item.barcode:
            data["custom_attributes"] = [{"attribute_code": "gtin", "value": item.barcode}]
        default = self.sources.get(item.sku, {}).get("default", [Decimal(0), 0])
        data.update(
            price=_float(self.store_price(item.sku, store_id)),
            visibility=1 if item.ids.get("product_id") else 4,
            weight=1,
        )
        data["extension_attributes"] = {
            "website_ids": [1],
            "stock_item": {
                "item_id": int(item.ids["variant_id"]),
                "product_id": int(item.ids["variant_id"]),
                "stock_id": 1,
                "qty": _float(default[0]),
                "is_in_stock": bool(default[1]),
                "manage_stock": True,
            },
        }
        return data

    def _product_name(self, row: Mapping[str, Any]) -> str:
        """A simple product's name carries its options ("Trail Sock-M"), as Magento's
        configurable wizard names children; a configurable has its product's title."""
        item: CatalogItem | None = row["_item"]
        if item is None:
            children = self._children(row["sku"])
            first = children[0] if children else None
            return first.display_title if first and first.product_title else row["sku"]
        if not (item.product_title or item.title):
            return item.sku
        return "-".join([item.display_title, *item.options.values()])

    def products_search(self, request: Request) -> Response:
        store_id = STORE_CODES.get(request.params.get("store") or "default", 1)
        with self.lock:
            rows = self._product_rows(parse_criteria(request.query))
            found = self._search(request, rows, PRODUCT_FILTERS)
            found["items"] = [self.product_json(row, store_id) for row in found["items"]]
        fields = request.arg("fields")
        if fields:
            found = apply_fields(found, parse_fields(fields))
        return Response.json(200, found)

    def configurable_children(self, request: Request) -> Response:
        parent = request.params["sku"]
        store_id = STORE_CODES.get(request.params.get("store") or "default", 1)
        with self.lock:
            if parent not in self.parents:
                if self.catalog.get(parent) is not None:
                    return Response.json(200, [])  # not configurable: no children
                return magento_error(404, NOT_FOUND_PRODUCT)
            rows = [
                {
                    "entity_id": int(c.ids["variant_id"]),
                    "sku": c.sku,
                    "type_id": "simple",
                    "_item": c,
                }
                for c in self._children(parent)
            ]
            return Response.json(200, [self.product_json(row, store_id) for row in rows])

    def store_views(self, request: Request) -> Response:
        return Response.json(200, STORE_VIEWS)

    # ------------------------------------------------------------------ publishing

    def attribute_get(self, request: Request) -> Response:
        code = request.params["code"]
        if code not in ATTRIBUTES:
            return magento_error(
                404,
                'The attribute with a "%1" attributeCode doesn\'t exist. Verify the attribute '
                "and try again.",
                [code],
            )
        with self.lock:
            options = [{"label": " ", "value": ""}] + [
                {"label": label, "value": value}
                for label, value in self.attribute_options[code].items()
            ]
        return Response.json(
            200,
            {
                "attribute_id": ATTRIBUTES[code],
                "attribute_code": code,
                "frontend_input": "select",
                "default_frontend_label": code.capitalize(),
                "is_user_defined": True,
                "options": options,
            },
        )

    def attribute_option_add(self, request: Request) -> Response:
        code = request.params["code"]
        label = str(request.json()["option"]["label"])
        with self.lock:
            if code not in ATTRIBUTES:
                return magento_error(
                    404, 'The attribute with a "%1" attributeCode doesn\'t exist.', [code]
                )
            options = self.attribute_options[code]
            if label in options:
                return magento_error(
                    400, 'Admin store attribute option label "%1" is already exists.', [label]
                )
            options[label] = str(self.next_id())
            return Response.json(200, f"id_{options[label]}")

    def _attribute_label(self, code: str, value: Any) -> str:
        for label, option_id in self.attribute_options.get(code, {}).items():
            if option_id == str(value):
                return label
        raise refuse(
            400,
            'The value of attribute "%1" must be set to one of its options.',
            [code],
        )

    def product_save(self, request: Request) -> Response:
        body = request.json()["product"]
        if not body.get("sku"):
            raise refuse(
                400, '"%fieldName" is required. Enter and try again.', {"fieldName": "sku"}
            )
        with self.lock:
            return Response.json(200, self._save_product(str(body["sku"]), body))

    def product_update(self, request: Request) -> Response:
        sku = request.params["sku"]
        body = request.json()["product"]
        with self.lock:
            return Response.json(200, self._save_product(sku, body))

    def _save_product(self, sku: str, body: Mapping[str, Any]) -> JsonDict:
        """Create the product, or change the fields given of the one with this SKU."""
        attributes = {
            str(a["attribute_code"]): a["value"] for a in body.get("custom_attributes") or []
        }
        unknown = sorted(set(attributes) - PRODUCT_ATTRIBUTES)
        if unknown:
            raise refuse(400, 'The "%1" attribute doesn\'t exist.', [unknown[0]])
        options = {
            code: self._attribute_label(code, value)
            for code, value in attributes.items()
            if code in ATTRIBUTES
        }
        item = self.catalog.get(sku)
        configurable = sku in self.parents
        type_id = body.get("type_id") or ("configurable" if configurable else "simple")
        if item is None and not configurable:
            if type_id == "configurable":
                self.parents[sku] = self.next_id()
                configurable = True
            else:
                item = CatalogItem(
                    sku=sku,
                    ids={"variant_id": str(self.next_id())},
                    price=Decimal(0),
                    quantity=0,
                    content={"product": sku},
                )
                self.catalog.put(item)
                self.sources.setdefault(sku, {})
        if "price" in body and item is not None:
            self.prices[sku] = {0: to_decimal(body["price"])}
            self._refresh(sku)
        if item is not None:
            item.content.setdefault("options", {}).update(options)
            if "gtin" in attributes:
                item.content["barcode"] = str(attributes["gtin"])
            if "name" in body:
                item.content["title"] = str(body["name"])
        fields = {"type_id": type_id}
        if "name" in body:
            fields["title"] = str(body["name"])
        if "description" in attributes:
            fields["description"] = str(attributes["description"])
        if "visibility" in body:
            fields["visibility"] = int(body["visibility"])
        self.product_put(sku, fields)
        self.counters.count_items("product", 1)
        if item is None:
            row = {"entity_id": self.parents[sku], "sku": sku, "type_id": "configurable"}
        else:
            row = {"entity_id": int(item.ids["variant_id"]), "sku": sku, "type_id": "simple"}
        return self.product_json({**row, "_item": item}, 0)

    def configurable_options_list(self, request: Request) -> Response:
        sku = request.params["sku"]
        with self.lock:
            if sku not in self.parents:
                return magento_error(404, NOT_FOUND_PRODUCT)
            return Response.json(200, self.configurable_options.get(sku, []))

    def configurable_option_save(self, request: Request) -> Response:
        sku = request.params["sku"]
        option = dict(request.json()["option"])
        with self.lock:
            if sku not in self.parents:
                return magento_error(404, NOT_FOUND_PRODUCT)
            existing = self.configurable_options.setdefault(sku, [])
            if any(str(o.get("attribute_id")) == str(option.get("attribute_id")) for o in existing):
                return magento_error(400, "Something went wrong while saving option.")
            code = next(
                (c for c, a in ATTRIBUTES.items() if str(a) == str(option.get("attribute_id"))),
                None,
            )
            if code is None:
                return magento_error(400, "Something went wrong while saving option.")
            option["id"] = self.next_id()
            option["product_id"] = self.parents[sku]
            existing.append(option)
            self.product_put(sku, {"options": [o.get("label") for o in existing]})
            return Response.json(200, option["id"])

    def configurable_child_add(self, request: Request) -> Response:
        sku = request.params["sku"]
        child_sku = str(request.json()["childSku"])
        with self.lock:
            child = self.catalog.get(child_sku)
            if sku not in self.parents or child is None:
                return magento_error(404, NOT_FOUND_PRODUCT)
            if child.ids.get("product_id") == sku:
                return magento_error(400, "The product is already attached.")
            codes = [
                c
                for c, a in ATTRIBUTES.items()
                for o in self.configurable_options.get(sku, [])
                if str(o.get("attribute_id")) == str(a)
            ]
            missing = [c for c in codes if c not in child.content.get("options", {})]
            if missing:
                return magento_error(
                    400,
                    'The child product doesn\'t have the "%1" attribute value. Verify the value '
                    "and try again.",
                    [missing[0]],
                )
            self.catalog.remove(child_sku)
            child.ids["product_id"] = sku
            child.content["product"] = sku
            self.catalog.put(child)
            return Response.json(200, True)

    # ------------------------------------------------------------------ async bulk

    def _async(
        self, request: Request, kind: str, allowed: frozenset[str], type_name: str
    ) -> Response:
        body = request.json()
        if not isinstance(body, list) or not body:
            raise refuse(400, "Request body is expected to be a non-empty array of entities.")
        self._check_list(body, type_name, limit_name="async")
        for entry in body:
            rows = self._rows(entry, kind, allowed, type_name, limit_name="async")
            if kind == "prices":
                for row in rows:
                    self._price_row(
                        row
                    )  # type errors refuse the request, as Magento's input processor
        now = self.clock()
        with self.lock:
            bulk = _Bulk(str(uuid.uuid4()), kind, mtime(utcnow()))
            for key, entry in enumerate(body):
                ready = (
                    now + self.async_start_seconds + (key + 1) * self.async_seconds_per_operation
                )
                bulk.operations.append(_Operation(key, kind, entry, ready))
            self.bulks[bulk.uuid] = bulk
        items = [
            {
                "id": op.key,
                "data_hash": hashlib.sha256(json.dumps(op.body).encode()).hexdigest(),
                "status": "accepted",
            }
            for op in bulk.operations
        ]
        return Response.json(202, {"bulk_uuid": bulk.uuid, "request_items": items, "errors": False})

    def async_base_prices(self, request: Request) -> Response:
        return self._async(
            request, "prices", PRICE_KEYS, "\\Magento\\Catalog\\Api\\Data\\BasePriceInterface"
        )

    def async_source_items(self, request: Request) -> Response:
        return self._async(
            request,
            "sourceItems",
            SOURCE_ITEM_KEYS,
            "\\Magento\\InventoryApi\\Api\\Data\\SourceItemInterface",
        )

    def run_consumer(self) -> None:
        """Run every queued operation whose time has come (the async.operations.all consumer)."""
        if not self.consumer_running:
            return
        now = self.clock()
        with self.lock:
            due = [
                op
                for bulk in self.bulks.values()
                for op in bulk.operations
                if op.status == 4 and op.ready_at <= now
            ]
            for op in sorted(due, key=lambda op: op.ready_at):
                self._run_operation(op)
        if due:
            self.changed()

    def _run_operation(self, op: _Operation) -> None:
        try:
            if op.kind == "prices":
                failed = self._apply_prices([self._price_row(r) for r in op.body["prices"]])
                op.result_serialized_data = json.dumps(failed)
            else:
                self._save_source_items(op.body["sourceItems"])
            op.status, op.result_message = 1, f"Service execution success {HANDLERS[op.kind]}"
        except ApiError as exc:
            message = exc.response.payload().get("message", "failed")
            op.status, op.result_message, op.error_code = 3, message, 0

    def _bulk(self, request: Request) -> _Bulk:
        bulk = self.bulks.get(request.params["uuid"])
        if bulk is None:
            raise refuse(404, "Bulk uuid %bulkUuid not exist", {"bulkUuid": request.params["uuid"]})
        return bulk

    def _bulk_json(self, bulk: _Bulk, *, detailed: bool) -> JsonDict:
        return {
            "operations_list": [op.to_json(bulk.uuid, detailed=detailed) for op in bulk.operations],
            "user_type": 1,
            "bulk_id": bulk.uuid,
            "description": f"Topic {TOPICS[bulk.kind]}",
            "start_time": bulk.started,
            "user_id": None,
            "operation_count": len(bulk.operations),
        }

    def bulk_status(self, request: Request) -> Response:
        with self.lock:
            return Response.json(200, self._bulk_json(self._bulk(request), detailed=False))

    def bulk_detailed_status(self, request: Request) -> Response:
        with self.lock:
            return Response.json(200, self._bulk_json(self._bulk(request), detailed=True))

    # ------------------------------------------------------------------ orders

    def create_order(self, lines: Iterable[Mapping[str, Any]], **kwargs: Any) -> SandboxOrder:
        """Placing an order reserves its units (salable falls; sources stay)."""
        order = super().create_order(lines, **kwargs)
        with self.lock:
            self._reservations = None
            if order.status == "paid":
                self.invoiced.add(order.id)
            for line in order.lines:
                self._refresh(line.sku)
        return order

    def order_transition(self, order_id: str, action: str, **kwargs: Any) -> SandboxOrder:
        """Magento's rules on top of the shared ones: no cancel or ship while held,
        no cancel once invoiced; shipping deducts the sources, by priority."""
        with self.lock:
            order = self.orders.get(order_id)
            if (
                order is not None
                and order.id in self.held
                and action in ("cancel", "fulfil", "pay")
            ):
                raise ValueError(f"cannot {action} an order that is on hold")
            if order is not None and action == "cancel" and order.id in self.invoiced:
                raise ValueError("cannot cancel an invoiced order (it needs a credit memo)")
            if order is not None and action == "fulfil" and order.stock_adjusted:
                self._check_shippable(order)
            order = super().order_transition(order_id, action, **kwargs)
            self._reservations = None
            if action == "pay":
                self.invoiced.add(order.id)
            if action == "fulfil":
                self.shipped.add(order.id)
                if order.stock_adjusted:
                    self._deduct(order)
            for line in order.lines:
                self._refresh(line.sku)
            return order

    def _check_shippable(self, order: SandboxOrder) -> None:
        for line in order.lines:
            if (self._in_stock(line.sku) or Decimal(0)) < line.quantity:
                raise ValueError(
                    "Not all of your products are available in the requested quantity."
                )

    def _deduct(self, order: SandboxOrder) -> None:
        for line in order.lines:
            left = Decimal(line.quantity)
            rows = self.sources.get(line.sku, {})
            for code in STOCK_SOURCES:
                if left <= 0 or code not in rows or rows[code][1] != 1:
                    continue
                take = min(left, rows[code][0])
                rows[code][0] -= take
                left -= take

    def _order_state(self, order: SandboxOrder) -> str:
        if order.status == "cancelled":
            return "canceled"
        if order.status == "refunded":
            return "closed"
        if order.id in self.held:
            return "holded"
        if order.status == "fulfilled":
            return "complete" if order.id in self.invoiced else "processing"
        return "processing" if order.status == "paid" else "new"

    def _child_item_id(self, line_id: str) -> int:
        if line_id not in self.child_items:
            self.child_items[line_id] = self.next_id()
        return self.child_items[line_id]

    def _order_items(self, order: SandboxOrder) -> list[JsonDict]:
        invoiced = order.id in self.invoiced
        shipped = order.id in self.shipped
        items = []
        for line in order.lines:
            qty = Decimal(line.quantity)
            zero = Decimal(0)
            common = {
                "order_id": int(order.id),
                "sku": line.sku,
                "name": line.sku,
                "qty_ordered": _float(qty),
                "qty_invoiced": _float(qty if invoiced else zero),
                "qty_shipped": _float(qty if shipped else zero),
                "qty_canceled": _float(qty if order.status == "cancelled" else zero),
                "qty_refunded": _float(qty if order.status == "refunded" else zero),
                "created_at": mtime(order.created_at),
                "updated_at": mtime(order.updated_at),
            }
            parent = line.ids.get("product_id")
            priced = {
                "price": _float(line.price),
                "base_price": _float(line.price),
                "row_total": _float(line.price * qty),
                "original_price": _float(line.price),
            }
            if parent:
                parent_item = {
                    "item_id": int(line.line_id),
                    "product_id": self.parents.get(parent, 0),
                    "product_type": "configurable",
                    **common,
                    **priced,
                }
                child = {
                    "item_id": self._child_item_id(line.line_id),
                    "parent_item_id": int(line.line_id),
                    "product_id": int(line.ids.get("variant_id") or 0),
                    "product_type": "simple",
                    **common,
                    "price": 0,
                    "base_price": 0,
                    "row_total": 0,
                }
                items += [parent_item, child]
            else:
                items.append(
                    {
                        "item_id": int(line.line_id),
                        "product_id": int(line.ids.get("variant_id") or 0),
                        "product_type": "simple",
                        **common,
                        **priced,
                    }
                )
        return items

    def render_order(self, order: SandboxOrder) -> JsonDict:
        state = self._order_state(order)
        total = _float(order.total)
        return {
            "entity_id": int(order.id),
            "increment_id": f"{order.number:09d}",
            "state": state,
            "status": "pending" if state == "new" else state,
            "store_id": 1,
            "created_at": mtime(order.created_at),
            "updated_at": mtime(order.updated_at),
            "order_currency_code": order.currency,
            "base_currency_code": order.currency,
            "grand_total": total,
            "base_grand_total": total,
            "subtotal": total,
            "total_paid": total if order.id in self.invoiced else 0,
            "total_qty_ordered": sum(line.quantity for line in order.lines),
            "customer_email": order.email,
            "customer_is_guest": 1,
            "billing_address": {
                "address_type": "billing",
                "email": order.email,
                "telephone": order.phone or "0000000000",
                "firstname": "Sandbox",
                "lastname": "Buyer",
                "street": ["1 Main St"],
                "city": "Springfield",
                "postcode": "10001",
                "country_id": "US",
            },
            "payment": {"method": "checkmo"},
            "items": self._order_items(order),
            "status_histories": [],
        }

    def _order_row(self, order: SandboxOrder) -> JsonDict:
        return {
            "entity_id": int(order.id),
            "increment_id": f"{order.number:09d}",
            "state": self._order_state(order),
            "created_at": mtime(order.created_at),
            "updated_at": mtime(order.updated_at),
            "customer_email": order.email,
            "store_id": 1,
            "_order": order,
        }

    def orders_search(self, request: Request) -> Response:
        keys = frozenset(
            {
                "entity_id",
                "increment_id",
                "state",
                "created_at",
                "updated_at",
                "customer_email",
                "store_id",
            }
        )
        with self.lock:
            rows = [self._order_row(order) for order in self.orders.all()]
            found = self._search(request, rows, keys)
            found["items"] = [self.render_order(row["_order"]) for row in found["items"]]
        return Response.json(200, found)

    def _order(self, request: Request) -> SandboxOrder:
        order = self.orders.get(request.params["id"])
        if order is None:
            raise refuse(
                404, "The entity that was requested doesn't exist. Verify the entity and try again."
            )
        return order

    def order_get(self, request: Request) -> Response:
        with self.lock:
            return Response.json(200, self.render_order(self._order(request)))

    def order_cancel(self, request: Request) -> Response:
        with self.lock:
            order = self._order(request)
            try:
                self.order_transition(order.id, "cancel", reason="cancelled through the API")
            except ValueError:
                return Response.json(200, False)
        return Response.json(200, True)

    def order_hold(self, request: Request) -> Response:
        with self.lock:
            order = self._order(request)
            if order.status not in ("pending", "paid") or order.id in self.held:
                return magento_error(400, "A hold action is not available.")
            self.held.add(order.id)
            order.updated_at = self.stamp()
        return Response.json(200, True)

    def order_unhold(self, request: Request) -> Response:
        with self.lock:
            order = self._order(request)
            if order.id not in self.held:
                return magento_error(400, "You cannot remove the hold.")
            self.held.discard(order.id)
            order.updated_at = self.stamp()
        return Response.json(200, True)

    def order_ship(self, request: Request) -> Response:
        body = request.json()
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise refuse(400, "Invalid request body: an object was expected.")
        for name in body:
            if name not in SHIP_KEYS:
                raise not_supported(name)
        tracks = self._tracks(body.get("tracks") or [])
        with self.lock:
            order = self._order(request)
            self._check_ship_items(order, body.get("items") or [])
            try:
                carrier = tracks[0]["title"] if tracks else ""
                number = tracks[0]["track_number"] if tracks else ""
                self.order_transition(order.id, "fulfil", tracking_number=number, carrier=carrier)
            except ValueError as exc:
                text = str(exc)
                reason = (
                    text
                    if text.startswith("Not all")
                    else "The order does not allow a shipment to be created."
                )
                return magento_error(400, f"Shipment Document Validation Error(s):\n{reason}")
            shipment_id = self.next_id()
            self.shipments.setdefault(order.id, []).append({"id": shipment_id, "tracks": tracks})
        return Response.json(200, shipment_id)

    @staticmethod
    def _tracks(tracks: Any) -> list[JsonDict]:
        if not isinstance(tracks, list):
            raise refuse(400, "Invalid request body: tracks must be a list.")
        for track in tracks:
            if not isinstance(track, dict):
                raise refuse(400, "Invalid request body: a track must be an object.")
            for name in track:
                if name not in TRACK_KEYS:
                    raise not_supported(name)
            for name in ("track_number", "title", "carrier_code"):
                if not track.get(name):
                    raise required(name)
        return tracks

    def _check_ship_items(self, order: SandboxOrder, items: Any) -> None:
        """Whole orders only: no items (everything) or every item in full."""
        if not isinstance(items, list):
            raise refuse(400, "Invalid request body: items must be a list.")
        if not items:
            return
        wanted = {int(line.line_id): line.quantity for line in order.lines}
        given: dict[int, Decimal] = {}
        for item in items:
            if not isinstance(item, dict):
                raise refuse(400, "Invalid request body: an item must be an object.")
            for name in item:
                if name not in SHIP_ITEM_KEYS:
                    raise not_supported(name)
            given[int(_number(item.get("order_item_id"), "int"))] = _number(
                item.get("qty"), "float"
            )
        if given != {k: Decimal(v) for k, v in wanted.items()}:
            raise refuse(
                400,
                "Shipment Document Validation Error(s):\nThe sandbox ships whole orders only.",
            )


PRODUCT_FILTERS = frozenset({"sku", "type_id", "entity_id"})


def _named_skus(criteria: Criteria) -> list[str] | None:
    """The SKUs a search is limited to by a group holding one ``sku`` in/eq filter."""
    for group in criteria.groups:
        if len(group) == 1 and group[0].field == "sku" and group[0].condition in ("in", "eq"):
            flt = group[0]
            parts = flt.value.split(",") if flt.condition == "in" else [flt.value]
            return list(dict.fromkeys(part.strip() for part in parts))
    return None
