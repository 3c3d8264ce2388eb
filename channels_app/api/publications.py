"""Publishing a product on channels through the API, and what each publication says."""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from inventory.models import Product
from pimsync.api.errors import ApiError
from pimsync.api.filters import IntFilter
from pimsync.api.views import ApiViewSetMixin

from ..models import Channel, ChannelPublication
from ..publishing import PublishError, PublishOutcome, product_publish, publish_problem

MAX_CHANNELS = 20


class PublicationSerializer(serializers.ModelSerializer):
    channel_slug = serializers.CharField(source="channel.slug", read_only=True)
    product_handle = serializers.CharField(source="product.handle", read_only=True)
    published_by = serializers.CharField(
        source="published_by.username", read_only=True, default=None
    )

    class Meta:
        model = ChannelPublication
        fields = (
            "id",
            "channel",
            "channel_slug",
            "product",
            "product_handle",
            "status",
            "product_ref",
            "published_variants",
            "failed_variants",
            "message",
            "attempts",
            "published_by",
            "first_published_at",
            "updated_at",
        )
        read_only_fields = fields


class PublishInputSerializer(serializers.Serializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    channels = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects.all(),
        many=True,
        help_text="The channels to publish it on (ids)",
    )

    def validate_channels(self, channels: list[Channel]) -> list[Channel]:
        if not channels:
            raise serializers.ValidationError("Name at least one channel.")
        if len(channels) > MAX_CHANNELS:
            raise serializers.ValidationError(f"At most {MAX_CHANNELS} channels per request.")
        return list(dict.fromkeys(channels))

    def validate(self, attrs: dict) -> dict:
        problems = {
            channel.pk: problem
            for channel in attrs["channels"]
            if (problem := publish_problem(channel=channel, product=attrs["product"]))
        }
        if problems:  # nothing is sent when any channel cannot take it
            raise ApiError(
                "; ".join(problems.values()),
                code="cannot_publish",
                details={"channels": problems},
            )
        return attrs


class RefusedSkuSerializer(serializers.Serializer):
    sku = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class PublishResultSerializer(serializers.Serializer):
    channel = serializers.IntegerField()
    channel_slug = serializers.CharField()
    status = serializers.ChoiceField(
        choices=[*ChannelPublication.Status.values, "busy"],
        help_text="busy: another request is publishing it there (nothing sent)",
    )
    product_ref = serializers.CharField(help_text="The channel's id of the product")
    message = serializers.CharField()
    listed = serializers.ListField(child=serializers.CharField(), help_text="SKUs listed")
    refused = RefusedSkuSerializer(many=True, help_text="SKUs the channel refused, and why")


def publish_result(outcome: PublishOutcome) -> dict:
    publication = outcome.publication
    return {
        "channel": outcome.channel.pk,
        "channel_slug": outcome.channel.slug,
        "status": publication.status,
        "product_ref": publication.product_ref,
        "message": publication.message,
        "listed": outcome.listed,
        "refused": [{"sku": s, "code": c, "message": m} for s, c, m in outcome.refused],
    }


def busy_result(channel: Channel, error: PublishError) -> dict:
    return {
        "channel": channel.pk,
        "channel_slug": channel.slug,
        "status": "busy",
        "product_ref": "",
        "message": str(error),
        "listed": [],
        "refused": [],
    }


class PublishAnswerSerializer(serializers.Serializer):
    product = serializers.IntegerField()
    results = PublishResultSerializer(many=True)


class PublicationFilter(filters.FilterSet):
    channel = IntFilter(field_name="channel_id")
    product = IntFilter(field_name="product_id")
    status = filters.ChoiceFilter(choices=ChannelPublication.Status.choices)

    class Meta:
        model = ChannelPublication
        fields = ("channel", "product", "status")


PUBLISH_EXAMPLE = OpenApiExample(
    "Publish product 51 on two channels",
    request_only=True,
    value={"product": 51, "channels": [1, 2]},
)
ANSWER_EXAMPLE = OpenApiExample(
    "Published",
    response_only=True,
    value={
        "product": 51,
        "results": [
            {
                "channel": 1,
                "channel_slug": "shopify",
                "status": "published",
                "product_ref": "gid://shopify/Product/1001",
                "message": "published 1 of 1 variant(s) as gid://shopify/Product/1001",
                "listed": ["SOCK-M"],
                "refused": [],
            }
        ],
    },
)


PUBLICATION_EXAMPLE = OpenApiExample(
    "A publication",
    response_only=True,
    value={
        "id": 7,
        "channel": 1,
        "channel_slug": "shopify",
        "product": 51,
        "product_handle": "trail-sock",
        "status": "published",
        "product_ref": "gid://shopify/Product/1001",
        "published_variants": 3,
        "failed_variants": 0,
        "message": "published 3 of 3 variant(s) as gid://shopify/Product/1001",
        "attempts": 1,
        "published_by": "merch",
        "first_published_at": "2026-12-01T09:30:00Z",
        "updated_at": "2026-12-01T09:30:00Z",
    },
)


@extend_schema_view(
    list=extend_schema(
        summary="List publications: products pimsync created on channels",
        description="Filters: channel, product, status.",
        examples=[PUBLICATION_EXAMPLE],
    ),
    retrieve=extend_schema(summary="Read a publication", examples=[PUBLICATION_EXAMPLE]),
)
class PublicationViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    api_area = "listings"
    api_tag = "channels"
    serializer_class = PublicationSerializer
    filterset_class = PublicationFilter
    ordering = "id"
    queryset = ChannelPublication.objects.select_related("channel", "product", "published_by")

    def get_serializer_class(self):
        return PublishInputSerializer if self.action == "create" else PublicationSerializer

    @extend_schema(
        summary="Publish a product on channels",
        description="Creates the product (its active variants, with title, description, "
        "options, barcodes, prices, quantities and, where the platform takes them, images "
        "by URL) on each channel, one after another, and lists the variants with the ids the "
        "channel returned; prices and quantities are then pushed as usual, and later edits "
        "of the product's content are pushed as `attribute` events. Publishing again updates "
        "the product there. Answers 200 with a result per channel (a variant a channel "
        "refused is in `refused`); 400 `cannot_publish` when a channel cannot take the "
        "product (disabled, archived product, no active variant, paused credentials, a "
        "platform pimsync cannot create products on): nothing is sent then. A channel on "
        "which another request is publishing it meanwhile answers status `busy`.",
        request=PublishInputSerializer,
        responses={200: PublishAnswerSerializer},
        examples=[PUBLISH_EXAMPLE, ANSWER_EXAMPLE],
    )
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        given = PublishInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        product: Product = given.validated_data["product"]
        results = []
        for channel in given.validated_data["channels"]:
            try:
                outcome = product_publish(channel=channel, product=product, user=request.user)
            except PublishError as exc:  # checked above: another request is publishing it
                results.append(busy_result(channel, exc))
                continue
            results.append(publish_result(outcome))
        answer = {"product": product.pk, "results": results}
        return Response(PublishAnswerSerializer(answer).data)
