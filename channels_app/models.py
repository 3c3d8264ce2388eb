"""Channels, the mapping of variants to channel listings, and the rules that
turn pimsync's stock and prices into what each channel is told."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from inventory.models import MONEY, Location, Product, Variant
from pimsync.fields import EncryptedJSONField, EncryptedTextField


class Platform(models.TextChoices):
    SHOPIFY = "shopify", "Shopify"
    WOOCOMMERCE = "woocommerce", "WooCommerce"
    EBAY = "ebay", "eBay"
    AMAZON = "amazon", "Amazon"
    MAGENTO = "magento", "Magento 2 / Adobe Commerce"


# The platforms that deliver webhooks over HTTP with a secret pimsync can check, and whose
# webhook subscriptions pimsync registers through their API.
WEBHOOK_PLATFORMS = frozenset({Platform.SHOPIFY, Platform.WOOCOMMERCE})


class ConflictPolicy(models.TextChoices):
    """What happens when a channel shows a value someone edited in its own console."""

    TRUST_PIMSYNC = "trust_pimsync", "Trust pimsync: push pimsync's value back"
    TRUST_CHANNEL = "trust_channel", "Trust the channel: take its value into pimsync"
    FLAG = "flag", "Flag for a person: alert with both values and let them choose"


class Channel(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True, help_text="Used in the webhook URL")
    platform = models.CharField(max_length=20, choices=Platform.choices)
    base_url = models.URLField(
        max_length=300, help_text="API root, e.g. https://shop.myshopify.com"
    )
    credentials = EncryptedJSONField(blank=True, default=dict)
    webhook_secret = EncryptedTextField(blank=True, default="")
    platform_config = models.JSONField(
        default=dict,
        blank=True,
        help_text="Non-secret settings: Shopify location_id, Amazon seller_id/marketplace_id, …",
    )
    currency = models.CharField(max_length=3, default="USD")
    locations = models.ManyToManyField(
        Location, through="ChannelLocation", related_name="channels", blank=True
    )
    # Sync settings
    inventory_threshold = models.PositiveIntegerField(
        default=1, help_text="Push a quantity when it moved by at least this many units"
    )
    low_stock_level = models.PositiveIntegerField(
        default=5, help_text="At or below this level every change is pushed at once"
    )
    min_push_interval_seconds = models.PositiveIntegerField(
        default=0, help_text="Never push one SKU more often than this (the change waits)"
    )
    max_push_interval_seconds = models.PositiveIntegerField(
        default=300, help_text="Pending small changes are pushed at the latest after this"
    )
    poll_interval_seconds = models.PositiveIntegerField(
        default=300, validators=[MinValueValidator(10)], help_text="Order polling interval"
    )
    rate_limit_per_second = models.DecimalField(
        max_digits=8,
        decimal_places=3,
        default=Decimal("2"),
        validators=[MinValueValidator(Decimal("0.001"))],
        help_text="API calls per second shared by every worker. Not used for Shopify: its "
        "budget is the shop's cost bucket in query points, which pimsync follows from each "
        "answer (platform_config cost_restore_rate / cost_bucket_size until the first).",
    )
    batch_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="Items per call; empty = the platform's maximum"
    )
    reservation_minutes = models.PositiveIntegerField(
        default=60, help_text="How long an unpaid order holds its units before they are released"
    )
    cancel_oversold_orders = models.BooleanField(
        default=False,
        help_text="Cancel an order on this channel when it lost the last unit to another channel",
    )
    returns_restock = models.CharField(
        max_length=8,
        choices=[("damaged", "Hold as damaged"), ("sellable", "Back to sellable stock")],
        default="damaged",
        help_text="Where a refunded, shipped unit goes when the channel does not say whether it "
        "was restocked. Held as damaged, it is back on hand but not for sale until someone books "
        "it back in (Adjust stock: damaged −n).",
    )
    # Reconciliation: how often the channel's live values are compared with
    # pimsync's, and which differences are worth a forced resync.
    reconcile_interval_minutes = models.PositiveIntegerField(
        default=240,
        help_text="Compare the channel's live prices and quantities with pimsync this often "
        "(minutes; 0 = only on demand)",
    )
    drift_quantity_threshold = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="A live quantity this many units off (or more) is resynced",
    )
    drift_price_amount = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=Decimal("0.01"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="A live price this much off (or more) is resynced …",
    )
    drift_price_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="… and, when above 0, also at least this percentage of the expected price",
    )
    retry_max_attempts = models.PositiveIntegerField(
        default=50,
        validators=[MinValueValidator(1)],
        help_text="A push that keeps failing with a retryable error (timeouts, 5xx, 429) is "
        "dead-lettered and alerted after this many attempts …",
    )
    retry_max_hours = models.PositiveIntegerField(
        default=24,
        validators=[MinValueValidator(1)],
        help_text="… or once it has been failing this many hours, whichever comes first",
    )
    # Channel-side edits (webhooks) and the webhooks pimsync registers on the channel.
    conflict_policy = models.CharField(
        max_length=16,
        choices=ConflictPolicy.choices,
        default=ConflictPolicy.TRUST_PIMSYNC,
        help_text="A price or quantity edited in the channel's own console: push pimsync's "
        "value back, take the channel's (a quantity as a stock count of the channel's "
        "first-priority location, a price as this listing's price override), or ask a person",
    )
    public_url = models.URLField(
        max_length=300,
        blank=True,
        help_text="pimsync's address as this channel reaches it, for the webhooks registered "
        "on it (empty = the site-wide PIMSYNC_PUBLIC_URL)",
    )
    # Catalog import (bringing a store in): what may be linked without a person.
    auto_link_exact_sku = models.BooleanField(
        default=False,
        help_text="Catalog import: link channel items whose SKU is exactly a pimsync SKU "
        "without review (pimsync's price and quantity are then pushed). Off: every match "
        "waits for a person in the review.",
    )
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The one list of a channel's settings by group, for the admin, its form and the API.
    SYNC_SETTINGS = (
        "inventory_threshold",
        "low_stock_level",
        "min_push_interval_seconds",
        "max_push_interval_seconds",
        "poll_interval_seconds",
        "rate_limit_per_second",
        "batch_size",
        "reservation_minutes",
        "cancel_oversold_orders",
        "returns_restock",
        "retry_max_attempts",
        "retry_max_hours",
    )
    RECONCILE_SETTINGS = (
        "reconcile_interval_minutes",
        "drift_quantity_threshold",
        "drift_price_amount",
        "drift_price_percent",
    )
    EDIT_SETTINGS = ("conflict_policy", "public_url")
    IMPORT_SETTINGS = ("auto_link_exact_sku",)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(platform__in=Platform.values), name="channel_platform_valid"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .connectors.registry import platform_config_problems

        problems = platform_config_problems(self.platform, self.platform_config)
        if problems:
            raise ValidationError({"platform_config": problems})


class ChannelLocation(models.Model):
    """A location that feeds a channel; priority orders allocation (1 first)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="channel_locations")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    priority = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["channel", "priority", "location"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "location"], name="channel_location_unique")
        ]

    def __str__(self) -> str:
        return f"{self.location} → {self.channel} (priority {self.priority})"


