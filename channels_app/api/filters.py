"""Query filters of the channel, listing, rule and order lists."""

from __future__ import annotations

from django_filters import rest_framework as filters

from pimsync.api.filters import DateTimeFilter, IntFilter

from ..models import ChannelListing, ChannelOrder, Customer, OrderStatus, Platform


class ChannelFilter(filters.FilterSet):
    slug = filters.CharFilter()
    platform = filters.ChoiceFilter(choices=Platform.choices)
    is_enabled = filters.BooleanFilter()


class ListingFilter(filters.FilterSet):
    channel = IntFilter(field_name="channel_id")
    channel_slug = filters.CharFilter(field_name="channel__slug")
    sku = filters.CharFilter(field_name="variant__sku")
    variant = IntFilter(field_name="variant_id")
    is_enabled = filters.BooleanFilter()

    class Meta:
        model = ChannelListing
        fields = ("channel", "channel_slug", "sku", "variant", "is_enabled")


class RuleFilter(filters.FilterSet):
    channel = IntFilter(field_name="channel_id")


class OrderFilter(filters.FilterSet):
    channel = IntFilter(field_name="channel_id")
    channel_slug = filters.CharFilter(field_name="channel__slug")
    status = filters.ChoiceFilter(choices=OrderStatus.choices)
    external_id = filters.CharFilter()
    customer = IntFilter(field_name="customer_id")
    is_oversold = filters.BooleanFilter()
    has_unmatched_lines = filters.BooleanFilter()
    placed_after = DateTimeFilter(field_name="placed_at", lookup_expr="gte")
    placed_before = DateTimeFilter(field_name="placed_at", lookup_expr="lt")

    class Meta:
        model = ChannelOrder
        fields = (
            "channel",
            "channel_slug",
            "status",
            "external_id",
            "customer",
            "is_oversold",
            "has_unmatched_lines",
            "placed_after",
            "placed_before",
        )


class CustomerFilter(filters.FilterSet):
    email = filters.CharFilter(lookup_expr="iexact")
    phone = filters.CharFilter()

    class Meta:
        model = Customer
        fields = ("email", "phone")
