"""Input and output shapes of the catalog and stock API."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from rest_framework import serializers

from ..models import (
    Location,
    MovementReason,
    Product,
    Reservation,
    StockLevel,
    StockMovement,
    Variant,
)

MONEY = {"max_digits": 12, "decimal_places": 2, "min_value": Decimal("0")}


class ProductSerializer(serializers.ModelSerializer):
    variant_count = serializers.IntegerField(read_only=True)
    image_urls = serializers.ListField(
        child=serializers.URLField(max_length=2000),
        max_length=Product.MAX_IMAGES,
        required=False,
        help_text="Images by URL, in order (sent where the platform takes URLs)",
    )

    class Meta:
        model = Product
        fields = (
            "id",
            "title",
            "handle",
            "description",
            "vendor",
            "product_type",
            "image_urls",
            "status",
            "variant_count",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_at", "updated_at")


class VariantSerializer(serializers.ModelSerializer):
    options = serializers.DictField(
        child=serializers.CharField(max_length=100),
        required=False,
        help_text='Option name → value, e.g. {"size": "M", "colour": "Navy"}',
    )
    price = serializers.DecimalField(**MONEY)
    compare_at_price = serializers.DecimalField(**MONEY, required=False, allow_null=True)
    map_price = serializers.DecimalField(
        **MONEY,
        required=False,
        allow_null=True,
        help_text="Minimum advertised price: no channel is ever sent a lower price",
    )
    on_hand = serializers.IntegerField(
        read_only=True, source="total_on_hand", help_text="Over all locations"
    )
    available = serializers.IntegerField(
        read_only=True,
        source="total_available",
        help_text="on_hand − committed − reserved − damaged over all locations",
    )

    class Meta:
        model = Variant
        fields = (
            "id",
            "product",
            "sku",
            "title",
            "options",
            "price",
            "compare_at_price",
            "map_price",
            "barcode",
            "is_active",
            "on_hand",
            "available",
            "created_at",
            "updated_at",
        )
        read_only_fields = ("created_at", "updated_at")


class LocationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Location
        fields = ("id", "code", "name", "address", "is_active")


class StockLevelSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="variant.sku", read_only=True)
    location = serializers.CharField(source="location.code", read_only=True)
    available = serializers.IntegerField(source="available_qty", read_only=True)

    class Meta:
        model = StockLevel
        fields = (
            "id",
            "variant",
            "sku",
            "location",
            "on_hand",
            "committed",
            "reserved",
            "damaged",
            "available",
            "updated_at",
        )
        read_only_fields = fields


class StockMovementSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="variant.sku", read_only=True)
    location = serializers.CharField(source="location.code", read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = StockMovement
        fields = (
            "id",
            "variant",
            "sku",
            "location",
            "reason",
            "delta_on_hand",
            "delta_committed",
            "delta_reserved",
            "delta_damaged",
            "on_hand_after",
            "available_after",
            "source",
            "source_ref",
            "idempotency_key",
            "note",
            "created_by",
            "created_at",
        )
        read_only_fields = fields


# Reasons an API client may post as a plain quantity; the sign each needs.
MOVEMENT_SIGNS = {
    MovementReason.RECEIVE: 1,
    MovementReason.RETURN: 1,
    MovementReason.DAMAGE: 1,
    MovementReason.SALE: -1,
    MovementReason.ADJUST: 0,
}
API_MOVEMENT_REASONS = [(r.value, r.label) for r in MOVEMENT_SIGNS]


class StockMovementInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100)
    location = serializers.CharField(max_length=40, help_text="Location code")
    reason = serializers.ChoiceField(
        choices=API_MOVEMENT_REASONS,
        help_text="receive/return: units in (quantity > 0); sale: units out (quantity < 0); "
        "damage: units on hand become unsellable (quantity > 0); adjust: either sign",
    )
    quantity = serializers.IntegerField(
        min_value=-1_000_000, max_value=1_000_000, help_text="Change of on-hand units, signed"
    )
    note = serializers.CharField(max_length=1000, required=False, default="", allow_blank=True)
    source_ref = serializers.CharField(
        max_length=255, required=False, default="", allow_blank=True, help_text="Your reference"
    )

    def validate(self, attrs: dict) -> dict:
        sign, quantity = MOVEMENT_SIGNS[attrs["reason"]], attrs["quantity"]
        if quantity == 0:
            raise serializers.ValidationError({"quantity": "A movement of 0 changes nothing."})
        if sign and quantity * sign < 0:
            need = "above 0" if sign > 0 else "below 0"
            raise serializers.ValidationError(
                {"quantity": f"A {attrs['reason']} needs a quantity {need}."}
            )
        return attrs


class BulkMovementRowSerializer(StockMovementInputSerializer):
    idempotency_key = serializers.CharField(
        max_length=200,
        required=False,
        help_text="This row's own key (kept across requests); default: the request's "
        "Idempotency-Key and the row number",
    )


class BulkInputSerializer(serializers.Serializer):
    """A list of rows under ``rows_field``, refused before row validation when too long."""

    rows_field = ""

    def to_internal_value(self, data: object) -> dict:
        rows = data.get(self.rows_field) if isinstance(data, dict) else None
        limit = settings.PIMSYNC_API_BULK_MAX_ROWS
        if isinstance(rows, list) and len(rows) > limit:
            raise serializers.ValidationError(
                {self.rows_field: [f"At most {limit} rows per request, got {len(rows)}."]}
            )
        return super().to_internal_value(data)


class BulkMovementsInputSerializer(BulkInputSerializer):
    rows_field = "movements"
    movements = BulkMovementRowSerializer(many=True, allow_empty=False)


class BulkMovementResultSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    id = serializers.IntegerField(help_text="Ledger row (stock movement) id")
    created = serializers.BooleanField(help_text="False: this row's key was applied before")


class BulkMovementsOutputSerializer(serializers.Serializer):
    applied = serializers.IntegerField()
    already_applied = serializers.IntegerField()
    movements = BulkMovementResultSerializer(many=True)


class TransferInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100)
    from_location = serializers.CharField(max_length=40)
    to_location = serializers.CharField(max_length=40)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)
    note = serializers.CharField(max_length=1000, required=False, default="", allow_blank=True)


class TransferOutputSerializer(serializers.Serializer):
    outbound = StockMovementSerializer()
    inbound = StockMovementSerializer()


class CycleCountInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100)
    location = serializers.CharField(max_length=40)
    counted_on_hand = serializers.IntegerField(min_value=0, max_value=10_000_000)
    note = serializers.CharField(max_length=1000, required=False, default="", allow_blank=True)


class ReservationSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(source="variant.sku", read_only=True)
    location = serializers.CharField(source="location.code", read_only=True)

    class Meta:
        model = Reservation
        fields = (
            "id",
            "variant",
            "sku",
            "location",
            "quantity",
            "status",
            "source",
            "source_ref",
            "expires_at",
            "created_at",
            "closed_at",
        )
        read_only_fields = fields


class ReservationInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100)
    location = serializers.CharField(max_length=40)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)
    expires_at = serializers.DateTimeField(
        required=False, help_text="Default: now + PIMSYNC_RESERVATION_DEFAULT_MINUTES"
    )
    source_ref = serializers.CharField(max_length=255, required=False, default="", allow_blank=True)


class PriceRowSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=100)
    price = serializers.DecimalField(**MONEY)


class BulkPricesInputSerializer(BulkInputSerializer):
    rows_field = "prices"
    prices = PriceRowSerializer(many=True, allow_empty=False)


class BulkPricesOutputSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    changed = serializers.IntegerField(help_text="Variants whose price actually changed")
