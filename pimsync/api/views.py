"""Building blocks shared by every app's API views."""

from __future__ import annotations

from django.db.models import Model
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers, viewsets
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from .permissions import RolePermission


class ApiViewSetMixin:
    """Role check and the OpenAPI tag of an API area."""

    permission_classes = [RolePermission]
    api_area = ""
    api_tag = ""


class ServiceModelViewSet(ApiViewSetMixin, viewsets.ModelViewSet):
    """CRUD whose writes go through a service: subclasses implement ``save_through_service``
    (and ``delete_through_service`` when deleting is allowed)."""

    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def save_through_service(self, instance: Model, changed: set[str]) -> Model:
        raise NotImplementedError

    def delete_through_service(self, instance: Model) -> None:
        raise NotImplementedError

    def perform_create(self, serializer: serializers.ModelSerializer) -> None:
        instance = serializer.Meta.model(**serializer.validated_data)
        saved = self.save_through_service(instance, set(serializer.validated_data))
        serializer.instance = self._fresh(saved)

    def perform_update(self, serializer: serializers.ModelSerializer) -> None:
        instance = serializer.instance
        changed = {k for k, v in serializer.validated_data.items() if getattr(instance, k) != v}
        for key, value in serializer.validated_data.items():
            setattr(instance, key, value)
        saved = self.save_through_service(instance, changed)
        serializer.instance = self._fresh(saved)

    def perform_destroy(self, instance: Model) -> None:
        self.delete_through_service(instance)

    def _fresh(self, instance: Model) -> Model:
        """The saved object as the list/detail queryset shows it (annotations included)."""
        return self.get_queryset().get(pk=instance.pk)


class ApiSchemaView(SpectacularAPIView):
    """The OpenAPI document (YAML, or JSON with ?format=json); its errors are JSON
    like every other API error, not YAML."""

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response
