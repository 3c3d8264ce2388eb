"""Catalog imports over the API: start one on a channel, follow it, read its items,
resume it; and listings in bulk (``POST /api/v1/bulk/listings/``)."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory.api.serializers import BulkInputSerializer
from inventory.api.views import OPTIONAL_IDEMPOTENCY_PARAM, _bulk_rows
from inventory.models import Variant
from pimsync.api.errors import ApiError, row_errors
from pimsync.api.filters import IntFilter
from pimsync.api.idempotency import idempotent
from pimsync.api.throttling import ApiBulkThrottle, ApiUserThrottle
from pimsync.api.views import ApiViewSetMixin

from ..listings_bulk import ListingRow, ListingRowsInvalid, listings_save_bulk
from ..models import CatalogImport, CatalogImportItem, Channel
from ..onboarding.importer import (
    CatalogImportBusyError,
    catalog_import_resume,
    catalog_import_start,
)


class CatalogImportSerializer(serializers.ModelSerializer):
    channel_slug = serializers.CharField(source="channel.slug", read_only=True)
    requested_by = serializers.CharField(
        source="requested_by.username", read_only=True, default=None
    )
    percent = serializers.SerializerMethodField(
        help_text="Items read of the channel's own count (null when it gives none)"
    )

    class Meta:
        model = CatalogImport
        fields = (
            "id",
            "channel",
            "channel_slug",
            "status",
            "started_at",
            "finished_at",
            "read_done_at",
            "items_read",
            "total_hint",
            "percent",
            "pages",
            "calls",
            "read_seconds",
            "resumes",
            "counts",
            "auto_linked",
            "error_message",
            "requested_by",
        )
        read_only_fields = fields

    def get_percent(self, obj: CatalogImport) -> int | None:
        total = max(obj.total_hint or 0, obj.items_read)
        return round(100 * obj.items_read / total) if obj.total_hint else None


class CatalogImportItemSerializer(serializers.ModelSerializer):
    variant_sku = serializers.CharField(source="variant.sku", read_only=True, default=None)

    class Meta:
        model = CatalogImportItem
        fields = (
            "id",
            "key",
            *CatalogImportItem.CHANNEL_FIELDS,
            "match",
            "status",
            "variant",
            "variant_sku",
            "score",
            "candidates",
            "note",
            "listing",
        )
        read_only_fields = fields


class CatalogImportFilter(filters.FilterSet):
    channel = IntFilter(field_name="channel_id")
    status = filters.ChoiceFilter(choices=CatalogImport.Status.choices)

    class Meta:
        model = CatalogImport
        fields = ("channel", "status")


class ItemFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=CatalogImportItem.Status.choices)
    match = filters.ChoiceFilter(choices=CatalogImportItem.Match.choices)

    class Meta:
        model = CatalogImportItem
        fields = ("status", "match")


IMPORT_EXAMPLE = OpenApiExample(
    "A finished import",
    response_only=True,
    value={
        "id": 7,
        "channel": 1,
        "channel_slug": "shopify",
        "status": "finished",
        "started_at": "2026-12-01T10:00:00Z",
        "finished_at": "2026-12-01T10:06:41Z",
        "read_done_at": "2026-12-01T10:06:40Z",
        "items_read": 10000,
        "total_hint": None,
        "percent": None,
        "pages": 41,
        "calls": 41,
        "read_seconds": 399.2,
        "resumes": 0,
        "counts": {"matched": 6000, "proposed": 1500, "conflict": 500, "unmatched": 2000},
        "auto_linked": 0,
        "error_message": "",
        "requested_by": "merch1",
    },
)
STARTED_EXAMPLE = OpenApiExample(
    "Started (or resumed)",
    response_only=True,
    status_codes=["202"],
    value={
        **IMPORT_EXAMPLE.value,
        "status": "running",
        "finished_at": None,
        "read_done_at": None,
        "items_read": 0,
        "pages": 0,
        "calls": 0,
        "read_seconds": 0.0,
        "counts": {},
    },
)
ITEMS_EXAMPLE = OpenApiExample(
    "A proposed item",
    response_only=True,
    value={
        "id": 412,
        "key": "gid://shopify/ProductVariant/5001",
        "sku": "WEB-TEE-M",
        "barcode": "",
        "title": "M",
        "product_title": "Tee",
        "options": {"Size": "M"},
        "price": "21.00",
        "quantity": 2,
        "external_product_id": "gid://shopify/Product/1000",
        "external_variant_id": "gid://shopify/ProductVariant/5001",
        "inventory_item_id": "gid://shopify/InventoryItem/9001",
        "offer_id": "",
        "group_ref": "gid://shopify/Product/1000",
        "image_url": "",
        "match": "title",
        "status": "proposed",
        "variant": 2,
        "variant_sku": "TEE-M",
        "score": 0.86,
        "candidates": [2],
        "note": "",
        "listing": None,
    },
)


def start_import(request: Request, channel: Channel) -> Response:
    """Open an import of the channel (202), or 409 while one runs."""
    try:
        run = catalog_import_start(channel=channel, requested_by_id=request.user.pk)
    except CatalogImportBusyError as exc:
        raise ApiError(str(exc), code="import_busy", status_code=409) from exc
    return Response(CatalogImportSerializer(run).data, status=status.HTTP_202_ACCEPTED)


def latest_import(channel: Channel) -> Response:
    run = CatalogImport.objects.filter(channel=channel).order_by("-started_at", "-id").first()
    if run is None:
        raise ApiError(
            f"{channel.slug} has no catalog import yet.", code="not_found", status_code=404
        )
    return Response(CatalogImportSerializer(run).data)


@extend_schema_view(
    list=extend_schema(
        summary="List catalog imports",
        description="Newest first. Filters: channel, status.",
        examples=[IMPORT_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Follow a catalog import",
        description="While it reads: items_read (of total_hint when the channel counts), "
        "pages, calls. Once matched: counts per review status.",
        examples=[IMPORT_EXAMPLE],
    ),
)
class CatalogImportViewSet(
    ApiViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    api_area = "listings"
    api_tag = "channels"
    serializer_class = CatalogImportSerializer
    filterset_class = CatalogImportFilter
    ordering = "-id"
    queryset = CatalogImport.objects.select_related("channel", "requested_by")

    @extend_schema(
        summary="The items of a catalog import, as matched",
        description="Filters: status (matched, proposed, conflict, unmatched, linked, "
        "ignored), match (sku, barcode, title, none). Linking, creating and ignoring are "
        "done in the admin's review (or in bulk with POST /api/v1/bulk/listings/).",
        responses={200: CatalogImportItemSerializer(many=True)},
        examples=[ITEMS_EXAMPLE],
        filters=False,
    )
    @action(detail=True, methods=["get"])
    def items(self, request: Request, pk: str | None = None) -> Response:
        # Not get_object(): the import list's own filters (status) must not apply here.
        run = get_object_or_404(self.get_queryset(), pk=pk)
        self.check_object_permissions(request, run)
        items = ItemFilter(
            request.query_params,
            queryset=CatalogImportItem.objects.filter(run=run).select_related("variant"),
        ).qs.order_by("position")
        page = self.paginate_queryset(items)
        data = CatalogImportItemSerializer(page if page is not None else items, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(
        summary="Resume a stopped catalog import",
        description="A failed import (or one whose worker is gone) reads on from the page "
        "after the last one it stored. 409 `not_stopped` when it is finished or reading.",
        request=None,
        responses={202: CatalogImportSerializer},
        examples=[STARTED_EXAMPLE],
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        if not catalog_import_resume(run=run):
            raise ApiError(
                f"Catalog import #{run.pk} is {run.status}, not stopped.",
                code="not_stopped",
                status_code=409,
            )
        run.refresh_from_db()
        return Response(CatalogImportSerializer(run).data, status=status.HTTP_202_ACCEPTED)


# --- bulk listings -------------------------------------------------------------------------------


class ListingRowSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100, help_text="pimsync's SKU")
    channel = serializers.SlugField(max_length=60, help_text="The channel's slug")
    listing_sku = serializers.CharField(max_length=100, required=False, allow_blank=True)
    external_product_id = serializers.CharField(max_length=120, required=False, allow_blank=True)
    external_variant_id = serializers.CharField(max_length=120, required=False, allow_blank=True)
    inventory_item_id = serializers.CharField(max_length=120, required=False, allow_blank=True)
    offer_id = serializers.CharField(max_length=120, required=False, allow_blank=True)
    price_override = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Absent: kept as it is; null: removed",
    )
    is_enabled = serializers.BooleanField(required=False)


class BulkListingsInputSerializer(BulkInputSerializer):
    rows_field = "listings"
    listings = ListingRowSerializer(many=True, allow_empty=False)


class BulkListingsOutputSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    channels_pushed = serializers.IntegerField(
        help_text="Channels with new or changed listings: each is pushed once"
    )


def listing_rows_resolve(rows: list[dict]) -> tuple[list[ListingRow], dict[int, dict]]:
    """ListingRows for validated rows, and {row: {field: [errors]}} for unknown SKUs and
    channels (one query each, whatever the row count)."""
    variants = dict(
        Variant.objects.filter(sku__in={r["sku"] for r in rows}).values_list("sku", "pk")
    )
    channels = dict(
        Channel.objects.filter(slug__in={r["channel"] for r in rows}).values_list("slug", "pk")
    )
    errors: dict[int, dict] = {}
    resolved = []
    for i, row in enumerate(rows):
        if row["sku"] not in variants:
            errors.setdefault(i, {}).setdefault("sku", []).append(f"Unknown SKU {row['sku']!r}")
        if row["channel"] not in channels:
            errors.setdefault(i, {}).setdefault("channel", []).append(
                f"Unknown channel {row['channel']!r}"
            )
        if i in errors:
            continue
        resolved.append(
            ListingRow(
                channel_id=channels[row["channel"]],
                variant_id=variants[row["sku"]],
                listing_sku=row.get("listing_sku", ""),
                external_product_id=row.get("external_product_id", ""),
                external_variant_id=row.get("external_variant_id", ""),
                inventory_item_id=row.get("inventory_item_id", ""),
                offer_id=row.get("offer_id", ""),
                set_price_override="price_override" in row,
                price_override=row.get("price_override"),
                is_enabled=row.get("is_enabled"),
            )
        )
    return resolved, errors


class BulkListingsApi(ApiViewSetMixin, APIView):
    api_area = "listings"
    api_tag = "bulk"
    throttle_classes = [ApiUserThrottle, ApiBulkThrottle]

    @extend_schema(
        summary="Create or update up to 10,000 listings at once",
        description="Each row: pimsync SKU, channel slug, the channel's ids (absent = empty), "
        "optionally price_override (absent = kept, null = removed) and is_enabled. Validated "
        "all-or-nothing (unknown SKU or channel, the same SKU twice on a channel, a bad "
        "value → 400 listing every failing row, nothing changed); written in one "
        "transaction; each channel with new or changed listings is pushed once (new ids "
        "push price and quantity, an override the price, a disabled listing its 0).",
        parameters=[OPTIONAL_IDEMPOTENCY_PARAM],
        request=BulkListingsInputSerializer,
        responses={200: BulkListingsOutputSerializer},
        examples=[
            OpenApiExample(
                "Two channels",
                value={
                    "listings": [
                        {
                            "sku": "DEMO-001-M",
                            "channel": "shopify",
                            "external_product_id": "gid://shopify/Product/11",
                            "external_variant_id": "gid://shopify/ProductVariant/12",
                            "inventory_item_id": "gid://shopify/InventoryItem/13",
                        },
                        {
                            "sku": "DEMO-001-M",
                            "channel": "ebay",
                            "listing_sku": "EB-DEMO-001-M",
                            "offer_id": "7000012",
                            "price_override": "31.00",
                        },
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "Saved",
                value={"rows": 2, "created": 1, "updated": 1, "unchanged": 0, "channels_pushed": 2},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        rows = _bulk_rows(BulkListingsInputSerializer, request, "listings")
        resolved, errors = listing_rows_resolve(rows)
        if errors:
            raise ApiError(
                f"{len(errors)} row(s) invalid, nothing changed.",
                code="invalid_rows",
                details={"rows": row_errors(errors)},
            )

        def perform(key: str | None) -> Response:
            try:
                saved = listings_save_bulk(rows=resolved)
            except ListingRowsInvalid as exc:
                raise ApiError(
                    f"{len(exc.errors)} row(s) invalid, nothing changed.",
                    code="invalid_rows",
                    details={"rows": row_errors(exc.errors)},
                ) from exc
            return Response(
                {
                    "rows": len(resolved),
                    "created": saved.created,
                    "updated": saved.updated,
                    "unchanged": saved.unchanged,
                    "channels_pushed": saved.channels_pushed,
                }
            )

        return idempotent(request, perform, required=False)
