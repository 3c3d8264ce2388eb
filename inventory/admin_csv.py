"""CSV import and export on the variant and stock-level changelists.

Export streams the changelist's current selection (filters and search apply).
Import is upload -> preview (every row checked, errors with their row numbers,
nothing changed) -> confirm (checked again and applied through
inventory.csv_imports, all or nothing, once).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from .csv_imports import (
    CountRow,
    ImportPreview,
    PriceRow,
    csv_import_apply,
    csv_import_is_expired,
    csv_import_max_rows,
    csv_import_preview,
    csv_import_review,
)
from .csvfile import CsvFileError, spreadsheet_text
from .models import CsvImport
from .selectors import stock_available_compute

ROWS_SHOWN = 500  # the preview lists this many rows; the summary counts them all


class CsvUploadForm(forms.Form):
    file = forms.FileField(label="CSV file")

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = settings.PIMSYNC_CSV_IMPORT_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {filesizeformat(upload.size)}; at most {filesizeformat(limit)} "
                "can be imported at once. Split it into smaller files."
            )
        return upload


@dataclass(frozen=True)
class CsvSpec:
    """What differs between the price and the stock count import."""

    kind: str
    noun: str
    import_permission: str
    export_name: str
    export_header: tuple[str, ...]
    export_rows: Callable[[QuerySet], Iterable[Iterable[Any]]]
    columns_help: tuple[tuple[str, str], ...]


def _options_label(options: dict | None) -> str:
    return spreadsheet_text(" / ".join(str(v) for v in (options or {}).values()))


def _texts(*values: str) -> list[str]:
    return [spreadsheet_text(v) for v in values]


def _money(value: Any) -> str:
    return "" if value is None else str(value)


def price_export_rows(queryset: QuerySet) -> Iterator[list[Any]]:
    fields = ("sku", "product__title", "options", "barcode", "price")
    rows = queryset.values_list(*fields, "compare_at_price", "map_price")
    for sku, product, options, barcode, price, compare_at, map_price in rows.iterator(2000):
        label = _options_label(options)
        sku, product, barcode = _texts(sku, product, barcode)
        yield [sku, product, label, barcode, price, _money(compare_at), _money(map_price)]


def count_export_rows(queryset: QuerySet) -> Iterator[list[Any]]:
    rows = queryset.values_list(
        "variant__sku",
        "variant__product__title",
        "variant__options",
        "location__code",
        "on_hand",
        "committed",
        "reserved",
        "damaged",
    )
    for sku, product, options, location, on_hand, committed, reserved, damaged in rows.iterator(
        2000
    ):
        available = stock_available_compute(
            on_hand=on_hand, committed=committed, reserved=reserved, damaged=damaged
        )
        buckets = (on_hand, committed, reserved, damaged, available)
        yield [*_texts(sku, product), _options_label(options), location, *buckets, ""]


PRICE_SPEC = CsvSpec(
    kind=CsvImport.Kind.PRICES,
    noun="prices",
    import_permission="inventory.change_variant",
    export_name="variant-prices",
    export_header=(
        "sku",
        "product",
        "options",
        "barcode",
        "price",
        "compare_at_price",
        "map_price",
    ),
    export_rows=price_export_rows,
    columns_help=(
        ("sku", "required: which variant"),
        ("price", "required: the new price, e.g. 12.50 (a comma works as decimal mark too)"),
        ("compare_at_price", "optional column: an empty cell removes the compare-at price"),
        ("map_price", "optional column: an empty cell removes the MAP price"),
        ("other columns", "ignored (product, options, barcode come with the export)"),
    ),
)

COUNT_SPEC = CsvSpec(
    kind=CsvImport.Kind.COUNTS,
    noun="stock counts",
    import_permission="inventory.change_stocklevel",
    export_name="stock-count-sheet",
    export_header=(
        "sku",
        "product",
        "options",
        "location",
        "on_hand",
        "committed",
        "reserved",
        "damaged",
        "available",
        "counted",
    ),
    export_rows=count_export_rows,
    columns_help=(
        ("sku, location", "required: which variant at which location (its code)"),
        ("counted", "the counted on-hand quantity; rows left empty are skipped"),
        ("on_hand", "optional: on hand at export; a difference from now is flagged"),
        ("other columns", "ignored"),
    ),
)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_stream(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    # The byte-order mark makes Excel read the file as UTF-8.
    writer = csv.writer(_Echo())
    yield "\ufeff" + writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


class CsvImportExportMixin:
    """Adds Import/Export to a ModelAdmin's changelist; put it before ModelAdmin."""

    csv_spec: CsvSpec
    change_list_template = "admin/inventory/change_list_csv.html"

    def csv_push_summary(self, variant_ids: set[int], location_ids: set[int] | None) -> str:
        """A sentence on the channels that will be pushed (channels_app fills it in)."""
        return ""

    # --- permissions and urls -------------------------------------------------------------

    def csv_can_import(self, request: HttpRequest) -> bool:
        return request.user.has_perm(self.csv_spec.import_permission)

    def _csv_url(self, name: str, *args: Any) -> str:
        opts = self.opts
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=args)

    def get_urls(self) -> list:
        opts = self.opts
        prefix = f"{opts.app_label}_{opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("export-csv/", wrap(self.csv_export_view), name=f"{prefix}_csv_export"),
            path("import-csv/", wrap(self.csv_import_view), name=f"{prefix}_csv_import"),
            path(
                "import-csv/<uuid:import_id>/",
                wrap(self.csv_preview_view),
                name=f"{prefix}_csv_preview",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        extra_context = {
            **(extra_context or {}),
            "csv_noun": self.csv_spec.noun,
            "csv_export_url": self._csv_url("csv_export"),
            "csv_import_url": self._csv_url("csv_import") if self.csv_can_import(request) else "",
        }
        return super().changelist_view(request, extra_context)

    # --- export --------------------------------------------------------------------------------

    def csv_export_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(self._csv_url("changelist"))
        spec = self.csv_spec
        response = StreamingHttpResponse(
            _csv_stream(spec.export_header, spec.export_rows(changelist.queryset)),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="{spec.export_name}-{stamp}.csv"'
        return response

    # --- import --------------------------------------------------------------------------------

    def _csv_require_import(self, request: HttpRequest) -> None:
        if not self.csv_can_import(request):
            raise PermissionDenied

    def csv_import_view(self, request: HttpRequest) -> HttpResponse:
        self._csv_require_import(request)
        form = CsvUploadForm(request.POST or None, request.FILES or None)
        preview = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                preview, record = csv_import_preview(
                    kind=self.csv_spec.kind,
                    file_name=upload.name,
                    data=upload.read(),
                    user=request.user,
                )
            except CsvFileError as exc:
                form.add_error("file", exc.message)
            else:
                if record is not None:
                    return HttpResponseRedirect(self._csv_url("csv_preview", record.pk))
        return self._csv_render(request, form=form, preview=preview)

    def csv_preview_view(self, request: HttpRequest, import_id: Any) -> HttpResponse:
        self._csv_require_import(request)
        record = get_object_or_404(
            CsvImport.objects.select_related("created_by", "applied_by"),
            pk=import_id,
            kind=self.csv_spec.kind,
        )
        if request.method == "POST":
            outcome = csv_import_apply(
                import_id=record.pk, user=request.user, describe_push=self.csv_push_summary
            )
            if outcome.status != "refused":
                level = messages.SUCCESS if outcome.status == "applied" else messages.WARNING
                self.message_user(request, outcome.message, level)
                return HttpResponseRedirect(self._csv_url("changelist"))
            self.message_user(request, outcome.message, messages.ERROR)
            record = outcome.record
            preview = outcome.preview
        else:
            preview = None
        if preview is None and record.status == CsvImport.Status.PREVIEWED:
            preview = csv_import_review(record=record)
        return self._csv_render(request, form=CsvUploadForm(), preview=preview, record=record)

    def _csv_render(
        self,
        request: HttpRequest,
        *,
        form: CsvUploadForm,
        preview: ImportPreview | None,
        record: CsvImport | None = None,
    ) -> HttpResponse:
        expired = record is not None and csv_import_is_expired(record)
        can_confirm = (
            record is not None
            and record.status == CsvImport.Status.PREVIEWED
            and not expired
            and preview is not None
            and not preview.has_errors
        )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import {self.csv_spec.noun} from CSV",
            "opts": self.opts,
            "spec": self.csv_spec,
            "form": form,
            "preview": preview,
            "record": record,
            "expired": expired,
            "can_confirm": can_confirm,
            "max_bytes": settings.PIMSYNC_CSV_IMPORT_MAX_BYTES,
            "max_rows": csv_import_max_rows(self.csv_spec.kind),
            "export_url": self._csv_url("csv_export"),
            "upload_url": self._csv_url("csv_import"),
            "changelist_url": self._csv_url("changelist"),
            **_preview_tables(preview),
        }
        return TemplateResponse(request, "admin/inventory/csv_import.html", context)


def _preview_tables(preview: ImportPreview | None) -> dict[str, Any]:
    """Rows worth a look (changed or flagged) first, capped; errors capped alike."""
    if preview is None:
        return {}
    notable = [r for r in preview.rows if r.is_changed or r.warnings]
    shown = notable[:ROWS_SHOWN]
    return {
        "price_rows": [_price_cells(r, preview.columns) for r in shown]
        if preview.kind == CsvImport.Kind.PRICES
        else [],
        "count_rows": [_count_cells(r) for r in shown]
        if preview.kind == CsvImport.Kind.COUNTS
        else [],
        "rows_not_shown": len(preview.rows) - len(shown),
        "rows_not_shown_beyond": len(notable) > len(shown),
        "rows_shown_max": ROWS_SHOWN,
        "errors_shown": preview.errors[:ROWS_SHOWN],
        "errors_not_shown": max(len(preview.errors) - ROWS_SHOWN, 0),
        "column_labels": [c.replace("_", " ") for c in preview.columns],
    }


def _price_cells(row: PriceRow, columns: list[str]) -> dict[str, Any]:
    return {
        "row": row.row,
        "sku": row.sku,
        "product": row.variant.product,
        "cells": [
            {"old": _money(row.old[c]) or "—", "new": _money(row.new[c]) or "—"}
            | {"changed": row.old[c] != row.new[c]}
            for c in columns
        ],
        "warnings": row.warnings,
    }


def _count_cells(row: CountRow) -> dict[str, Any]:
    return {
        "row": row.row,
        "sku": row.sku,
        "product": row.variant.product,
        "location": row.location.code,
        "on_hand": row.on_hand,
        "counted": row.counted,
        "delta": row.delta,
        "available_after": row.available_after,
        "warnings": row.warnings,
    }
