"""/api/: the v1 endpoints of every app, the OpenAPI schema and Swagger UI."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

import channels_app.api.urls
import inventory.api.urls
import synclog.api.urls

from . import me
from .errors import api_not_found
from .views import ApiSchemaView


class ApiRouter(DefaultRouter):
    include_format_suffixes = False


router = ApiRouter(trailing_slash="/")
inventory.api.urls.register(router)
channels_app.api.urls.register(router)
synclog.api.urls.register(router)

v1 = [
    path("me/", me.MeApi.as_view(), name="me"),
    path("me/token/", me.MyTokenApi.as_view(), name="me-token"),
    *inventory.api.urls.urlpatterns,
    *channels_app.api.urls.urlpatterns,
    path("", include(router.urls)),
]

urlpatterns = [
    path("v1/", include((v1, "api"), namespace="v1")),
    path("schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^.*$", api_not_found),
]
