"""eBay connector: Sell Inventory (price/quantity), Sell Fulfillment (orders), Post-Order.

Wire format: eBay's OpenAPI contracts Sell Inventory v1.18.4 and Sell
Fulfillment v1.20.7 (trimmed copies in sandbox/contracts/). ``base_url`` is the
API host (``https://api.ebay.com`` or the sandbox's
``http://127.0.0.1:<port>/ebay``); the API paths are appended.

Auth: ``Authorization: Bearer <user access token>`` (``IAF`` on Post-Order), the
token from ``ChannelConfig.access_token`` (refreshed from the refresh token, see
oauth.py) or a static ``credentials["access_token"]``; a 401 renews it once.

Decisions (see the comments where they apply):

* Batch size: 25 SKUs per ``bulk_update_price_quantity`` call, each SKU with its
  one offer (pimsync keeps one offer per SKU per marketplace). eBay's documents
  disagree (25 SKUs vs one SKU with up to 25 offers); 25 one-offer SKUs is 25
  offers either way. ``platform_config["bulk_batch_size"]`` overrides it, and a
  whole-call 400 on a multi-SKU batch switches this instance to one SKU per
  call (the reference's "design for 25 and fall back to 1").
* Quantity goes to both the inventory item (ship-to-home quantity) and the
  offer's ``availableQuantity``: a listing shows the smaller of the two.
* Pacing: eBay publishes daily quotas only, no per-second rate. The client
  paces at ``platform_config["rate_limit_per_second"]`` (default 10, burst
  ``rate_limit_burst`` 20; 0 disables) so a full push does not arrive as one
  spike; the engine's shared limiter enforces the channel's configured rate.
* Webhooks: eBay's notifications are ECDSA-signed with a key that must be
  fetched from eBay's Notification API (not verifiable offline with a shared
  secret), and the only documented topic is marketplace account deletion, not
  orders. eBay orders therefore arrive by polling ``getOrders``;
  ``verify_webhook`` always answers False and ``parse_webhook`` raises.
* Orders: ``getOrders`` with ``filter=lastmodifieddate:[since..]``, at most
  200 per page (``limit`` above 200 fails), paged by ``offset`` until the end.
  getOrders serves orders up to two years old: a cursor within that reaches
  back as far as it says (after a long outage every change is read, none
  skipped); one older than ``ORDER_LOOKBACK`` is refused with the permanent
  error ``poll_window_exceeded`` (the poll raises an alert), never clamped.
* Catalog import: ``getInventoryItems`` (``limit`` up to 200, ``offset`` = page
  number) and, for each SKU of the page, ``getOffers?sku=`` (price, offer id,
  listing id): eBay has no bulk read of offers, so a page of N items costs N + 1
  calls and a whole catalog is bound by the call rate. Barcodes from the
  product's ``ean`` / ``upc`` / ``isbn``; options from its ``aspects`` (eBay's
  contract types it as a string: a JSON object encoded, or the object itself, are
  both read).
* Cancellation: the reference documents none. This uses the Post-Order API
  ``POST /post-order/v2/cancellation`` (seller-initiated cancel request; eBay
  may refuse it when the order is no longer eligible, reported as permanent).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from .base import (
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
from .ebay_content import EbayContent
from .errors import POLL_WINDOW_EXCEEDED, ConnectorError, FailureKind, PermanentError
from .http import (
    HttpClient,
    HttpResult,
    TokenBucket,
    decode_page_cursor,
    encode_page_cursor,
    error_results,
    format_timestamp,
    item_result,
    ok_result,
    parse_timestamp,
)

logger = logging.getLogger(__name__)

MAX_BULK_ITEMS = 25  # bulk_update_price_quantity and bulk_get_inventory_item
MAX_ORDER_PAGE = 200  # getOrders "limit": "If a requested limit is more than 200, the call fails"
# getOrders "can return orders up to two years old"; a day less leaves room for clock skew.
ORDER_LOOKBACK = timedelta(days=2 * 365 - 1)
# Without a cursor, what getOrders returns unfiltered: the last 90 days.
DEFAULT_LOOKBACK = timedelta(days=90)
# errorIds the reference marks as "retry": 25001 system error, 25025 concurrent access.
RETRYABLE_ERROR_IDS = frozenset({"25001", "25025"})
SKU_NOT_FOUND_ERROR_IDS = frozenset({"25702"})
SELLER_CANCEL_REASONS = frozenset(
    {"OUT_OF_STOCK_OR_CANNOT_FULFILL", "BUYER_ASKED_CANCEL", "ADDRESS_ISSUES"}
)
DEFAULT_CANCEL_REASON = "OUT_OF_STOCK_OR_CANNOT_FULFILL"


CATALOG_PAGE_MAX = 200  # getInventoryItems "limit": 1 to 200


@dataclass(frozen=True)
class _Offer:
    offer_id: str
    price: Decimal | None
    available_quantity: int | None
    listing_id: str = ""


@dataclass(frozen=True)
class _BulkEntry:
    index: int  # position in the caller's list
    sku: str  # pimsync SKU (reported back)
    channel_sku: str
    request: dict[str, Any]


class EbayConnector(EbayContent):
    platform = "ebay"
    max_price_batch = MAX_BULK_ITEMS
    max_quantity_batch = MAX_BULK_ITEMS

    def __init__(self, config: ChannelConfig) -> None:
        self.config = config
        options = config.platform_config
        base = config.base_url.rstrip("/")
        self.inventory_url = f"{base}/sell/inventory/v1"
        self.fulfillment_url = f"{base}/sell/fulfillment/v1"
        self.post_order_url = f"{base}/post-order/v2"
        self.marketplace_id = str(options.get("marketplace_id", "EBAY_US"))
        self.currency = str(options.get("currency", "USD"))
        self.batch_size = _cap(MAX_BULK_ITEMS, options.get("bulk_batch_size"), config.batch_size)
        self._single_sku_mode = self.batch_size == 1
        self._offer_ids: dict[str, str] = {}  # channel SKU -> offer id looked up earlier
        self.http = HttpClient(
            config,
            headers={
                "Content-Type": "application/json",
                "X-EBAY-C-MARKETPLACE-ID": self.marketplace_id,
            },
            auth=_bearer,
        )
        self.pacer = TokenBucket(
            float(options.get("rate_limit_per_second", 10.0)),
            float(options.get("rate_limit_burst", 20.0)),
        )

    # ------------------------------------------------------------------ transport

    def _call(self, method: str, url: str, **kwargs: Any) -> HttpResult:
        self.pacer.acquire()
        result = self.http.request(method, url, **kwargs)
        if result.status == 429:
            self.pacer.drain()  # our pace was too generous for the quota left
        return result

    # ------------------------------------------------------------------ push

    def push_prices(self, items: Sequence[PriceUpdate]) -> list[ItemResult]:
        results: dict[int, ItemResult] = {}
        offers = self._offers_for([item.listing for item in items], use_known_ids=True)
        entries: list[_BulkEntry] = []
        for index, item in enumerate(items):
            channel_sku = item.listing.channel_sku
            offer = offers.get(channel_sku)
            if isinstance(offer, ConnectorError):
                results[index] = item_result(item.listing.sku, offer)
                continue
            if offer is None:
                results[index] = ItemResult(
                    sku=item.listing.sku,
                    kind=FailureKind.PERMANENT,
                    code="no_offer",
                    message=f"no offer for SKU {channel_sku} on {self.marketplace_id}",
                )
                continue
            price_body = {"value": _money(item.price), "currency": self.currency}
            request = {
                "sku": channel_sku,
                "offers": [{"offerId": offer.offer_id, "price": price_body}],
            }
            entries.append(_BulkEntry(index, item.listing.sku, channel_sku, request))
        results.update(self._bulk_update(entries))
        return [results[i] for i in range(len(items))]

    def push_quantities(self, items: Sequence[QuantityUpdate]) -> list[ItemResult]:
        results: dict[int, ItemResult] = {}
        offers = self._offers_for([item.listing for item in items], use_known_ids=True)
        entries: list[_BulkEntry] = []
        for index, item in enumerate(items):
            channel_sku = item.listing.channel_sku
            offer = offers.get(channel_sku)
            if isinstance(offer, ConnectorError):
                results[index] = item_result(item.listing.sku, offer)
                continue
            quantity = max(0, item.quantity)
            request: dict[str, Any] = {
                "sku": channel_sku,
                "shipToLocationAvailability": {"quantity": quantity},
            }
            # The listing shows min(item quantity, offer availableQuantity): set both.
            if offer is not None:
                request["offers"] = [{"offerId": offer.offer_id, "availableQuantity": quantity}]
            entries.append(_BulkEntry(index, item.listing.sku, channel_sku, request))
        results.update(self._bulk_update(entries))
        return [results[i] for i in range(len(items))]

    def _bulk_update(self, entries: Sequence[_BulkEntry]) -> dict[int, ItemResult]:
        results: dict[int, ItemResult] = {}
        pending = list(entries)
        while pending:
            size = 1 if self._single_sku_mode else self.batch_size
            chunk, pending = _take_unique(pending, size)
            outcome = self._bulk_update_call(chunk)
            if outcome is None:  # eBay refused the batch shape: fall back to single SKUs
                self._single_sku_mode = True
                logger.warning(
                    "eBay channel %s rejected a %d-SKU bulk update; using 1 SKU per call",
                    self.config.channel_id,
                    len(chunk),
                )
                pending = chunk + pending
                continue
            results.update(outcome)
        return results

    def _bulk_update_call(self, chunk: Sequence[_BulkEntry]) -> dict[int, ItemResult] | None:
        """Results for one call; None when a multi-SKU batch was refused as a whole."""
        body = {"requests": [entry.request for entry in chunk]}
        result = self._call("POST", f"{self.inventory_url}/bulk_update_price_quantity", json=body)
        if result.error is not None:
            refused_shape = (
                len(chunk) > 1
                and result.status == 400
                and not _has_responses(result.data)
                and not self._single_sku_mode
            )
            if refused_shape:
                return None
            return _fan_out(chunk, result.error)
        responses = _responses(result.data)
        if responses is None:
            error = PermanentError(
                "bulk_update_price_quantity answered without a 'responses' list",
                code="unexpected_response",
                status=result.status,
            )
            return _fan_out(chunk, error)
        by_sku: dict[str, list[Mapping[str, Any]]] = {}
        for response in responses:
            by_sku.setdefault(str(response.get("sku", "")), []).append(response)
        outcome: dict[int, ItemResult] = {}
        for entry in chunk:
            answers = by_sku.get(entry.channel_sku)
            if not answers:
                outcome[entry.index] = ItemResult(
                    sku=entry.sku,
                    kind=FailureKind.PERMANENT,
                    code="missing_response",
                    message=f"eBay returned no status for SKU {entry.channel_sku}",
                    http_status=result.status,
                )
                continue
            outcome[entry.index] = _item_from_answers(entry.sku, answers)
        return outcome

    # ------------------------------------------------------------------ read

    def read_listings(self, listings: Sequence[ListingRef]) -> list[ListingState]:
        states: list[ListingState] = []
        for chunk in _chunks(list(listings), MAX_BULK_ITEMS):
            states.extend(self._read_chunk(chunk))
        return states

    def read_quantities(self, listings: Sequence[ListingRef]) -> list[ListingState]:
        """Quantities only (no price): one bulk_get_inventory_item per 25 SKUs, none of
        the per-SKU offer reads a price needs. The quantity is the item's
        shipToLocationAvailability, which pimsync writes together with the offer's
        availableQuantity and eBay lowers with every sale."""
        states: list[ListingState] = []
        for chunk in _chunks(list(listings), MAX_BULK_ITEMS):
            body = {"requests": [{"sku": listing.channel_sku} for listing in chunk]}
            result = self._call("POST", f"{self.inventory_url}/bulk_get_inventory_item", json=body)
            responses = _responses(result.data) if result.error is None else None
            if result.error is not None or responses is None:
                error = result.error or PermanentError(
                    "bulk_get_inventory_item answered without a 'responses' list",
                    code="unexpected_response",
                    status=result.status,
                )
                states += [_state_error(listing.sku, error) for listing in chunk]
                continue
            by_sku = {str(r.get("sku", "")): r for r in responses}
            states += [
                self._listing_state(listing, by_sku.get(listing.channel_sku), {})
                for listing in chunk
            ]
        return states

    def _read_chunk(self, chunk: Sequence[ListingRef]) -> list[ListingState]:
        body = {"requests": [{"sku": listing.channel_sku} for listing in chunk]}
        result = self._call("POST", f"{self.inventory_url}/bulk_get_inventory_item", json=body)
        if result.error is not None:
            return [_state_error(listing.sku, result.error) for listing in chunk]
        responses = _responses(result.data)
        if responses is None:
            error = PermanentError(
                "bulk_get_inventory_item answered without a 'responses' list",
                code="unexpected_response",
                status=result.status,
            )
            return [_state_error(listing.sku, error) for listing in chunk]
        by_sku = {str(r.get("sku", "")): r for r in responses}
        present = [
            listing
            for listing in chunk
            if _int((by_sku.get(listing.channel_sku) or {}).get("statusCode")) == 200
        ]
        offers = self._offers_for(present, use_known_ids=False)
        return [
            self._listing_state(listing, by_sku.get(listing.channel_sku), offers)
            for listing in chunk
        ]

    def _listing_state(
        self,
        listing: ListingRef,
        answer: Mapping[str, Any] | None,
        offers: Mapping[str, _Offer | ConnectorError | None],
    ) -> ListingState:
        if answer is None:
            error = PermanentError(
                f"no status for SKU {listing.channel_sku}", code="missing_response"
            )
            return _state_error(listing.sku, error)
        status = _int(answer.get("statusCode"))
        code = _first_error_id(answer)
        if status == 404 or code in SKU_NOT_FOUND_ERROR_IDS:
            return ListingState(sku=listing.sku, price=None, quantity=None, found=False)
        if status != 200:
            return ListingState(
                sku=listing.sku,
                price=None,
                quantity=None,
                error=_item_from_answers(listing.sku, [answer]),
            )
        item = answer.get("inventoryItem") or {}
        availability = (item.get("availability") or {}).get("shipToLocationAvailability") or {}
        item_quantity = _int(availability.get("quantity"))
        offer = offers.get(listing.channel_sku)
        if isinstance(offer, ConnectorError):
            return ListingState(
                sku=listing.sku,
                price=None,
                quantity=item_quantity,
                error=item_result(listing.sku, offer),
            )
        if offer is None:
            return ListingState(sku=listing.sku, price=None, quantity=item_quantity)
        # What a buyer can purchase is the smaller of the two quantities.
        candidates = [q for q in (item_quantity, offer.available_quantity) if q is not None]
        quantity = min(candidates) if candidates else None
        return ListingState(sku=listing.sku, price=offer.price, quantity=quantity)

    def _offers_for(
        self, listings: Sequence[ListingRef], *, use_known_ids: bool
    ) -> dict[str, _Offer | ConnectorError | None]:
        """The marketplace offer of each channel SKU (GET offer?sku=), None if it has none.

        With ``use_known_ids`` a ListingRef that carries ``offer_id`` needs no
        look-up (pushes); reads always look up because the price lives on the offer.
        """
        found: dict[str, _Offer | ConnectorError | None] = {}
        for listing in listings:
            sku = listing.channel_sku
            if sku in found:
                continue
            known = listing.offer_id or self._offer_ids.get(sku)
            if use_known_ids and known:
                found[sku] = _Offer(known, price=None, available_quantity=None)
                continue
            offer = self._offer_for(sku)
            if isinstance(offer, _Offer) and offer.offer_id:
                self._offer_ids[sku] = offer.offer_id
            found[sku] = offer
        return found

    def _offer_for(self, channel_sku: str) -> _Offer | ConnectorError | None:
        result = self._call(
            "GET",
            f"{self.inventory_url}/offer",
            params={"sku": channel_sku, "marketplace_id": self.marketplace_id},
        )
        if result.status == 404:
            return None
        if result.error is not None:
            return result.error
        offers = (result.data or {}).get("offers") or []
        for offer in offers:
            if offer.get("marketplaceId", self.marketplace_id) != self.marketplace_id:
                continue
            price = ((offer.get("pricingSummary") or {}).get("price") or {}).get("value")
            return _Offer(
                offer_id=str(offer.get("offerId", "")),
                price=_decimal(price),
                available_quantity=_int(offer.get("availableQuantity")),
                listing_id=str((offer.get("listing") or {}).get("listingId") or ""),
            )
        return None

    # ------------------------------------------------------------------ catalog

    def catalog_page(self, cursor: str | None, *, page_size: int = 100) -> CatalogPage:
        """One page of inventory items and the offer of each (1 + N calls)."""
        state = (decode_page_cursor(cursor) if cursor else None) or {}
        page = int(state.get("page") or 0)
        # The page size a read started with stays: eBay's offset counts pages of it.
        limit = int(state.get("limit") or max(1, min(page_size, CATALOG_PAGE_MAX)))
        result = self._call(
            "GET",
            f"{self.inventory_url}/inventory_item",
            params={"limit": str(limit), "offset": str(page)},
        )
        data = result.unwrap()
        rows = data.get("inventoryItems") if isinstance(data, Mapping) else None
        if not isinstance(rows, list):
            raise PermanentError(
                "getInventoryItems answered without inventoryItems",
                code="unexpected_response",
                status=result.status,
            )
        items = []
        for row in rows:
            if not isinstance(row, Mapping) or not row.get("sku"):
                continue
            offer = self._offer_for(str(row["sku"]))
            if isinstance(offer, ConnectorError):
                raise offer
            items.append(self._catalog_item(row, offer))
        total = _int(data.get("total"))
        more = total is not None and (page + 1) * limit < total
        next_cursor = encode_page_cursor({"page": page + 1, "limit": limit}) if more else None
        return CatalogPage(items=items, next_cursor=next_cursor, total=total, calls=1 + len(items))

    @staticmethod
    def _catalog_item(row: Mapping[str, Any], offer: _Offer | None) -> CatalogItem:
        sku = str(row["sku"])
        raw_product = row.get("product")
        product: Mapping[str, Any] = raw_product if isinstance(raw_product, Mapping) else {}
        codes = [
            str(code)
            for name in ("ean", "upc", "isbn")
            for code in (product.get(name) or [])
            if code
        ]
        availability = (row.get("availability") or {}).get("shipToLocationAvailability") or {}
        quantities = [
            q
            for q in (
                _int(availability.get("quantity")),
                offer.available_quantity if offer else None,
            )
            if q is not None
        ]
        images = product.get("imageUrls") or []
        return CatalogItem(
            key=sku,
            sku=sku,
            title=str(product.get("title") or ""),
            barcode=codes[0] if codes else "",
            options=_aspects(product.get("aspects")),
            price=offer.price if offer else None,
            # A buyer can buy the smaller of the item's and the offer's quantity.
            quantity=min(quantities) if quantities else None,
            product_id=offer.listing_id if offer else "",
            offer_id=offer.offer_id if offer else "",
            image_url=str(images[0]) if images else "",
        )

    # ------------------------------------------------------------------ orders

    def orders_since(self, cursor: str | None, *, page_size: int = 100) -> OrdersPage:
        state = decode_page_cursor(cursor) if cursor else None
        if state is None:
            since = self._checked_since(parse_timestamp(cursor) if cursor else None)
            state = {"since": format_timestamp(since, millis=True), "offset": 0, "hwm": None}
        limit = max(1, min(page_size, MAX_ORDER_PAGE))
        offset = int(state.get("offset", 0))
        result = self._call(
            "GET",
            f"{self.fulfillment_url}/order",
            params={
                "filter": f"lastmodifieddate:[{state['since']}..]",
                "limit": limit,
                "offset": offset,
            },
        )
        data = result.unwrap() or {}
        orders = [self._order(raw) for raw in data.get("orders") or []]
        hwm = state.get("hwm")
        for order in orders:
            stamp = format_timestamp(order.updated_at, millis=True)
            if hwm is None or parse_timestamp(stamp) > parse_timestamp(hwm):
                hwm = stamp
        next_offset = offset + len(orders)
        total = _int(data.get("total"))
        has_more = bool(orders) and (
            bool(data.get("next")) or (total is not None and next_offset < total)
        )
        next_cursor = None
        if has_more:
            next_cursor = encode_page_cursor(
                {"since": state["since"], "offset": next_offset, "hwm": hwm}
            )
        return OrdersPage(orders=orders, next_cursor=next_cursor, high_water_mark=hwm)

    def _checked_since(self, since: datetime | None) -> datetime:
        """The poll's start; one beyond getOrders' two years is refused, not moved."""
        now = datetime.now(UTC)
        if since is None:
            return now - DEFAULT_LOOKBACK
        earliest = now - ORDER_LOOKBACK
        if since < earliest:
            raise PermanentError(
                f"eBay serves orders changed in the last two years; this poll would start at "
                f"{format_timestamp(since)}, so changes between then and "
                f"{format_timestamp(earliest)} cannot be read. Check those orders in Seller "
                f"Hub, then move the channel's poll cursor to {format_timestamp(earliest)} or "
                "later",
                code=POLL_WINDOW_EXCEEDED,
            )
        return since

    def _order(self, raw: Mapping[str, Any]) -> OrderData:
        total = (raw.get("pricingSummary") or {}).get("total") or {}
        lines = []
        for line in raw.get("lineItems") or []:
            quantity = _int(line.get("quantity")) or 0
            line_total = _decimal((line.get("lineItemCost") or {}).get("value")) or Decimal("0")
            # lineItemCost is unit price x quantity.
            unit = (line_total / quantity).quantize(Decimal("0.01")) if quantity else line_total
            lines.append(
                OrderLineData(
                    external_line_id=str(line.get("lineItemId", "")),
                    sku=str(line.get("sku", "")),
                    quantity=quantity,
                    unit_price=unit,
                    external_variant_id=str(line.get("legacyVariationId", "") or ""),
                    external_product_id=str(line.get("legacyItemId", "") or ""),
                )
            )
        buyer = (raw.get("buyer") or {}).get("buyerRegistrationAddress") or {}
        created = parse_timestamp(str(raw.get("creationDate")))
        return OrderData(
            external_id=str(raw.get("orderId", "")),
            name=str(raw.get("orderId", "")),
            status=_order_status(raw),
            financial_status=str(raw.get("orderPaymentStatus", "")),
            fulfillment_status=str(raw.get("orderFulfillmentStatus", "")),
            currency=str(total.get("currency", self.currency)),
            total=_decimal(total.get("value")) or Decimal("0"),
            updated_at=parse_timestamp(str(raw.get("lastModifiedDate") or raw.get("creationDate"))),
            created_at=created,
            lines=lines,
            customer_email=str(buyer.get("email", "")),
            customer_phone=str((buyer.get("primaryPhone") or {}).get("phoneNumber", "")),
            raw=dict(raw),
        )

    # ------------------------------------------------------------------ webhooks

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """Always False: no offline-verifiable eBay signature for order events.

        eBay signs notifications with ECDSA (``X-EBAY-SIGNATURE`` names a key to
        fetch from eBay's Notification API) and documents no order topic; pimsync
        reads eBay orders by polling ``getOrders``.
        """
        del headers, raw_body
        return False

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEvent:
        del headers, raw_body
        raise PermanentError(
            "eBay order changes are read by polling getOrders; eBay sends no HTTP order "
            "webhooks that pimsync can verify",
            code="webhooks_unsupported",
        )

    # ------------------------------------------------------------------ order actions

    def cancel_order(self, external_order_id: str, *, reason: str = "") -> ItemResult:
        wanted = reason.upper()
        cancel_reason = wanted if wanted in SELLER_CANCEL_REASONS else DEFAULT_CANCEL_REASON
        result = self._call(
            "POST",
            f"{self.post_order_url}/cancellation",
            # B: Fulfillment API orderIds use the legacy order-id format that
            # Post-Order expects in legacyOrderId.
            json={"legacyOrderId": external_order_id, "cancelReason": cancel_reason},
            # Post-Order is eBay's older REST family: OAuth user tokens go in as
            # "IAF <token>" and marketplaces are spelled EBAY-US.
            auth=_iaf,
            headers={"X-EBAY-C-MARKETPLACE-ID": self.marketplace_id.replace("_", "-")},
        )
        if result.error is not None:
            return item_result(external_order_id, result.error)
        data = result.data or {}
        if data.get("cancelId"):
            return ok_result(external_order_id, http_status=result.status)
        eligibility = data.get("orderEligibilityResult") or {}
        reasons = eligibility.get("failureReason") or eligibility.get("failureReasons") or ""
        return ItemResult(
            sku=external_order_id,
            kind=FailureKind.PERMANENT,
            code="cancel_not_eligible",
            message=f"eBay did not open a cancellation: {reasons or data}",
            http_status=result.status,
        )

    def fulfil_order(
        self, external_order_id: str, *, tracking_number: str = "", carrier: str = ""
    ) -> ItemResult:
        if bool(tracking_number) != bool(carrier):
            # eBay requires both or neither (the fields are mutually dependent).
            return ItemResult(
                sku=external_order_id,
                kind=FailureKind.PERMANENT,
                code="tracking_incomplete",
                message="eBay needs both a carrier code and a tracking number, or neither",
            )
        order_url = f"{self.fulfillment_url}/order/{quote(external_order_id, safe='')}"
        fetched = self._call("GET", order_url)
        if fetched.error is not None:
            return item_result(external_order_id, fetched.error)
        open_lines = [
            {"lineItemId": str(line.get("lineItemId")), "quantity": _int(line.get("quantity")) or 0}
            for line in (fetched.data or {}).get("lineItems") or []
            if line.get("lineItemFulfillmentStatus") != "FULFILLED"
        ]
        if not open_lines:  # already shipped: fulfilling again is a no-op, not an error
            return ok_result(external_order_id, http_status=fetched.status)
        body: dict[str, Any] = {
            "lineItems": open_lines,
            "shippedDate": format_timestamp(datetime.now(UTC), millis=True),
        }
        if tracking_number:
            body["trackingNumber"] = tracking_number
            body["shippingCarrierCode"] = carrier
        result = self._call("POST", f"{order_url}/shipping_fulfillment", json=body)
        if result.error is not None:
            return item_result(external_order_id, result.error)
        return ok_result(external_order_id, http_status=result.status)

    def test_connection(self) -> ConnectionCheck:
        result = self._call(
            "GET", f"{self.inventory_url}/inventory_item", params={"limit": 1, "offset": 0}
        )
        if result.error is not None:
            return ConnectionCheck(
                ok=False, message=f"{result.error.kind.value}: {result.error.message}"
            )
        total = (result.data or {}).get("total")
        return ConnectionCheck(ok=True, message=f"eBay Inventory API reachable ({total} items)")


# ---------------------------------------------------------------------- helpers


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _iaf(token: str) -> dict[str, str]:
    return {"Authorization": f"IAF {token}"}


def _cap(platform_max: int, *overrides: Any) -> int:
    size = platform_max
    for value in overrides:
        if value:
            size = min(size, int(value))
    return max(1, size)


def _aspects(raw: Any) -> dict[str, str]:
    """A product's aspects as {name: value}: eBay's contract types the field as a
    string (a JSON object encoded) while answers carry the object; both are read.
    A multi-valued aspect keeps its values joined by ", "."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return {}
    if not isinstance(raw, Mapping):
        return {}
    aspects = {}
    for name, values in raw.items():
        listed = values if isinstance(values, list) else [values]
        text = ", ".join(str(v) for v in listed if v not in (None, ""))
        if text:
            aspects[str(name)] = text
    return aspects


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _take_unique(entries: list[_BulkEntry], size: int) -> tuple[list[_BulkEntry], list[_BulkEntry]]:
    """Up to ``size`` entries with distinct SKUs (eBay rejects duplicates in one call)."""
    chunk: list[_BulkEntry] = []
    rest: list[_BulkEntry] = []
    seen: set[str] = set()
    for entry in entries:
        if len(chunk) < size and entry.channel_sku not in seen:
            chunk.append(entry)
            seen.add(entry.channel_sku)
        else:
            rest.append(entry)
    return chunk, rest


def _fan_out(chunk: Sequence[_BulkEntry], error: ConnectorError) -> dict[int, ItemResult]:
    results = error_results([entry.sku for entry in chunk], error)
    return {entry.index: res for entry, res in zip(chunk, results, strict=True)}


def _responses(data: Any) -> list[Mapping[str, Any]] | None:
    if isinstance(data, Mapping) and isinstance(data.get("responses"), list):
        return [r for r in data["responses"] if isinstance(r, Mapping)]
    return None


def _has_responses(data: Any) -> bool:
    return bool(_responses(data))


def _first_error_id(answer: Mapping[str, Any]) -> str:
    errors = answer.get("errors") or []
    if errors and isinstance(errors[0], Mapping):
        return str(errors[0].get("errorId", ""))
    return ""


def _item_from_answers(sku: str, answers: Sequence[Mapping[str, Any]]) -> ItemResult:
    """One SKU's outcome from its per-item statuses (item and offer parts)."""
    for answer in answers:
        status = _int(answer.get("statusCode"))
        if status == 200:
            continue
        errors = [e for e in answer.get("errors") or [] if isinstance(e, Mapping)]
        first = errors[0] if errors else {}
        code = str(first.get("errorId", "")) or str(status)
        message = str(first.get("longMessage") or first.get("message") or f"statusCode {status}")
        kind = _kind_for(status, code)
        return ItemResult(sku=sku, kind=kind, code=code, message=message, http_status=status)
    warnings = [w for a in answers for w in a.get("warnings") or [] if isinstance(w, Mapping)]
    message = "; ".join(str(w.get("message", "")) for w in warnings)
    return ItemResult(sku=sku, kind=FailureKind.OK, message=message, http_status=200)


def _kind_for(status: int | None, error_id: str) -> FailureKind:
    if error_id in RETRYABLE_ERROR_IDS or status == 429 or (status is not None and status >= 500):
        return FailureKind.RETRYABLE
    if status in (401, 403):
        return FailureKind.AUTH
    return FailureKind.PERMANENT


def _state_error(sku: str, error: ConnectorError) -> ListingState:
    return ListingState(sku=sku, price=None, quantity=None, error=item_result(sku, error))


def _order_status(raw: Mapping[str, Any]) -> str:
    cancel_state = str((raw.get("cancelStatus") or {}).get("cancelState", ""))
    payment = str(raw.get("orderPaymentStatus", ""))
    fulfilment = str(raw.get("orderFulfillmentStatus", ""))
    if cancel_state == "CANCELED":
        return "cancelled"
    if payment == "FULLY_REFUNDED":
        return "refunded"
    if fulfilment == "FULFILLED":
        return "fulfilled"
    if payment in ("PAID", "PARTIALLY_REFUNDED"):
        return "paid"
    return "pending"


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
