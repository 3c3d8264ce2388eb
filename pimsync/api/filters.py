"""Filters whose values the database can always take."""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

BIGINT_MAX = 2**63 - 1


class _BoundedIntegerField(forms.IntegerField):
    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("min_value", -BIGINT_MAX)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.INT64)
class IntFilter(filters.NumberFilter):
    """A whole number in the 64-bit range (a larger one is a 400, not a database error)."""

    field_class = _BoundedIntegerField


class _UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 instant, handed to the database in UTC.

    PostgreSQL refuses offsets beyond ±15:59 ("time zone displacement out of
    range"), and an instant near year 1 or 9999 may not exist in UTC at all:
    both are a 400 here instead of a database error.
    """

    def clean(self, value: object) -> datetime | None:
        moment = super().clean(value)
        if moment is None:
            return None
        try:
            return moment.astimezone(UTC) if moment.tzinfo else moment
        except OverflowError:
            raise forms.ValidationError("This instant is out of range.", code="invalid") from None


@extend_schema_field(OpenApiTypes.DATETIME)
class DateTimeFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 date-time filter whose values the database can always take."""

    field_class = _UtcIsoDateTimeField