class ChannelListing(models.Model):
    """A variant as one channel knows it, and what pimsync last told it."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="listings")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="listings")
    external_product_id = models.CharField(max_length=120, blank=True)
    external_variant_id = models.CharField(max_length=120, blank=True)
    inventory_item_id = models.CharField(max_length=120, blank=True)
    offer_id = models.CharField(max_length=120, blank=True)
    listing_sku = models.CharField(
        max_length=100, blank=True, help_text="The channel's SKU when it differs from pimsync's"
    )
    price_override = models.DecimalField(**MONEY, null=True, blank=True)
    is_enabled = models.BooleanField(default=True)
    sync_content = models.BooleanField(
        default=False,
        help_text="pimsync owns what the channel shows of this listing's product (title, "
        "description, images, options, barcode): edits are pushed. Set when pimsync "
        "published the product there.",
    )
    last_pushed_price = models.DecimalField(**MONEY, null=True, blank=True)
    last_pushed_quantity = models.IntegerField(null=True, blank=True)
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    last_price_pushed_at = models.DateTimeField(null=True, blank=True)
    last_quantity_pushed_at = models.DateTimeField(null=True, blank=True)
    last_confirmed_price = models.DecimalField(**MONEY, null=True, blank=True)
    last_confirmed_quantity = models.IntegerField(null=True, blank=True)
    last_confirmed_at = models.DateTimeField(null=True, blank=True)
    # A digest per part of the content the channel was last told (product, images,
    # variant: channels_app.content), so an edit pushes only what changed.
    last_pushed_content = models.JSONField(default=dict, blank=True)
    last_content_pushed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Written by the push engine only: a save of the listing's settings (admin, API)
    # must never put back values read before a push confirmed newer ones.
    PUSH_STATE_FIELDS = (
        "last_pushed_price",
        "last_pushed_quantity",
        "last_pushed_at",
        "last_price_pushed_at",
        "last_quantity_pushed_at",
        "last_confirmed_price",
        "last_confirmed_quantity",
        "last_confirmed_at",
        "last_pushed_content",
        "last_content_pushed_at",
    )

    class Meta:
        ordering = ["channel", "variant"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "variant"], name="listing_unique"),
            models.CheckConstraint(
                condition=Q(price_override__isnull=True) | Q(price_override__gte=0),
                name="listing_price_override_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.variant} on {self.channel}"

    @property
    def channel_sku(self) -> str:
        return self.listing_sku or self.variant.sku


class BufferRule(models.Model):
    """Safety stock held back from a channel (or all channels).

    Scope: a variant, a product, or everything (both empty). The most specific
    scope wins (variant over product over all); at equal scope a rule for this
    channel wins over an all-channels rule.
    """

    class Mode(models.TextChoices):
        UNITS = "units", "Units"
        PERCENT = "percent", "Percent"

    channel = models.ForeignKey(
        Channel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="buffer_rules",
        help_text="Empty = every channel",
    )
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.CASCADE, related_name="buffer_rules"
    )
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.CASCADE, related_name="buffer_rules"
    )
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.UNITS)
    value = models.DecimalField(
        max_digits=9, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    is_active = models.BooleanField(default=True)
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["channel", "product", "variant"]
        constraints = [
            models.CheckConstraint(
                condition=Q(variant__isnull=True) | Q(product__isnull=True),
                name="buffer_rule_one_scope",
            ),
            models.CheckConstraint(condition=Q(value__gte=0), name="buffer_rule_value_gte_0"),
            models.CheckConstraint(
                condition=~Q(mode="percent") | Q(value__lte=100), name="buffer_rule_percent_lte_100"
            ),
        ]

    def __str__(self) -> str:
        unit = "%" if self.mode == self.Mode.PERCENT else " units"
        return f"Hold {self.value.normalize()}{unit} of {self.scope_label} on {self.channel_label}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.variant_id and self.product_id:
            raise ValidationError("A buffer rule applies to a variant or a product, not both.")
        if self.mode == self.Mode.PERCENT and self.value is not None and self.value > 100:
            raise ValidationError({"value": "A percentage cannot exceed 100."})
        twins = BufferRule.objects.filter(
            channel_id=self.channel_id, variant_id=self.variant_id, product_id=self.product_id
        ).exclude(pk=self.pk)
        if twins.exists():
            raise ValidationError(f"A rule for {self.scope_label} on {self.channel_label} exists.")

    @property
    def scope_label(self) -> str:
        if self.variant_id:
            return f"SKU {self.variant}"
        if self.product_id:
            return f"product {self.product}"
        return "everything"

    @property
    def channel_label(self) -> str:
        return str(self.channel) if self.channel_id else "all channels"

    @property
    def specificity(self) -> tuple[int, int]:
        scope = 2 if self.variant_id else 1 if self.product_id else 0
        return (scope, 1 if self.channel_id else 0)


class PriceRule(models.Model):
    """How a channel's price derives from the variant price (one rule per channel)."""

    class Rounding(models.TextChoices):
        NONE = "none", "No rounding (to the cent)"
        END_99 = "0.99", "Up to .99"
        END_95 = "0.95", "Up to .95"

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="price_rule")
    multiplier = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        default=Decimal("1"),
        validators=[MinValueValidator(Decimal("0.0001")), MaxValueValidator(Decimal("100"))],
    )
    adjustment = models.DecimalField(
        **MONEY, default=Decimal("0"), help_text="Added after the multiplier"
    )
    rounding = models.CharField(max_length=5, choices=Rounding.choices, default=Rounding.NONE)
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(multiplier__gt=0), name="price_rule_multiplier_gt_0")
        ]

    def __str__(self) -> str:
        rounding = self.get_rounding_display()
        return f"{self.channel}: × {self.multiplier.normalize()} + {self.adjustment}, {rounding}"


