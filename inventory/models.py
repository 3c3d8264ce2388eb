"""Catalog and stock.

StockLevel holds the buckets per (variant, location); StockMovement is the
append-only ledger whose sums every StockLevel equals. Only inventory.services
writes either.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce

from .selectors import stock_available_compute, stock_available_expression

MONEY = {"max_digits": 12, "decimal_places": 2}
# The first amount a money column cannot hold.
MONEY_LIMIT = Decimal(10) ** (MONEY["max_digits"] - MONEY["decimal_places"])


class Product(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DRAFT = "draft", "Draft"
        ARCHIVED = "archived", "Archived"

    title = models.CharField(max_length=255)
    handle = models.SlugField(max_length=255, unique=True)
    description = models.TextField(blank=True)
    vendor = models.CharField(max_length=120, blank=True)
    product_type = models.CharField(max_length=120, blank=True)
    image_urls = models.JSONField(
        default=list,
        blank=True,
        help_text='Image URLs (http or https), the main image first, e.g. ["https://…/a.jpg"]. '
        "Channels that take images by URL download them when the product is published.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    # What a channel shows of the product: a change is pushed to the channels whose
    # listings pimsync published (channels_app, sync kind "attribute").
    CONTENT_FIELDS = ("title", "description", "vendor", "product_type", "image_urls")
    MAX_IMAGES = 10

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        from django.core.exceptions import ValidationError
        from django.core.validators import URLValidator

        urls = self.image_urls
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ValidationError({"image_urls": "A list of image URLs."})
        if len(urls) > self.MAX_IMAGES:
            raise ValidationError({"image_urls": f"At most {self.MAX_IMAGES} images."})
        check = URLValidator(schemes=["http", "https"])
        for url in urls:
            try:
                check(url)
            except ValidationError:
                raise ValidationError({"image_urls": f"Not an http(s) URL: {url!r}"}) from None


class VariantQuerySet(models.QuerySet):
    def with_stock_totals(self) -> VariantQuerySet:
        zero = models.Value(0)
        return self.annotate(
            total_on_hand=Coalesce(Sum("stock_levels__on_hand"), zero),
            total_available=Coalesce(
                Sum(stock_available_expression(prefix="stock_levels__")), zero
            ),
        )


class Variant(models.Model):
    """The sellable unit; `sku` is the master key across every channel."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="variants")
    sku = models.CharField("SKU", max_length=100, unique=True)
    title = models.CharField(max_length=255, blank=True)
    options = models.JSONField(default=dict, blank=True, help_text='e.g. {"size": "M"}')
    price = models.DecimalField(**MONEY, validators=[MinValueValidator(Decimal("0"))])
    compare_at_price = models.DecimalField(
        **MONEY, null=True, blank=True, validators=[MinValueValidator(Decimal("0"))]
    )
    map_price = models.DecimalField(
        "MAP price",
        **MONEY,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Minimum advertised price: no channel is ever sent a lower price.",
    )
    barcode = models.CharField(max_length=64, blank=True, db_index=True)
    is_active = models.BooleanField(default=True)

    # The variant's part of what a channel shows (see Product.CONTENT_FIELDS).
    CONTENT_FIELDS = ("title", "options", "barcode")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = VariantQuerySet.as_manager()

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="variant_price_gte_0"),
            models.CheckConstraint(
                condition=Q(map_price__isnull=True) | Q(map_price__gte=0),
                name="variant_map_price_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return self.sku

    @property
    def options_label(self) -> str:
        return " / ".join(str(v) for v in (self.options or {}).values())


class Location(models.Model):
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    address = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class StockLevelQuerySet(models.QuerySet):
    def with_available(self) -> StockLevelQuerySet:
        return self.annotate(available_qty=stock_available_expression())


class StockLevel(models.Model):
    """Buckets for one variant at one location; always the sum of its movements."""

    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="stock_levels")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="stock_levels")
    on_hand = models.IntegerField(default=0)
    committed = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    damaged = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StockLevelQuerySet.as_manager()

    class Meta:
        ordering = ["variant_id", "location_id"]
        constraints = [
            models.UniqueConstraint(fields=["variant", "location"], name="stocklevel_unique"),
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="stock_on_hand_gte_0"),
            models.CheckConstraint(condition=Q(committed__gte=0), name="stock_committed_gte_0"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="stock_reserved_gte_0"),
            models.CheckConstraint(condition=Q(damaged__gte=0), name="stock_damaged_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.variant_id}@{self.location_id}"

    @property
    def available(self) -> int:
        return stock_available_compute(
            on_hand=self.on_hand,
            committed=self.committed,
            reserved=self.reserved,
            damaged=self.damaged,
        )


class MovementReason(models.TextChoices):
    RECEIVE = "receive", "Receive"
    SALE = "sale", "Sale"
    RETURN = "return", "Return"
    ADJUST = "adjust", "Adjust"
    COUNT = "count", "Cycle count"
    TRANSFER = "transfer", "Transfer"
    DAMAGE = "damage", "Damage"
    RESERVE = "reserve", "Reserve"
    RELEASE = "release", "Release"
    COMMIT = "commit", "Commit"
    SHIP = "ship", "Ship"


class StockMovement(models.Model):
    """Append-only ledger row: the deltas of one change to one StockLevel."""

    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="movements")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="movements")
    delta_on_hand = models.IntegerField(default=0)
    delta_committed = models.IntegerField(default=0)
    delta_reserved = models.IntegerField(default=0)
    delta_damaged = models.IntegerField(default=0)
    reason = models.CharField(max_length=12, choices=MovementReason.choices)
    source = models.CharField(max_length=40, help_text="admin, api, channel:<id>, reconcile")
    source_ref = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    note = models.TextField(blank=True)
    # Balances right after this movement: lets ops read the ledger like a statement.
    on_hand_after = models.IntegerField()
    available_after = models.IntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["variant", "location", "-id"], name="movement_level_idx")]

    def __str__(self) -> str:
        return f"{self.reason} {self.idempotency_key}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("StockMovement rows are append-only")
        super().save(*args, **kwargs)

    @property
    def deltas(self) -> dict[str, int]:
        return {
            "on_hand": self.delta_on_hand,
            "committed": self.delta_committed,
            "reserved": self.delta_reserved,
            "damaged": self.delta_damaged,
        }


class Reservation(models.Model):
    """Units held for a placed-but-unpaid order or a checkout, until expiry."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMMITTED = "committed", "Committed"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="reservations")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="reservations")
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    source = models.CharField(max_length=40)
    source_ref = models.CharField(max_length=255, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="reservation_qty_gte_1")
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.variant_id} ({self.status})"


class CsvImport(models.Model):
    """One uploaded CSV file (variant prices or stock counts) between its preview
    and its application.

    Only a file without row errors is stored. Confirming applies exactly these
    rows, re-validated against the database at that moment, at most once: the
    record is locked and marked applied in the applying transaction, and stock
    counts carry idempotency keys derived from the import's id.
    """

    class Kind(models.TextChoices):
        PRICES = "prices", "Variant prices"
        COUNTS = "counts", "Stock counts"

    class Status(models.TextChoices):
        PREVIEWED = "previewed", "Previewed, not applied"
        APPLIED = "applied", "Applied"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PREVIEWED)
    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64, db_index=True)
    encoding = models.CharField(max_length=30)
    delimiter = models.CharField(max_length=10)
    row_count = models.PositiveIntegerField()
    # The validated rows, normalised (see inventory.csv_imports for the shape per kind).
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
        verbose_name = "CSV import"
        indexes = [models.Index(fields=["status", "created_at"], name="csvimport_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.file_name}"
