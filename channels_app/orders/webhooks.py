"""``POST /webhooks/<channel-slug>/``: verify, store, answer at once (design §4).

The endpoint does the least that makes a delivery safe to acknowledge: it
checks the size, verifies the platform's HMAC on the raw body in constant time
(the connector's ``verify_webhook``), refuses stale deliveries, parses the body
once to reject garbage, and stores an InboundEvent. Processing happens in a
task enqueued after commit; with the broker down the event is still stored and
answered 200, and the sweeper processes it. A delivery id seen before is
answered 200 and not stored or processed again.

Only Shopify and WooCommerce deliver order webhooks over HTTP with a secret
pimsync can check; eBay, Amazon and Magento orders are polled.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Field
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from ..connectors.base import Connector, WebhookEvent
from ..connectors.errors import ConnectorError
from ..connectors.http import header, parse_timestamp
from ..dispatch import inbound_event_enqueue_on_commit
from ..health import webhook_refusal_record
from ..models import WEBHOOK_PLATFORMS, Channel, InboundEvent, Platform
from ..sync.connection import channel_connector
from .events import order_skus

log = logging.getLogger(__name__)

SIGNATURE_HEADERS = {
    Platform.SHOPIFY: "X-Shopify-Hmac-Sha256",
    Platform.WOOCOMMERCE: "X-WC-Webhook-Signature",
}
# Read for log lines before the body is trusted or parsed.
DELIVERY_HEADERS = {
    Platform.SHOPIFY: ("X-Shopify-Webhook-Id", "X-Shopify-Event-Id"),
    Platform.WOOCOMMERCE: ("X-WC-Webhook-Delivery-ID",),
}
# The platform's own "sent at" header; its age is checked against the replay window.
TIMESTAMP_HEADERS = {Platform.SHOPIFY: "X-Shopify-Triggered-At"}
# What is kept with an event: what processing re-reads (topic, ids, time) and what
# helps an operator. An allowlist, so cookies, authorization or any future secret
# header is never stored; signatures are dropped too (worthless once checked).
STORED_HEADERS = (
    "Content-Type",
    "User-Agent",
    "X-Shopify-Topic",
    "X-Shopify-Shop-Domain",
    "X-Shopify-API-Version",
    "X-Shopify-Webhook-Id",
    "X-Shopify-Event-Id",
    "X-Shopify-Triggered-At",
    "X-WC-Webhook-Source",
    "X-WC-Webhook-Topic",
    "X-WC-Webhook-Resource",
    "X-WC-Webhook-Event",
    "X-WC-Webhook-ID",
    "X-WC-Webhook-Delivery-ID",
)
# WooCommerce pings a new webhook with this unsigned form body and reports any
# answer other than exactly 200 as an error.
WOO_PING_BODY = re.compile(rb"webhook_id=\d+")


class WebhookRefused(Exception):
    """A delivery pimsync does not accept; carries the HTTP answer."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail

    def response(self) -> JsonResponse:
        return JsonResponse({"error": self.error, "detail": self.detail}, status=self.status)


@dataclass(frozen=True)
class Ingested:
    event_id: int | None
    duplicate: bool = False
    ping: bool = False


def lowered_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names folded once, so each later look-up is one dict access."""
    return {k.lower(): v for k, v in headers.items()}


def _delivery_hint(platform: str, headers: Mapping[str, str]) -> str:
    for name in DELIVERY_HEADERS.get(platform, ()):
        if value := header(headers, name):
            return value[:120]
    return "-"


def _refuse_unauthentic(channel: Channel, headers: Mapping[str, str], reason: str) -> None:
    """Nothing of the delivery is stored; a per-minute counter is bumped and the
    bad-signature alert opens (or counts) once the channel's threshold is reached."""
    delivery = _delivery_hint(channel.platform, headers)
    log.warning("webhook for channel %s refused (%s), delivery %s", channel.slug, reason, delivery)
    webhook_refusal_record(channel=channel, reason=reason, delivery=delivery)
    raise WebhookRefused(401, "invalid_signature", "Missing, invalid or stale webhook signature.")


def _verify(
    channel: Channel, connector: Connector, headers: Mapping[str, str], raw_body: bytes
) -> None:
    if connector.verify_webhook(headers, raw_body):
        return
    if not channel.webhook_secret:
        reason = "no webhook secret is configured"
    elif not header(headers, SIGNATURE_HEADERS[channel.platform]):
        reason = f"no {SIGNATURE_HEADERS[channel.platform]} header"
    else:
        reason = "the signature does not match the body"
    _refuse_unauthentic(channel, headers, reason)