class SyncKind(models.TextChoices):
    PRICE = "price", "Price"
    QUANTITY = "quantity", "Quantity"
    # Product content (title, description, images, options, barcode) of a listing
    # pimsync published: pushed after quantities and prices, batched and rate-limited
    # like them.
    ATTRIBUTE = "attribute", "Product content"


KIND_MAX_LENGTH = 12


class ChannelBatch(models.Model):
    """A large write the channel took as one asynchronous batch (an Amazon feed):
    recorded as soon as the channel accepted it — its id, SKUs and values — so any
    worker can watch it to the end after a crash, and a failure after acceptance
    (a status read, the report download) retries that step, never the submission."""

    class Status(models.TextChoices):
        SUBMITTED = "submitted", "Submitted (processing on the channel)"
        PROCESSED = "processed", "Processed (results not read yet)"
        FINISHED = "finished", "Finished"
        ABANDONED = "abandoned", "Abandoned (its SKUs were queued again)"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="batches")
    kind = models.CharField(max_length=KIND_MAX_LENGTH, choices=SyncKind.choices)
    external_id = models.CharField(max_length=200, help_text="The channel's id (Amazon feed id)")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUBMITTED)
    # [{"marker", "listing", "sku", "channel_sku", "value", "change_token"}] in submission order
    items = models.JSONField(default=list)
    submitted_at = models.DateTimeField()
    next_check_at = models.DateTimeField()
    checks = models.PositiveIntegerField(default=0)
    step_failures = models.PositiveIntegerField(default=0)
    # What the channel made of it once processed: done | cancelled | failed.
    outcome = models.CharField(max_length=10, blank=True)
    status_detail = models.CharField(max_length=40, blank=True)
    result_ref = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-submitted_at"]
        indexes = [models.Index(fields=["status", "next_check_at"], name="batch_due_idx")]

    def __str__(self) -> str:
        return f"{self.kind} batch {self.external_id} of {self.channel_id} ({self.status})"


