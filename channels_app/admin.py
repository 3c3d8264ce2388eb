"""Channels, listings and the rules that shape what each channel is told."""

from __future__ import annotations

from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from inventory.admin import StockLevelAdmin as InventoryStockLevelAdmin
from inventory.admin import VariantAdmin as InventoryVariantAdmin
from inventory.models import StockLevel, Variant
from pimsync.admin_utils import AdminMedia, badge, confirmed_action, stock_tone
from pimsync.crypto import mask
from synclog.admin import sync_log_action_register

from . import admin_publishing, services  # noqa: F401 - admin_publishing registers the product admin
from .admin_secrets import WebhookSecretEventInline, webhook_secret_view
from .connectors.shopify_versions import VersionState
from .forms import ChannelAdminForm, LinkVariantsForm, credentials_masked
from .models import (
    WEBHOOK_PLATFORMS,
    BufferRule,
    CatalogImport,
    Channel,
    ChannelAlertSettings,
    ChannelListing,
    ChannelLocation,
    ChannelSyncState,
    PriceRule,
    SyncMarker,
    WebhookSubscription,
)
from .onboarding.importer import CatalogImportBusyError, catalog_import_start
from .onboarding.listings_csv_admin import ListingCsvAdmin
from .orders.poll_window import channel_poll_restart
from .selectors import (
    channel_api_version_status,
    channel_token_status,
    channels_listing_variants,
    listing_sync_states,
    variant_channel_overview,
)
from .webhook_subscriptions import channel_webhook_address

LISTING_SYNC_FIELDS = (
    "last_pushed_price",
    "last_pushed_quantity",
    "last_pushed_at",
    "last_confirmed_price",
    "last_confirmed_quantity",
    "last_confirmed_at",
    "last_pushed_content",
    "last_content_pushed_at",
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

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        # One marker query for the whole inline, not one per row.
        self._states = (
            listing_sync_states(self.get_queryset(request).filter(channel=obj)) if obj else {}
        )
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="Sync")
    def sync_state(self, obj: ChannelListing) -> str:
        return sync_state_badge(getattr(self, "_states", {}).get(obj.pk))


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


def sync_state_badge(state: Any) -> str:
    if state is None:
        return "—"
    if state.error:
        return format_html(
            '{} <span class="ps-help">{}</span>', badge(state.label, state.tone), state.error[:120]
        )
    return badge(state.label, state.tone)


SUBSCRIPTION_TONES = {
    WebhookSubscription.State.REGISTERED: "ok",
    WebhookSubscription.State.MISSING: "warn",
    WebhookSubscription.State.WRONG_URL: "warn",
    WebhookSubscription.State.DISABLED: "warn",
    WebhookSubscription.State.FAILED: "bad",
}

VERSION_TONES = {
    VersionState.SUPPORTED: "ok",
    VersionState.RETIRING: "warn",
    VersionState.RETIRED: "bad",
    VersionState.UNKNOWN: "bad",
}


class PollRestartForm(forms.Form):
    since = forms.DateTimeField(
        label="Poll orders changed since",
        help_text="UTC, e.g. 2026-05-01 00:00. Orders changed before this are not read: "
        "check them on the channel first.",
    )


