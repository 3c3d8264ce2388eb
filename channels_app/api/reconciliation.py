"""Reconciliation runs for ops: read them and their drift findings, start one."""

from __future__ import annotations

from django.db import transaction
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from pimsync.api.errors import ApiError
from pimsync.api.filters import DateTimeFilter, IntFilter
from pimsync.api.views import ApiViewSetMixin
from synclog.models import DriftFinding, ReconciliationRun

from .. import services
from ..models import Channel
from .views import listings_listed_or_refuse


class ReconciliationRunSerializer(serializers.ModelSerializer):
    channel_slug = serializers.CharField(source="channel.slug", read_only=True)
    requested_by = serializers.CharField(
        source="requested_by.username", read_only=True, default=None
    )
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ReconciliationRun
        fields = (
            "id",
            "channel",
            "channel_slug",
            "trigger",
            "status",
            "started_at",
            "finished_at",
            "duration_seconds",
            "total",
            "checked",
            "skipped",
            "drifted",
            "resynced",
            "fixed",
            "errors",
            "error_message",
            "requested_by",
        )
        read_only_fields = fields


class DriftFindingSerializer(serializers.ModelSerializer):
    class Meta:
        model = DriftFinding
        fields = (
            "id",
            "run",
            "channel",
            "listing_id",
            "sku",
            "field",
            "expected",
            "found",
            "difference",
            "beyond_threshold",
            "resync_requested",
            "read_back_value",
            "read_back_at",
            "resolved_at",
        )
        read_only_fields = fields


class ReconcileStartSerializer(serializers.Serializer):
    channel = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects.filter(is_enabled=True), help_text="An enabled channel"
    )
    skus = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        min_length=1,
        max_length=10_000,
        help_text="Only these SKUs' listings (default: every listing of the channel)",
    )


class ReconciliationRunFilter(filters.FilterSet):
    channel = IntFilter(field_name="channel_id")
    status = filters.ChoiceFilter(choices=ReconciliationRun.Status.choices)
    trigger = filters.ChoiceFilter(choices=ReconciliationRun.Trigger.choices)
    started_after = DateTimeFilter(field_name="started_at", lookup_expr="gte")

    class Meta:
        model = ReconciliationRun
        fields = ("channel", "status", "trigger", "started_after")


RUN_EXAMPLE = OpenApiExample(
    "A finished run",
    response_only=True,
    value={
        "id": 12,
        "channel": 2,
        "channel_slug": "woocommerce",
        "trigger": "api",
        "status": "finished",
        "started_at": "2026-11-23T10:00:00Z",
        "finished_at": "2026-11-23T10:00:21Z",
        "duration_seconds": 21.0,
        "total": 200,
        "checked": 200,
        "skipped": 0,
        "drifted": 3,
        "resynced": 3,
        "fixed": 3,
        "errors": 0,
        "error_message": "",
        "requested_by": "ops1",
    },
)
START_EXAMPLE = OpenApiExample(
    "Reconcile two SKUs on channel 2", request_only=True, value={"channel": 2, "skus": ["A-1"]}
)
FINDING_EXAMPLE = OpenApiExample(
    "A quantity edited in the channel's console",
    response_only=True,
    value={
        "id": 77,
        "run": 12,
        "channel": 2,
        "listing_id": 88,
        "sku": "DEMO-001-M",
        "field": "quantity",
        "expected": "5",
        "found": "9",
        "difference": "4",
        "beyond_threshold": True,
        "resync_requested": True,
        "read_back_value": "5",
        "read_back_at": "2026-11-23T10:00:25Z",
        "resolved_at": "2026-11-23T10:00:25Z",
    },
)


@extend_schema_view(
    list=extend_schema(
        summary="List reconciliation runs (ops)",
        description="Newest first. Filters: channel, status, trigger, started_after.",
        examples=[RUN_EXAMPLE],
    ),
    retrieve=extend_schema(
        summary="Read a reconciliation run and its progress", examples=[RUN_EXAMPLE]
    ),
)
class ReconciliationRunViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    api_area = "sync"
    api_tag = "reconciliation"
    serializer_class = ReconciliationRunSerializer
    filterset_class = ReconciliationRunFilter
    ordering = "-id"
    queryset = ReconciliationRun.objects.select_related("channel", "requested_by")

    def get_serializer_class(self):
        if self.action == "create":
            return ReconcileStartSerializer
        if self.action == "findings":
            return DriftFindingSerializer
        return ReconciliationRunSerializer

    @extend_schema(
        summary="Start a reconciliation of a channel (ops)",
        description="Reads the channel's live prices and quantities in bulk, records drift, "
        "resyncs what is beyond the channel's threshold and reads it back. Answers 202 with the "
        "run at once; poll it for progress. 409 while the channel is already reconciling.",
        request=ReconcileStartSerializer,
        responses={202: ReconciliationRunSerializer},
        examples=[START_EXAMPLE, RUN_EXAMPLE],
    )
    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        start = ReconcileStartSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        channel: Channel = start.validated_data["channel"]
        skus = start.validated_data.get("skus")
        listing_ids = (
            sorted(listings_listed_or_refuse(channel, skus).values_list("pk", flat=True))
            if skus
            else None
        )
        with transaction.atomic():
            requested = services.reconcile_request(
                channels=[channel],
                trigger=ReconciliationRun.Trigger.API,
                listing_ids_by_channel={channel.pk: listing_ids} if listing_ids else None,
                requested_by_id=request.user.pk,
            )
        if not requested.started:
            raise ApiError(
                "; ".join(requested.busy) or "The channel is already reconciling.",
                code="reconcile_busy",
                status_code=409,
            )
        run = self.get_queryset().get(pk=requested.started[0][1])
        return Response(ReconciliationRunSerializer(run).data, status=202)

    @extend_schema(
        summary="List a run's drift findings",
        description="What the channel showed where it differed from what pimsync publishes.",
        responses={200: DriftFindingSerializer(many=True)},
        examples=[FINDING_EXAMPLE],
    )
    @action(detail=True, methods=["get"])
    def findings(self, request: Request, pk: str | None = None) -> Response:
        run = self.get_object()
        page = self.paginate_queryset(DriftFinding.objects.filter(run=run))
        return self.get_paginated_response(DriftFindingSerializer(page, many=True).data)