class SyncMarker(models.Model):
    """'This listing's price/quantity must be pushed' — upserted per (listing, kind).

    Written in the same transaction as the change that caused it, so it commits
    or rolls back with it. Fifty quick changes coalesce into one marker; the
    value pushed is always computed fresh when the marker is claimed.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DEAD = "dead", "Dead-lettered"

    listing = models.ForeignKey(ChannelListing, on_delete=models.CASCADE, related_name="markers")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="markers")
    kind = models.CharField(max_length=KIND_MAX_LENGTH, choices=SyncKind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    first_dirty_at = models.DateTimeField()
    last_dirty_at = models.DateTimeField()
    due_at = models.DateTimeField()
    # Changes on each upsert; a push only deletes the marker if no newer change
    # arrived while it was in flight.
    change_token = models.CharField(max_length=32)
    is_forced = models.BooleanField(default=False)
    # Claimed before other work and never held by a minimum interval: a quantity
    # at or below the low-stock level (0 included), an oversell's forced 0, a
    # person's "push now".
    is_urgent = models.BooleanField(default=False)
    # Waiting for an orders poll that started after this instant to be applied: the
    # channel showed less than pimsync last confirmed (a sale not imported yet), so
    # no quantity may be written over it until the orders are in.
    held_for_poll_at = models.DateTimeField(null=True, blank=True)
    # In an asynchronous batch the channel is processing: not claimed again (unless
    # urgent) until the batch's results are recorded.
    batch = models.ForeignKey(
        ChannelBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="markers"
    )
    attempts = models.PositiveIntegerField(default=0)
    # When the current run of retryable failures began (retries are bounded by age).
    first_failed_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    last_error_code = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["listing", "kind"], name="marker_one_per_listing_kind")
        ]
        indexes = [
            models.Index(fields=["channel", "status", "due_at"], name="marker_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of listing {self.listing_id} ({self.status})"


class ChannelSyncState(models.Model):
    """Runtime state of a channel's push loop, kept apart from its settings so an
    admin save never overwrites it."""

    class Breaker(models.TextChoices):
        CLOSED = "closed", "Closed"
        OPEN = "open", "Open"
        HALF_OPEN = "half_open", "Half-open (probing)"

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="sync_state")
    push_queued = models.BooleanField(default=False)
    push_queued_at = models.DateTimeField(null=True, blank=True)
    # When an urgent-lane push was last requested and no run has started since: the
    # urgent lane's debounce (a request older than PIMSYNC_URGENT_STALE_SECONDS is
    # taken as lost and asked again).
    urgent_queued_at = models.DateTimeField(null=True, blank=True)
    breaker = models.CharField(max_length=10, choices=Breaker.choices, default=Breaker.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    open_until = models.DateTimeField(null=True, blank=True)
    auth_failed_at = models.DateTimeField(null=True, blank=True)
    auth_error = models.TextField(blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    # Order polling: where the last poll ended (the channel's cursor format).
    poll_cursor = models.CharField(max_length=200, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    # When the latest poll that read every page and applied its orders had started:
    # pushes held for a poll (held_for_poll_at) before that instant may go.
    poll_applied_started_at = models.DateTimeField(null=True, blank=True)
    # When a poll was last asked for on behalf of held pushes (debounces the sweeper).
    poll_requested_at = models.DateTimeField(null=True, blank=True)
    poll_failed_at = models.DateTimeField(null=True, blank=True)
    poll_error = models.TextField(blank=True)
    # Token bucket of the embedded (database) rate limiter; the rate and size the
    # platform reported (Shopify's cost bucket) once it did, else the settings apply.
    tokens = models.FloatField(default=0)
    tokens_at = models.DateTimeField(null=True, blank=True)
    bucket_rate = models.FloatField(null=True, blank=True)
    bucket_burst = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"sync state of {self.channel_id}"


class OperationBucket(models.Model):
    """The embedded (database) rate limiter's bucket for one of a channel's API
    operations that the platform limits on its own (Amazon's per-operation usage
    plans); the channel-wide bucket stays on ChannelSyncState. Redis keeps the same
    buckets under its own keys in production."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="operation_buckets")
    operation = models.CharField(max_length=64)
    tokens = models.FloatField(default=0)
    tokens_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "operation"], name="operation_bucket_unique_per_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.operation} bucket of {self.channel_id}"


