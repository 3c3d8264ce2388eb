"""Amazon connector: SP-API Listings Items 2021-08-01, Feeds 2021-06-30, Orders 2026-01-01.

Wire format: /work/shared/reference/channel-apis.md section 4. ``base_url`` is the
SP-API host (``https://sellingpartnerapi-na.amazon.com`` or the sandbox's
``http://127.0.0.1:<port>/amazon``). Auth: the LWA access token in
``x-amz-access-token``, from ``ChannelConfig.access_token`` (refreshed from the
refresh token, see oauth.py) or a static ``credentials["access_token"]``; SP-API
refuses an expired token with 403 ``Unauthorized``, which renews it once.
``platform_config``: ``seller_id``, ``marketplace_id`` (default ATVPDKIKX0DER),
``product_type`` (default PRODUCT), ``currency`` (USD), ``fulfillment_channel_code``
(DEFAULT = merchant-fulfilled), ``token_url`` (the LWA endpoint, see oauth.py).

Decisions:

* Small pushes: one ``patchListingsItem`` per SKU (the API has no batch). The
  response's ``status`` (ACCEPTED | INVALID) and ``issues`` give the per-SKU
  result; ACCEPTED means queued, so reconciliation confirms it later.
* Large pushes (more than ``feed_threshold`` SKUs, default 200): one
  JSON_LISTINGS_FEED of PATCH messages (createFeedDocument -> upload ->
  createFeed -> getFeed until done -> result report, issues mapped back by
  messageId). At 5 patches/s, 10,000 SKUs take 33 minutes; a feed takes one
  call plus Amazon's processing time.
* Quantity uses the ``merge`` op on ``fulfillment_availability`` (keeps lead time
  and restock date); price uses ``replace`` on ``purchasable_offer`` as in the
  reference example. Amazon has no compare-at price in that attribute, so
  ``compare_at_price`` is not sent.
* Pacing: one client-side token bucket per operation at 90% of the documented
  rate and one token under its burst (slack for jitter), following
  ``x-amzn-RateLimit-Limit`` when Amazon sends it;
  ``platform_config["rate_limits"] = {operation: {"rate", "burst"}}`` overrides,
  ``platform_config["pacing"] = False`` turns pacing off (tests).
* Reading live values (reconciliation, compare-and-set checks): searchListingsItems
  with 20 SKUs as ``identifiers`` per call (the documented maximum) and
  ``includedData=summaries,offers,fulfillmentAvailability``; a SKU missing from
  the answer is not listed on Amazon.
* Catalog import: searchListingsItems without identifiers, ``sortBy=createdDate``
  ascending, 20 per page (``pageSize`` maximum), ``includedData=summaries,attributes,
  offers,fulfillmentAvailability,relationships``. One search pages through at most
  1000 items (the model's note on ``numberOfResults``), so after 1000 the read
  starts a new search at ``createdAfter`` = the last createdDate seen and skips
  the SKUs it already has from that second. Barcode: the
  ``externally_assigned_product_identifier`` attribute; options: the attributes of
  the item's variation theme; the parent SKU of a variation child groups it.
* Notifications reach sellers through SQS/EventBridge, never as HTTP webhooks:
  ``verify_webhook`` answers False (nothing to verify over HTTP), and
  ``parse_webhook`` reads an SQS ``ORDER_CHANGE`` message body for a consumer
  that pulls from the queue (deduplicate on its NotificationId).
* Orders: Orders API 2026-01-01 ``searchOrders`` (``lastUpdatedAfter``,
  ``paginationToken``) with ``includedData=BUYER,PROCEEDS,FULFILLMENT``: each
  order carries its items, so no per-order item call (v0's getOrders and
  getOrderItems are deprecated). Its usage plan is 0.0056 requests/s, burst 20.
* Fulfilment: Orders 2026-01-01 ``getOrder`` for what is still unshipped, then
  Orders v0 ``confirmShipment`` (not deprecated, and 2026-01-01 has no
  successor). ``carrierCode`` is one of Amazon's carrier codes (CARRIER_CODES);
  any other carrier goes as ``Other`` with its name in ``carrierName``, which
  the model requires in that case. Cancellation: the models document no seller
  cancellation call, so ``cancel_order`` reports a permanent ``unsupported``
  result instead of guessing an endpoint.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from .amazon_content import AmazonContent
from .base import (
    BatchStatus,
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
    error_results,
    format_timestamp,
    item_result,
    ok_result,
    parse_timestamp,
)

logger = logging.getLogger(__name__)

LISTINGS = "/listings/2021-08-01/items"
FEEDS = "/feeds/2021-06-30"
ORDERS = "/orders/2026-01-01/orders"
ORDERS_V0 = "/orders/v0/orders"  # confirmShipment only
# Datasets searchOrders/getOrder must include for an OrderData: buyer e-mail,
# totals (proceeds) and per-order/per-item fulfilment state.
ORDER_INCLUDED_DATA = "BUYER,PROCEEDS,FULFILLMENT"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
MAX_FEED_MESSAGES = 25_000
MAX_ORDER_PAGE = 100
SEARCH_IDENTIFIERS_MAX = 20  # searchListingsItems: identifiers and pageSize are both capped at 20
# "The maximum number of items (SKUs) that can be returned and paged through is 1000."
SEARCH_PAGE_THROUGH_MAX = 1000
CATALOG_INCLUDED_DATA = "summaries,attributes,offers,fulfillmentAvailability,relationships"

# Documented default usage plans (rate per second, burst). confirmShipment is
# from the SP-API models, the rest from the reference's table.
OPERATION_LIMITS: dict[str, tuple[float, float]] = {
    "patchListingsItem": (5.0, 5.0),
    "putListingsItem": (5.0, 10.0),
    "getListingsItem": (5.0, 10.0),
    "searchListingsItems": (5.0, 5.0),
    "createFeedDocument": (0.5, 15.0),
    "createFeed": (0.0083, 15.0),
    "getFeed": (2.0, 15.0),
    "getFeedDocument": (0.0222, 10.0),
    "searchOrders": (0.0056, 20.0),
    "getOrder": (0.5, 30.0),
    "confirmShipment": (2.0, 10.0),
}
PACING_MARGIN = 0.9  # pace at 90% of the documented or announced rate
FEED_DONE = "DONE"
FEED_FINAL = frozenset({"DONE", "CANCELLED", "FATAL"})
# Orders 2026-01-01 FulfillmentStatus -> pimsync's normalised status.
ORDER_STATUS_MAP = {
    "PENDING_AVAILABILITY": "pending",
    "PENDING": "pending",
    "UNSHIPPED": "paid",
    "PARTIALLY_SHIPPED": "paid",
    "SHIPPED": "fulfilled",
    "CANCELLED": "cancelled",
    "UNFULFILLABLE": "cancelled",  # Amazon-fulfilled non-retail order that will not ship
}
CARRIER_OTHER = "Other"
# Amazon's carrier codes for shipment confirmations. The SP-API model types
# carrierCode as a free string; the values Amazon accepts are its carrier list
# (Seller Central; the CarrierCode enumeration of the feeds' amzn-base.xsd), of
# which these are the ones a merchant is likely to name. Amazon's announcement
# "CarrierCode value required in shipment confirmations" says a value must match
# that list exactly, and an unlisted carrier goes as Other with carrierName.
CARRIER_CODES = (
    "USPS",
    "UPS",
    "UPSMI",
    "UPS Mail Innovations",
    "FedEx",
    "FedEx SmartPost",
    "DHL",
    "DHL Global Mail",
    "OnTrac",
    "OSM",
    "Streamlite",
    "Newgistics",
    "Canada Post",
    "Royal Mail",
    "Parcelforce",
    "DPD",
    "GLS",
    "TNT",
    "Deutsche Post",
    "Hermes Logistik Gruppe",
    "La Poste",
    "Chronopost",
    "Poste Italiane",
    "SDA",
    "Aramex",
    "BlueDart",
    "India Post",
    "DTDC",
    "YamatoTransport",
    "SagawaExpress",
    "NipponExpress",
)
# Names merchants type for listed carriers, normalised like _carrier_key().
CARRIER_ALIASES = {
    "unitedstatespostalservice": "USPS",
    "unitedparcelservice": "UPS",
    "federalexpress": "FedEx",
    "fedexground": "FedEx",
    "dhlexpress": "DHL",
    "royalmailtracked": "Royal Mail",
    "yamato": "YamatoTransport",
    "sagawa": "SagawaExpress",
}


@dataclass(frozen=True)
class _Patch:
    index: int
    sku: str  # pimsync SKU
    channel_sku: str
    patch: dict[str, Any]


class AmazonConnector(AmazonContent):
    platform = "amazon"
    # One SKU per patch call; a push above the feed threshold becomes one feed.
    max_price_batch = MAX_FEED_MESSAGES
    max_quantity_batch = MAX_FEED_MESSAGES

    def __init__(
        self,
        config: ChannelConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        options = config.platform_config
        self.base = config.base_url.rstrip("/")
        self.seller_id = str(options.get("seller_id", ""))
        self.marketplace_id = str(options.get("marketplace_id", "ATVPDKIKX0DER"))
        self.product_type = str(options.get("product_type", "PRODUCT"))
        self.currency = str(options.get("currency", "USD"))
        self.channel_code = str(options.get("fulfillment_channel_code", "DEFAULT"))
        self.feed_threshold = int(options.get("feed_threshold", 200))
        # getFeed allows 2 calls/s: a 5 s poll costs nothing and keeps a feed's
        # confirmation within seconds of Amazon finishing it.
        self.feed_poll_seconds = float(options.get("feed_poll_seconds", 5.0))
        self.feed_max_wait_seconds = float(options.get("feed_max_wait_seconds", 1200.0))
        # Longer waits for an operation's quota are not slept but answered as a retryable
        # QuotaWait (searchOrders, after its burst of 20, allows one call per 3 minutes).
        self.max_operation_wait_seconds = float(options.get("max_operation_wait_seconds", 30.0))
        self._sleep = sleep
        self._clock = clock
        self.http = HttpClient(
            config,
            headers={"Content-Type": "application/json"},
            auth=lambda token: {"x-amz-access-token": token},
        )
        # Pre-signed upload/download URLs must not receive our token (no auth here).
        self.document_http = HttpClient(config, gated=False)
        self.pacers = self._build_pacers(options)

    # ------------------------------------------------------------------ transport

    def _build_pacers(self, options: Mapping[str, Any]) -> dict[str, TokenBucket]:
        paced = bool(options.get("pacing", True))
        overrides = options.get("rate_limits") or {}
        pacers = {}
        for operation, (rate, burst) in OPERATION_LIMITS.items():
            spec = overrides.get(operation) or {}
            rate = float(spec.get("rate", rate)) * PACING_MARGIN if paced else 0.0
            # One token less than Amazon's burst and 90% of its rate: pacing exactly
            # at the limit turns network jitter into 429s.
            burst = max(1.0, float(spec.get("burst", burst)) - 1.0)
            pacers[operation] = TokenBucket(rate, burst, clock=self._clock, sleep=self._sleep)
        return pacers

    def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> HttpResult:
        pacer = self.pacers[operation]
        deferred = self._await_operation(operation, pacer)
        if deferred is not None:
            return deferred
        result = self.http.request(
            method,
            f"{self.base}{path}",
            retry_after_hint=lambda _result: 1.0 / pacer.rate if pacer.rate > 0 else 1.0,
            **kwargs,
        )
        self._adapt_pacer(operation, pacer, result)
        return result

    def _await_operation(self, operation: str, pacer: TokenBucket) -> HttpResult | None:
        """Wait for the operation's quota: in the channel's shared buckets when there
        are (every worker counts against one usage plan), else in this connector's.
        A wait longer than ``max_operation_wait_seconds`` is not slept: the call is
        answered as Amazon would answer it (429 QuotaExceeded, retry after the
        wait) without being sent, so a worker never sleeps minutes on a quota."""
        budget = self.config.operation_budget
        if budget is None or pacer.rate <= 0:
            pacer.acquire()
            return None
        wait = budget.take(operation, rate=pacer.rate, burst=pacer.burst)
        if wait > self.max_operation_wait_seconds:
            budget.give_back(operation, rate=pacer.rate, burst=pacer.burst)
            message = f"{operation}: Amazon's quota allows the next call in {wait:.0f} s"
            return HttpResult(
                status=None,
                error=RetryableError(message, code="QuotaWait", retry_after=wait),
            )
        if wait > 0:
            self._sleep(wait)
        return None

    def _adapt_pacer(self, operation: str, pacer: TokenBucket, result: HttpResult) -> None:
        """Follow Amazon's own figure for this operation when it tells us one."""
        if result.status == 429:
            pacer.drain()
            if self.config.operation_budget is not None and pacer.rate > 0:
                self.config.operation_budget.exhausted(
                    operation, rate=pacer.rate, burst=pacer.burst
                )
        header = result.headers.get("x-amzn-RateLimit-Limit") if result.headers else None
        if header and pacer.rate > 0:
            try:
                announced = float(header)
            except ValueError:
                return
            if announced > 0:
                pacer.rate = announced * PACING_MARGIN

    def _listing_path(self, channel_sku: str) -> str:
        return f"{LISTINGS}/{quote(self.seller_id, safe='')}/{quote(channel_sku, safe='')}"

    # ------------------------------------------------------------------ push

    def push_prices(self, items: Sequence[PriceUpdate]) -> list[ItemResult]:
        patches = [
            _Patch(i, item.listing.sku, item.listing.channel_sku, self._price_patch(item.price))
            for i, item in enumerate(items)
        ]
        return self._push(patches)

    def push_quantities(self, items: Sequence[QuantityUpdate]) -> list[ItemResult]:
        patches = [
            _Patch(
                i, item.listing.sku, item.listing.channel_sku, self._quantity_patch(item.quantity)
            )
            for i, item in enumerate(items)
        ]
        return self._push(patches)

    def _price_patch(self, price: Decimal) -> dict[str, Any]:
        offer = {
            "marketplace_id": self.marketplace_id,
            "currency": self.currency,
            "audience": "ALL",
            "our_price": [{"schedule": [{"value_with_tax": _number(price)}]}],
        }
        return {"op": "replace", "path": "/attributes/purchasable_offer", "value": [offer]}

    def _quantity_patch(self, quantity: int) -> dict[str, Any]:
        value = [{"fulfillment_channel_code": self.channel_code, "quantity": max(0, quantity)}]
        return {"op": "merge", "path": "/attributes/fulfillment_availability", "value": value}

    def _push(self, patches: Sequence[_Patch]) -> list[ItemResult]:
        if len(patches) > self.feed_threshold:
            results: dict[int, ItemResult] = {}
            for start in range(0, len(patches), MAX_FEED_MESSAGES):
                results.update(self._push_feed(patches[start : start + MAX_FEED_MESSAGES]))
        else:
            results = self._push_patches(patches)
        return [results[i] for i in range(len(patches))]

    def _push_patches(self, patches: Sequence[_Patch]) -> dict[int, ItemResult]:
        results: dict[int, ItemResult] = {}
        auth_failure: ConnectorError | None = None
        for patch in patches:
            if auth_failure is not None:  # the rest would fail the same way: save the calls
                results[patch.index] = item_result(patch.sku, auth_failure)
                continue
            result = self._call(
                "patchListingsItem",
                "PATCH",
                self._listing_path(patch.channel_sku),
                params={"marketplaceIds": self.marketplace_id},
                json={"productType": self.product_type, "patches": [patch.patch]},
            )
            if result.error is not None:
                if result.error.kind is FailureKind.AUTH:
                    auth_failure = result.error
                results[patch.index] = item_result(patch.sku, result.error)
                continue
            results[patch.index] = _patch_result(patch.sku, result)
        return results

    # ------------------------------------------------------------------ feed

    def _push_feed(self, patches: Sequence[_Patch]) -> dict[int, ItemResult]:
        """Submit, wait and read the report in one call (direct use; the engine
        uses batch_submit / batch_status / batch_results and never waits)."""
        skus = [p.sku for p in patches]

        def fail(error: ConnectorError) -> dict[int, ItemResult]:
            return {p.index: r for p, r in zip(patches, error_results(skus, error), strict=True)}

        try:
            feed_id = self._submit_feed(self._feed_document(patches))
            feed = self._wait_for_feed(feed_id)
            status = _feed_status(feed)
            report = self._feed_report(status.result_ref) if status.result_ref else None
        except ConnectorError as error:
            return fail(error)
        if status.state == "cancelled":
            return fail(RetryableError(f"feed {feed_id} was cancelled", code="feed_cancelled"))
        if status.state != "done":
            issue = _first_issue(report)
            message = f"feed {feed_id} failed ({status.detail})" + (f": {issue}" if issue else "")
            return fail(PermanentError(message, code="feed_fatal"))
        if report is None:
            return fail(
                PermanentError(f"feed {feed_id} is done but has no report", code="feed_no_report")
            )
        return _map_report(patches, report)

    def _feed_document(self, patches: Sequence[_Patch]) -> bytes:
        messages = [
            {
                "messageId": number,
                "sku": patch.channel_sku,
                "operationType": "PATCH",
                "productType": self.product_type,
                "patches": [patch.patch],
            }
            for number, patch in enumerate(patches, start=1)
        ]
        document = {
            "header": {"sellerId": self.seller_id, "version": "2.0", "issueLocale": "en_US"},
            "messages": messages,
        }
        return json.dumps(document).encode()

    # ------------------------------------------------------------------ feed as a recorded batch

    @property
    def batch_threshold(self) -> int:
        return self.feed_threshold

    def _patches(
        self, kind: str, items: Sequence[PriceUpdate] | Sequence[QuantityUpdate]
    ) -> list[_Patch]:
        patches = []
        for i, item in enumerate(items):
            if isinstance(item, PriceUpdate):
                patch = self._price_patch(item.price)
            elif isinstance(item, QuantityUpdate):
                patch = self._quantity_patch(item.quantity)
            else:
                raise TypeError(f"cannot send {type(item).__name__} in a {kind} feed")
            patches.append(_Patch(i, item.listing.sku, item.listing.channel_sku, patch))
        return patches

    def batch_submit(
        self, kind: str, items: Sequence[PriceUpdate] | Sequence[QuantityUpdate]
    ) -> str:
        """createFeedDocument, upload, createFeed: the feed id (not waited for)."""
        if len(items) > MAX_FEED_MESSAGES:
            raise PermanentError(
                f"a feed holds at most {MAX_FEED_MESSAGES} messages", code="feed_too_large"
            )
        return self._submit_feed(self._feed_document(self._patches(kind, items)))

    def batch_status(self, batch_id: str) -> BatchStatus:
        """getFeed once."""
        feed = self._call("getFeed", "GET", f"{FEEDS}/feeds/{quote(batch_id, safe='')}").unwrap()
        return _feed_status(feed)

    def batch_results(
        self, status: BatchStatus, listings: Sequence[ListingRef]
    ) -> list[ItemResult]:
        """Per-SKU results from the feed's processing report (a done feed), or the
        feed's own outcome for every SKU (cancelled: retryable; fatal: permanent)."""
        skus = [listing.sku for listing in listings]
        if status.state == "cancelled":
            return error_results(
                skus, RetryableError("the feed was cancelled", code="feed_cancelled")
            )
        report = self._feed_report(status.result_ref) if status.result_ref else None
        if status.state != "done":
            issue = _first_issue(report)
            message = f"feed failed ({status.detail})" + (f": {issue}" if issue else "")
            return error_results(skus, PermanentError(message, code="feed_fatal"))
        if report is None:
            error = PermanentError("the feed is done but has no report", code="feed_no_report")
            return error_results(skus, error)
        patches = [
            _Patch(i, listing.sku, listing.channel_sku, {}) for i, listing in enumerate(listings)
        ]
        results = _map_report(patches, report)
        return [results[i] for i in range(len(listings))]

    def _submit_feed(self, content: bytes) -> str:
        created = self._call(
            "createFeedDocument",
            "POST",
            f"{FEEDS}/documents",
            json={"contentType": FEED_CONTENT_TYPE},
        ).unwrap()
        document_id = str(created.get("feedDocumentId", ""))
        upload_url = str(created.get("url", ""))
        if not document_id or not upload_url:
            raise PermanentError(
                "createFeedDocument returned no id/url", code="unexpected_response"
            )
        self.document_http.put(
            upload_url, data=content, headers={"Content-Type": FEED_CONTENT_TYPE}, expect_json=False
        ).unwrap()
        feed = self._call(
            "createFeed",
            "POST",
            f"{FEEDS}/feeds",
            json={
                "feedType": "JSON_LISTINGS_FEED",
                "marketplaceIds": [self.marketplace_id],
                "inputFeedDocumentId": document_id,
            },
        ).unwrap()
        feed_id = str(feed.get("feedId", ""))
        if not feed_id:
            raise PermanentError("createFeed returned no feedId", code="unexpected_response")
        return feed_id

    def _wait_for_feed(self, feed_id: str) -> Mapping[str, Any]:
        deadline = self._clock() + self.feed_max_wait_seconds
        while True:
            feed = self._call("getFeed", "GET", f"{FEEDS}/feeds/{quote(feed_id, safe='')}").unwrap()
            if str(feed.get("processingStatus")) in FEED_FINAL:
                return feed
            if self._clock() >= deadline:
                # Still processing: the values may yet apply. Retrying re-sends the
                # same absolute values, which is harmless.
                raise RetryableError(
                    f"feed {feed_id} still {feed.get('processingStatus')} after "
                    f"{self.feed_max_wait_seconds:.0f} s",
                    code="feed_pending",
                    retry_after=self.feed_poll_seconds,
                )
            self._sleep(self.feed_poll_seconds)

    def _feed_report(self, result_document_id: str) -> Mapping[str, Any]:
        document_id = quote(result_document_id, safe="")
        info = self._call("getFeedDocument", "GET", f"{FEEDS}/documents/{document_id}").unwrap()
        download = self.document_http.get(str(info.get("url", "")), expect_json=False).unwrap_body()
        if str(info.get("compressionAlgorithm", "")).upper() == "GZIP":
            download = gzip.decompress(download)
        try:
            report = json.loads(download)
        except ValueError as exc:
            raise PermanentError(
                f"feed report is not JSON: {body_snippet(download)}", code="malformed_json"
            ) from exc
        if not isinstance(report, Mapping):
            raise PermanentError("feed report is not a JSON object", code="unexpected_response")
        return report

    # ------------------------------------------------------------------ read

    def read_listings(self, listings: Sequence[ListingRef]) -> list[ListingState]:
        """searchListingsItems with up to 20 SKUs as ``identifiers`` per call (the
        API's maximum), price from ``offers`` and quantity from
        ``fulfillmentAvailability``: 20 listings per call at 5 calls/s instead of
        one getListingsItem per SKU."""
        states: list[ListingState] = []
        auth_failure: ConnectorError | None = None
        for start in range(0, len(listings), SEARCH_IDENTIFIERS_MAX):
            chunk = listings[start : start + SEARCH_IDENTIFIERS_MAX]
            if auth_failure is not None:
                states.extend(_state_error(listing.sku, auth_failure) for listing in chunk)
                continue
            result = self._call(
                "searchListingsItems",
                "GET",
                f"{LISTINGS}/{quote(self.seller_id, safe='')}",
                params={
                    "marketplaceIds": self.marketplace_id,
                    "identifiers": ",".join(listing.channel_sku for listing in chunk),
                    "identifiersType": "SKU",
                    "pageSize": SEARCH_IDENTIFIERS_MAX,
                    "includedData": "summaries,offers,fulfillmentAvailability",
                },
            )
            if result.error is not None:
                if result.error.kind is FailureKind.AUTH:
                    auth_failure = result.error
                states.extend(_state_error(listing.sku, result.error) for listing in chunk)
                continue
            found = {
                str(item.get("sku", "")): item
                for item in (result.data or {}).get("items") or []
                if isinstance(item, Mapping)
            }
            for listing in chunk:
                item = found.get(listing.channel_sku)
                if item is None:
                    states.append(
                        ListingState(sku=listing.sku, price=None, quantity=None, found=False)
                    )
                else:
                    states.append(self._listing_state(listing.sku, item))
        return states

    def _listing_state(self, sku: str, data: Mapping[str, Any]) -> ListingState:
        price = None
        for offer in data.get("offers") or []:
            if offer.get("marketplaceId", self.marketplace_id) != self.marketplace_id:
                continue
            if offer.get("offerType", "B2C") != "B2C":
                continue
            amount = (offer.get("price") or {}).get("amount")
            price = _decimal(amount)
            break
        quantity = None
        for entry in data.get("fulfillmentAvailability") or []:
            if entry.get("fulfillmentChannelCode") == self.channel_code:
                quantity = _int(entry.get("quantity"))
                break
        return ListingState(sku=sku, price=price, quantity=quantity)

    # ------------------------------------------------------------------ catalog

    def catalog_page(self, cursor: str | None, *, page_size: int = 100) -> CatalogPage:
        """One searchListingsItems page (20 at most) of the seller's listings, oldest
        first; see the module docstring for reading past 1000."""
        state = (decode_page_cursor(cursor) if cursor else None) or {}
        after = str(state.get("after") or "")
        token = str(state.get("token") or "")
        paged = int(state.get("paged") or 0)
        boundary = set(state.get("boundary") or [])
        params: dict[str, Any] = {
            "marketplaceIds": self.marketplace_id,
            "includedData": CATALOG_INCLUDED_DATA,
            "pageSize": max(1, min(page_size, SEARCH_IDENTIFIERS_MAX)),
            "sortBy": "createdDate",
            "sortOrder": "ASC",
        }
        if after:
            params["createdAfter"] = after
        if token:
            params["pageToken"] = token
        data = self._call(
            "searchListingsItems",
            "GET",
            f"{LISTINGS}/{quote(self.seller_id, safe='')}",
            params=params,
        ).unwrap()
        rows = [r for r in (data or {}).get("items") or [] if isinstance(r, Mapping)]
        fresh = [r for r in rows if str(r.get("sku", "")) not in boundary]
        items = [self._catalog_item(row) for row in fresh]
        paged += len(rows)
        found = _int((data or {}).get("numberOfResults"))
        next_token = str(((data or {}).get("pagination") or {}).get("nextToken") or "")
        next_state: dict[str, Any] | None = None
        last_stamp = _created(rows[-1]) if rows else ""
        marks = sorted(
            {str(r.get("sku", "")) for r in rows if _created(r) == last_stamp}
            | (boundary if last_stamp == after else set())
        )
        if next_token:
            next_state = {"after": after, "token": next_token, "paged": paged, "boundary": marks}
        elif found is not None and found > paged and last_stamp:
            # The search stopped at its page-through limit: go on from the last second seen.
            if last_stamp == after and not fresh:
                raise PermanentError(
                    f"more than {SEARCH_PAGE_THROUGH_MAX} listings were created at {after}: "
                    "searchListingsItems cannot page past them",
                    code="catalog_not_pageable",
                )
            next_state = {"after": last_stamp, "token": "", "paged": 0, "boundary": marks}
        return CatalogPage(
            items=items,
            next_cursor=encode_page_cursor(next_state) if next_state else None,
            total=found if not after else None,
        )

    def _catalog_item(self, row: Mapping[str, Any]) -> CatalogItem:
        sku = str(row.get("sku") or "")
        if not sku:
            raise PermanentError("a listing without sku", code="unexpected_response")
        summary = next(
            (
                s
                for s in row.get("summaries") or []
                if isinstance(s, Mapping)
                and s.get("marketplaceId", self.marketplace_id) == self.marketplace_id
            ),
            {},
        )
        raw_attributes = row.get("attributes")
        attributes: Mapping[str, Any] = (
            raw_attributes if isinstance(raw_attributes, Mapping) else {}
        )
        parent, theme = self._variation(row)
        state = self._listing_state(sku, row)
        image = summary.get("mainImage") or {}
        return CatalogItem(
            key=sku,
            sku=sku,
            title=str(summary.get("itemName") or ""),
            barcode=_attribute_value(attributes, "externally_assigned_product_identifier"),
            options={
                name: value for name in theme if (value := _attribute_value(attributes, name))
            },
            price=state.price,
            quantity=state.quantity,
            product_id=str(summary.get("asin") or ""),
            parent_ref=parent,
            image_url=str(image.get("link") or "") if isinstance(image, Mapping) else "",
        )

    def _variation(self, row: Mapping[str, Any]) -> tuple[str, list[str]]:
        """(parent SKU, the variation theme's attribute names) of a variation child."""
        for entry in row.get("relationships") or []:
            if not isinstance(entry, Mapping):
                continue
            if entry.get("marketplaceId", self.marketplace_id) != self.marketplace_id:
                continue
            for relation in entry.get("relationships") or []:
                if not isinstance(relation, Mapping) or relation.get("type") != "VARIATION":
                    continue
                parents = relation.get("parentSkus") or []
                theme = (relation.get("variationTheme") or {}).get("attributes") or []
                if parents:
                    return str(parents[0]), [str(name) for name in theme]
        return "", []

    # ------------------------------------------------------------------ orders

    def orders_since(self, cursor: str | None, *, page_size: int = 100) -> OrdersPage:
        state = decode_page_cursor(cursor) if cursor else None
        if state is None:
            since = parse_timestamp(cursor) if cursor else datetime.now(UTC) - timedelta(days=30)
            state = {"since": format_timestamp(since), "token": None, "hwm": None}
        # Exactly one of createdAfter/lastUpdatedAfter on every page, the token too.
        params: dict[str, Any] = {
            "marketplaceIds": self.marketplace_id,
            "lastUpdatedAfter": state["since"],
            "maxResultsPerPage": max(1, min(page_size, MAX_ORDER_PAGE)),
            "includedData": ORDER_INCLUDED_DATA,
        }
        if state.get("token"):
            params["paginationToken"] = state["token"]
        payload = self._call("searchOrders", "GET", ORDERS, params=params).unwrap() or {}
        orders = [self._order(raw) for raw in payload.get("orders") or []]
        hwm = state.get("hwm")
        for order in orders:
            if hwm is None or order.updated_at > parse_timestamp(hwm):
                hwm = format_timestamp(order.updated_at)
        token = (payload.get("pagination") or {}).get("nextToken")
        next_cursor = None
        if token:
            next_cursor = encode_page_cursor({"since": state["since"], "token": token, "hwm": hwm})
        return OrdersPage(orders=orders, next_cursor=next_cursor, high_water_mark=hwm)

    def _order(self, raw: Mapping[str, Any]) -> OrderData:
        order_id = str(raw.get("orderId", ""))
        # Pending orders carry no proceeds yet.
        total = (raw.get("proceeds") or {}).get("grandTotal") or {}
        status = str((raw.get("fulfillment") or {}).get("fulfillmentStatus", ""))
        return OrderData(
            external_id=order_id,
            name=order_id,
            status=ORDER_STATUS_MAP.get(status, "pending"),
            # Amazon has one order status covering payment and shipping.
            financial_status=status,
            fulfillment_status=status,
            currency=str(total.get("currencyCode", self.currency)),
            total=_decimal(total.get("amount")) or Decimal("0"),
            updated_at=parse_timestamp(str(raw.get("lastUpdatedTime") or raw.get("createdTime"))),
            created_at=parse_timestamp(str(raw.get("createdTime"))),
            lines=[_order_line(item) for item in raw.get("orderItems") or []],
            customer_email=str((raw.get("buyer") or {}).get("buyerEmail", "")),
            raw=dict(raw),
        )

    def _get_order(self, order_id: str) -> Mapping[str, Any]:
        payload = self._call(
            "getOrder",
            "GET",
            f"{ORDERS}/{quote(order_id, safe='')}",
            params={"includedData": "FULFILLMENT"},
        ).unwrap()
        order = (payload or {}).get("order")
        if not isinstance(order, Mapping):
            raise PermanentError(
                f"getOrder answered without an order: {body_snippet(json.dumps(payload))}",
                code="unexpected_response",
            )
        return order

    # ------------------------------------------------------------------ notifications

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """Always False: Amazon delivers notifications to SQS/EventBridge, never by HTTP."""
        del headers, raw_body
        return False

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookEvent:
        """Parse an SQS notification body (e.g. ORDER_CHANGE) pulled from the queue.

        The notification carries no order totals, so ``order`` is None: the
        caller re-reads the order (getOrder) with the AmazonOrderId in payload.
        """
        del headers
        try:
            message = json.loads(raw_body)
        except ValueError as exc:
            raise PermanentError(
                f"notification is not JSON: {body_snippet(raw_body)}", code="malformed_json"
            ) from exc
        if not isinstance(message, Mapping):
            raise PermanentError("notification is not a JSON object", code="unexpected_response")
        metadata = message.get("NotificationMetadata") or {}
        notification_id = str(metadata.get("NotificationId", ""))
        topic = str(message.get("NotificationType", ""))
        if not notification_id or not topic:
            raise PermanentError(
                "notification lacks NotificationType or NotificationMetadata.NotificationId",
                code="unexpected_response",
            )
        event_time = message.get("EventTime")
        return WebhookEvent(
            delivery_id=notification_id,
            topic=topic,
            occurred_at=parse_timestamp(str(event_time)) if event_time else None,
            order=None,
            payload=dict(message),
        )

    # ------------------------------------------------------------------ order actions

    def cancel_order(self, external_order_id: str, *, reason: str = "") -> ItemResult:
        del reason
        return ItemResult(
            sku=external_order_id,
            kind=FailureKind.PERMANENT,
            code="unsupported",
            message=(
                "cancelling an Amazon order is not supported by this connector: the channel "
                "reference documents no seller cancellation call; cancel it in Seller Central"
            ),
        )

    def fulfil_order(
        self, external_order_id: str, *, tracking_number: str = "", carrier: str = ""
    ) -> ItemResult:
        if not tracking_number:
            # confirmShipment's packageDetail requires a tracking number.
            return ItemResult(
                sku=external_order_id,
                kind=FailureKind.PERMANENT,
                code="tracking_required",
                message="Amazon needs a tracking number to confirm a shipment",
            )
        if not carrier.strip():
            return ItemResult(
                sku=external_order_id,
                kind=FailureKind.PERMANENT,
                code="carrier_required",
                message="Amazon needs the carrier (e.g. UPS, or the carrier's name) to confirm "
                "a shipment",
            )
        try:
            items = self._get_order(external_order_id).get("orderItems") or []
        except ConnectorError as error:
            return item_result(external_order_id, error)
        open_items = [
            {"orderItemId": str(item.get("orderItemId")), "quantity": left}
            for item in items
            if isinstance(item, Mapping) and (left := _unshipped(item)) > 0
        ]
        if not open_items:  # nothing left to ship: confirming again is a no-op
            return ok_result(external_order_id)
        package = {
            "packageReferenceId": "1",
            **carrier_fields(carrier),
            "trackingNumber": tracking_number,
            "shipDate": format_timestamp(datetime.now(UTC)),
            "orderItems": open_items,
        }
        result = self._call(
            "confirmShipment",
            "POST",
            f"{ORDERS_V0}/{quote(external_order_id, safe='')}/shipmentConfirmation",
            json={"marketplaceId": self.marketplace_id, "packageDetail": package},
        )
        if result.error is not None:
            return item_result(external_order_id, result.error)
        return ok_result(external_order_id, http_status=result.status)

    def test_connection(self) -> ConnectionCheck:
        result = self._call(
            "searchListingsItems",
            "GET",
            f"{LISTINGS}/{quote(self.seller_id, safe='')}",
            params={"marketplaceIds": self.marketplace_id, "pageSize": 1},
        )
        if result.error is not None:
            return ConnectionCheck(
                ok=False, message=f"{result.error.kind.value}: {result.error.message}"
            )
        total = (result.data or {}).get("numberOfResults")
        return ConnectionCheck(ok=True, message=f"SP-API Listings reachable ({total} listings)")


