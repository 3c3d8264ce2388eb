"""The merchandiser's workspace: catalog, stock per location, the ledger."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Max, Min, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from pimsync.admin_utils import AdminMedia, ReadOnlyAdmin, badge, confirmed_action, stock_tone

from . import services
from .admin_csv import COUNT_SPEC, PRICE_SPEC, CsvImportExportMixin
from .errors import InventoryError
from .forms import AdjustStockForm, BulkAdjustStockForm
from .models import (
    CsvImport,
    Location,
    Product,
    Reservation,
    StockLevel,
    StockMovement,
    Variant,
)

LOW_STOCK = 5


# --- filters ---------------------------------------------------------------------------


class StockStatusFilter(admin.SimpleListFilter):
    title = "stock"
    parameter_name = "stock"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("out", "Out of stock"), ("low", f"Low (1–{LOW_STOCK})"), ("in", "In stock")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "out":
            return queryset.filter(total_available__lte=0)
        if value == "low":
            return queryset.filter(total_available__gt=0, total_available__lte=LOW_STOCK)
        if value == "in":
            return queryset.filter(total_available__gt=LOW_STOCK)
        return queryset


# --- products ----------------------------------------------------------------------------


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = (
        "sku",
        "title",
        "options",
        "price",
        "compare_at_price",
        "map_price",
        "barcode",
        "is_active",
    )
    show_change_link = True


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "status_badge",
        "vendor",
        "product_type",
        "variant_count",
        "price_range",
        "updated_at",
    )
    list_filter = ("status", "vendor", "product_type")
    search_fields = ("title", "handle", "=variants__sku", "variants__barcode")
    prepopulated_fields = {"handle": ("title",)}
    inlines = [VariantInline]
    list_per_page = 50
    Media = AdminMedia

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_variants=Count("variants", distinct=True),
                min_price=Min("variants__price"),
                max_price=Max("variants__price"),
            )
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Product) -> str:
        tone = {"active": "ok", "draft": "muted", "archived": "warn"}[obj.status]
        return badge(obj.get_status_display(), tone)

    @admin.display(description="Variants", ordering="n_variants")
    def variant_count(self, obj: Product) -> int:
        return obj.n_variants

    @admin.display(description="Price")
    def price_range(self, obj: Product) -> str:
        if obj.min_price is None:
            return "—"
        if obj.min_price == obj.max_price:
            return f"{obj.min_price}"
        return f"{obj.min_price} – {obj.max_price}"

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        services.product_save(product=obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Variant:
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)
        for obj in formset.deleted_objects:
            obj.delete()
        for obj in formset.new_objects:
            obj.product = form.instance
            services.variant_save(variant=obj)
        for obj, changed in formset.changed_objects:
            services.variant_save(variant=obj, changed_fields=changed)
        formset.save_m2m()


# --- variants ------------------------------------------------------------------------------


@admin.register(Variant)
class VariantAdmin(CsvImportExportMixin, admin.ModelAdmin):
    list_display = (
        "sku",
        "product_link",
        "options_label",
        "price",
        "map_price",
        "on_hand",
        "available_badge",
        "barcode",
        "is_active",
    )
    list_display_links = ("sku",)
    list_editable = ("price",)
    list_select_related = ("product",)
    list_filter = (
        StockStatusFilter,
        "is_active",
        "product__status",
        "product__vendor",
    )
    search_fields = ("sku", "barcode", "product__title")
    autocomplete_fields = ("product",)
    list_per_page = 100
    actions = ["adjust_stock_action"]
    readonly_fields = ("stock_by_location", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("product", "sku", "title", "options", "barcode", "is_active")}),
        ("Prices", {"fields": ("price", "compare_at_price", "map_price")}),
        ("Stock", {"fields": ("stock_by_location",)}),
        ("Timestamps", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )
    Media = AdminMedia
    csv_spec = PRICE_SPEC

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_stock_totals()

    @admin.display(description="Product", ordering="product__title")
    def product_link(self, obj: Variant) -> str:
        url = reverse("admin:inventory_product_change", args=[obj.product_id])
        return format_html('<a href="{}">{}</a>', url, obj.product.title)

    @admin.display(description="On hand", ordering="total_on_hand")
    def on_hand(self, obj: Variant) -> int:
        return obj.total_on_hand

    @admin.display(description="Available", ordering="total_available")
    def available_badge(self, obj: Variant) -> str:
        return badge(str(obj.total_available), stock_tone(obj.total_available, LOW_STOCK))

    @admin.display(description="Stock per location")
    def stock_by_location(self, obj: Variant) -> str:
        if obj.pk is None:
            return "Save the variant first."
        levels = (
            StockLevel.objects.filter(variant=obj)
            .select_related("location")
            .order_by("location__code")
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td class='num'>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
            "<td class='num'>{}</td><td class='num'>{}</td></tr>",
            (
                (
                    lvl.location.name,
                    lvl.on_hand,
                    lvl.committed,
                    lvl.reserved,
                    lvl.damaged,
                    badge(str(lvl.available), stock_tone(lvl.available, LOW_STOCK)),
                )
                for lvl in levels
            ),
        )
        adjust = reverse("admin:inventory_variant_adjust_stock", args=[obj.pk])
        ledger = (
            reverse("admin:inventory_stockmovement_changelist") + f"?variant__id__exact={obj.pk}"
        )
        return format_html(
            "<table class='ps-table'><tr><th>Location</th><th class='num'>On hand</th>"
            "<th class='num'>Committed</th><th class='num'>Reserved</th>"
            "<th class='num'>Damaged</th>"
            "<th class='num'>Available</th></tr>{}</table>"
            "<div class='ps-actions'><a class='button' href='{}'>Adjust stock…</a>"
            "<a class='button' href='{}'>Movement ledger</a></div>",
            rows or mark_safe("<tr><td colspan='6'>No stock recorded yet.</td></tr>"),
            adjust,
            ledger,
        )

    def save_model(self, request: HttpRequest, obj: Variant, form: Any, change: bool) -> None:
        services.variant_save(variant=obj, changed_fields=form.changed_data if change else None)

    def get_urls(self) -> list:
        custom = [
            path(
                "<int:variant_id>/adjust-stock/",
                self.admin_site.admin_view(self.adjust_stock_view),
                name="inventory_variant_adjust_stock",
            )
        ]
        return custom + super().get_urls()

    def adjust_stock_view(self, request: HttpRequest, variant_id: int) -> HttpResponse:
        variant = get_object_or_404(Variant.objects.select_related("product"), pk=variant_id)
        if not request.user.has_perm("inventory.add_stockmovement"):
            self.message_user(request, "You may not change stock.", messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:inventory_variant_change", args=[variant.pk])
            )
        form = AdjustStockForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                result = _apply_form(variant, form.cleaned_data, request)
            except InventoryError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, _describe(variant, result), messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:inventory_variant_change", args=[variant.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Adjust stock of {variant.sku}",
            "variant": variant,
            "form": form,
            "opts": self.model._meta,
            "levels": StockLevel.objects.filter(variant=variant).select_related("location"),
        }
        return TemplateResponse(request, "admin/inventory/variant/adjust_stock.html", context)

    @confirmed_action(
        description="Adjust stock of selected variants",
        permissions=("adjust",),
        form_class=BulkAdjustStockForm,
        explanation="Applies the same change to each selected variant at one location; "
        "each becomes one ledger movement.",
    )
    def adjust_stock_action(
        self, request: HttpRequest, queryset: QuerySet, form: BulkAdjustStockForm
    ) -> str:
        done, failed = 0, []
        base_key = form.cleaned_data["idempotency_key"]
        for variant in queryset.order_by("pk"):
            data = {**form.cleaned_data, "idempotency_key": f"{base_key}:{variant.pk}"}
            try:
                _apply_form(variant, data, request)
                done += 1
            except InventoryError as exc:
                failed.append(exc.message)
        message = f"Stock changed for {done} variant(s)."
        if failed:
            message += f" {len(failed)} not changed: " + "; ".join(failed[:5])
        return message

    def has_adjust_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.add_stockmovement")


def _apply_form(variant: Variant, data: dict, request: HttpRequest) -> services.MovementResult:
    return services.stock_operation_apply(
        variant=variant,
        location=data["location"],
        operation=data["operation"],
        quantity=data["quantity"],
        note=data["reason_note"],
        idempotency_key=data["idempotency_key"],
        source="admin",
        user=request.user,
    )


def _describe(variant: Variant, result: services.MovementResult) -> str:
    m = result.movement
    if not result.created:
        return f"This change was already applied (movement #{m.pk}); nothing changed twice."
    before = m.on_hand_after - m.delta_on_hand
    return (
        f"{m.get_reason_display()} recorded for {variant.sku} at {m.location}: "
        f"on hand {before} → {m.on_hand_after}, available now {m.available_after}."
    )


# --- locations, stock levels, ledger, reservations --------------------------------------


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "is_active", "skus_stocked", "units_on_hand")
    list_filter = ("is_active",)
    search_fields = ("code", "name")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_skus=Count("stock_levels", distinct=True),
                units=Coalesce(Sum("stock_levels__on_hand"), 0),
            )
        )

    def save_model(self, request: HttpRequest, obj: Location, form: Any, change: bool) -> None:
        # Through the service: (de)activating a location re-pushes its channels' ATP.
        services.location_save(location=obj)

    @admin.display(description="SKUs stocked", ordering="n_skus")
    def skus_stocked(self, obj: Location) -> int:
        return obj.n_skus

    @admin.display(description="Units on hand", ordering="units")
    def units_on_hand(self, obj: Location) -> int:
        return obj.units


@admin.register(StockLevel)
class StockLevelAdmin(CsvImportExportMixin, ReadOnlyAdmin):
    list_display = (
        "variant",
        "location",
        "on_hand",
        "committed",
        "reserved",
        "damaged",
        "available_badge",
        "adjust_link",
    )
    list_select_related = ("variant", "location")
    list_filter = ("location",)
    search_fields = ("=variant__sku", "variant__barcode")
    list_per_page = 100
    Media = AdminMedia
    csv_spec = COUNT_SPEC

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_available()

    @admin.display(description="Available", ordering="available_qty")
    def available_badge(self, obj: StockLevel) -> str:
        return badge(str(obj.available_qty), stock_tone(obj.available_qty, LOW_STOCK))

    @admin.display(description="")
    def adjust_link(self, obj: StockLevel) -> str:
        url = reverse("admin:inventory_variant_adjust_stock", args=[obj.variant_id])
        return format_html('<a href="{}">Adjust…</a>', url)


@admin.register(StockMovement)
class StockMovementAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "variant",
        "location",
        "reason",
        "deltas_label",
        "on_hand_after",
        "available_after",
        "source",
        "source_ref",
        "created_by",
    )
    list_select_related = ("variant", "location", "created_by")
    list_filter = ("reason", "source", "location", "created_at")
    search_fields = ("=variant__sku", "idempotency_key", "source_ref")
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False

    @admin.display(description="Change")
    def deltas_label(self, obj: StockMovement) -> str:
        parts = [f"{name} {value:+d}" for name, value in obj.deltas.items() if value]
        return ", ".join(parts) or "no change (count matched)"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("inventory.view_stockmovement")


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = (
        "variant",
        "location",
        "quantity",
        "status_badge",
        "expires_at",
        "source",
        "source_ref",
        "created_at",
    )
    list_select_related = ("variant", "location")
    list_filter = ("status", "location", "source")
    search_fields = ("=variant__sku", "source_ref", "idempotency_key")
    actions = ["release_action"]
    Media = AdminMedia

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Reservation) -> str:
        tone = {"active": "info", "committed": "ok", "released": "muted", "expired": "warn"}[
            obj.status
        ]
        return badge(obj.get_status_display(), tone)

    @confirmed_action(
        description="Release selected reservations",
        permissions=("release",),
        explanation="Released units become available again and every channel is updated.",
    )
    def release_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        released, skipped = 0, 0
        for pk in queryset.filter(status=Reservation.Status.ACTIVE).values_list("pk", flat=True):
            try:
                services.reservation_release(reservation_id=pk)
                released += 1
            except InventoryError:
                skipped += 1
        total = queryset.count()
        return f"Released {released} of {total} reservation(s); {total - released} were not active."

    def has_release_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("inventory.change_reservation")


@admin.register(CsvImport)
class CsvImportAdmin(ReadOnlyAdmin):
    """Who imported which file when, and what it did (the rows stay with the record)."""

    list_display = (
        "created_at",
        "kind",
        "file_name",
        "row_count",
        "status_badge",
        "created_by",
        "applied_at",
        "applied_by",
    )
    list_select_related = ("created_by", "applied_by")
    list_filter = ("kind", "status")
    search_fields = ("file_name", "file_sha256")
    fields = (
        "kind",
        "status",
        "file_name",
        "file_sha256",
        "encoding",
        "delimiter",
        "row_count",
        "created_by",
        "created_at",
        "applied_by",
        "applied_at",
        "message",
        "preview_link",
    )
    readonly_fields = fields
    Media = AdminMedia

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("rows")

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: CsvImport) -> str:
        tone = "ok" if obj.status == CsvImport.Status.APPLIED else "info"
        return badge(obj.get_status_display(), tone)

    @admin.display(description="Preview")
    def preview_link(self, obj: CsvImport) -> str:
        model = "variant" if obj.kind == CsvImport.Kind.PRICES else "stocklevel"
        url = reverse(f"admin:inventory_{model}_csv_preview", args=[obj.pk])
        return format_html('<a href="{}">Open the preview / result</a>', url)
