"""The catalog import in the admin: the import's page (progress while it reads, its
result once matched) and the review screen of its items, with bulk decisions."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from inventory.models import Location
from pimsync.admin_utils import AdminMedia, badge, confirmed_action

from ..models import CatalogImport, CatalogImportItem
from .importer import catalog_import_counts, catalog_import_resume
from .review import (
    OPEN,
    PriceSource,
    ReviewError,
    catalog_item_choose,
    catalog_items_create,
    catalog_items_first_values,
    catalog_items_ignore,
    catalog_items_link,
)

RUN_TONES = {"running": "info", "finished": "ok", "failed": "bad"}
ITEM_TONES = {
    "matched": "ok",
    "proposed": "info",
    "conflict": "warn",
    "unmatched": "muted",
    "linked": "ok",
    "ignored": "muted",
}
# The review's classes in the order a person works through them.
REVIEW_ORDER = ("matched", "proposed", "conflict", "unmatched", "linked", "ignored")
FIRST_VALUES_SHOWN = 200


def review_url(run: CatalogImport, status: str = "") -> str:
    url = reverse("admin:channels_app_catalogimportitem_changelist") + f"?run__id__exact={run.pk}"
    return url + (f"&status__exact={status}" if status else "")


def progress_state(run: CatalogImport) -> dict[str, Any]:
    """What the import's page shows and polls while it runs."""
    total = max(run.total_hint or 0, run.items_read)
    return {
        "status": run.status,
        "items_read": run.items_read,
        "total": run.total_hint,
        "percent": round(100 * run.items_read / total) if total else None,
        "pages": run.pages,
        "calls": run.calls,
        "done": run.status != CatalogImport.Status.RUNNING,
    }


@admin.register(CatalogImport)
class CatalogImportAdmin(admin.ModelAdmin):
    """Imports are started from a channel (Channels: 'Import catalog') or the API."""

    list_display = (
        "id",
        "channel",
        "status_badge",
        "progress",
        "result",
        "started_at",
        "duration",
        "requested_by",
    )
    list_display_links = ("id", "channel")
    list_select_related = ("channel", "requested_by")
    list_filter = ("status", "channel")
    actions = ["resume_action"]
    Media = AdminMedia

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/progress/",
                wrap(self.progress_view),
                name="channels_app_catalogimport_progress",
            ),
            path(
                "<int:pk>/resume/",
                wrap(self.resume_view),
                name="channels_app_catalogimport_resume",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: CatalogImport) -> str:
        return badge(obj.get_status_display(), RUN_TONES.get(obj.status, "info"))

    @admin.display(description="Read")
    def progress(self, obj: CatalogImport) -> str:
        state = progress_state(obj)
        if state["percent"] is None:
            return format_html("<progress></progress> {} items", obj.items_read)
        return format_html(
            '<progress value="{}" max="100"></progress> {} of {}',
            state["percent"],
            obj.items_read,
            obj.total_hint,
        )

    @admin.display(description="Result")
    def result(self, obj: CatalogImport) -> str:
        if not obj.counts:
            return "—"
        return ", ".join(f"{obj.counts[s]} {s}" for s in REVIEW_ORDER if obj.counts.get(s))

    @admin.display(description="Duration")
    def duration(self, obj: CatalogImport) -> str:
        end = obj.finished_at or timezone.now()
        seconds = (end - obj.started_at).total_seconds()
        text = f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
        return text if obj.finished_at else f"{text} so far"

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The import's page: progress while it reads, the result once matched."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = get_object_or_404(
            CatalogImport.objects.select_related("channel", "requested_by"), pk=object_id
        )
        counts = catalog_import_counts(run=run) if run.read_done_at else {}
        context = {
            **self.admin_site.each_context(request),
            "title": f"Catalog import #{run.pk} of {run.channel}",
            "opts": self.opts,
            "run": run,
            "state": progress_state(run),
            "status_badge": self.status_badge(run),
            "duration": self.duration(run),
            "classes": [
                {
                    "status": s,
                    "label": CatalogImportItem.Status(s).label,
                    "count": counts.get(s, 0),
                    "url": review_url(run, s),
                    "tone": ITEM_TONES[s],
                }
                for s in REVIEW_ORDER
            ],
            "review_url": review_url(run),
            "progress_url": reverse("admin:channels_app_catalogimport_progress", args=[run.pk]),
            "resume_url": reverse("admin:channels_app_catalogimport_resume", args=[run.pk]),
            "can_resume": run.status == CatalogImport.Status.FAILED and self._can_import(request),
            "refresh_seconds": 2,
        }
        return TemplateResponse(request, "admin/channels_app/catalogimport/page.html", context)

    def _can_import(self, request: HttpRequest) -> bool:
        return request.user.has_perm("channels_app.add_catalogimport")

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(progress_state(get_object_or_404(CatalogImport, pk=pk)))

    def resume_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST" or not self._can_import(request):
            raise PermissionDenied
        run = get_object_or_404(CatalogImport, pk=pk)
        if catalog_import_resume(run=run):
            self.message_user(request, f"Import #{run.pk} resumes from where it stopped.")
        else:
            self.message_user(request, f"Import #{run.pk} is not stopped.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:channels_app_catalogimport_change", args=[pk]))

    @confirmed_action(
        description="Resume the selected imports from where they stopped",
        permissions=("add",),
        explanation="A failed import (or one whose worker is gone) reads on from the page "
        "after the last one it stored.",
    )
    def resume_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        resumed = [run.pk for run in queryset if catalog_import_resume(run=run)]
        return f"Resumed {len(resumed)} import(s); the others are finished or running."


