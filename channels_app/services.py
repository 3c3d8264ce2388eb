"""Writes to channels, listings and rules. Every change that alters what a
channel should show marks the affected listings dirty in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from inventory.models import Product
from synclog import services as synclog
from synclog.models import ReconciliationRun

from . import dispatch
from .connectors.base import ConnectionCheck, VariantReader
from .connectors.errors import ConnectorError
from .models import (
    WEBHOOK_PLATFORMS,
    BufferRule,
    Channel,
    ChannelListing,
    InboundEvent,
    PriceRule,
    SyncKind,
    SyncMarker,
)
from .sync import engine
from .sync.connection import channel_connector
from .sync.markers import buffer_rule_affected_listings, listings_mark_dirty
from .sync.reconcile import ReconcileBusyError, listings_by_channel, reconciliation_start
from .webhook_subscriptions import Registration, channel_webhooks_register

LISTING_PRICE_FIELDS = {"price_override"}
LISTING_IDENTITY_FIELDS = {
    "external_product_id",
    "external_variant_id",
    "inventory_item_id",
    "offer_id",
    "listing_sku",
    "is_enabled",
    "variant",
    "channel",
}


@dataclass(frozen=True)
class Queued:
    skus: int
    channels: int

    def __str__(self) -> str:
        return f"Queued {self.skus} SKU(s) on {self.channels} channel(s)."


def listing_save(
    *, listing: ChannelListing, changed_fields: Iterable[str] | None = None
) -> ChannelListing:
    """Save a listing's settings; a new one, new ids or a re-enable push both
    values, an override change pushes the price, disabling pushes 0. The push
    engine's record of what the channel was told is never overwritten."""
    changed = set(changed_fields) if changed_fields is not None else None
    is_new = listing.pk is None
    with transaction.atomic():
        listing.full_clean()
        if is_new:
            listing.save()
        else:
            listing.save(
                update_fields=[
                    f.name
                    for f in ChannelListing._meta.concrete_fields
                    if not f.primary_key and f.name not in ChannelListing.PUSH_STATE_FIELDS
                ]
            )
        if is_new or changed is None or changed & LISTING_IDENTITY_FIELDS:
            kinds = [SyncKind.PRICE, SyncKind.QUANTITY]
        elif changed & LISTING_PRICE_FIELDS:
            kinds = [SyncKind.PRICE]
        else:
            kinds = []
        if kinds:
            # A disabled listing is marked too: its channel must be told 0.
            listings_mark_dirty(
                ChannelListing.objects.filter(pk=listing.pk),
                kinds=kinds,
                include_disabled=not listing.is_enabled,
            )
    return listing


def buffer_rule_save(*, rule: BufferRule) -> BufferRule:
    """Save a buffer rule; listings under its old and new scope get their ATP pushed."""
    with transaction.atomic():
        before = BufferRule.objects.filter(pk=rule.pk).first() if rule.pk else None
        rule.full_clean()
        rule.save()
        _mark_buffer_scopes(rule, before)
    return rule


def buffer_rule_delete(*, rule: BufferRule) -> None:
    with transaction.atomic():
        affected = list(buffer_rule_affected_listings(rule).values_list("pk", flat=True))
        rule.delete()
        listings_mark_dirty(
            ChannelListing.objects.filter(pk__in=affected), kinds=[SyncKind.QUANTITY]
        )


def _mark_buffer_scopes(rule: BufferRule, before: BufferRule | None) -> None:
    listings = buffer_rule_affected_listings(rule)
    if before is not None:
        listings = listings | buffer_rule_affected_listings(before)
    listings_mark_dirty(listings.distinct(), kinds=[SyncKind.QUANTITY])


def price_rule_save(*, rule: PriceRule) -> PriceRule:
    """Save a price rule; every listing of its channel gets its price pushed."""
    with transaction.atomic():
        rule.full_clean()
        rule.save()
        listings_mark_dirty(
            ChannelListing.objects.filter(channel_id=rule.channel_id), kinds=[SyncKind.PRICE]
        )
    return rule


def price_rule_delete(*, rule: PriceRule) -> None:
    with transaction.atomic():
        channel_id = rule.channel_id
        rule.delete()
        listings_mark_dirty(
            ChannelListing.objects.filter(channel_id=channel_id), kinds=[SyncKind.PRICE]
        )


def channel_locations_changed(*, channel: Channel) -> int:
    """The channel's feeding locations changed: every ATP must be pushed again."""
    return listings_mark_dirty(
        ChannelListing.objects.filter(channel=channel), kinds=[SyncKind.QUANTITY]
    )


