"""Input and output shapes of the channel, listing, rule and order API."""

from __future__ import annotations

from django.db.models import Model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inventory.api.serializers import VariantSerializer
from inventory.models import Product

from ..connectors.registry import credentials_problems, platform_config_problems
from ..models import (
    BufferRule,
    Channel,
    ChannelListing,
    ChannelOrder,
    ChannelOrderLine,
    Customer,
    OrderChannelCall,
    PriceRule,
    WebhookSubscription,
)


class SyncStateSerializer(serializers.Serializer):
    label = serializers.ChoiceField(
        choices=["in sync", "pending", "retrying", "failed", "not pushed yet"]
    )
    error = serializers.CharField(allow_blank=True)


class ChannelRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ("id", "slug", "name", "platform")
        read_only_fields = fields


class ListingStateSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChannelListing
        fields = (
            "id",
            "is_enabled",
            "price_override",
            "last_pushed_price",
            "last_pushed_quantity",
            "last_pushed_at",
            "last_confirmed_price",
            "last_confirmed_quantity",
            "last_confirmed_at",
        )
        read_only_fields = fields


class VariantChannelSerializer(serializers.Serializer):
    """What one channel is told about a variant now, and how far its sync got."""

    channel = ChannelRefSerializer()
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="Override, else price through the rule, ≥ MAP"
    )
    atp = serializers.IntegerField(help_text="Available over the channel's locations − buffer")
    listing = ListingStateSerializer(allow_null=True, help_text="null: not listed there")
    sync_state = SyncStateSerializer(allow_null=True)


class VariantWithChannelsSerializer(VariantSerializer):
    channels = serializers.SerializerMethodField()

    class Meta(VariantSerializer.Meta):
        fields = (*VariantSerializer.Meta.fields, "channels")

    @extend_schema_field(VariantChannelSerializer(many=True))
    def get_channels(self, obj: Model) -> list:
        views = self.context.get("variant_channels", {}).get(obj.pk, [])
        return VariantChannelSerializer(views, many=True).data


def _sync_state(obj: Model, states: dict) -> dict | None:
    state = states.get(obj.pk)
    return {"label": state.label, "error": state.error} if state else None


class ChannelSyncInfoSerializer(serializers.Serializer):
    breaker = serializers.CharField()
    auth_failed_at = serializers.DateTimeField(allow_null=True)
    auth_error = serializers.CharField(allow_blank=True)
    last_success_at = serializers.DateTimeField(allow_null=True)
    last_failure_at = serializers.DateTimeField(allow_null=True)
    open_until = serializers.DateTimeField(allow_null=True)


class ChannelLocationOutSerializer(serializers.Serializer):
    location = serializers.CharField(source="location.code")
    priority = serializers.IntegerField()


class WebhookSubscriptionOutSerializer(serializers.Serializer):
    topic = serializers.CharField()
    state = serializers.ChoiceField(choices=WebhookSubscription.State.choices)
    address = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    note = serializers.CharField(allow_blank=True)
    checked_at = serializers.DateTimeField()


class ChannelSerializer(serializers.ModelSerializer):
    credentials = serializers.DictField(
        child=serializers.CharField(max_length=2000),
        write_only=True,
        required=False,
        help_text="Write-only: stored encrypted, never returned. Replaces the stored set.",
    )
    webhook_secret = serializers.CharField(
        write_only=True,
        required=False,
        max_length=500,
        help_text="Write-only: stored encrypted, never returned.",
    )
    credential_keys = serializers.SerializerMethodField(
        help_text="Names of the stored credentials (their values are never returned)"
    )
    has_webhook_secret = serializers.SerializerMethodField()
    locations = ChannelLocationOutSerializer(source="channel_locations", many=True, read_only=True)
    webhooks = WebhookSubscriptionOutSerializer(
        source="webhook_subscriptions",
        many=True,
        read_only=True,
        help_text="The webhook subscriptions pimsync registered on the channel (Shopify, "
        "WooCommerce), as last checked when the channel was saved or tested",
    )
    pending_pushes = serializers.IntegerField(read_only=True, help_text="Dirty markers waiting")
    sync_state = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = (
            "id",
            "name",
            "slug",
            "platform",
            "base_url",
            "currency",
            "is_enabled",
            "platform_config",
            "credentials",
            "webhook_secret",
            "credential_keys",
            "has_webhook_secret",
            "locations",
            "webhooks",
            *Channel.SYNC_SETTINGS,
            *Channel.RECONCILE_SETTINGS,
            *Channel.EDIT_SETTINGS,
            *Channel.IMPORT_SETTINGS,
            "pending_pushes",
            "sync_state",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_at", "updated_at")

    def get_credential_keys(self, obj: Channel) -> list[str]:
        return sorted(obj.credentials or {})

    def get_has_webhook_secret(self, obj: Channel) -> bool:
        return bool(obj.webhook_secret)

    @extend_schema_field(ChannelSyncInfoSerializer(allow_null=True))
    def get_sync_state(self, obj: Channel) -> dict | None:
        state = getattr(obj, "sync_state", None)
        return ChannelSyncInfoSerializer(state).data if state else None

    def validate_platform_config(self, value: object) -> object:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Enter a JSON object.")
        return value

    def validate(self, attrs: dict) -> dict:
        """The platform's own checks of its settings and credentials (new or stored)."""
        instance = self.instance if isinstance(self.instance, Channel) else None
        platform = attrs.get("platform", instance.platform if instance else "")
        config = attrs.get("platform_config", instance.platform_config if instance else {})
        credentials = attrs.get("credentials", instance.credentials if instance else {})
        errors = {}
        if problems := platform_config_problems(platform, config):
            errors["platform_config"] = problems
        if problems := credentials_problems(platform, credentials):
            errors["credentials"] = problems
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ListingSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="variant.sku", read_only=True)
    channel_slug = serializers.CharField(source="channel.slug", read_only=True)
    sync_state = serializers.SerializerMethodField()

    class Meta:
        model = ChannelListing
        fields = (
            "id",
            "channel",
            "channel_slug",
            "variant",
            "sku",
            "external_product_id",
            "external_variant_id",
            "inventory_item_id",
            "offer_id",
            "listing_sku",
            "price_override",
            "is_enabled",
            "sync_content",
            "last_pushed_price",
            "last_pushed_quantity",
            "last_pushed_at",
            "last_confirmed_price",
            "last_confirmed_quantity",
            "last_confirmed_at",
            "sync_state",
            "created_at",
            "updated_at",
        )
        read_only_fields = (
            "last_pushed_price",
            "last_pushed_quantity",
            "last_pushed_at",
            "last_confirmed_price",
            "last_confirmed_quantity",
            "last_confirmed_at",
            "created_at",
            "updated_at",
        )

    @extend_schema_field(SyncStateSerializer(allow_null=True))
    def get_sync_state(self, obj: ChannelListing) -> dict | None:
        return _sync_state(obj, self.context.get("sync_states", {}))