class AlertSettingsInline(admin.StackedInline):
    """The channel's alert thresholds; without a row the defaults from the settings apply."""

    model = ChannelAlertSettings
    extra = 0
    max_num = 1
    verbose_name_plural = "Alert thresholds (add a row to override the defaults)"
    fieldsets = (
        (
            "Dead and degraded",
            {
                "fields": (
                    "dead_after",
                    "degraded_error_percent",
                    "degraded_window",
                    "degraded_min_attempts",
                )
            },
        ),
        ("Queue and repeated failures", {"fields": ("queue_depth_limit", "repeated_failures")}),
        (
            "Top sellers' safety stock",
            {
                "fields": (
                    "top_sellers",
                    "top_seller_days",
                    "top_seller_safety_stock",
                )
            },
        ),
        ("Webhook signatures", {"fields": ("bad_signature_threshold", "bad_signature_window")}),
    )


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelAdminForm
    list_display = (
        "name",
        "platform_badge",
        "enabled_badge",
        "listing_count",
        "location_list",
        "api_version_badge",
        "rate_limit_per_second",
        "updated_at",
    )
    list_filter = ("platform", "is_enabled")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = (
        "credentials_display",
        "webhook_secret_display",
        "webhook_url",
        "api_version_status",
        "token_status",
        "reconcile_schedule",
        "last_reconciliation",
        "webhook_subscriptions_display",
        "last_catalog_import",
    )
    inlines = [
        ChannelLocationInline,
        AlertSettingsInline,
        ListingInline,
        NewListingInline,
        WebhookSecretEventInline,
    ]
    actions = [
        "push_now_action",
        "force_resync_action",
        "reconcile_now_action",
        "test_connection_action",
        "register_webhooks_action",
        "resume_action",
        "poll_restart_action",
        "link_variants_action",
        "catalog_import_action",
    ]
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
                    "api_version_status",
                    "token_status",
                ),
            },
        ),
        (
            "Sync settings",
            {
                "fields": Channel.SYNC_SETTINGS,
            },
        ),
        (
            "Reconciliation and drift",
            {
                "fields": (
                    *Channel.RECONCILE_SETTINGS,
                    "reconcile_schedule",
                    "last_reconciliation",
                ),
                "description": "Live values are compared with pimsync on this schedule; "
                "listings that differ by the thresholds or more are resynced.",
            },
        ),
        (
            "Channel-side edits and webhooks",
            {
                "fields": (*Channel.EDIT_SETTINGS, "webhook_subscriptions_display"),
                "description": "Shopify and WooCommerce report prices and quantities edited "
                "in their own console by webhook; pimsync compares them at once and applies "
                "the conflict policy to a difference beyond the drift thresholds. Saving or "
                "testing the channel registers (or repairs) its webhooks.",
            },
        ),
        (
            "Catalog import (bringing the store in)",
            {
                "fields": (*Channel.IMPORT_SETTINGS, "last_catalog_import"),
                "description": "Channels › (select) › Import the channel's catalog reads every "
                "item and matches it to pimsync's variants for review (docs/onboarding.md).",
            },
        ),
    )
    Media = AdminMedia

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_listings=Count("listings", distinct=True),
                n_pending=Count("markers", distinct=True),
            )
            .select_related("sync_state")
            .prefetch_related("channel_locations__location")
        )

    @admin.display(description="Sync")
    def sync_badge(self, obj: Channel) -> str:
        state = getattr(obj, "sync_state", None) if hasattr(obj, "sync_state") else None
        if not obj.is_enabled:
            return badge("disabled", "muted")
        if state is None:
            return badge("idle", "muted")
        if state.auth_failed_at:
            return badge("auth failed", "bad")
        if state.breaker != ChannelSyncState.Breaker.CLOSED:
            return badge(f"circuit {state.get_breaker_display().lower()}", "bad")
        return badge("healthy", "ok")

    @admin.display(description="Queued", ordering="n_pending")
    def pending_count(self, obj: Channel) -> int:
        return obj.n_pending

    def save_model(self, request: HttpRequest, obj: Channel, form: Any, change: bool) -> None:
        changed = form.changed_data if change else [k for k, v in form.cleaned_data.items() if v]
        services.channel_save(channel=obj, changed_fields=changed, user=request.user)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is ChannelListing:
            formset.save(commit=False)
            for obj in formset.deleted_objects:
                obj.delete()
            for obj in formset.new_objects:
                obj.channel = form.instance
                services.listing_save(listing=obj)
            for obj, changed in formset.changed_objects:
                services.listing_save(listing=obj, changed_fields=changed)
            return
        super().save_formset(request, form, formset, change)
        if formset.model is ChannelLocation and formset.has_changed():
            services.channel_locations_changed(channel=form.instance)

    @confirmed_action(
        description="Push now: every listing of the selected channels",
        explanation="Pushes current prices and quantities that differ from what was last sent.",
    )
    def push_now_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        return str(
            services.listings_push_now(listings=ChannelListing.objects.filter(channel__in=queryset))
        )

    @confirmed_action(
        description="Force resync: push every listing even if unchanged",
        explanation="Sends every listing's current price and quantity again, "
        "whatever pimsync believes the channel shows.",
    )
    def force_resync_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        return str(
            services.listings_force_resync(
                listings=ChannelListing.objects.filter(channel__in=queryset)
            )
        )

    @confirmed_action(
        description="Reconcile now: compare live values and fix drift",
        explanation="Reads every enabled listing's live price and quantity from the channel, "
        "records what differs from pimsync, and resyncs the listings beyond the drift "
        "thresholds. Progress shows under Reconciliation runs.",
    )
    def reconcile_now_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        return str(
            services.reconcile_request(
                channels=queryset.order_by("name"),
                trigger="manual",
                requested_by_id=request.user.pk,
            )
        )

    @admin.display(description="Schedule")
    def reconcile_schedule(self, obj: Channel) -> str:
        from django_celery_beat.models import PeriodicTask

        task = PeriodicTask.objects.filter(name=services.reconcile_schedule_name(obj.pk)).first()
        if task is None:
            return "created when the channel is saved"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        state = "enabled" if task.enabled else "off"
        last = task.last_run_at.strftime("%Y-%m-%d %H:%M") if task.last_run_at else "never"
        return format_html('<a href="{}">{}</a> ({}, last run {})', url, task.name, state, last)

    @admin.display(description="Last reconciliation")
    def last_reconciliation(self, obj: Channel) -> str:
        from synclog.models import ReconciliationRun

        run = ReconciliationRun.objects.filter(channel_id=obj.pk).order_by("-started_at").first()
        if run is None:
            return "none yet"
        url = reverse("admin:synclog_reconciliationrun_change", args=[run.pk])
        return format_html(
            '<a href="{}">#{}</a> {:%Y-%m-%d %H:%M} · {} · {}/{} checked, {} drifted, {} fixed',
            url,
            run.pk,
            run.started_at,
            run.get_status_display(),
            run.checked,
            run.total,
            run.drifted,
            run.fixed,
        )

    @admin.display(description="Last catalog import")
    def last_catalog_import(self, obj: Channel) -> str:
        run = CatalogImport.objects.filter(channel_id=obj.pk).order_by("-started_at").first()
        if run is None:
            return "none yet"
        url = reverse("admin:channels_app_catalogimport_change", args=[run.pk])
        return format_html(
            '<a href="{}">#{}</a> {:%Y-%m-%d %H:%M} · {} · {} items read',
            url,
            run.pk,
            run.started_at,
            run.get_status_display(),
            run.items_read,
        )

    @confirmed_action(
        description="Import the channel's catalog (match it to pimsync for review)",
        explanation="Reads every item the channel sells, page by page through the channel's "
        "rate limit, and matches each to a pimsync variant by SKU, barcode, or (proposed) "
        "title and options. Nothing is linked without your review unless the channel links "
        "exact SKU matches by itself (its catalog import setting). The import's page shows "
        "the progress and then the result.",
    )
    def catalog_import_action(
        self, request: HttpRequest, queryset: QuerySet, form: None
    ) -> str | HttpResponse:
        started, busy = [], []
        for channel in queryset.order_by("name"):
            try:
                run = catalog_import_start(channel=channel, requested_by_id=request.user.pk)
            except CatalogImportBusyError as exc:
                busy.append(str(exc))
                continue
            started.append(run)
        if len(started) == 1 and not busy:
            url = reverse("admin:channels_app_catalogimport_change", args=[started[0].pk])
            return HttpResponseRedirect(url)
        parts = [f"Catalog import #{run.pk} of {run.channel} started." for run in started]
        return " ".join(parts + [f"Not started: {message}" for message in busy])

    @admin.action(description="Test connection")
    def test_connection_action(self, request: HttpRequest, queryset: QuerySet) -> None:
        for channel in queryset:
            check = services.channel_test_connection(channel=channel)
            level = messages.SUCCESS if check.ok else messages.ERROR
            self.message_user(request, f"{channel}: {check.message}", level)

    @admin.action(description="Register or repair webhooks (Shopify, WooCommerce)")
    def register_webhooks_action(self, request: HttpRequest, queryset: QuerySet) -> None:
        registrations = services.channels_webhooks_register(channels=queryset)
        for registration in registrations:
            level = messages.SUCCESS if registration.ok else messages.ERROR
            self.message_user(request, str(registration), level)
        if not registrations:
            self.message_user(
                request, "No enabled Shopify or WooCommerce channel selected.", messages.WARNING
            )

    @confirmed_action(
        description="Resume pushes after an authentication failure",
        explanation="Use after the credentials were fixed; queued changes go out at once.",
    )
    def resume_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        for channel in queryset:
            services.channel_resume(channel=channel)
        return f"Resumed {queryset.count()} channel(s)."

    @confirmed_action(
        description="Restart order polling from a date (after a poll gap)",
        explanation="The next order poll reads the changes since this date; the channel's "
        "poll_gap alert is resolved. Use it when a poll was refused because its start lies "
        "beyond what the channel serves, after checking the older orders on the channel.",
        form_class=PollRestartForm,
    )
    def poll_restart_action(self, request: HttpRequest, queryset: QuerySet, form: Any) -> str:
        since = form.cleaned_data["since"]
        for channel in queryset:
            channel_poll_restart(channel=channel, since=since)
        return (
            f"Order polling of {queryset.count()} channel(s) restarts from {since:%Y-%m-%d %H:%M}."
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        channel = self.get_object(request, object_id)
        status = channel_api_version_status(channel=channel) if channel is not None else None
        if request.method == "GET" and status is not None and status.needs_attention:
            self.message_user(request, status.message, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="Access token")
    def token_status(self, obj: Channel) -> str:
        status = channel_token_status(channel=obj) if obj.pk else None
        if status is None:
            return "— (this platform's keys do not expire)"
        return status.describe(timezone.now())

    @admin.display(description="API version")
    def api_version_badge(self, obj: Channel) -> str:
        status = channel_api_version_status(channel=obj)
        if status is None:
            return "—"
        label = status.version
        if status.state is VersionState.RETIRING:
            label = f"{status.version} · retires in {status.days_left} d"
        elif status.state is not VersionState.SUPPORTED:
            label = f"{status.version} · {status.state.value}"
        return format_html(
            '<span title="{}">{}</span>', status.message, badge(label, VERSION_TONES[status.state])
        )

    @admin.display(description="Admin API version")
    def api_version_status(self, obj: Channel) -> str:
        status = channel_api_version_status(channel=obj) if obj.pk else None
        if status is None:
            return "— (Shopify only: platform_config api_version)"
        return format_html(
            "{} {}", badge(status.state.value, VERSION_TONES[status.state]), status.message
        )

    @confirmed_action(
        description="Link a product's variants to a Magento configurable",
        form_class=LinkVariantsForm,
        explanation="Reads the configurable's simple children from each selected channel and "
        "lists the product's variants whose SKUs match, with the channel's ids; new or "
        "changed listings are pushed.",
    )
    def link_variants_action(
        self, request: HttpRequest, queryset: QuerySet, form: LinkVariantsForm
    ) -> str:
        messages_ = []
        for channel in queryset:
            try:
                linked = services.product_variants_link(
                    channel=channel,
                    product=form.cleaned_data["product"],
                    product_ref=form.cleaned_data["product_ref"],
                )
            except services.VariantLinkError as exc:
                messages_.append(f"{channel}: {exc}")
                continue
            messages_.append(f"{channel}: {linked}")
        return " ".join(messages_)

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
        stored = mask(obj.webhook_secret) or "none stored"
        if not obj.pk:
            return stored
        url = reverse("admin:channels_app_channel_webhook_secret", args=[obj.pk])
        return format_html('{} <a href="{}">Reveal or rotate…</a>', stored, url)

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(partial(webhook_secret_view, self))
        return [
            path(
                "<path:object_id>/webhook-secret/", view, name="channels_app_channel_webhook_secret"
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Webhook URL")
    def webhook_url(self, obj: Channel) -> str:
        if not obj.slug:
            return "—"
        return channel_webhook_address(obj) or (
            f"/webhooks/{obj.slug}/ (no public URL: set PIMSYNC_PUBLIC_URL or the channel's "
            "public URL)"
        )

    @admin.display(description="Webhook subscriptions")
    def webhook_subscriptions_display(self, obj: Channel) -> str:
        if obj.pk is None or obj.platform not in WEBHOOK_PLATFORMS:
            return "— (only Shopify and WooCommerce deliver webhooks; this channel is polled)"
        rows = list(obj.webhook_subscriptions.all())
        if not rows:
            return "Not checked yet: save the channel or test its connection."
        body = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    row.topic,
                    badge(row.get_state_display(), SUBSCRIPTION_TONES[row.state]),
                    row.address or "—",
                    row.error or row.note or "",
                    f"{row.checked_at:%Y-%m-%d %H:%M:%S}",
                )
                for row in rows
            ),
        )
        return format_html(
            "<table class='ps-table'><tr><th>Topic</th><th>State</th><th>Delivers to</th>"
            "<th>Note</th><th>Checked</th></tr>{}</table>",
            body,
        )