def channel_save(*, channel: Channel, changed_fields: Iterable[str] = ()) -> Channel:
    """Save a channel. New credentials lift an auth pause; enabling pushes everything;
    an enabled Shopify or WooCommerce channel has its webhooks created or repaired
    (a task after commit: the channel's API is not called inside the save)."""
    changed = set(changed_fields)
    with transaction.atomic():
        channel.full_clean()
        channel.save()
        if changed & {"new_credentials", "credentials", "base_url"}:
            engine.channel_resume(channel.pk)
        if "is_enabled" in changed and channel.is_enabled:
            listings_mark_dirty(ChannelListing.objects.filter(channel=channel))
        channel_reconcile_schedule_sync(channel=channel)
        if channel.is_enabled and channel.platform in WEBHOOK_PLATFORMS:
            dispatch.channel_webhooks_register_request_on_commit(
                channel.pk,
                refresh_secret=bool(changed & {"new_webhook_secret", "webhook_secret"}),
            )
    return channel


def _queue(listings: QuerySet[ChannelListing], *, forced: bool, urgent: bool = False) -> Queued:
    listings = listings.filter(is_enabled=True, channel__is_enabled=True)
    rows = list(listings.values_list("variant_id", "channel_id"))
    with transaction.atomic():
        listings_mark_dirty(listings, forced=forced, urgent=urgent)
    return Queued(skus=len({v for v, _ in rows}), channels=len({c for _, c in rows}))


def listings_push_now(*, listings: QuerySet[ChannelListing]) -> Queued:
    """Push these listings' current values now, before other work and regardless of
    the minimum interval (unchanged values are skipped)."""
    return _queue(listings, forced=False, urgent=True)


def listings_force_resync(*, listings: QuerySet[ChannelListing]) -> Queued:
    """Push current values even where pimsync believes the channel already has them."""
    return _queue(listings, forced=True)


def markers_redrive(*, markers: QuerySet[SyncMarker]) -> int:
    """Send dead-lettered pushes again, from scratch (fresh value, attempts reset)."""
    now = timezone.now()
    with transaction.atomic():
        dead = markers.filter(status=SyncMarker.Status.DEAD)
        channel_ids = set(dead.values_list("channel_id", flat=True))
        count = dead.update(
            status=SyncMarker.Status.PENDING,
            due_at=now,
            attempts=0,
            claimed_until=None,
            claim_token="",
            is_forced=True,
            last_error_code="",
            last_error="",
        )
        for channel_id in channel_ids:
            dispatch.channel_push_request_on_commit(channel_id)
    return count


def sync_log_redrive(*, entries: QuerySet) -> Queued:
    """Re-drive the SKUs of dead sync log entries: their markers if still
    dead-lettered, else a forced push of the listing's current value."""
    pairs = set(entries.filter(status="dead").values_list("listing_id", "event_type"))
    kinds_by_listing: dict[int, set[str]] = {}
    for listing_id, event_type in pairs:
        if listing_id:
            kind = SyncKind.PRICE if event_type == "price" else SyncKind.QUANTITY
            kinds_by_listing.setdefault(listing_id, set()).add(kind)
    with transaction.atomic():
        for listing_id, kinds in kinds_by_listing.items():
            listings_mark_dirty(
                ChannelListing.objects.filter(pk=listing_id), kinds=kinds, forced=True
            )
    listings = ChannelListing.objects.filter(pk__in=kinds_by_listing)
    return Queued(
        skus=listings.values("variant_id").distinct().count(),
        channels=listings.values("channel_id").distinct().count(),
    )


class VariantLinkError(ValueError):
    """The channel product's variants could not be read or matched; nothing changed."""


@dataclass(frozen=True)
class VariantsLinked:
    product_ref: str
    created: list[str]  # SKUs newly listed
    updated: list[str]  # SKUs whose listing got the channel's ids
    unchanged: list[str]
    missing_on_channel: list[str]  # the product's SKUs the channel product lacks
    unknown_to_pimsync: list[str]  # the channel product's SKUs no variant of the product has

    def __str__(self) -> str:
        text = (
            f"Linked {len(self.created) + len(self.updated) + len(self.unchanged)} variant(s) "
            f"to {self.product_ref}: {len(self.created)} new listing(s), "
            f"{len(self.updated)} updated."
        )
        if self.missing_on_channel:
            text += f" Not on the channel: {', '.join(self.missing_on_channel)}."
        if self.unknown_to_pimsync:
            text += f" Unknown to this product: {', '.join(self.unknown_to_pimsync)}."
        return text


