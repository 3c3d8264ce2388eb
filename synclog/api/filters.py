from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from pimsync.api.filters import DateTimeFilter, IntFilter

from ..models import Alert, EventType, SyncLogEntry, SyncStatus


class SyncLogFilter(filters.FilterSet):
    channel = IntFilter(field_name="channel_id")
    channel_slug = filters.CharFilter(field_name="channel__slug")
    sku = filters.CharFilter()
    status = filters.ChoiceFilter(choices=SyncStatus.choices)
    event_type = filters.ChoiceFilter(choices=EventType.choices)
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")
    resolved = filters.BooleanFilter(field_name="resolved_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = SyncLogEntry
        fields = (
            "channel",
            "channel_slug",
            "sku",
            "status",
            "event_type",
            "created_after",
            "created_before",
            "resolved",
        )


class AlertFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=Alert.Kind.choices)
    severity = filters.ChoiceFilter(choices=Alert.Severity.choices)
    channel = IntFilter(field_name="channel_id")
    sku = filters.CharFilter()
    is_open = filters.BooleanFilter(method="filter_open")
    acknowledged = filters.BooleanFilter(
        field_name="acknowledged_at", lookup_expr="isnull", exclude=True
    )

    class Meta:
        model = Alert
        fields = ("kind", "severity", "channel", "sku", "is_open", "acknowledged")

    def filter_open(self, qs: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return qs
        return qs.filter(resolved_at__isnull=value)
