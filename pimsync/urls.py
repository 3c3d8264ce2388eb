from django.contrib import admin
from django.urls import include, path

from channels_app.orders import webhooks

from . import views

admin.site.site_header = "pimsync"
admin.site.site_title = "pimsync admin"
admin.site.index_title = "Catalog, stock and channels"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("webhooks/<slug:slug>/", webhooks.webhook_receive, name="webhook-receive"),
    # ops dashboard
    # REST API
    path("api/", include("pimsync.api.urls")),
]