@admin.register(ChannelListing)
class ChannelListingAdmin(ListingCsvAdmin):
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
    list_filter = ("channel", "channel__platform", "is_enabled", "sync_content")
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
    actions = ["push_now_action", "force_resync_action", "reconcile_selected_action"]

    @admin.display(description="Channel SKU")
    def channel_sku_display(self, obj: ChannelListing) -> str:
        return obj.listing_sku or obj.variant.sku

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        self._states = listing_sync_states(changelist.result_list)
        return changelist

    @admin.display(description="Sync")
    def sync_state(self, obj: ChannelListing) -> str:
        states = getattr(self, "_states", None) or listing_sync_states([obj])
        return sync_state_badge(states.get(obj.pk))

    def save_model(
        self, request: HttpRequest, obj: ChannelListing, form: Any, change: bool
    ) -> None:
        services.listing_save(listing=obj, changed_fields=form.changed_data if change else None)

    @confirmed_action(
        description="Push now", explanation="Pushes values that differ from what was last sent."
    )
    def push_now_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        return str(services.listings_push_now(listings=queryset))

    @confirmed_action(description="Force resync (push even if unchanged)")
    def force_resync_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        return str(services.listings_force_resync(listings=queryset))

    @confirmed_action(
        description="Reconcile selected",
        explanation="Reads these listings' live values from their channels (one run per "
        "channel) and resyncs the ones that drifted beyond the channel's thresholds.",
    )
    def reconcile_selected_action(
        self, request: HttpRequest, queryset: QuerySet, form: None
    ) -> str:
        return str(
            services.listings_reconcile_request(listings=queryset, requested_by_id=request.user.pk)
        )


