"""Sync log (read-only) and alerts (acknowledge / resolve) for ops."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from pimsync.api.views import ApiViewSetMixin

from .. import services
from ..models import Alert, SyncLogEntry
from .filters import AlertFilter, SyncLogFilter
from .serializers import AlertSerializer, SyncLogEntrySerializer

SYNC_LOG_EXAMPLE = OpenApiExample(
    "A failed price push",
    response_only=True,
    value={
        "id": 5012,
        "created_at": "2026-11-23T10:00:02Z",
        "channel": 2,
        "channel_slug": "woocommerce",
        "sku": "DEMO-001-M",
        "listing_id": 88,
        "event_type": "price",
        "value_sent": "29.00",
        "status": "retrying",
        "error_code": "http_503",
        "message": "Service Unavailable",
        "retry_count": 1,
        "latency_ms": 840,
        "http_status": 503,
        "resolved_at": None,
    },
)


@extend_schema_view(
    list=extend_schema(
        summary="Read the sync log",
        description="One entry per SKU, channel and attempt, newest first (cursor pagination). "
        "Filters: channel, channel_slug, sku, status, event_type, created_after, "
        "created_before, resolved.",
        examples=[SYNC_LOG_EXAMPLE],
    ),
    retrieve=extend_schema(summary="Read a sync log entry", examples=[SYNC_LOG_EXAMPLE]),
)
class SyncLogViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    api_area = "sync"
    api_tag = "sync"
    serializer_class = SyncLogEntrySerializer
    filterset_class = SyncLogFilter
    ordering = "-id"
    queryset = SyncLogEntry.objects.select_related("channel")


ALERT_EXAMPLE = OpenApiExample(
    "An open alert",
    response_only=True,
    value={
        "id": 17,
        "kind": "dead_letter",
        "severity": "warning",
        "channel": 3,
        "channel_slug": "ebay",
        "sku": "DEMO-004-L",
        "message": "eBay refused the price: 25002 invalid offer",
        "first_seen": "2026-11-23T09:58:00Z",
        "last_seen": "2026-11-23T10:00:00Z",
        "count": 3,
        "is_open": True,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "resolved_at": None,
    },
)


@extend_schema_view(
    list=extend_schema(
        summary="List alerts",
        description="Newest first. Filters: kind, severity, channel, sku, is_open, acknowledged.",
        examples=[ALERT_EXAMPLE],
    ),
    retrieve=extend_schema(summary="Read an alert", examples=[ALERT_EXAMPLE]),
)
class AlertViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    api_area = "sync"
    api_tag = "sync"
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    ordering = "-id"
    queryset = Alert.objects.select_related("channel", "acknowledged_by")

    @extend_schema(
        summary="Acknowledge an alert",
        description="Records who saw it and when; it stays open until its condition clears. "
        "Acknowledging twice keeps the first acknowledgement.",
        request=None,
        responses={200: AlertSerializer},
        examples=[ALERT_EXAMPLE],
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        alert = self.get_object()
        services.alert_acknowledge(alert_ids=[alert.pk], user=request.user)
        return Response(AlertSerializer(self.get_queryset().get(pk=alert.pk)).data)

    @extend_schema(
        summary="Resolve an alert",
        description="Closes it now; if its condition persists, the next evaluation opens a new "
        "one. Resolving twice changes nothing.",
        request=None,
        responses={200: AlertSerializer},
        examples=[ALERT_EXAMPLE],
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        alert = self.get_object()
        services.alerts_resolve(Alert.objects.filter(pk=alert.pk), user=request.user)
        return Response(AlertSerializer(self.get_queryset().get(pk=alert.pk)).data)