# ---------------------------------------------------------------------- helpers


def _created(row: Mapping[str, Any]) -> str:
    """A search result's createdDate (its first summary's), "" when absent."""
    for summary in row.get("summaries") or []:
        if isinstance(summary, Mapping) and summary.get("createdDate"):
            return str(summary["createdDate"])
    return ""


def _attribute_value(attributes: Mapping[str, Any], name: str) -> str:
    """The first value of a listing attribute (``[{"value": ...}]``), "" when absent."""
    values = attributes.get(name)
    if isinstance(values, list):
        for entry in values:
            if isinstance(entry, Mapping) and entry.get("value") not in (None, ""):
                return str(entry["value"])
    return ""


def _carrier_key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


_CARRIERS_BY_KEY = {
    **{_carrier_key(code): code for code in CARRIER_CODES},
    **CARRIER_ALIASES,
}


def carrier_fields(carrier: str) -> dict[str, str]:
    """``carrierCode`` (and ``carrierName`` for an unlisted carrier) for a carrier as
    typed: a listed carrier by its code, anything else as Other with its name."""
    name = carrier.strip()
    code = _CARRIERS_BY_KEY.get(_carrier_key(name))
    if code is not None:
        return {"carrierCode": code}
    if not name:
        raise ValueError("a carrier name is required")
    return {"carrierCode": CARRIER_OTHER, "carrierName": name}