@admin.register(BufferRule)
class BufferRuleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "channel_label", "scope_label", "mode", "value", "is_active")
    list_select_related = ("channel", "variant", "product")
    list_filter = ("channel", "mode", "is_active")
    search_fields = ("=variant__sku", "product__title", "note")
    autocomplete_fields = ("variant", "product")

    def save_model(self, request: HttpRequest, obj: BufferRule, form: Any, change: bool) -> None:
        services.buffer_rule_save(rule=obj)

    def delete_model(self, request: HttpRequest, obj: BufferRule) -> None:
        services.buffer_rule_delete(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for rule in queryset:
            services.buffer_rule_delete(rule=rule)

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

    def save_model(self, request: HttpRequest, obj: PriceRule, form: Any, change: bool) -> None:
        services.price_rule_save(rule=obj)

    def delete_model(self, request: HttpRequest, obj: PriceRule) -> None:
        services.price_rule_delete(rule=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for rule in queryset:
            services.price_rule_delete(rule=rule)

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


@admin.register(SyncMarker)
class SyncMarkerAdmin(admin.ModelAdmin):
    """The outbound queue: what is waiting to be pushed, retrying, or dead-lettered."""

    list_display = (
        "listing_sku",
        "channel",
        "kind",
        "status_badge",
        "attempts",
        "first_dirty_at",
        "due_at",
        "last_error_code",
        "last_error_short",
    )
    list_select_related = ("channel", "listing__variant")
    list_filter = ("status", "kind", "channel")
    search_fields = ("=listing__variant__sku", "last_error")
    actions = ["redrive_action"]
    list_per_page = 100
    Media = AdminMedia

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="SKU", ordering="listing__variant__sku")
    def listing_sku(self, obj: SyncMarker) -> str:
        return obj.listing.variant.sku

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: SyncMarker) -> str:
        if obj.status == SyncMarker.Status.DEAD:
            return badge("dead-lettered", "bad")
        return badge("retrying", "warn") if obj.attempts else badge("pending", "info")

    @admin.display(description="Last error")
    def last_error_short(self, obj: SyncMarker) -> str:
        return obj.last_error[:120]

    @confirmed_action(
        description="Re-drive selected dead-lettered pushes",
        explanation="Dead-lettered pushes are sent again with the current value.",
    )
    def redrive_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        return f"Re-drove {services.markers_redrive(markers=queryset)} dead-lettered push(es)."


