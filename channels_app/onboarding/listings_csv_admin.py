"""Export and Import buttons on the listings' list (Channels › Listings), and the
record of listing files imported."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from inventory.admin_csv import CsvUploadForm, _csv_stream
from inventory.csvfile import CsvFileError
from pimsync.admin_utils import AdminMedia, ReadOnlyAdmin

from ..models import ListingCsvImport
from .listings_csv import (
    EXPORT_HEADER,
    ROWS_SHOWN,
    ListingsPreview,
    listings_csv_apply,
    listings_csv_export_rows,
    listings_csv_is_expired,
    listings_csv_preview,
    listings_csv_review,
    listings_csv_rows_shown,
)

IMPORT_PERMISSION = "channels_app.change_channellisting"


class ListingCsvAdmin(admin.ModelAdmin):
    """A listings admin with Import/Export listings on its changelist."""

    change_list_template = "admin/inventory/change_list_csv.html"

    def _url(self, name: str, *args: Any) -> str:
        return reverse(f"admin:channels_app_channellisting_{name}", args=args)

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path(
                "export-csv/",
                wrap(self.listings_export_view),
                name="channels_app_channellisting_csv_export",
            ),
            path(
                "import-csv/",
                wrap(self.listings_import_view),
                name="channels_app_channellisting_csv_import",
            ),
            path(
                "import-csv/<uuid:import_id>/",
                wrap(self.listings_preview_view),
                name="channels_app_channellisting_csv_preview",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        can_import = request.user.has_perm(IMPORT_PERMISSION)
        extra_context = {
            **(extra_context or {}),
            "csv_noun": "listings",
            "csv_export_url": self._url("csv_export"),
            "csv_import_url": self._url("csv_import") if can_import else "",
        }
        return super().changelist_view(request, extra_context)

    def listings_export_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(self._url("changelist"))
        response = StreamingHttpResponse(
            _csv_stream(EXPORT_HEADER, listings_csv_export_rows(changelist.queryset)),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="listings-{stamp}.csv"'
        return response

    def _require_import(self, request: HttpRequest) -> None:
        if not request.user.has_perm(IMPORT_PERMISSION):
            raise PermissionDenied

    def listings_import_view(self, request: HttpRequest) -> HttpResponse:
        self._require_import(request)
        form = CsvUploadForm(request.POST or None, request.FILES or None)
        preview = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                preview, record = listings_csv_preview(
                    file_name=upload.name, data=upload.read(), user=request.user
                )
            except CsvFileError as exc:
                form.add_error("file", exc.message)
            else:
                if record is not None:
                    return HttpResponseRedirect(self._url("csv_preview", record.pk))
        return self._render(request, form=form, preview=preview)

    def listings_preview_view(self, request: HttpRequest, import_id: Any) -> HttpResponse:
        self._require_import(request)
        record = get_object_or_404(ListingCsvImport, pk=import_id)
        preview = None
        if request.method == "POST":
            outcome = listings_csv_apply(import_id=record.pk, user=request.user)
            if outcome.status != "refused":
                level = messages.SUCCESS if outcome.status == "applied" else messages.WARNING
                self.message_user(request, outcome.message, level)
                return HttpResponseRedirect(self._url("changelist"))
            self.message_user(request, outcome.message, messages.ERROR)
            record, preview = outcome.record, outcome.preview
        if preview is None and record.status == ListingCsvImport.Status.PREVIEWED:
            preview = listings_csv_review(record=record)
        return self._render(request, form=CsvUploadForm(), preview=preview, record=record)

    def _render(
        self,
        request: HttpRequest,
        *,
        form: CsvUploadForm,
        preview: ListingsPreview | None,
        record: ListingCsvImport | None = None,
    ) -> HttpResponse:
        expired = record is not None and listings_csv_is_expired(record)
        context = {
            **self.admin_site.each_context(request),
            "title": "Import listings from CSV",
            "opts": self.opts,
            "form": form,
            "preview": preview,
            "record": record,
            "expired": expired,
            "can_confirm": record is not None
            and record.status == ListingCsvImport.Status.PREVIEWED
            and not expired
            and preview is not None
            and not preview.has_errors,
            "rows": listings_csv_rows_shown(preview) if preview else [],
            "rows_shown_max": ROWS_SHOWN,
            "errors_shown": preview.errors[:ROWS_SHOWN] if preview else [],
            "max_bytes": settings.PIMSYNC_CSV_IMPORT_MAX_BYTES,
            "max_rows": settings.PIMSYNC_CSV_IMPORT_MAX_ROWS,
            "export_url": self._url("csv_export"),
            "upload_url": self._url("csv_import"),
            "changelist_url": self._url("changelist"),
            "header": EXPORT_HEADER,
        }
        return TemplateResponse(request, "admin/channels_app/listings_csv_import.html", context)


@admin.register(ListingCsvImport)
class ListingCsvImportAdmin(ReadOnlyAdmin):
    list_display = ("file_name", "status", "row_count", "created_by", "created_at", "message")
    list_select_related = ("created_by",)
    list_filter = ("status",)
    fields = (
        "file_name",
        "status",
        "row_count",
        "created_by",
        "created_at",
        "applied_by",
        "applied_at",
        "message",
    )
    Media = AdminMedia

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser
