"""Catalog and stock endpoints. Views validate input and call inventory.services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Count, F, IntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pimsync.api.errors import ApiError, row_errors
from pimsync.api.idempotency import idempotent, ledger_key
from pimsync.api.throttling import ApiBulkThrottle, ApiUserThrottle
from pimsync.api.views import ApiViewSetMixin, ServiceModelViewSet

from .. import services
from ..models import Location, Product, Reservation, StockLevel, StockMovement, Variant
from ..selectors import stock_available_expression
from ..services import Deltas, MovementSpec
from . import examples, filters
from .serializers import (
    BulkMovementsInputSerializer,
    BulkMovementsOutputSerializer,
    BulkPricesInputSerializer,
    BulkPricesOutputSerializer,
    CycleCountInputSerializer,
    LocationSerializer,
    ProductSerializer,
    ReservationInputSerializer,
    ReservationSerializer,
    StockLevelSerializer,
    StockMovementInputSerializer,
    StockMovementSerializer,
    TransferInputSerializer,
    TransferOutputSerializer,
    VariantSerializer,
)

IDEMPOTENCY_PARAM = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="Unique per change (1–200 printable ASCII characters). A retry with the same "
    "key and body gets the first response again (header Idempotent-Replayed: true); the same "
    "key with a different body is refused with 409.",
)
OPTIONAL_IDEMPOTENCY_PARAM = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=IDEMPOTENCY_PARAM.description,
)

PRODUCT_EXAMPLE = OpenApiExample(
    "A product",
    value={
        "title": "Navy Hoodie",
        "handle": "navy-hoodie",
        "description": "Heavy cotton",
        "vendor": "pimsync demo",
        "product_type": "Hoodie",
        "status": "active",
    },
    request_only=True,
)
VARIANT_EXAMPLE = OpenApiExample(
    "A variant",
    value={
        "product": 1,
        "sku": "HOODIE-NAVY-M",
        "title": "M",
        "options": {"size": "M", "colour": "Navy"},
        "price": "49.00",
        "compare_at_price": "59.00",
        "map_price": "39.00",
        "barcode": "4006381333931",
    },
    request_only=True,
)
MOVEMENT_EXAMPLE = OpenApiExample(
    "Receive 12 units",
    value={
        "sku": "DEMO-001-M",
        "location": "main",
        "reason": "receive",
        "quantity": 12,
        "note": "PO 4711",
        "source_ref": "PO-4711",
    },
    request_only=True,
)
MOVEMENT_RESPONSE_EXAMPLE = OpenApiExample(
    "Applied movement",
    value={
        "id": 981,
        "variant": 2,
        "sku": "DEMO-001-M",
        "location": "main",
        "reason": "receive",
        "delta_on_hand": 12,
        "delta_committed": 0,
        "delta_reserved": 0,
        "delta_damaged": 0,
        "on_hand_after": 30,
        "available_after": 28,
        "source": "api",
        "source_ref": "PO-4711",
        "idempotency_key": "api:3:po-4711-line-1",
        "note": "PO 4711",
        "created_by": "erp",
        "created_at": "2026-11-23T10:00:00Z",
    },
    response_only=True,
)


@extend_schema_view(
    list=extend_schema(
        summary="List products",
        description="Filter by handle, status, updated_since.",
        examples=[examples.PRODUCT],
    ),
    retrieve=extend_schema(summary="Read a product", examples=[examples.PRODUCT]),
    create=extend_schema(summary="Create a product", examples=[PRODUCT_EXAMPLE]),
    update=extend_schema(summary="Replace a product", examples=[PRODUCT_EXAMPLE]),
    partial_update=extend_schema(
        summary="Change a product",
        examples=[OpenApiExample("Archive", value={"status": "archived"}, request_only=True)],
    ),
    destroy=extend_schema(
        summary="Delete a product",
        description="Refused with 409 once a variant has stock history or orders: archive it.",
    ),
)
class ProductViewSet(ServiceModelViewSet):
    api_area = "catalog"
    api_tag = "catalog"
    serializer_class = ProductSerializer
    filterset_class = filters.ProductFilter
    ordering = "id"

    def get_queryset(self):
        return Product.objects.annotate(variant_count=Count("variants")).order_by("id")

    def save_through_service(self, instance: Product, changed: set[str]) -> Product:
        return services.product_save(product=instance)

    def delete_through_service(self, instance: Product) -> None:
        services.product_delete(product=instance)


def _stock_sum(expression: Any) -> Coalesce:
    levels = StockLevel.objects.filter(variant=OuterRef("pk")).order_by().values("variant")
    total = levels.annotate(total=Sum(expression)).values("total")
    return Coalesce(Subquery(total, output_field=IntegerField()), Value(0))


@extend_schema_view(
    list=extend_schema(
        summary="List variants",
        description="Filter by sku, barcode, product, is_active, updated_since. Cursor "
        "pagination ordered by SKU; ?page_size= up to PIMSYNC_API_MAX_PAGE_SIZE.",
        examples=[examples.VARIANT],
    ),
    create=extend_schema(summary="Create a variant", examples=[VARIANT_EXAMPLE]),
    update=extend_schema(summary="Replace a variant", examples=[VARIANT_EXAMPLE]),
    partial_update=extend_schema(
        summary="Change a variant",
        description="A price change is pushed to every channel listing the variant.",
        examples=[OpenApiExample("New price", value={"price": "44.00"}, request_only=True)],
    ),
    destroy=extend_schema(
        summary="Delete a variant",
        description="Refused with 409 once it has stock history or orders: set is_active false.",
    ),
)
class VariantViewSet(ServiceModelViewSet):
    api_area = "catalog"
    api_tag = "catalog"
    serializer_class = VariantSerializer
    filterset_class = filters.VariantFilter
    ordering = "sku"

    def get_queryset(self):
        # Totals as correlated subqueries rather than a GROUP BY over the join: a page
        # ordered by SKU then reads its rows from the SKU index and sums only their
        # stock levels, instead of aggregating the whole catalog first.
        return Variant.objects.annotate(
            total_on_hand=_stock_sum(F("on_hand")),
            total_available=_stock_sum(stock_available_expression()),
        ).order_by("sku")

    def save_through_service(self, instance: Variant, changed: set[str]) -> Variant:
        return services.variant_save(variant=instance, changed_fields=changed)

    def delete_through_service(self, instance: Variant) -> None:
        services.variant_delete(variant=instance)


@extend_schema_view(
    list=extend_schema(summary="List locations", examples=[examples.LOCATION]),
    retrieve=extend_schema(summary="Read a location", examples=[examples.LOCATION]),
    create=extend_schema(
        summary="Create a location (staff)",
        examples=[
            OpenApiExample(
                "A warehouse",
                value={"code": "east", "name": "East warehouse", "address": "1 Dock Rd"},
                request_only=True,
            )
        ],
    ),
    update=extend_schema(
        summary="Replace a location (staff)",
        examples=[
            OpenApiExample(
                "Rename",
                value={"code": "main", "name": "Main warehouse", "address": "1 Dock Rd"},
                request_only=True,
            ),
            examples.LOCATION,
        ],
    ),
    partial_update=extend_schema(
        summary="Change a location (staff)",
        examples=[OpenApiExample("Close", value={"is_active": False}, request_only=True)],
    ),
)
class LocationViewSet(ServiceModelViewSet):
    api_area = "locations"
    api_tag = "stock"
    serializer_class = LocationSerializer
    queryset = Location.objects.order_by("id")
    ordering = "id"
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def save_through_service(self, instance: Location, changed: set[str]) -> Location:
        return services.location_save(location=instance)


@extend_schema_view(
    list=extend_schema(
        summary="List stock levels",
        description="Buckets per SKU and location. Filters: sku, location (code), "
        "low_stock=true|false, available_lte.",
        examples=[examples.STOCK_LEVEL],
    ),
    retrieve=extend_schema(summary="Read a stock level", examples=[examples.STOCK_LEVEL]),
)
class StockLevelViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    api_area = "stock"
    api_tag = "stock"
    serializer_class = StockLevelSerializer
    filterset_class = filters.StockLevelFilter
    ordering = "id"
    queryset = StockLevel.objects.with_available().select_related("variant", "location")


@extend_schema_view(
    list=extend_schema(
        summary="List stock movements (the ledger)",
        description="Newest first, cursor pagination. Filters: sku, location, reason, source, "
        "created_after, created_before.",
        examples=[MOVEMENT_RESPONSE_EXAMPLE],
    ),
    retrieve=extend_schema(summary="Read a stock movement", examples=[MOVEMENT_RESPONSE_EXAMPLE]),
)
class StockMovementViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    api_area = "stock"
    api_tag = "stock"
    serializer_class = StockMovementSerializer
    filterset_class = filters.StockMovementFilter
    ordering = "-id"
    queryset = StockMovement.objects.select_related("variant", "location", "created_by")

    @extend_schema(
        summary="Apply a stock movement",
        description="Changes on-hand units of one SKU at one location through the ledger. "
        "The channels listing the SKU are pushed the new quantity.",
        parameters=[IDEMPOTENCY_PARAM],
        request=StockMovementInputSerializer,
        responses={
            201: StockMovementSerializer,
            200: OpenApiResponse(
                StockMovementSerializer,
                description="The key was applied before (its stored response expired)",
            ),
        },
        examples=[MOVEMENT_EXAMPLE, MOVEMENT_RESPONSE_EXAMPLE],
    )
    def create(self, request: Request) -> Response:
        def apply(data: dict, key: str) -> services.MovementResult:
            return services.stock_movement_apply(
                **_at_location(data),
                deltas=_deltas(data["reason"], data["quantity"]),
                reason=data["reason"],
                source="api",
                idempotency_key=key,
                source_ref=data["source_ref"],
                note=data["note"],
                user=request.user,
            )

        return _apply_once(request, StockMovementInputSerializer, apply, _movement_body)


def _valid(serializer_class: type, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _at_location(data: dict) -> dict:
    return {
        "variant": services.variant_get_by_sku(data["sku"]),
        "location": services.location_get_by_code(data["location"]),
    }


def _movement_body(result: services.MovementResult) -> dict:
    return StockMovementSerializer(result.movement).data


def _apply_once(
    request: Request,
    input_class: type,
    apply: Callable[[dict, str], Any],
    body: Callable[[Any], dict],
) -> Response:
    """Validate, then apply once per Idempotency-Key: 201 when this request changed
    stock, 200 when the ledger already held the change."""
    data = _valid(input_class, request)

    def perform(key: str | None) -> Response:
        result = apply(data, ledger_key(request, key or ""))
        return Response(body(result), status=201 if result.created else 200)

    return idempotent(request, perform)


class StockTransferApi(ApiViewSetMixin, APIView):
    api_area = "stock"
    api_tag = "stock"

    @extend_schema(
        summary="Transfer units between locations",
        description="Both legs or neither: two ledger rows in one transaction.",
        parameters=[IDEMPOTENCY_PARAM],
        request=TransferInputSerializer,
        responses={201: TransferOutputSerializer, 200: TransferOutputSerializer},
        examples=[
            OpenApiExample(
                "Move 3 to the store",
                value={
                    "sku": "DEMO-001-M",
                    "from_location": "main",
                    "to_location": "store",
                    "quantity": 3,
                    "note": "Restock shelf",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        def apply(data: dict, key: str) -> services.TransferResult:
            return services.stock_transfer(
                variant=services.variant_get_by_sku(data["sku"]),
                from_location=services.location_get_by_code(data["from_location"]),
                to_location=services.location_get_by_code(data["to_location"]),
                quantity=data["quantity"],
                source="api",
                idempotency_key=key,
                note=data["note"],
                user=request.user,
            )

        def body(result: services.TransferResult) -> dict:
            return TransferOutputSerializer(
                {"outbound": result.outbound, "inbound": result.inbound}
            ).data

        return _apply_once(request, TransferInputSerializer, apply, body)


class CycleCountApi(ApiViewSetMixin, APIView):
    api_area = "stock"
    api_tag = "stock"

    @extend_schema(
        summary="Record a cycle count",
        description="Sets on-hand to the counted quantity; the difference is computed under "
        "the row lock and recorded as a count movement (also when it is 0, as evidence).",
        parameters=[IDEMPOTENCY_PARAM],
        request=CycleCountInputSerializer,
        responses={201: StockMovementSerializer, 200: StockMovementSerializer},
        examples=[
            OpenApiExample(
                "Counted 7",
                value={
                    "sku": "DEMO-001-M",
                    "location": "main",
                    "counted_on_hand": 7,
                    "note": "Aisle 4 count",
                },
                request_only=True,
            ),
            MOVEMENT_RESPONSE_EXAMPLE,
        ],
    )
    def post(self, request: Request) -> Response:
        def apply(data: dict, key: str) -> services.MovementResult:
            return services.stock_count(
                **_at_location(data),
                counted_on_hand=data["counted_on_hand"],
                source="api",
                idempotency_key=key,
                note=data["note"],
                user=request.user,
            )

        return _apply_once(request, CycleCountInputSerializer, apply, _movement_body)


@extend_schema_view(
    list=extend_schema(
        summary="List reservations",
        description="Filters: sku, location, status.",
        examples=[examples.RESERVATION],
    ),
    retrieve=extend_schema(summary="Read a reservation", examples=[examples.RESERVATION]),
)
class ReservationViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    api_area = "stock"
    api_tag = "stock"
    serializer_class = ReservationSerializer
    filterset_class = filters.ReservationFilter
    ordering = "-id"
    queryset = Reservation.objects.select_related("variant", "location")

    @extend_schema(
        summary="Hold units (e.g. a checkout)",
        description="Reserves available units until committed, released or expired.",
        parameters=[IDEMPOTENCY_PARAM],
        request=ReservationInputSerializer,
        responses={201: ReservationSerializer},
        examples=[
            OpenApiExample(
                "Hold 2 for a cart",
                value={
                    "sku": "DEMO-001-M",
                    "location": "main",
                    "quantity": 2,
                    "source_ref": "cart-991",
                },
                request_only=True,
            )
        ],
    )
    def create(self, request: Request) -> Response:
        data = _valid(ReservationInputSerializer, request)

        def perform(key: str | None) -> Response:
            reservation = services.reservation_create(
                **_at_location(data),
                quantity=data["quantity"],
                source="api",
                source_ref=data["source_ref"],
                idempotency_key=ledger_key(request, key or ""),
                expires_at=data.get("expires_at"),
            )
            return Response(ReservationSerializer(reservation).data, status=201)

        return idempotent(request, perform)

    @extend_schema(
        summary="Commit a reservation (paid)",
        description="Reserved units become committed. Repeating it changes nothing; a released "
        "or expired reservation answers 409.",
        request=None,
        responses={200: ReservationSerializer},
        examples=[examples.RESERVATION],
    )
    @action(detail=True, methods=["post"])
    def commit(self, request: Request, pk: str | None = None) -> Response:
        reservation = services.reservation_commit(reservation_id=self.get_object().pk)
        return Response(ReservationSerializer(reservation).data)

    @extend_schema(
        summary="Release a reservation (cancelled)",
        description="Reserved units become available again. Repeating it changes nothing; a "
        "committed reservation answers 409.",
        request=None,
        responses={200: ReservationSerializer},
        examples=[examples.RESERVATION],
    )
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str | None = None) -> Response:
        reservation = services.reservation_release(reservation_id=self.get_object().pk)
        return Response(ReservationSerializer(reservation).data)


def _bulk_rows(serializer_class: type, request: Request, rows_field: str) -> list[dict]:
    """Validated rows, or a 400 naming every failing row."""
    serializer = serializer_class(data=request.data)
    if serializer.is_valid():
        return serializer.validated_data[rows_field]
    errors = serializer.errors
    rows = errors.get(rows_field)
    # DRF reports a nested list's failures by row index (a dict, or a list with {} for
    # valid rows, depending on the version); a list of strings is about the list itself.
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        rows = dict(enumerate(rows))
    if isinstance(rows, dict) and all(str(i).isdigit() for i in rows):
        failing = {int(i): row for i, row in rows.items() if row}
        raise ApiError(
            f"{len(failing)} row(s) invalid, nothing applied.",
            code="invalid_rows",
            details={"rows": row_errors(failing)},
        )
    raise ValidationError(errors)


def _resolve(
    rows: list[dict], field: str, lookup: dict[str, int], label: str, errors: dict
) -> None:
    for i, row in enumerate(rows):
        if row[field] not in lookup:
            errors.setdefault(i, {}).setdefault(field, []).append(f"Unknown {label} {row[field]!r}")


class BulkStockMovementsApi(ApiViewSetMixin, APIView):
    api_area = "stock"
    api_tag = "bulk"
    throttle_classes = [ApiUserThrottle, ApiBulkThrottle]

    @extend_schema(
        summary="Apply up to 10,000 stock movements at once",
        description="Validated all-or-nothing: one bad row (unknown SKU or location, a bucket "
        "that would go negative, not enough available for a sale, a reused row key) answers 400 "
        "listing every failing row, and nothing changes. Otherwise every row becomes a ledger "
        "row with its own idempotency key, in one transaction, followed by one push per "
        "channel.",
        parameters=[IDEMPOTENCY_PARAM],
        request=BulkMovementsInputSerializer,
        responses={201: BulkMovementsOutputSerializer},
        examples=[
            OpenApiExample(
                "Two rows",
                value={
                    "movements": [
                        {
                            "sku": "DEMO-001-M",
                            "location": "main",
                            "reason": "receive",
                            "quantity": 10,
                        },
                        {
                            "sku": "DEMO-002-S",
                            "location": "store",
                            "reason": "sale",
                            "quantity": -1,
                            "idempotency_key": "pos-5512",
                        },
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "Applied",
                value={
                    "applied": 2,
                    "already_applied": 0,
                    "movements": [
                        {"row": 0, "id": 990, "created": True},
                        {"row": 1, "id": 991, "created": True},
                    ],
                },
                response_only=True,
                status_codes=["201"],
            ),
            OpenApiExample(
                "Rejected",
                value={
                    "error": {
                        "code": "invalid_rows",
                        "message": "1 row(s) rejected, nothing applied; row 1: …",
                        "details": {
                            "rows": [
                                {
                                    "row": 1,
                                    "errors": ["DEMO-002-S at City store: needs 1, 0 available"],
                                }
                            ]
                        },
                    }
                },
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        rows = _bulk_rows(BulkMovementsInputSerializer, request, "movements")
        variants = dict(
            Variant.objects.filter(sku__in={r["sku"] for r in rows}).values_list("sku", "pk")
        )
        locations = dict(
            Location.objects.filter(code__in={r["location"] for r in rows}).values_list(
                "code", "pk"
            )
        )
        errors: dict[int, dict] = {}
        _resolve(rows, "sku", variants, "SKU", errors)
        _resolve(rows, "location", locations, "location", errors)
        if errors:
            raise ApiError(
                f"{len(errors)} row(s) invalid, nothing applied.",
                code="invalid_rows",
                details={"rows": row_errors(errors)},
            )

        def perform(key: str | None) -> Response:
            specs = [
                MovementSpec(
                    variant_id=variants[r["sku"]],
                    location_id=locations[r["location"]],
                    deltas=_deltas(r["reason"], r["quantity"]),
                    reason=r["reason"],
                    idempotency_key=ledger_key(request, r.get("idempotency_key") or f"{key}:{i}"),
                    note=r["note"],
                    source_ref=r["source_ref"],
                )
                for i, r in enumerate(rows)
            ]
            results = services.stock_movements_apply_bulk(
                specs=specs, source="api", user=request.user
            )
            created = sum(1 for r in results if r.created)
            body = {
                "applied": created,
                "already_applied": len(results) - created,
                "movements": [
                    {"row": i, "id": r.movement.pk, "created": r.created}
                    for i, r in enumerate(results)
                ],
            }
            return Response(body, status=status.HTTP_201_CREATED)

        return idempotent(request, perform)


def _deltas(reason: str, quantity: int) -> Deltas:
    """What stock_adjust would apply: damage moves units to the damaged bucket."""
    return Deltas(damaged=quantity) if reason == "damage" else Deltas(on_hand=quantity)


class BulkPricesApi(ApiViewSetMixin, APIView):
    api_area = "prices"
    api_tag = "bulk"
    throttle_classes = [ApiUserThrottle, ApiBulkThrottle]

    @extend_schema(
        summary="Set prices of up to 10,000 SKUs at once",
        description="Validated all-or-nothing (unknown SKU, duplicate SKU, bad price → 400 "
        "listing every failing row, nothing changed); applied in one transaction; every "
        "channel then gets one push with the changed prices.",
        parameters=[OPTIONAL_IDEMPOTENCY_PARAM],
        request=BulkPricesInputSerializer,
        responses={200: BulkPricesOutputSerializer},
        examples=[
            OpenApiExample(
                "Two prices",
                value={
                    "prices": [
                        {"sku": "DEMO-001-M", "price": "27.00"},
                        {"sku": "DEMO-001-L", "price": "27.00"},
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "Applied",
                value={"rows": 2, "changed": 2},
                response_only=True,
                status_codes=["200"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        rows = _bulk_rows(BulkPricesInputSerializer, request, "prices")
        variants = dict(
            Variant.objects.filter(sku__in={r["sku"] for r in rows}).values_list("sku", "pk")
        )
        errors: dict[int, dict] = {}
        _resolve(rows, "sku", variants, "SKU", errors)
        first_row: dict[str, int] = {}
        for i, row in enumerate(rows):
            twin = first_row.setdefault(row["sku"], i)
            if twin != i:
                errors.setdefault(i, {}).setdefault("sku", []).append(
                    f"SKU {row['sku']!r} is also in row {twin}"
                )
        if errors:
            raise ApiError(
                f"{len(errors)} row(s) invalid, nothing changed.",
                code="invalid_rows",
                details={"rows": row_errors(errors)},
            )

        def perform(key: str | None) -> Response:
            changed = services.variant_set_prices(
                prices={variants[r["sku"]]: r["price"] for r in rows}
            )
            return Response({"rows": len(rows), "changed": changed})

        return idempotent(request, perform, required=False)
