"""Cursor pagination everywhere: stable under inserts, constant cost per page."""

from __future__ import annotations

from django.conf import settings
from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    page_size_query_param = "page_size"
    ordering = "-id"

    @property
    def max_page_size(self) -> int:
        return settings.PIMSYNC_API_MAX_PAGE_SIZE

    def get_ordering(self, request, queryset, view):
        """The view's own ``ordering`` (a unique field, e.g. "sku" or "-id")."""
        ordering = getattr(view, "ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)