def _order_line(item: Mapping[str, Any]) -> OrderLineData:
    product = item.get("product") or {}
    quantity = _int(item.get("quantityOrdered")) or 0
    unit = _decimal(((product.get("price") or {}).get("unitPrice") or {}).get("amount"))
    if unit is None:  # no unit price: the item's proceeds over its quantity
        total = _decimal(((item.get("proceeds") or {}).get("proceedsTotal") or {}).get("amount"))
        unit = (total / quantity).quantize(Decimal("0.01")) if total and quantity else Decimal("0")
    return OrderLineData(
        external_line_id=str(item.get("orderItemId", "")),
        sku=str(product.get("sellerSku", "")),
        quantity=quantity,
        unit_price=unit,
        external_product_id=str(product.get("asin", "")),
    )


def _unshipped(item: Mapping[str, Any]) -> int:
    """Units of an order item not shipped yet (its fulfillment dataset)."""
    fulfillment = item.get("fulfillment") or {}
    left = _int(fulfillment.get("quantityUnfulfilled"))
    if left is not None:
        return left
    return (_int(item.get("quantityOrdered")) or 0) - (
        _int(fulfillment.get("quantityFulfilled")) or 0
    )


def _patch_result(sku: str, result: HttpResult) -> ItemResult:
    data = result.data or {}
    status = str(data.get("status", ""))
    errors = [i for i in data.get("issues") or [] if str(i.get("severity")) == "ERROR"]
    if status == "ACCEPTED" and not errors:
        return ok_result(sku, http_status=result.status)
    if status in ("ACCEPTED", "INVALID") or errors:
        first = errors[0] if errors else {}
        return ItemResult(
            sku=sku,
            kind=FailureKind.PERMANENT,
            code=str(first.get("code", status or "INVALID")),
            message=str(first.get("message", f"listing patch {status}")),
            http_status=result.status,
        )
    return ItemResult(
        sku=sku,
        kind=FailureKind.PERMANENT,
        code="unexpected_response",
        message=f"patchListingsItem answered without a status: {body_snippet(result.body)}",
        http_status=result.status,
    )


