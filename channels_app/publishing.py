"""Publishing: a pimsync product created on a channel ("Publish to channel").

The product goes out whole - title, description, images by URL where the platform
takes them, options and variants with barcode, price and quantity - in the
platform's own way (Shopify productSet, WooCommerce product + variations, eBay
inventory items + group + offers, Amazon putListingsItem, Magento simple /
configurable products); docs/publishing.md has the details. The channel's answer
becomes ChannelListings with the ids it returned, marked as pimsync's content
(later edits of title, description, images, options or barcode are pushed as
attribute events), and the normal price and quantity pushes follow at once: the
values are computed afresh and whatever moved since the call goes out.

A publication row per (channel, product) records where it stands. It is claimed
under a row lock before the channel is called, so two requests never publish one
product on one channel at the same time (the second is refused, not queued).
Publishing again updates the product on the channel and lists variants added since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inventory.models import Product, Variant
from synclog import services as synclog
from synclog.services import Attempt

from .connectors.base import ContentPublisher, ProductContent, PublishResult, VariantContent
from .connectors.errors import ConnectorError
from .content import listing_content_parts, product_content_to_publish
from .models import Channel, ChannelListing, ChannelPublication, ChannelSyncState, SyncKind
from .sync.connection import channel_connector
from .sync.markers import listings_mark_dirty
from .webhook_secrets import Actor

EVENT_TYPE = "attribute"


class PublishError(ValueError):
    """The product cannot be published on the channel now; nothing was sent."""


@dataclass(frozen=True)
class PublishOutcome:
    """What one channel made of a publish: the SKUs it lists now and those it refused."""

    channel: Channel
    publication: ChannelPublication
    listed: list[str] = field(default_factory=list)
    refused: list[tuple[str, str, str]] = field(default_factory=list)  # sku, code, message

    @property
    def ok(self) -> bool:
        return bool(self.listed) and not self.refused

    def __str__(self) -> str:
        return f"{self.channel}: {self.publication.message}"


def _lease() -> timedelta:
    return timedelta(seconds=settings.PIMSYNC_PUBLISH_LEASE_SECONDS)


def _variants(product: Product) -> list[Variant]:
    return list(product.variants.filter(is_active=True).order_by("pk"))


def publish_problem(*, channel: Channel, product: Product) -> str:
    """Why ``product`` cannot be published on ``channel`` ("" when it can)."""
    if not channel.is_enabled:
        return f"{channel} is disabled"
    if product.status == Product.Status.ARCHIVED:
        return f"{product} is archived"
    if not product.variants.filter(is_active=True).exists():
        return f"{product} has no active variant"
    state = ChannelSyncState.objects.filter(channel=channel).first()
    if state is not None and state.auth_failed_at is not None:
        return f"{channel} refused pimsync's credentials: replace them first"
    if not isinstance(channel_connector(channel), ContentPublisher):
        return f"pimsync cannot create products on {channel.get_platform_display()}"
    return ""


def _publication_claim(
    channel: Channel, product: Product, user: Actor, now: datetime
) -> ChannelPublication:
    """The publication row, marked as being published by this request (row lock)."""
    with transaction.atomic():
        publication, created = ChannelPublication.objects.select_for_update().get_or_create(
            channel=channel,
            product=product,
            defaults={"status": ChannelPublication.Status.PUBLISHING},
        )
        if (
            not created
            and publication.status == ChannelPublication.Status.PUBLISHING
            and publication.updated_at > now - _lease()
            and publication.attempts
        ):
            raise PublishError(
                f"{product} is being published on {channel} by another request "
                f"(since {publication.updated_at:%H:%M:%S})"
            )
        publication.status = ChannelPublication.Status.PUBLISHING
        publication.attempts += 1
        if user is not None and user.is_authenticated:
            publication.published_by = user  # type: ignore[assignment]
        publication.save()
    return publication


def product_publish(*, channel: Channel, product: Product, user: Actor = None) -> PublishOutcome:
    """Create ``product`` (its active variants) on ``channel``, or update it there when
    pimsync published it before; list each variant the channel took with the ids it
    returned, and push prices and quantities afresh.

    Calls the channel outside any transaction (through its rate budget). Raises
    PublishError when the product or channel cannot be published (nothing sent) or
    another request is publishing it; a refusal by the channel is returned, per SKU,
    in the outcome and the sync log (event type attribute).
    """
    problem = publish_problem(channel=channel, product=product)
    if problem:
        raise PublishError(problem)
    publication = _publication_claim(channel, product, user, timezone.now())
    variants = _variants(product)
    content = product_content_to_publish(
        channel=channel, product=product, variants=variants, product_ref=publication.product_ref
    )
    started = timezone.now()
    connector = channel_connector(channel)
    if not isinstance(connector, ContentPublisher):  # checked above; the platform may change
        raise PublishError(f"pimsync cannot create products on {channel.platform}")
    try:
        result = connector.publish_product(content)
    except ConnectorError as exc:
        return _publish_failed(channel, publication, content, exc)
    return _publish_record(channel, publication, content, variants, result, started)


def _publish_failed(
    channel: Channel,
    publication: ChannelPublication,
    content: ProductContent,
    error: ConnectorError,
) -> PublishOutcome:
    refused = [(v.sku, error.code or error.kind.value, error.message) for v in content.variants]
    with transaction.atomic():
        publication.status = ChannelPublication.Status.FAILED
        publication.failed_variants = len(refused)
        publication.message = f"not published: {error.message}"[:2000]
        publication.save()
        synclog.sync_log_record(_attempts(channel, content, {}, refused, error.status))
    return PublishOutcome(channel, publication, [], refused)


def _listing_for(
    channel: Channel, variant: Variant, published: VariantContent, ids: dict[str, str]
) -> ChannelListing:
    listing = ChannelListing.objects.filter(channel=channel, variant=variant).first()
    if listing is None:
        listing = ChannelListing(channel=channel, variant=variant)
    for name, value in ids.items():
        setattr(listing, name, value)
    listing.sync_content = True
    listing.is_enabled = True
    return listing


def _publish_record(
    channel: Channel,
    publication: ChannelPublication,
    content: ProductContent,
    variants: Sequence[Variant],
    result: PublishResult,
    started: datetime,
) -> PublishOutcome:
    """List what the channel took, log every SKU, mark prices and quantities for a push."""
    now = timezone.now()
    by_sku = {v.sku: v for v in variants}
    sent = {v.sku: v for v in content.variants}
    listed: list[str] = []
    refused = [
        (pv.sku, pv.result.code, pv.result.message) for pv in result.variants if not pv.result.ok
    ]
    answered = {pv.sku for pv in result.variants}
    refused += [
        (sku, "no_result", "the channel said nothing of it") for sku in sent if sku not in answered
    ]
    listings: dict[str, ChannelListing] = {}
    with transaction.atomic():
        for pv in result.variants:
            if not pv.result.ok or pv.sku not in by_sku:
                continue
            ref = pv.listing
            ids = {
                "external_product_id": ref.product_id,
                "external_variant_id": ref.variant_id,
                "inventory_item_id": ref.inventory_item_id,
                "offer_id": ref.offer_id,
                "listing_sku": ref.listing_sku if ref.listing_sku != pv.sku else "",
            }
            listing = _listing_for(channel, by_sku[pv.sku], sent[pv.sku], ids)
            value = sent[pv.sku]
            if pv.values_set:
                listing.last_pushed_price = listing.last_confirmed_price = value.price
                listing.last_pushed_quantity = listing.last_confirmed_quantity = value.quantity
                listing.last_price_pushed_at = listing.last_quantity_pushed_at = now
            listing.last_pushed_at = listing.last_confirmed_at = now
            listing.last_pushed_content = listing_content_parts(listing, content)
            listing.last_content_pushed_at = now
            listing.full_clean()
            listing.save()
            listings[pv.sku] = listing
            listed.append(pv.sku)
        # What moved while the channel was being called goes out now (the engine
        # computes afresh and drops what the channel already shows).
        listings_mark_dirty(
            ChannelListing.objects.filter(pk__in=[lst.pk for lst in listings.values()]),
            kinds=[SyncKind.PRICE, SyncKind.QUANTITY],
        )
        publication.status = (
            ChannelPublication.Status.PUBLISHED
            if listed and not refused
            else ChannelPublication.Status.PARTIAL
            if listed
            else ChannelPublication.Status.FAILED
        )
        publication.product_ref = result.product_ref[:200]
        publication.published_variants = len(listed)
        publication.failed_variants = len(refused)
        publication.message = _message(content, listed, refused, result.product_ref)[:2000]
        if listed and publication.first_published_at is None:
            publication.first_published_at = now
        publication.save()
        latency = max(0, int((now - started).total_seconds() * 1000))
        synclog.sync_log_record(
            _attempts(channel, content, listings, refused, None, latency_ms=latency), now=now
        )
    return PublishOutcome(channel, publication, listed, refused)


def _message(
    content: ProductContent, listed: list[str], refused: list[tuple[str, str, str]], ref: str
) -> str:
    if not listed:
        first = refused[0] if refused else ("", "", "nothing was listed")
        return f"not published: {first[0]} {first[1]} {first[2]}".strip()
    text = f"published {len(listed)} of {len(content.variants)} variant(s)"
    if ref:
        text += f" as {ref}"
    if refused:
        text += "; refused: " + "; ".join(f"{sku} ({code}: {msg})" for sku, code, msg in refused)
    return text


def _attempts(
    channel: Channel,
    content: ProductContent,
    listings: dict[str, ChannelListing],
    refused: list[tuple[str, str, str]],
    http_status: int | None,
    *,
    latency_ms: int | None = None,
) -> list[Attempt]:
    attempts = [
        Attempt(
            channel_id=channel.pk,
            sku=sku,
            listing_id=listing.pk,
            event_type=EVENT_TYPE,
            value_sent="published",
            status="success",
            latency_ms=latency_ms,
        )
        for sku, listing in listings.items()
    ]
    attempts += [
        Attempt(
            channel_id=channel.pk,
            sku=sku,
            listing_id=listings[sku].pk if sku in listings else None,
            event_type=EVENT_TYPE,
            value_sent="published",
            status="failed",
            error_code=code[:64],
            message=message[:2000],
            http_status=http_status,
        )
        for sku, code, message in refused
    ]
    return attempts


def products_publish(
    *, channels: Sequence[Channel], products: Sequence[Product], user: Actor = None
) -> list[PublishOutcome | PublishError]:
    """Publish each product on each channel, one after another; a product that cannot
    be published on a channel is reported (its PublishError) and the rest go on."""
    outcomes: list[PublishOutcome | PublishError] = []
    for product in products:
        for channel in channels:
            try:
                outcomes.append(product_publish(channel=channel, product=product, user=user))
            except PublishError as exc:
                outcomes.append(PublishError(f"{product} on {channel}: {exc}"))
    return outcomes