class ChannelToken(models.Model):
    """The OAuth access token pimsync currently uses for a channel whose credentials
    hold a refresh token (eBay, Amazon). One row per channel: its row lock is what
    makes one worker refresh for all (channels_app/sync/tokens.py)."""

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="token")
    access_token = EncryptedTextField(blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_count = models.PositiveIntegerField(default=0)
    # Which credentials (client id + refresh token) the token was obtained with: new
    # credentials make the stored token and a recorded failure moot.
    credentials_digest = models.CharField(max_length=64, blank=True)
    # The platform refused the refresh: no further attempt until the credentials
    # change or the channel is resumed.
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"access token of {self.channel_id}"


def _seconds_setting(name: str) -> timedelta:
    return timedelta(seconds=getattr(settings, name))


def default_dead_after() -> timedelta:
    return _seconds_setting("PIMSYNC_HEALTH_DEAD_AFTER_SECONDS")


def default_degraded_window() -> timedelta:
    return _seconds_setting("PIMSYNC_HEALTH_DEGRADED_WINDOW_SECONDS")


def default_bad_signature_window() -> timedelta:
    return _seconds_setting("PIMSYNC_HEALTH_BAD_SIGNATURE_WINDOW_SECONDS")


def default_degraded_error_percent() -> int:
    return settings.PIMSYNC_HEALTH_DEGRADED_ERROR_PERCENT


def default_degraded_min_attempts() -> int:
    return settings.PIMSYNC_HEALTH_DEGRADED_MIN_ATTEMPTS


def default_repeated_failures() -> int:
    return settings.PIMSYNC_HEALTH_REPEATED_FAILURES


def default_queue_depth_limit() -> int:
    return settings.PIMSYNC_HEALTH_QUEUE_DEPTH_LIMIT


def default_top_sellers() -> int:
    return settings.PIMSYNC_HEALTH_TOP_SELLERS


def default_top_seller_days() -> int:
    return settings.PIMSYNC_HEALTH_TOP_SELLER_DAYS


def default_top_seller_safety_stock() -> int:
    return settings.PIMSYNC_HEALTH_TOP_SELLER_SAFETY_STOCK


def default_bad_signature_threshold() -> int:
    return settings.PIMSYNC_HEALTH_BAD_SIGNATURE_THRESHOLD


class ChannelAlertSettings(models.Model):
    """A channel's alert thresholds. A channel without a row uses the defaults
    from the settings (PIMSYNC_HEALTH_*), which are also these fields' defaults."""

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="alert_settings")
    dead_after = models.DurationField(
        default=default_dead_after,
        validators=[MinValueValidator(timedelta(seconds=1))],
        help_text="Dead channel: no successful push for this long while work is stuck (HH:MM:SS)",
    )
    degraded_error_percent = models.PositiveSmallIntegerField(
        default=default_degraded_error_percent,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Degraded: at least this % of SKU attempts in the window failed",
    )
    degraded_window = models.DurationField(
        default=default_degraded_window,
        validators=[MinValueValidator(timedelta(seconds=1))],
        help_text="Degraded: the window the error rate is measured over (HH:MM:SS)",
    )
    degraded_min_attempts = models.PositiveIntegerField(
        default=default_degraded_min_attempts,
        validators=[MinValueValidator(1)],
        help_text="Degraded: fewer attempts than this in the window never count as degraded",
    )
    repeated_failures = models.PositiveSmallIntegerField(
        default=default_repeated_failures,
        validators=[MinValueValidator(1)],
        help_text="Consecutive failed attempts of one SKU's push that alert that SKU",
    )
    queue_depth_limit = models.PositiveIntegerField(
        default=default_queue_depth_limit, help_text="Pending pushes above this alert"
    )
    top_sellers = models.PositiveSmallIntegerField(
        default=default_top_sellers,
        help_text="Top sellers watched for low ATP: the K variants with most units sold on "
        "this channel (0 = none)",
    )
    top_seller_days = models.PositiveSmallIntegerField(
        default=default_top_seller_days,
        validators=[MinValueValidator(1)],
        help_text="… over the last D days",
    )
    top_seller_safety_stock = models.PositiveIntegerField(
        default=default_top_seller_safety_stock,
        help_text="A top seller whose ATP on this channel is below this is alerted",
    )
    bad_signature_threshold = models.PositiveIntegerField(
        default=default_bad_signature_threshold,
        validators=[MinValueValidator(1)],
        help_text="Webhook deliveries refused for their signature within the window that alert",
    )
    bad_signature_window = models.DurationField(
        default=default_bad_signature_window,
        validators=[MinValueValidator(timedelta(seconds=1))],
        help_text="(HH:MM:SS)",
    )

    class Meta:
        verbose_name = "alert thresholds"
        verbose_name_plural = "alert thresholds"

    def __str__(self) -> str:
        return f"alert thresholds of {self.channel_id}"