def _feed_status(feed: Mapping[str, Any]) -> BatchStatus:
    word = str(feed.get("processingStatus", ""))
    state = {"DONE": "done", "CANCELLED": "cancelled", "FATAL": "failed"}.get(word, "pending")
    return BatchStatus(state, word, str(feed.get("resultFeedDocumentId") or ""))


def _map_report(patches: Sequence[_Patch], report: Mapping[str, Any]) -> dict[int, ItemResult]:
    """Per-SKU results from a JSON_LISTINGS_FEED processing report (by messageId)."""
    errors: dict[int, Mapping[str, Any]] = {}
    for issue in report.get("issues") or []:
        if str(issue.get("severity")) != "ERROR":
            continue
        message_id = _int(issue.get("messageId"))
        if message_id is not None and message_id not in errors:
            errors[message_id] = issue
    results = {}
    for number, patch in enumerate(patches, start=1):
        issue = errors.get(number)
        if issue is None:
            results[patch.index] = ok_result(patch.sku)
            continue
        results[patch.index] = ItemResult(
            sku=patch.sku,
            kind=FailureKind.PERMANENT,
            code=str(issue.get("code", "")),
            message=str(issue.get("message", "")),
        )
    return results


def _first_issue(report: Mapping[str, Any] | None) -> str:
    if not report:
        return ""
    for issue in report.get("issues") or []:
        return f"{issue.get('code', '')} {issue.get('message', '')}".strip()
    return ""


def _state_error(sku: str, error: ConnectorError) -> ListingState:
    return ListingState(sku=sku, price=None, quantity=None, error=item_result(sku, error))


def _number(value: Decimal) -> float | int:
    """A JSON number for a money value (SP-API wants numbers, not strings)."""
    quantized = value.quantize(Decimal("0.01"))
    return int(quantized) if quantized == quantized.to_integral_value() else float(quantized)


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
