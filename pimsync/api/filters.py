"""Filters whose values the database can always take."""

from __future__ import annotations

from django import forms
from django_filters import rest_framework as filters
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
