"""Channel, listing, rule, order and customer endpoints, and variants with what each
channel is told. Views validate input and call channels_app services/selectors."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import (
    Count,
    DecimalField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from inventory.api.examples import VARIANT as VARIANT_EXAMPLE
from inventory.api.views import VariantViewSet
from inventory.models import Variant
from pimsync.api.errors import ApiError
from pimsync.api.views import ApiViewSetMixin, ServiceModelViewSet

from .. import services
from ..models import (
    BufferRule,
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelOrder,
    ChannelOrderLine,
    Customer,
    OrderChannelCall,
    OrderStatus,
    PriceRule,
    SyncMarker,
    WebhookSecretEvent,
)
from ..orders.apply import order_mark_shipped
from ..orders.on_channel import orders_channel_calls_retry
from ..selectors import (
    channel_listings_for_skus,
    listing_sync_states,
    variants_channel_overview,
)
from . import catalog, examples, filters
from .serializers import (
    BufferRuleSerializer,
    ChannelSerializer,
    CustomerSerializer,
    LinkVariantsInputSerializer,
    LinkVariantsOutputSerializer,
    ListingSerializer,
    OrderSerializer,
    PriceRuleSerializer,
    QueuedSerializer,
    RetryOnChannelOutputSerializer,
    ShipInputSerializer,
    ShipOutputSerializer,
    SkuListSerializer,
    VariantWithChannelsSerializer,
)

INCLUDE_PARAM = OpenApiParameter(
    "include",
    OpenApiTypes.STR,
    enum=["channels"],
    required=False,
    description="channels: add each variant's per-channel price, ATP and sync state",
)


def variant_channels(variants: list[Variant]) -> dict[int, list[dict]]:
    """Per variant, per channel: price, ATP, listing and sync state — a constant
    number of queries whatever the number of variants."""
    overview = variants_channel_overview(variants=variants)
    states = listing_sync_states(
        [view.listing for views in overview.values() for view in views if view.listing]
    )
    return {
        variant_id: [
            {
                "channel": view.channel,
                "price": view.price,
                "atp": view.atp,
                "listing": view.listing,
                "sync_state": (
                    {"label": states[view.listing.pk].label, "error": states[view.listing.pk].error}
                    if view.listing
                    else None
                ),
            }
            for view in views
        ]
        for variant_id, views in overview.items()
    }


@extend_schema_view(
    retrieve=extend_schema(
        summary="Read a variant with what each channel is told",
        description="`channels`: per channel the price and ATP pimsync publishes now (computed "
        "fresh), the listing's last pushed / confirmed values and its sync state.",
        examples=[
            OpenApiExample(
                "Variant with channels",
                response_only=True,
                value={
                    **VARIANT_EXAMPLE.value,
                    "channels": [
                        {
                            "channel": {
                                "id": 1,
                                "slug": "shopify",
                                "name": "Shopify (sandbox)",
                                "platform": "shopify",
                            },
                            "price": "29.00",
                            "atp": 28,
                            "listing": {
                                "id": 7,
                                "is_enabled": True,
                                "price_override": None,
                                "last_pushed_price": "29.00",
                                "last_pushed_quantity": 28,
                                "last_pushed_at": "2026-11-23T10:00:01Z",
                                "last_confirmed_price": "29.00",
                                "last_confirmed_quantity": 28,
                                "last_confirmed_at": "2026-11-23T10:00:01Z",
                            },
                            "sync_state": {"label": "in sync", "error": ""},
                        }
                    ],
                },
            )
        ],
    ),
    list=extend_schema(
        summary="List variants",
        description="Filter by sku, barcode, product, is_active, updated_since. Cursor "
        "pagination ordered by SKU; ?page_size= up to PIMSYNC_API_MAX_PAGE_SIZE; "
        "?include=channels adds the per-channel view of every variant on the page.",
        parameters=[INCLUDE_PARAM],
    ),
)
class VariantWithChannelsViewSet(VariantViewSet):
    """The catalog's variant endpoint plus what each channel is told (added here so
    inventory never imports channels_app)."""

    def get_serializer_class(self):
        if self.action == "retrieve" or self._wants_channels():
            return VariantWithChannelsSerializer
        return super().get_serializer_class()

    def _wants_channels(self) -> bool:
        return self.action == "list" and self.request.query_params.get("include") == "channels"

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        context["variant_channels"] = getattr(self, "_variant_channels", {})
        return context

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page is not None and self._wants_channels():
            self._variant_channels = variant_channels(list(page))
        return page

    def get_object(self) -> Variant:
        variant = super().get_object()
        if self.action == "retrieve":
            self._variant_channels = variant_channels([variant])
        return variant


def _pending_pushes() -> Subquery:
    return Subquery(
        SyncMarker.objects.filter(channel=OuterRef("pk"), status=SyncMarker.Status.PENDING)
        .values("channel")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )


CHANNEL_EXAMPLE = OpenApiExample(
    "A Shopify channel",
    request_only=True,
    value={
        "name": "Shopify EU",
        "slug": "shopify-eu",
        "platform": "shopify",
        "base_url": "https://eu-shop.myshopify.com",
        "currency": "EUR",
        "platform_config": {"location_id": "gid://shopify/Location/1", "api_version": "2026-01"},
        "credentials": {"access_token": "shpat_…"},
        "webhook_secret": "…",
        "rate_limit_per_second": "2",
    },
)
MAGENTO_CHANNEL_EXAMPLE = OpenApiExample(
    "A Magento 2 channel (MSI)",
    request_only=True,
    value={
        "name": "Magento EU",
        "slug": "magento-eu",
        "platform": "magento",
        "base_url": "https://shop.example.com",
        "currency": "EUR",
        "platform_config": {
            "store_code": "default",
            "price_store_id": 0,
            "msi": True,
            "source_codes": ["default"],
            "stock_id": 1,
            "async_threshold": 500,
        },
        "credentials": {"access_token": "<integration access token>"},
        "rate_limit_per_second": "4",
    },
)
SKUS_EXAMPLE = OpenApiExample(
    "Two SKUs", value={"skus": ["DEMO-001-M", "DEMO-001-L"]}, request_only=True
)
QUEUED_EXAMPLE = OpenApiExample(
    "Queued", value={"skus": 2, "channels": 1}, response_only=True, status_codes=["202"]
)


def listings_listed_or_refuse(channel: Channel, skus: Iterable[str]) -> QuerySet[ChannelListing]:
    """The channel's listings of these SKUs; a 400 ``not_listed`` naming the SKUs it does
    not list, so a request about SKUs acts on all of them or on none."""
    listings, missing = channel_listings_for_skus(channel=channel, skus=skus)
    if missing:
        raise ApiError(
            f"{len(missing)} SKU(s) are not listed on {channel.slug}; nothing was done.",
            code="not_listed",
            details={"skus": missing[:1000]},
        )
    return listings


@extend_schema_view(
    list=extend_schema(
        summary="List channels",
        description="Filters: slug, platform, is_enabled.",
        examples=[examples.CHANNEL],
    ),
    retrieve=extend_schema(
        summary="Read a channel (credentials are never returned)", examples=[examples.CHANNEL]
    ),
    create=extend_schema(
        summary="Create a channel (staff)",
        description="`platform_config` per platform: docs/channels.md (Magento: store_code, "
        "price_store_id, msi, source_codes, stock_id, async_threshold, sync_batch_size, "
        "read_page_size, requests_per_second, burst, bulk_poll_seconds, "
        "bulk_max_wait_seconds; checked on save).",
        examples=[CHANNEL_EXAMPLE, MAGENTO_CHANNEL_EXAMPLE],
    ),
    update=extend_schema(
        summary="Replace a channel (staff)", examples=[CHANNEL_EXAMPLE, MAGENTO_CHANNEL_EXAMPLE]
    ),
    partial_update=extend_schema(
        summary="Change a channel (staff)",
        description="New credentials lift an auth pause; enabling pushes every listing.",
        examples=[
            OpenApiExample(
                "Rotate credentials",
                value={"credentials": {"access_token": "shpat_new…"}},
                request_only=True,
            )
        ],
    ),
)
class ChannelViewSet(ServiceModelViewSet):
    api_area = "channels"
    api_tag = "channels"
    api_action_areas = {
        "push_now": "sync",
        "force_resync": "sync",
        "catalog_import": "listings",
    }
    serializer_class = ChannelSerializer
    filterset_class = filters.ChannelFilter
    ordering = "id"
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def get_queryset(self):
        return (
            Channel.objects.select_related("sync_state")
            .prefetch_related(
                Prefetch(
                    "channel_locations",
                    queryset=ChannelLocation.objects.select_related("location").order_by(
                        "priority", "location_id"
                    ),
                ),
                "webhook_subscriptions",
            )
            .annotate(pending_pushes=Coalesce(_pending_pushes(), 0))
            .order_by("id")
        )

    def save_through_service(self, instance: Channel, changed: set[str]) -> Channel:
        return services.channel_save(
            channel=instance,
            changed_fields=changed,
            user=self.request.user,
            via=WebhookSecretEvent.Via.API,
        )

    def _queue(self, request: Request, *, forced: bool) -> Response:
        channel = self.get_object()
        serializer = SkuListSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        listings = listings_listed_or_refuse(channel, serializer.validated_data["skus"])
        push = services.listings_force_resync if forced else services.listings_push_now
        queued = push(listings=listings)
        return Response({"skus": queued.skus, "channels": queued.channels}, status=202)

    @extend_schema(
        summary="Push these SKUs' current values now (ops)",
        description="Marks the listings for a push of their current price and ATP; values "
        "the channel already has are skipped. Answers at once; the sync log shows the outcome.",
        request=SkuListSerializer,
        responses={202: QueuedSerializer},
        examples=[SKUS_EXAMPLE, QUEUED_EXAMPLE],
    )
    @action(detail=True, methods=["post"], url_path="push-now")
    def push_now(self, request: Request, pk: str | None = None) -> Response:
        return self._queue(request, forced=False)

    @extend_schema(
        summary="Force a resync of these SKUs (ops)",
        description="Pushes current values even where pimsync believes the channel has them.",
        request=SkuListSerializer,
        responses={202: QueuedSerializer},
        examples=[SKUS_EXAMPLE, QUEUED_EXAMPLE],
    )
    @action(detail=True, methods=["post"], url_path="force-resync")
    def force_resync(self, request: Request, pk: str | None = None) -> Response:
        return self._queue(request, forced=True)

    @extend_schema(
        methods=["POST"],
        summary="Import the channel's catalog (merchandiser)",
        description="Reads every item the channel sells, page by page through its rate "
        "limit, and matches each to a pimsync variant (SKU, barcode, proposed title). "
        "Answers 202 with the import at once; follow it with GET here (the channel's latest "
        "import) or GET /api/v1/catalog-imports/{id}/. 409 `import_busy` while one runs. "
        "Nothing is linked without review unless the channel's auto_link_exact_sku is on.",
        request=None,
        responses={202: catalog.CatalogImportSerializer},
        examples=[catalog.STARTED_EXAMPLE],
    )
    @extend_schema(
        methods=["GET"],
        summary="The channel's latest catalog import",
        responses={200: catalog.CatalogImportSerializer},
        examples=[catalog.IMPORT_EXAMPLE],
    )
    @action(detail=True, methods=["get", "post"], url_path="catalog-import")
    def catalog_import(self, request: Request, pk: str | None = None) -> Response:
        channel = self.get_object()
        if request.method == "POST":
            return catalog.start_import(request, channel)
        return catalog.latest_import(channel)


LISTING_EXAMPLE = OpenApiExample(
    "List a variant on WooCommerce",
    request_only=True,
    value={
        "channel": 2,
        "variant": 5,
        "external_product_id": "101",
        "external_variant_id": "1004",
        "price_override": None,
    },
)


@extend_schema_view(
    list=extend_schema(
        summary="List channel listings with their sync state",
        description="Filters: channel, channel_slug, sku, variant, is_enabled.",
        examples=[examples.LISTING],
    ),
    retrieve=extend_schema(
        summary="Read a listing with its sync state", examples=[examples.LISTING]
    ),
    create=extend_schema(summary="List a variant on a channel", examples=[LISTING_EXAMPLE]),
    update=extend_schema(summary="Replace a listing", examples=[LISTING_EXAMPLE]),
    partial_update=extend_schema(
        summary="Change a listing",
        description="A price override change pushes the price; new ids push both values.",
        examples=[
            OpenApiExample("Override price", value={"price_override": "25.00"}, request_only=True)
        ],
    ),
)
class ListingViewSet(ServiceModelViewSet):
    api_area = "listings"
    api_tag = "channels"
    serializer_class = ListingSerializer
    filterset_class = filters.ListingFilter
    ordering = "id"
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    queryset = ChannelListing.objects.select_related("channel", "variant").order_by("id")

    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        # Filled once the listings to show are known (a page, one object, a saved one);
        # the serializer reads it through its context.
        self._states: dict = {}

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        if page is not None:
            self._states.update(listing_sync_states(page))
        return page

    def get_object(self) -> ChannelListing:
        listing = super().get_object()
        self._states.update(listing_sync_states([listing]))
        return listing

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "sync_states": getattr(self, "_states", {})}

    def perform_create(self, serializer: ListingSerializer) -> None:
        super().perform_create(serializer)
        self._states.update(listing_sync_states([serializer.instance]))

    def perform_update(self, serializer: ListingSerializer) -> None:
        super().perform_update(serializer)
        self._states.update(listing_sync_states([serializer.instance]))

    def save_through_service(self, instance: ChannelListing, changed: set[str]) -> ChannelListing:
        return services.listing_save(listing=instance, changed_fields=changed)

    @extend_schema(
        summary="Link a product's variants to a channel product's variants by SKU",
        description="Reads the channel product's variants (Magento: the simple children of "
        "the configurable `product_ref`), lists each variant of `product` whose SKU matches "
        "with the channel's ids and pushes the new or changed listings. 400 `link_failed` "
        "when the channel cannot list variants or none match (nothing changes).",
        request=LinkVariantsInputSerializer,
        responses={200: LinkVariantsOutputSerializer},
        examples=[
            OpenApiExample(
                "Magento configurable",
                request_only=True,
                value={"channel": 5, "product": 12, "product_ref": "DEMO-001"},
            ),
            OpenApiExample(
                "Four children linked",
                response_only=True,
                value={
                    "product_ref": "DEMO-001",
                    "created": ["DEMO-001-L", "DEMO-001-M", "DEMO-001-S", "DEMO-001-XL"],
                    "updated": [],
                    "unchanged": [],
                    "missing_on_channel": [],
                    "unknown_to_pimsync": [],
                },
            ),
        ],
    )
    @action(detail=False, methods=["post"], url_path="link-variants")
    def link_variants(self, request: Request) -> Response:
        serializer = LinkVariantsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            linked = services.product_variants_link(
                channel=data["channel"], product=data["product"], product_ref=data["product_ref"]
            )
        except services.VariantLinkError as exc:
            raise ApiError(str(exc), code="link_failed") from exc
        return Response(LinkVariantsOutputSerializer(linked).data)


@extend_schema_view(
    list=extend_schema(
        summary="List buffer rules", description="Filter: channel.", examples=[examples.BUFFER_RULE]
    ),
    retrieve=extend_schema(summary="Read a buffer rule", examples=[examples.BUFFER_RULE]),
    create=extend_schema(
        summary="Create a buffer rule",
        description="Safety stock held back from a channel (or all): units or percent, for a "
        "variant, a product or everything. Affected listings get their ATP pushed.",
        examples=[
            OpenApiExample(
                "Hold 2 units on eBay",
                value={"channel": 3, "mode": "units", "value": "2", "note": "eBay safety"},
                request_only=True,
            )
        ],
    ),
    update=extend_schema(summary="Replace a buffer rule", examples=[examples.BUFFER_RULE]),
    partial_update=extend_schema(
        summary="Change a buffer rule",
        examples=[
            OpenApiExample("10 %", value={"mode": "percent", "value": "10"}, request_only=True)
        ],
    ),
    destroy=extend_schema(summary="Delete a buffer rule (its listings get their ATP pushed)"),
)
class BufferRuleViewSet(ServiceModelViewSet):
    api_area = "prices"
    api_tag = "rules"
    serializer_class = BufferRuleSerializer
    filterset_class = filters.RuleFilter
    ordering = "id"
    queryset = BufferRule.objects.order_by("id")

    def save_through_service(self, instance: BufferRule, changed: set[str]) -> BufferRule:
        return services.buffer_rule_save(rule=instance)

    def delete_through_service(self, instance: BufferRule) -> None:
        services.buffer_rule_delete(rule=instance)


@extend_schema_view(
    list=extend_schema(
        summary="List price rules", description="Filter: channel.", examples=[examples.PRICE_RULE]
    ),
    retrieve=extend_schema(summary="Read a price rule", examples=[examples.PRICE_RULE]),
    create=extend_schema(
        summary="Create a channel's price rule",
        description="Channel price = variant price × multiplier + adjustment, rounded up to "
        "the ending, never below MAP. Every listing of the channel gets its price pushed.",
        examples=[
            OpenApiExample(
                "+15 %, .99 endings",
                value={
                    "channel": 4,
                    "multiplier": "1.15",
                    "adjustment": "0.00",
                    "rounding": "0.99",
                },
                request_only=True,
            )
        ],
    ),
    update=extend_schema(summary="Replace a price rule", examples=[examples.PRICE_RULE]),
    partial_update=extend_schema(
        summary="Change a price rule",
        examples=[OpenApiExample("+20 %", value={"multiplier": "1.2"}, request_only=True)],
    ),
    destroy=extend_schema(summary="Delete a price rule (prices revert to the variant price)"),
)
class PriceRuleViewSet(ServiceModelViewSet):
    api_area = "prices"
    api_tag = "rules"
    serializer_class = PriceRuleSerializer
    filterset_class = filters.RuleFilter
    ordering = "id"
    queryset = PriceRule.objects.order_by("id")

    def save_through_service(self, instance: PriceRule, changed: set[str]) -> PriceRule:
        return services.price_rule_save(rule=instance)

    def delete_through_service(self, instance: PriceRule) -> None:
        services.price_rule_delete(rule=instance)


@extend_schema_view(
    list=extend_schema(
        summary="List orders from every channel",
        description="Newest first, cursor pagination. Filters: channel, channel_slug, status, "
        "external_id, customer, is_oversold, has_unmatched_lines, placed_after, placed_before.",
        examples=[examples.ORDER],
    ),
    retrieve=extend_schema(summary="Read an order with its lines", examples=[examples.ORDER]),
)
class OrderViewSet(
    ApiViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    api_area = "orders"
    api_tag = "orders"
    serializer_class = OrderSerializer
    filterset_class = filters.OrderFilter
    ordering = "-id"
    queryset = ChannelOrder.objects.select_related("channel").prefetch_related(
        Prefetch("lines", queryset=ChannelOrderLine.objects.order_by("id")),
        Prefetch("channel_calls", queryset=OrderChannelCall.objects.order_by("id")),
    )

    @extend_schema(
        summary="Mark an order shipped",
        description="Applies the ship movements now and tells the channel (logged in the sync "
        "log). Repeating it changes nothing; a cancelled or refunded order answers 409.",
        request=ShipInputSerializer,
        responses={200: ShipOutputSerializer},
        examples=[
            OpenApiExample(
                "Shipped with tracking",
                value={"tracking_number": "1Z999AA10123456784", "carrier": "UPS"},
                request_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def ship(self, request: Request, pk: str | None = None) -> Response:
        order = self.get_object()
        serializer = ShipInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            shipped = order_mark_shipped(order=order, **serializer.validated_data)
        except ValueError as exc:
            raise ApiError(str(exc), code="invalid_transition", status_code=409) from exc
        fresh = self.get_queryset().get(pk=order.pk)
        return Response({"lines_shipped": shipped, "order": OrderSerializer(fresh).data})

    @extend_schema(
        summary="Retry the order's calls to its channel",
        description="Sends again, with a fresh set of attempts, the calls to the order's "
        "channel that did not get through (a shipment report or a cancellation that failed "
        "for good, or is still retrying). Calls the channel confirmed are left alone, so "
        "repeating it is harmless; an order with nothing to retry answers calls_retried 0.",
        request=None,
        responses={200: RetryOnChannelOutputSerializer},
        examples=[examples.RETRIED_ON_CHANNEL],
    )
    @action(detail=True, methods=["post"], url_path="retry-on-channel")
    def retry_on_channel(self, request: Request, pk: str | None = None) -> Response:
        order = self.get_object()
        retried = orders_channel_calls_retry(orders=ChannelOrder.objects.filter(pk=order.pk))
        fresh = self.get_queryset().get(pk=order.pk)
        return Response({"calls_retried": retried, "order": OrderSerializer(fresh).data})


@extend_schema_view(
    list=extend_schema(
        summary="List customers (matched across channels)",
        description="Filters: email, phone.",
        examples=[examples.CUSTOMER],
    ),
    retrieve=extend_schema(
        summary="Read a customer with order count and total spend", examples=[examples.CUSTOMER]
    ),
)
class CustomerViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    api_area = "orders"
    api_tag = "orders"
    serializer_class = CustomerSerializer
    filterset_class = filters.CustomerFilter
    ordering = "id"

    def get_queryset(self):
        return Customer.objects.annotate(
            order_count=Count("orders"),
            total_spend=Coalesce(
                Sum("orders__total", filter=~Q(orders__status=OrderStatus.CANCELLED)),
                Value(0),
                output_field=DecimalField(max_digits=14, decimal_places=2),
            ),
        ).order_by("id")
