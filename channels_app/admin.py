"""Channels, listings and the rules that shape what each channel is told."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from pimsync.admin_utils import AdminMedia, badge
from pimsync.crypto import mask

from .forms import ChannelAdminForm, credentials_masked
from .models import BufferRule, Channel, ChannelListing, ChannelLocation, PriceRule

LISTING_SYNC_FIELDS = (
    "last_pushed_price",
    "last_pushed_quantity",
    "last_pushed_at",
    "last_confirmed_price",
    "last_confirmed_quantity",
    "last_confirmed_at",
)


class ChannelLocationInline(admin.TabularInline):
    model = ChannelLocation
    extra = 0
    fields = ("location", "priority")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("location")


class ListingInline(admin.TabularInline):
    """Existing listings; the variant is fixed here (edit ids, override, enabled)."""

    model = ChannelListing
    extra = 0
    can_delete = True
    fields = (
        "variant",
        "listing_sku",
        "external_variant_id",
        "price_override",
        "is_enabled",
        "last_pushed_price",
        "last_pushed_quantity",
        "last_confirmed_quantity",
    )
    readonly_fields = (
        "variant",
        "last_pushed_price",
        "last_pushed_quantity",
        "last_confirmed_quantity",
    )
    show_change_link = True
    verbose_name_plural = "Listings"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related("variant")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class NewListingInline(admin.TabularInline):
    """Add listings: a searchable variant picker on empty rows only."""

    model = ChannelListing
    extra = 1
    fields = (
        "variant",
        "listing_sku",
        "external_product_id",
        "external_variant_id",
        "inventory_item_id",
        "offer_id",
        "price_override",
    )
    autocomplete_fields = ("variant",)
    verbose_name_plural = "Add listings"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).none()


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelAdminForm
    list_display = (
        "name",
        "platform_badge",
        "enabled_badge",
        "listing_count",
        "location_list",
        "rate_limit_per_second",
        "updated_at",
    )
    list_filter = ("platform", "is_enabled")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("credentials_display", "webhook_secret_display", "webhook_url")
    inlines = [ChannelLocationInline, ListingInline, NewListingInline]
    fieldsets = (
        (None, {"fields": ("name", "slug", "platform", "base_url", "currency", "is_enabled")}),
        (
            "Credentials (encrypted at rest)",
            {
                "fields": (
                    "credentials_display",
                    "new_credentials",
                    "webhook_secret_display",
                    "new_webhook_secret",
                    "webhook_url",
                    "platform_config",
                ),
            },
        ),
        (
            "Sync settings",
            {
                "fields": (
                    "inventory_threshold",
                    "low_stock_level",
                    "min_push_interval_seconds",
                    "max_push_interval_seconds",
                    "poll_interval_seconds",
                    "rate_limit_per_second",
                    "batch_size",
                ),
            },
        ),
    )
    Media = AdminMedia

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(n_listings=Count("listings", distinct=True))
            .prefetch_related("channel_locations__location")
        )

    @admin.display(description="Platform", ordering="platform")
    def platform_badge(self, obj: Channel) -> str:
        return badge(obj.get_platform_display(), "info")

    @admin.display(description="Enabled", ordering="is_enabled")
    def enabled_badge(self, obj: Channel) -> str:
        return badge("enabled", "ok") if obj.is_enabled else badge("disabled", "muted")

    @admin.display(description="Listings", ordering="n_listings")
    def listing_count(self, obj: Channel) -> str:
        url = (
            reverse("admin:channels_app_channellisting_changelist")
            + f"?channel__id__exact={obj.pk}"
        )
        return format_html('<a href="{}">{}</a>', url, obj.n_listings)

    @admin.display(description="Locations (priority)")
    def location_list(self, obj: Channel) -> str:
        return (
            ", ".join(f"{cl.location.code} ({cl.priority})" for cl in obj.channel_locations.all())
            or "—"
        )

    @admin.display(description="Stored credentials")
    def credentials_display(self, obj: Channel) -> str:
        masked = credentials_masked(obj.credentials or {})
        if not masked:
            return "none stored"
        return format_html_join(mark_safe("<br>"), "<code>{}</code>: {}", masked.items())

    @admin.display(description="Stored webhook secret")
    def webhook_secret_display(self, obj: Channel) -> str:
        return mask(obj.webhook_secret) or "none stored"

    @admin.display(description="Webhook URL to register on the channel")
    def webhook_url(self, obj: Channel) -> str:
        if not obj.slug:
            return "—"
        return f"/webhooks/{obj.slug}/"


@admin.register(ChannelListing)
class ChannelListingAdmin(admin.ModelAdmin):
    list_display = (
        "variant",
        "channel",
        "channel_sku_display",
        "external_variant_id",
        "price_override",
        "last_pushed_price",
        "last_pushed_quantity",
        "last_confirmed_quantity",
        "last_pushed_at",
        "is_enabled",
    )
    list_select_related = ("variant", "channel")
    list_filter = ("channel", "channel__platform", "is_enabled")
    search_fields = (
        "=variant__sku",
        "listing_sku",
        "external_variant_id",
        "external_product_id",
        "offer_id",
    )
    autocomplete_fields = ("variant",)
    readonly_fields = LISTING_SYNC_FIELDS
    list_per_page = 100

    @admin.display(description="Channel SKU")
    def channel_sku_display(self, obj: ChannelListing) -> str:
        return obj.listing_sku or obj.variant.sku


@admin.register(BufferRule)
class BufferRuleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "channel_label", "scope_label", "mode", "value", "is_active")
    list_select_related = ("channel", "variant", "product")
    list_filter = ("channel", "mode", "is_active")
    search_fields = ("=variant__sku", "product__title", "note")
    autocomplete_fields = ("variant", "product")

    @admin.display(description="Channel")
    def channel_label(self, obj: BufferRule) -> str:
        return obj.channel_label

    @admin.display(description="Applies to")
    def scope_label(self, obj: BufferRule) -> str:
        return obj.scope_label


@admin.register(PriceRule)
class PriceRuleAdmin(admin.ModelAdmin):
    list_display = ("channel", "multiplier", "adjustment", "rounding", "is_active", "example")
    list_select_related = ("channel",)
    list_filter = ("rounding", "is_active")

    @admin.display(description="Example: 20.00 becomes")
    def example(self, obj: PriceRule) -> str:
        from decimal import Decimal

        from .pricing import price_through_rule

        return str(
            price_through_rule(
                Decimal("20.00"),
                multiplier=obj.multiplier,
                adjustment=obj.adjustment,
                rounding=obj.rounding,
            )
        )