# --- the review screen ---------------------------------------------------------------------------


class LinkForm(forms.Form):
    price_source = forms.ChoiceField(
        label="Prices to publish",
        choices=[
            (PriceSource.PIMSYNC.value, "pimsync's prices (through the channel's price rule)"),
            (PriceSource.CHANNEL.value, "Keep the channel's prices (saved as price overrides)"),
        ],
        initial=PriceSource.PIMSYNC.value,
        widget=forms.RadioSelect,
    )


class CreateForm(forms.Form):
    stock_location = forms.ModelChoiceField(
        label="Opening stock",
        queryset=Location.objects.filter(is_active=True),
        required=False,
        empty_label="None: the channel will be told 0",
        help_text="Book each item's quantity on the channel as received at this location.",
    )


ON_THE_CHANNEL = (
    "run",
    "status",
    "match",
    "score",
    "note",
    "candidate_list",
    *CatalogImportItem.CHANNEL_FIELDS,
    "listing",
)


class ChooseVariantForm(forms.ModelForm):
    class Meta:
        model = CatalogImportItem
        fields = ("variant",)


@admin.register(CatalogImportItem)
class CatalogImportItemAdmin(admin.ModelAdmin):
    """The review: every imported item, what it was matched to, and the decisions."""

    list_display = (
        "sku",
        "item_title",
        "barcode",
        "options_label",
        "channel_values",
        "match_badge",
        "status_badge",
        "variant_link",
        "score",
        "note",
    )
    list_select_related = ("variant", "run__channel")
    list_filter = ("status", "match", "run__channel", "run")
    search_fields = ("sku", "title", "product_title", "barcode", "=variant__sku", "key")
    list_per_page = 100
    show_full_result_count = False
    actions = ["link_action", "create_action", "ignore_action"]
    form = ChooseVariantForm
    autocomplete_fields = ("variant",)
    fieldsets = (
        ("Choose the pimsync variant", {"fields": ("variant",)}),
        ("On the channel", {"fields": ON_THE_CHANNEL}),
    )
    readonly_fields = ON_THE_CHANNEL
    Media = AdminMedia

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Title", ordering="product_title")
    def item_title(self, obj: CatalogImportItem) -> str:
        return obj.display_title

    @admin.display(description="Options")
    def options_label(self, obj: CatalogImportItem) -> str:
        return " / ".join(str(v) for v in (obj.options or {}).values()) or "—"

    @admin.display(description="On the channel")
    def channel_values(self, obj: CatalogImportItem) -> str:
        price = "—" if obj.price is None else obj.price
        quantity = "—" if obj.quantity is None else obj.quantity
        return f"{price} · {quantity} pcs"

    @admin.display(description="Match", ordering="match")
    def match_badge(self, obj: CatalogImportItem) -> str:
        return badge(obj.get_match_display(), "info" if obj.match != "none" else "muted")

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: CatalogImportItem) -> str:
        return badge(obj.get_status_display(), ITEM_TONES.get(obj.status, "info"))

    @admin.display(description="pimsync variant", ordering="variant__sku")
    def variant_link(self, obj: CatalogImportItem) -> str:
        if obj.variant is None:
            return f"{len(obj.candidates)} candidates" if obj.candidates else "—"
        url = reverse("admin:inventory_variant_change", args=[obj.variant_id])
        return format_html('<a href="{}">{}</a>', url, obj.variant.sku)

    @admin.display(description="Candidates")
    def candidate_list(self, obj: CatalogImportItem) -> str:
        from inventory.models import Variant

        found = Variant.objects.filter(pk__in=obj.candidates or []).select_related("product")
        return ", ".join(f"{v.sku} ({v.product.title})" for v in found) or "—"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        run_id = request.GET.get("run__id__exact")
        run = CatalogImport.objects.select_related("channel").filter(pk=run_id).first()
        title = f"Review catalog import #{run.pk} of {run.channel}" if run else None
        context = {"title": title} if title else {}
        return super().changelist_view(request, {**(extra_context or {}), **context})

    def save_model(
        self, request: HttpRequest, obj: CatalogImportItem, form: Any, change: bool
    ) -> None:
        if "variant" not in form.changed_data or obj.variant is None:
            return
        current = CatalogImportItem.objects.get(pk=obj.pk)
        try:
            catalog_item_choose(item=current, variant=obj.variant, user=request.user)
        except ReviewError as exc:
            self.message_user(request, str(exc), messages.ERROR)

    @staticmethod
    def _first_values_context(queryset: QuerySet) -> dict[str, Any]:
        items = list(queryset.select_related("variant", "run__channel")[:FIRST_VALUES_SHOWN])
        channels = {item.run.channel_id: item.run.channel for item in items}
        rows = []
        for channel in channels.values():
            rows += catalog_items_first_values(
                channel=channel, items=[i for i in items if i.run.channel_id == channel.pk]
            )
        return {"first_values": rows, "first_values_shown": FIRST_VALUES_SHOWN}

    @admin.action(
        description="Link to their pimsync variants (shows first values)", permissions=("change",)
    )
    def link_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Link the selected items; first shows their channel values beside pimsync's."""
        form = LinkForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            decided = catalog_items_link(
                items=queryset,
                price_source=PriceSource(form.cleaned_data["price_source"]),
                user=request.user,
            )
            self.message_user(request, str(decided), messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Link the selected items to their pimsync variants",
            "opts": self.opts,
            "form": form,
            "count": queryset.count(),
            "linkable": queryset.filter(status__in=OPEN, variant__isnull=False).count(),
            "action_name": "link_action",
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            **self._first_values_context(queryset),
        }
        return TemplateResponse(request, "admin/channels_app/catalogimportitem/link.html", context)

    @confirmed_action(
        description="Create the missing products in pimsync from the channel's data",
        form_class=CreateForm,
        explanation="One pimsync product per channel product, one variant per item (title, "
        "options, barcode, the channel's price; the channel's SKU unless pimsync uses it), "
        "then linked. Items that match a pimsync variant are left alone.",
    )
    def create_action(self, request: HttpRequest, queryset: QuerySet, form: CreateForm) -> str:
        try:
            decided = catalog_items_create(
                items=queryset,
                stock_location=form.cleaned_data["stock_location"],
                user=request.user,
            )
        except ReviewError as exc:
            return f"Nothing created: {exc}"
        return str(decided)

    @confirmed_action(
        description="Ignore: leave these items off pimsync",
        explanation="They stay on the channel and are not linked; linked items are left alone.",
    )
    def ignore_action(self, request: HttpRequest, queryset: QuerySet, form: None) -> str:
        return str(catalog_items_ignore(items=queryset, user=request.user))