class ListedOnChannelFilter(admin.SimpleListFilter):
    title = "listed on channel"
    parameter_name = "channel"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in Channel.objects.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(listings__channel_id=self.value())
        return queryset


admin.site.unregister(Variant)


@admin.register(Variant)
class VariantAdmin(InventoryVariantAdmin):
    """The inventory variant page plus what each channel is told and its sync state
    (added here so inventory never imports channels_app)."""

    list_filter = (*InventoryVariantAdmin.list_filter, ListedOnChannelFilter)
    readonly_fields = (*InventoryVariantAdmin.readonly_fields, "channel_publication")
    fieldsets = (
        *InventoryVariantAdmin.fieldsets[:3],
        ("What each channel is told", {"fields": ("channel_publication",)}),
        *InventoryVariantAdmin.fieldsets[3:],
    )
    actions = [*InventoryVariantAdmin.actions, "push_now_action", "force_resync_action"]

    def csv_push_summary(self, variant_ids: set[int], location_ids: set[int] | None) -> str:
        return csv_push_sentence(variant_ids, location_ids)

    @admin.display(description="Per channel")
    def channel_publication(self, obj: Variant) -> str:
        if obj.pk is None:
            return "—"
        views = variant_channel_overview(variant=obj)
        states = listing_sync_states([v.listing for v in views if v.listing])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td class='num'>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
            "<td class='num'>{}</td><td>{}</td></tr>",
            (
                (
                    view.channel.name,
                    view.price,
                    badge(str(view.atp), stock_tone(view.atp, view.channel.low_stock_level)),
                    _fmt(view.listing.last_pushed_price if view.listing else None),
                    _fmt(view.listing.last_pushed_quantity if view.listing else None),
                    sync_state_badge(states.get(view.listing.pk))
                    if view.listing
                    else badge("not listed", "muted"),
                )
                for view in views
            ),
        )
        return format_html(
            "<table class='ps-table'><tr><th>Channel</th><th class='num'>Channel price</th>"
            "<th class='num'>Channel ATP</th><th class='num'>Last pushed price</th>"
            "<th class='num'>Last pushed qty</th><th>Sync</th></tr>{}</table>"
            "<p class='ps-help'>Price: listing override, else the variant price through the "
            "channel's price rule, never below MAP. ATP: what the channel's active locations "
            "can sell (each at least 0) minus its buffer.</p>",
            rows or mark_safe("<tr><td colspan='6'>No channels yet.</td></tr>"),
        )

    @confirmed_action(
        description="Push now to every channel",
        explanation="Pushes each selected variant's current price and ATP where they differ.",
    )
    def push_now_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        return str(
            services.listings_push_now(listings=ChannelListing.objects.filter(variant__in=queryset))
        )

    @confirmed_action(description="Force resync to every channel (even if unchanged)")
    def force_resync_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        return str(
            services.listings_force_resync(
                listings=ChannelListing.objects.filter(variant__in=queryset)
            )
        )