def _check_fresh(channel: Channel, headers: Mapping[str, str], now: datetime) -> None:
    """Refuse a delivery whose platform timestamp is older than the replay window.

    The timestamp is not covered by the signature, so this stops stale retries and
    naive replays, not a forger; a replayed state change is harmless anyway, as
    order_apply never moves an order backwards.
    """
    name = TIMESTAMP_HEADERS.get(channel.platform)
    stamp = header(headers, name) if name else ""
    if not stamp:
        return
    try:
        sent_at = parse_timestamp(stamp)
    except ConnectorError:
        raise WebhookRefused(400, "bad_timestamp", f"Unreadable {name} header.") from None
    age = (now - sent_at).total_seconds()
    if age > settings.PIMSYNC_WEBHOOK_REPLAY_SECONDS:
        _refuse_unauthentic(channel, headers, f"stale delivery: {name} is {int(age)} s old")


def _parse(
    channel: Channel, connector: Connector, headers: Mapping[str, str], raw_body: bytes
) -> WebhookEvent:
    try:
        raw_body.decode("utf-8")  # stored as text; JSON on the wire is UTF-8
        return connector.parse_webhook(headers, raw_body)
    except UnicodeDecodeError:
        code, message = "malformed_json", "body is not UTF-8"
    except ConnectorError as exc:
        code, message = exc.code, exc.message
    log.warning(
        "webhook for channel %s, delivery %s: unreadable body (%s): %s",
        channel.slug,
        _delivery_hint(channel.platform, headers),
        code,
        message[:200],
    )
    error = "malformed_json" if code == "malformed_json" else "unreadable_payload"
    raise WebhookRefused(400, error, "The body could not be read as this topic.")


def _external_order_id(parsed: WebhookEvent) -> str:
    if parsed.order is not None:
        return parsed.order.external_id[:120]
    # e.g. WooCommerce order.deleted sends only {"id": N}
    if parsed.topic.startswith("order") and parsed.payload.get("id") is not None:
        return str(parsed.payload["id"])[:120]
    return ""


@functools.cache
def _event_insert_statement() -> tuple[str, list[Field]]:
    """``INSERT … ON CONFLICT (channel, delivery id) DO NOTHING RETURNING id`` and the
    fields it fills, built once from the model.

    The endpoint's hot statement: the ORM's per-row save machinery cost more than the
    rest of a delivery's handling, and a conflict answers with no row instead of an
    IntegrityError (no savepoint, no exception, one round trip for a repeat too).
    PostgreSQL and SQLite (3.35+) both speak it.
    """
    meta = InboundEvent._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    # The columns of the inbound_delivery_unique constraint.
    conflict = ", ".join(quote(meta.get_field(name).column) for name in ("channel", "delivery_id"))
    # Only the model's own quoted names are formatted in; values are parameters.
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({marks}) "  # noqa: S608
        f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {quote(meta.pk.column)}"
    )
    return sql, fields