class WebhookRefusalCount(models.Model):
    """Webhook deliveries refused as unauthentic, counted per channel and minute:
    a flood of forged requests adds to one row instead of one row each."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "minute"], name="refusal_one_per_minute")
        ]

    def __str__(self) -> str:
        return f"{self.count} refused on {self.channel_id} at {self.minute:%H:%M}"


class InboundEvent(models.Model):
    """A delivery from a channel (webhook) or a poll finding, stored before any
    processing so nothing received is ever lost and nothing is applied twice."""

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        POLL = "poll", "Poll"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="inbound_events")
    source = models.CharField(max_length=8, choices=Source.choices)
    delivery_id = models.CharField(max_length=200)
    topic = models.CharField(max_length=100, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    raw_body = models.TextField(blank=True)
    body_sha256 = models.CharField(max_length=64, blank=True)
    external_order_id = models.CharField(max_length=120, blank=True, db_index=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The SKUs of the order it reports: while it is pending, no quantity increase
    # of these SKUs is pushed to its channel (the sale would be re-inflated).
    skus = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "delivery_id"], name="inbound_delivery_unique"
            )
        ]
        indexes = [models.Index(fields=["status", "received_at"], name="inbound_status_idx")]

    def __str__(self) -> str:
        return f"{self.source} {self.topic or 'event'} {self.delivery_id}"


class WebhookSubscription(models.Model):
    """One topic pimsync reads from a channel, and what the channel has registered for it
    (as last checked when the channel was saved or tested)."""

    class State(models.TextChoices):
        REGISTERED = "registered", "Registered"
        MISSING = "missing", "Missing"
        WRONG_URL = "wrong_url", "Registered to another URL"
        DISABLED = "disabled", "Registered but not active"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="webhook_subscriptions"
    )
    topic = models.CharField(max_length=100, help_text="The platform's topic name")
    state = models.CharField(max_length=10, choices=State.choices)
    external_id = models.CharField(max_length=200, blank=True, help_text="The channel's id")
    address = models.CharField(
        max_length=500, blank=True, help_text="Where the channel delivers this topic"
    )
    error = models.TextField(blank=True)
    note = models.CharField(max_length=300, blank=True, help_text="What the last check did")
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["channel", "topic"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "topic"], name="subscription_one_per_topic")
        ]

    def __str__(self) -> str:
        return f"{self.topic} on {self.channel_id}: {self.state}"


class ChannelEdit(models.Model):
    """A value a channel reported by webhook that could not be compared with pimsync's
    yet: a push of that field was on its way, or the value was below pimsync's and
    the channel's orders had to be imported first (a sale is not an edit). Deleted
    once decided."""

    class Waiting(models.TextChoices):
        PUSH = "push", "A push of this field is on its way"
        ORDERS = "orders", "The channel's orders are being imported"

    # A channel's edits compared with pimsync's are of prices and quantities; a
    # published product's content is pimsync's to push, never an edit to take.
    KINDS = (
        (SyncKind.PRICE.value, SyncKind.PRICE.label),
        (SyncKind.QUANTITY.value, SyncKind.QUANTITY.label),
    )

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="edits_waiting")
    listing = models.ForeignKey(ChannelListing, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=KINDS)
    reported = models.DecimalField(max_digits=14, decimal_places=2)
    delivery_id = models.CharField(max_length=200)
    received_at = models.DateTimeField()
    waiting_for = models.CharField(max_length=8, choices=Waiting.choices)
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["received_at", "pk"]
        constraints = [
            # The channel's latest report of a field replaces an older one still waiting.
            models.UniqueConstraint(fields=["listing", "kind"], name="edit_one_per_listing_kind")
        ]
        indexes = [models.Index(fields=["channel", "waiting_for"], name="edit_waiting_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.reported} of listing {self.listing_id} ({self.waiting_for})"


class Customer(models.Model):
    """One buyer across channels, matched by normalised e-mail, else phone.
    A normalised e-mail names at most one customer."""

    email = models.CharField(max_length=254, blank=True, db_index=True)
    phone = models.CharField(max_length=32, blank=True, db_index=True)
    name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["email", "phone"]
        constraints = [
            models.UniqueConstraint(
                fields=["email"], condition=~Q(email=""), name="customer_email_unique"
            )
        ]

    def __str__(self) -> str:
        return self.email or self.phone or f"customer {self.pk}"


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Placed, unpaid"
    PAID = "paid", "Paid"
    FULFILLED = "fulfilled", "Fulfilled"
    CANCELLED = "cancelled", "Cancelled"
    REFUNDED = "refunded", "Refunded"


class ChannelOrder(models.Model):
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="orders")
    external_id = models.CharField(max_length=120)
    name = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=10, choices=OrderStatus.choices)
    financial_status = models.CharField(max_length=40, blank=True)
    fulfillment_status = models.CharField(max_length=40, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    total = models.DecimalField(**MONEY, default=Decimal("0"))
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    customer_email = models.CharField(max_length=254, blank=True)
    customer_phone = models.CharField(max_length=32, blank=True)
    placed_at = models.DateTimeField()
    channel_updated_at = models.DateTimeField()
    raw = models.JSONField(default=dict, blank=True)
    first_seen_via = models.CharField(max_length=8, choices=InboundEvent.Source.choices)
    seen_via_webhook = models.BooleanField(default=False)
    has_unmatched_lines = models.BooleanField(default=False)
    is_oversold = models.BooleanField(default=False)
    oversell_resolved_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When ops settled the oversell conflict (the order being cancelled or "
        "refunded settles it too)",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], name="order_unique_per_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.name or self.external_id}"


class ChannelOrderLine(models.Model):
    class State(models.TextChoices):
        OPEN = "open", "Not applied"
        RESERVED = "reserved", "Reserved"
        COMMITTED = "committed", "Committed"
        SHIPPED = "shipped", "Shipped"
        RELEASED = "released", "Released"
        RESTOCKED = "restocked", "Restocked"
        UNMATCHED = "unmatched", "Unmatched SKU"
        OVERSOLD = "oversold", "Oversell conflict"

    order = models.ForeignKey(ChannelOrder, on_delete=models.CASCADE, related_name="lines")
    external_line_id = models.CharField(max_length=120)
    sku = models.CharField(max_length=100)
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.PROTECT, related_name="order_lines"
    )
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(**MONEY, default=Decimal("0"))
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    # What the channel said about a refunded unit: restocked (sellable), not restocked
    # (damaged), or nothing (None: the channel's returns_restock setting decides).
    restock = models.BooleanField(null=True, blank=True)
    refunded_quantity = models.PositiveIntegerField(
        default=0,
        help_text="Units refunded on the channel that pimsync has taken back "
        "(returned if shipped, released if not)",
    )
    # [{"location_id": 1, "quantity": 2, "reservation_id": 7}, ...] in allocation order
    allocation = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "external_line_id"], name="order_line_unique")
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.sku}"


class OrderChannelCall(models.Model):
    """A call pimsync owes an order's channel: report the shipment (fulfil) or cancel
    an order that lost the last unit (cancel). Written in the transaction that
    decided it and kept until the channel confirms: retried with backoff, dead after
    PIMSYNC_ORDER_CALL_MAX_ATTEMPTS (alerted) and re-drivable from the admin or the API."""

    class Kind(models.TextChoices):
        FULFIL = "fulfil", "Report shipment"
        CANCEL = "cancel", "Cancel order"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        DEAD = "dead", "Failed (dead letter)"

    order = models.ForeignKey(ChannelOrder, on_delete=models.CASCADE, related_name="channel_calls")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # fulfil: tracking_number, carrier; cancel: reason
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        help_text="When a pending call is due (while one is being sent: the end of its lease)"
    )
    last_error_code = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["order", "kind"], name="order_call_unique_per_kind")
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="order_call_due_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of order {self.order_id} ({self.status})"


class WebhookSecretEvent(models.Model):
    """Who saw or changed a channel's webhook secret, when and how: every reveal,
    rotation and replacement is recorded (the secret itself never is)."""

    class Action(models.TextChoices):
        REVEALED = "revealed", "Revealed"
        ROTATED = "rotated", "Rotated (new secret generated)"
        REPLACED = "replaced", "Replaced (secret typed in)"

    class Via(models.TextChoices):
        ADMIN = "admin", "Admin"
        API = "api", "REST API"
        COMMAND = "command", "manage.py webhook_secret"

    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="webhook_secret_events"
    )
    action = models.CharField(max_length=10, choices=Action.choices)
    via = models.CharField(max_length=10, choices=Via.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept when the user is deleted later: the record still says who it was.
    username = models.CharField(max_length=150, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "webhook secret access"
        verbose_name_plural = "webhook secret accesses"

    def __str__(self) -> str:
        who = self.username or "a command"
        return f"{self.get_action_display()} on {self.channel} by {who}"


class ChannelPublication(models.Model):
    """A pimsync product created on a channel by pimsync ("Publish to channel"): where it
    stands, the channel's id for it and what the last attempt said. Publishing again
    updates the product on the channel and lists variants added since."""

    class Status(models.TextChoices):
        PUBLISHING = "publishing", "Publishing (the channel is being called)"
        PUBLISHED = "published", "Published"
        PARTIAL = "partial", "Partly published (some variants refused)"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="publications")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="publications")
    status = models.CharField(max_length=10, choices=Status.choices)
    product_ref = models.CharField(
        max_length=200,
        blank=True,
        help_text="The channel's id of the product: Shopify product gid, WooCommerce product "
        "id, eBay inventory item group key, Amazon parent SKU, Magento configurable SKU",
    )
    published_variants = models.PositiveIntegerField(default=0)
    failed_variants = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    first_published_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["channel", "product"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "product"], name="publication_one_per_channel_product"
            )
        ]

    def __str__(self) -> str:
        return f"{self.product} on {self.channel} ({self.status})"


class CatalogImport(models.Model):
    """One read of a channel's whole catalog and the matching of its items to
    pimsync's variants (docs/onboarding.md).

    The read is restartable: the channel's page cursor is stored after every page
    (with the items of that page, in one transaction), so a read that stopped —
    a failure, a worker killed — goes on from the page after the last one stored.
    A worker holds the import under a lease it renews with every page; the sweeper
    hands an import whose lease ran out to another worker.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "Reading the channel's catalog"
        FINISHED = "finished", "Read and matched: waiting for review"
        FAILED = "failed", "Stopped by an error (can be resumed)"

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="catalog_imports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # The channel's cursor of the next page to read ("" = from the start).
    cursor = models.TextField(blank=True)
    read_done_at = models.DateTimeField(null=True, blank=True)
    pages = models.PositiveIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0, help_text="API calls the read made")
    items_read = models.PositiveIntegerField(default=0)
    total_hint = models.PositiveIntegerField(
        null=True, blank=True, help_text="The channel's own count of its items, when it gives one"
    )
    read_seconds = models.FloatField(default=0, help_text="Time spent reading, over every run")
    resumes = models.PositiveIntegerField(default=0)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    # Channel products that group items listed on their own (Magento configurables):
    # {product_id: {"title": ..., "variant_ids": [...]}}, applied to the items at the end.
    groups = models.JSONField(default=dict, blank=True)
    # Items per review status once matched ({"matched": 10, ...}).
    counts = models.JSONField(default=dict, blank=True)
    auto_linked = models.PositiveIntegerField(default=0)
    error_message = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["channel", "-started_at"], name="catimport_channel_idx"),
            models.Index(fields=["status", "lease_until"], name="catimport_status_idx"),
        ]

    def __str__(self) -> str:
        return f"Catalog import #{self.pk} of {self.channel_id} ({self.status})"