def _fmt(value: object) -> str:
    return "—" if value is None else str(value)


def csv_push_sentence(variant_ids: set[int], location_ids: set[int] | None) -> str:
    """What a CSV import's success message says about the channels it updates."""
    names = channels_listing_variants(variant_ids=variant_ids, location_ids=location_ids)
    if not names:
        return "No enabled channel lists these variants, so nothing is pushed."
    return f"{len(names)} channel(s) will be pushed: {', '.join(names)}."


admin.site.unregister(StockLevel)


@admin.register(StockLevel)
class StockLevelAdmin(InventoryStockLevelAdmin):
    """Stock levels; a stock count import also says which channels it updates."""

    def csv_push_summary(self, variant_ids: set[int], location_ids: set[int] | None) -> str:
        return csv_push_sentence(variant_ids, location_ids)


@confirmed_action(
    description="Re-drive selected dead-lettered SKUs",
    explanation="Each dead SKU's current value is pushed again (forced).",
)
def redrive_action(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, form: None
) -> str:
    return str(services.sync_log_redrive(entries=queryset))


sync_log_action_register(redrive_action)

# Orders, customers and inbound events register their admin pages with the rest, and
# so do the catalog import's pages.
from .onboarding import admin as onboarding_admin  # noqa: E402,F401
from .orders import admin as orders_admin  # noqa: E402,F401