def _event_insert(values: dict[str, object]) -> int | None:
    """The new event's id, or None when (channel, delivery id) is already stored."""
    sql, fields = _event_insert_statement()
    params = [
        f.get_db_prep_save(
            values[f.attname] if f.attname in values else f.get_default(), connection
        )
        for f in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def _store(
    channel: Channel,
    parsed: WebhookEvent,
    headers: Mapping[str, str],
    raw_body: bytes,
) -> Ingested:
    """Stored once per (channel, delivery id); processing enqueued on commit."""
    sha = hashlib.sha256(raw_body).hexdigest()
    delivery_id = (parsed.delivery_id or f"body:{sha}")[:200]
    kept = {name: value for name in STORED_HEADERS if (value := header(headers, name))}
    event_id = _event_insert(
        {
            "channel_id": channel.pk,
            "source": InboundEvent.Source.WEBHOOK.value,
            "delivery_id": delivery_id,
            "topic": parsed.topic[:100],
            "headers": kept,
            "raw_body": raw_body.decode("utf-8"),
            "body_sha256": sha,
            "external_order_id": _external_order_id(parsed),
            "received_at": timezone.now(),
            "skus": order_skus(parsed.order),
        }
    )
    if event_id is None:
        # A repeat (or its concurrent twin): stored once, processed once.
        seen = (
            InboundEvent.objects.filter(channel=channel, delivery_id=delivery_id)
            .values_list("pk", flat=True)
            .first()
        )
        return Ingested(event_id=seen, duplicate=True)
    inbound_event_enqueue_on_commit(event_id)
    return Ingested(event_id=event_id)


@dataclass(frozen=True)
class Receiver:
    """What a web process needs to check deliveries for one channel."""

    channel: Channel
    connector: Connector | None  # None: the platform sends no webhooks pimsync can verify
    loaded_at: float


_receivers: dict[str, Receiver] = {}
_receivers_lock = threading.Lock()


def channel_webhook_receiver(slug: str) -> Receiver | None:
    """The enabled channel behind ``slug`` and its connector, reused for a few seconds.

    Reading the channel decrypts its secrets and builds a connector: more work than
    checking a delivery. Unknown slugs are not remembered, so junk URLs cannot grow
    the cache; a channel saved or deleted in this process is dropped at once.
    """
    ttl = settings.PIMSYNC_WEBHOOK_CHANNEL_CACHE_SECONDS
    hit = _receivers.get(slug)
    if hit is not None and time.monotonic() - hit.loaded_at < ttl:
        return hit
    channel = Channel.objects.filter(slug=slug, is_enabled=True).first()
    if channel is None:
        _receivers.pop(slug, None)
        return None
    connector = channel_connector(channel) if channel.platform in WEBHOOK_PLATFORMS else None
    fresh = Receiver(channel=channel, connector=connector, loaded_at=time.monotonic())
    if ttl > 0:
        with _receivers_lock:
            _receivers[slug] = fresh
    return fresh


@receiver(post_save, sender=Channel, dispatch_uid="webhooks-forget-channel-on-save")
@receiver(post_delete, sender=Channel, dispatch_uid="webhooks-forget-channel-on-delete")
def _forget_receivers(**kwargs: object) -> None:
    with _receivers_lock:
        _receivers.clear()


def webhook_ingest(
    *,
    channel: Channel,
    headers: Mapping[str, str],
    raw_body: bytes,
    now: datetime | None = None,
    connector: Connector | None = None,
) -> Ingested:
    """Accept one delivery for a webhook-capable channel, or raise WebhookRefused.

    Authentic, fresh, readable deliveries are stored once per (channel, delivery
    id) and their processing enqueued after commit (a broker failure is logged,
    never raised). Unauthentic ones store nothing and count a ``bad_signature``
    alert. WooCommerce's unsigned creation ping is accepted without storing.
    """
    if channel.platform not in WEBHOOK_PLATFORMS:
        raise _unsupported(channel)
    signature_name = SIGNATURE_HEADERS[channel.platform]
    if (
        channel.platform == Platform.WOOCOMMERCE
        and not header(headers, signature_name)
        and WOO_PING_BODY.fullmatch(raw_body.strip())
    ):
        log.info("webhook ping for channel %s: %s", channel.slug, raw_body[:40].decode())
        return Ingested(event_id=None, ping=True)
    connector = connector or channel_connector(channel)
    _verify(channel, connector, headers, raw_body)
    _check_fresh(channel, headers, now or timezone.now())
    parsed = _parse(channel, connector, headers, raw_body)
    return _store(channel, parsed, headers, raw_body)


def _unsupported(channel: Channel) -> WebhookRefused:
    return WebhookRefused(
        404,
        "webhooks_unsupported",
        f"{channel.get_platform_display()} sends no HTTP order webhooks pimsync can verify; "
        "this channel's orders are read by polling.",
    )


def _read_body(request: HttpRequest, limit: int) -> bytes:
    """The raw body, refusing anything over ``limit`` bytes before reading it all."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared:
        try:
            length = int(declared)
        except ValueError:
            raise WebhookRefused(400, "bad_content_length", "Unreadable Content-Length.") from None
        if length > limit:
            raise WebhookRefused(413, "too_large", f"Bodies over {limit} bytes are refused.")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise WebhookRefused(413, "too_large", f"Bodies over {limit} bytes are refused.")
    return body


@csrf_exempt
def webhook_receive(request: HttpRequest, slug: str) -> JsonResponse:
    """The platform authenticates with its HMAC, not a session: no CSRF, no login."""
    if request.method != "POST":
        answer = WebhookRefused(405, "method_not_allowed", "Deliver webhooks with POST.").response()
        answer["Allow"] = "POST"
        return answer
    found = channel_webhook_receiver(slug)
    if found is None:
        return WebhookRefused(404, "unknown_channel", f"No enabled channel {slug!r}.").response()
    if found.connector is None:
        return _unsupported(found.channel).response()  # before reading a byte of the body
    try:
        raw_body = _read_body(request, settings.PIMSYNC_WEBHOOK_MAX_BYTES)
        ingested = webhook_ingest(
            channel=found.channel,
            headers=lowered_headers(request.headers),
            raw_body=raw_body,
            connector=found.connector,
        )
    except WebhookRefused as refused:
        return refused.response()
    return JsonResponse(
        {
            "ok": True,
            "event_id": ingested.event_id,
            "duplicate": ingested.duplicate,
            "ping": ingested.ping,
        }
    )