class CatalogImportItem(models.Model):
    """One item of a channel's catalog as read, and what it was matched to."""

    class Match(models.TextChoices):
        SKU = "sku", "Same SKU"
        BARCODE = "barcode", "Same barcode"
        TITLE = "title", "Similar title and options"
        NONE = "none", "No match"

    class Status(models.TextChoices):
        MATCHED = "matched", "Matched (SKU or barcode)"
        PROPOSED = "proposed", "Proposed (title and options)"
        CONFLICT = "conflict", "Conflict"
        UNMATCHED = "unmatched", "Unmatched"
        LINKED = "linked", "Linked"
        IGNORED = "ignored", "Ignored"

    run = models.ForeignKey(CatalogImport, on_delete=models.CASCADE, related_name="items")
    key = models.CharField(max_length=200, help_text="The item's id on the channel")
    position = models.PositiveIntegerField()
    sku = models.CharField("channel SKU", max_length=100, blank=True)
    title = models.CharField(max_length=255, blank=True)
    product_title = models.CharField(max_length=255, blank=True)
    barcode = models.CharField(max_length=64, blank=True)
    options = models.JSONField(default=dict, blank=True)
    price = models.DecimalField(**MONEY, null=True, blank=True)
    quantity = models.IntegerField(null=True, blank=True)
    external_product_id = models.CharField(max_length=120, blank=True)
    external_variant_id = models.CharField(max_length=120, blank=True)
    inventory_item_id = models.CharField(max_length=120, blank=True)
    offer_id = models.CharField(max_length=120, blank=True)
    group_ref = models.CharField(
        max_length=120, blank=True, help_text="The channel product the item belongs to"
    )
    image_url = models.URLField(max_length=500, blank=True)
    match = models.CharField(max_length=8, choices=Match.choices, default=Match.NONE)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNMATCHED)
    variant = models.ForeignKey(
        Variant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The pimsync variant it was matched or proposed to, or was chosen",
    )
    score = models.FloatField(null=True, blank=True, help_text="Title similarity (0-1)")
    # Variant ids that fit equally well (a conflict), best first.
    candidates = models.JSONField(default=list, blank=True)
    note = models.CharField(max_length=255, blank=True)
    listing = models.ForeignKey(
        ChannelListing, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_in_pimsync = models.BooleanField(
        default=False, help_text="Its variant was created in pimsync from the channel's data"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    # What the channel says about the item (read, never edited in pimsync).
    CHANNEL_FIELDS = (
        "sku",
        "title",
        "product_title",
        "barcode",
        "options",
        "price",
        "quantity",
        "external_product_id",
        "external_variant_id",
        "inventory_item_id",
        "offer_id",
        "group_ref",
        "image_url",
    )

    class Meta:
        ordering = ["run", "position"]
        verbose_name = "catalog item"
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="catimport_item_key_unique")
        ]
        indexes = [
            models.Index(fields=["run", "status"], name="catimport_item_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.sku or self.key} ({self.status})"

    @property
    def display_title(self) -> str:
        return " · ".join(t for t in (self.product_title, self.title) if t) or self.sku


class ListingCsvImport(models.Model):
    """One uploaded CSV of listings (SKU <-> channel ids) between its preview and its
    application; only a file without row errors is stored, applied at most once."""

    class Status(models.TextChoices):
        PREVIEWED = "previewed", "Previewed, not applied"
        APPLIED = "applied", "Applied"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PREVIEWED)
    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64, db_index=True)
    row_count = models.PositiveIntegerField()
    rows = models.JSONField(default=list)
    result = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "listings CSV import"

    def __str__(self) -> str:
        return f"Listings from {self.file_name}"