def product_variants_link(
    *, channel: Channel, product: Product, product_ref: str
) -> VariantsLinked:
    """List a pimsync product's variants on ``channel`` as the variants of the
    channel product ``product_ref`` (Magento: the SKU of a configurable, whose
    simple children are matched by SKU). A listing is created for each match, or
    given the channel's ids; new or changed listings are pushed. Reads the
    channel first (no transaction open meanwhile); raises VariantLinkError when
    the channel cannot list variants, the product has none there, or none match."""
    connector = channel_connector(channel)
    if not isinstance(connector, VariantReader):
        raise VariantLinkError(
            f"{channel.get_platform_display()} channels cannot list a product's variants"
        )
    try:
        children = connector.read_product_variants(product_ref)
    except ConnectorError as exc:
        raise VariantLinkError(f"{channel}: {exc.message}") from exc
    by_sku = {child.sku: child for child in children}
    variants = list(product.variants.order_by("sku"))
    matched = [v for v in variants if v.sku in by_sku]
    if not matched:
        raise VariantLinkError(
            f"None of {product}'s SKUs is a variant of {product_ref} on {channel}"
            + (f" (it has {', '.join(sorted(by_sku)[:10])})" if by_sku else " (it has none)")
        )
    created, updated, unchanged = [], [], []
    with transaction.atomic():
        existing = {
            lst.variant_id: lst
            for lst in ChannelListing.objects.filter(channel=channel, variant__in=matched)
        }
        for variant in matched:
            child = by_sku[variant.sku]
            ids = {
                "external_product_id": child.product_id,
                "external_variant_id": child.variant_id,
                "listing_sku": "",
            }
            listing = existing.get(variant.pk)
            if listing is None:
                listing_save(listing=ChannelListing(channel=channel, variant=variant, **ids))
                created.append(variant.sku)
                continue
            changed = {name for name, value in ids.items() if getattr(listing, name) != value}
            if not changed:
                unchanged.append(variant.sku)
                continue
            for name in changed:
                setattr(listing, name, ids[name])
            listing_save(listing=listing, changed_fields=changed)
            updated.append(variant.sku)
    known = {v.sku for v in variants}
    return VariantsLinked(
        product_ref=product_ref,
        created=created,
        updated=updated,
        unchanged=unchanged,
        missing_on_channel=sorted(known - set(by_sku)),
        unknown_to_pimsync=sorted(set(by_sku) - known),
    )


def channel_resume(*, channel: Channel) -> None:
    """Lift an auth pause and push what is queued."""
    engine.channel_resume(channel.pk)


def channel_test_connection(*, channel: Channel) -> ConnectionCheck:
    """Ask the channel whether our credentials work; once they do, a Shopify or
    WooCommerce channel's webhooks are created or repaired too (the message says
    how they stand). Never raises."""
    try:
        check = channel_connector(channel).test_connection()
    except Exception as exc:
        return ConnectionCheck(ok=False, message=f"Could not test the connection: {exc}")
    if not check.ok or channel.platform not in WEBHOOK_PLATFORMS:
        return check
    registration = channel_webhooks_register(channel=channel)
    return ConnectionCheck(ok=registration.ok, message=f"{check.message}. Webhooks: {registration}")


def channels_webhooks_register(*, channels: Iterable[Channel]) -> list[Registration]:
    """Create or repair the webhooks of every enabled Shopify or WooCommerce channel
    among ``channels`` (the admin action, the management command)."""
    return [
        channel_webhooks_register(channel=channel)
        for channel in channels
        if channel.is_enabled and channel.platform in WEBHOOK_PLATFORMS
    ]


# --- reconciliation ---------------------------------------------------------------------------


def reconcile_schedule_name(channel_id: int) -> str:
    return f"Reconcile channel {channel_id}"


def channel_reconcile_schedule_sync(*, channel: Channel) -> Any:
    """Keep the channel's beat entry (django-celery-beat PeriodicTask) in line
    with its reconcile interval: created on first save, interval updated,
    disabled while the channel is disabled or its interval is 0. Idempotent;
    returns the PeriodicTask."""
    minutes = channel.reconcile_interval_minutes
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=max(1, minutes), period=IntervalSchedule.MINUTES
    )
    task, _ = PeriodicTask.objects.update_or_create(
        name=reconcile_schedule_name(channel.pk),
        defaults={
            "task": dispatch.RECONCILE,
            "interval": interval,
            "crontab": None,
            "args": json.dumps([channel.pk]),
            "kwargs": json.dumps({"trigger": "scheduled"}),
            "enabled": bool(channel.is_enabled and minutes),
            "description": f"Compare {channel}'s live prices and quantities with pimsync "
            "(interval: edit the channel's 'reconcile every' setting).",
        },
    )
    return task