class LinkVariantsInputSerializer(serializers.Serializer):
    channel = serializers.PrimaryKeyRelatedField(queryset=Channel.objects.all())
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.all())
    product_ref = serializers.CharField(
        max_length=100,
        help_text="The channel product whose variants to link (Magento: the configurable's SKU)",
    )


class LinkVariantsOutputSerializer(serializers.Serializer):
    product_ref = serializers.CharField()
    created = serializers.ListField(child=serializers.CharField(), help_text="SKUs newly listed")
    updated = serializers.ListField(
        child=serializers.CharField(), help_text="SKUs whose listing got the channel's ids"
    )
    unchanged = serializers.ListField(child=serializers.CharField())
    missing_on_channel = serializers.ListField(
        child=serializers.CharField(), help_text="The product's SKUs the channel product lacks"
    )
    unknown_to_pimsync = serializers.ListField(
        child=serializers.CharField(),
        help_text="The channel product's SKUs that no variant of this product has",
    )


class BufferRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = BufferRule
        fields = ("id", "channel", "variant", "product", "mode", "value", "is_active", "note")


class PriceRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = PriceRule
        fields = ("id", "channel", "multiplier", "adjustment", "rounding", "is_active")


class SkuListSerializer(serializers.Serializer):
    skus = serializers.ListField(
        child=serializers.CharField(max_length=100),
        min_length=1,
        max_length=10_000,
        help_text="SKUs listed on this channel (1 to 10,000)",
    )


class QueuedSerializer(serializers.Serializer):
    skus = serializers.IntegerField(help_text="SKUs marked for a push")
    channels = serializers.IntegerField()


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChannelOrderLine
        fields = (
            "id",
            "external_line_id",
            "sku",
            "variant",
            "quantity",
            "unit_price",
            "state",
            "allocation",
        )
        read_only_fields = fields


class OrderChannelCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderChannelCall
        fields = (
            "id",
            "kind",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error_code",
            "last_error",
            "payload",
            "created_at",
            "done_at",
        )
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    channel_slug = serializers.CharField(source="channel.slug", read_only=True)
    lines = OrderLineSerializer(many=True, read_only=True)
    channel_calls = OrderChannelCallSerializer(
        many=True,
        read_only=True,
        help_text="Calls pimsync owes the order's channel: report the shipment, cancel an "
        "oversold order (retried until confirmed; dead ones can be retried)",
    )

    class Meta:
        model = ChannelOrder
        fields = (
            "id",
            "channel",
            "channel_slug",
            "external_id",
            "name",
            "status",
            "financial_status",
            "fulfillment_status",
            "currency",
            "total",
            "customer",
            "customer_email",
            "customer_phone",
            "placed_at",
            "channel_updated_at",
            "first_seen_via",
            "seen_via_webhook",
            "has_unmatched_lines",
            "is_oversold",
            "lines",
            "channel_calls",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ShipInputSerializer(serializers.Serializer):
    tracking_number = serializers.CharField(
        max_length=120, required=False, default="", allow_blank=True
    )
    carrier = serializers.CharField(max_length=120, required=False, default="", allow_blank=True)


class ShipOutputSerializer(serializers.Serializer):
    lines_shipped = serializers.IntegerField()
    order = OrderSerializer()


class RetryOnChannelOutputSerializer(serializers.Serializer):
    calls_retried = serializers.IntegerField(
        help_text="Calls sent again (those the channel already confirmed are left alone)"
    )
    order = OrderSerializer()


class CustomerSerializer(serializers.ModelSerializer):
    order_count = serializers.IntegerField(read_only=True)
    total_spend = serializers.DecimalField(
        max_digits=14, decimal_places=2, read_only=True, help_text="Orders not cancelled"
    )

    class Meta:
        model = Customer
        fields = ("id", "email", "phone", "name", "order_count", "total_spend", "created_at")
        read_only_fields = fields
