from __future__ import annotations

from rest_framework import serializers

from ..models import Alert, SyncLogEntry


class SyncLogEntrySerializer(serializers.ModelSerializer):
    channel_slug = serializers.CharField(source="channel.slug", read_only=True)

    class Meta:
        model = SyncLogEntry
        fields = (
            "id",
            "created_at",
            "channel",
            "channel_slug",
            "sku",
            "listing_id",
            "event_type",
            "value_sent",
            "status",
            "error_code",
            "message",
            "retry_count",
            "latency_ms",
            "http_status",
            "resolved_at",
        )
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    channel_slug = serializers.CharField(source="channel.slug", read_only=True, default=None)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", read_only=True, default=None
    )
    is_open = serializers.BooleanField(read_only=True)

    class Meta:
        model = Alert
        fields = (
            "id",
            "kind",
            "severity",
            "channel",
            "channel_slug",
            "sku",
            "message",
            "first_seen",
            "last_seen",
            "count",
            "is_open",
            "acknowledged_by",
            "acknowledged_at",
            "resolved_at",
        )
        read_only_fields = fields