def channels_reconcile_schedule_sync() -> int:
    """Create or update every channel's reconcile schedule; returns how many."""
    channels = list(Channel.objects.all())
    for channel in channels:
        channel_reconcile_schedule_sync(channel=channel)
    return len(channels)


@dataclass(frozen=True)
class ReconcileRequested:
    started: list[tuple[str, int, int]]  # (channel, run id, listings)
    busy: list[str]

    def __str__(self) -> str:
        parts = [
            f"Reconciliation #{run_id} of {name} queued ({total} listing(s))."
            for name, run_id, total in self.started
        ]
        parts += [f"Not started: {message}" for message in self.busy]
        return " ".join(parts) or "Nothing to reconcile (no enabled listings selected)."


def reconcile_request(
    *,
    channels: Iterable[Channel],
    trigger: str,
    listing_ids_by_channel: dict[int, list[int]] | None = None,
    requested_by_id: int | None = None,
) -> ReconcileRequested:
    """Open a run per channel and queue its task after commit (a channel already
    reconciling is reported, not started twice)."""
    started, busy = [], []
    for channel in channels:
        listing_ids = (listing_ids_by_channel or {}).get(channel.pk)
        try:
            run = reconciliation_start(
                channel=channel,
                trigger=trigger,
                listing_ids=listing_ids,
                requested_by_id=requested_by_id,
            )
        except ReconcileBusyError as exc:
            busy.append(str(exc))
            continue
        transaction.on_commit(partial(_reconcile_enqueue, channel.pk, trigger, run.pk, listing_ids))
        started.append((str(channel), run.pk, run.total))
    return ReconcileRequested(started, busy)


def _reconcile_enqueue(
    channel_id: int, trigger: str, run_id: int, listing_ids: list[int] | None
) -> None:
    """Send the run's task; if the broker refuses it, fail the run at once rather
    than leave it 'running' (which would block the channel's next run)."""
    if not dispatch.reconcile_request(channel_id, trigger, run_id, listing_ids):
        ReconciliationRun.objects.filter(pk=run_id, status="running").update(
            status="failed",
            finished_at=timezone.now(),
            error_message="Could not be queued (is the broker down?). Try again later.",
        )


def listings_reconcile_request(
    *, listings: QuerySet[ChannelListing], requested_by_id: int | None = None
) -> ReconcileRequested:
    """Reconcile just these listings, one run per channel they are on."""
    grouped = listings_by_channel(listings.values_list("pk", flat=True))
    return reconcile_request(
        channels=Channel.objects.filter(pk__in=grouped).order_by("name"),
        trigger="listings",
        listing_ids_by_channel=grouped,
        requested_by_id=requested_by_id,
    )


# --- retention --------------------------------------------------------------------------------


def retention_purge(
    *, now: datetime | None = None, days: int | None = None, batch_size: int | None = None
) -> dict[str, int]:
    """Delete what is older than the retention period: sync log entries,
    processed/ignored/failed inbound events (a pending one is still work),
    resolved drift findings, delivered notifications and channel health
    snapshots (alerts and incidents are kept: they are the history ops report
    on). Batches by primary key in short transactions. Returns the number of
    rows deleted per kind."""
    days = settings.PIMSYNC_RETENTION_DAYS if days is None else days
    batch_size = batch_size or settings.PIMSYNC_RETENTION_BATCH_SIZE
    if days < 1 or batch_size < 1:
        raise ValueError("retention needs at least 1 day and a batch of at least 1 row")
    before = (now or timezone.now()) - timedelta(days=days)
    events = InboundEvent.objects.filter(received_at__lt=before).exclude(
        status=InboundEvent.Status.PENDING
    )
    return {
        "sync_log_entries": synclog.sync_log_purge(before=before, batch_size=batch_size),
        "inbound_events": synclog.rows_delete_in_batches(events, batch_size=batch_size),
        "drift_findings": synclog.drift_findings_purge(before=before, batch_size=batch_size),
        "notifications": synclog.notifications_purge(before=before, batch_size=batch_size),
        "health_snapshots": synclog.health_snapshots_purge(before=before, batch_size=batch_size),
    }
