from django.contrib import admin
from django.urls import path

from . import views

admin.site.site_header = "pimsync"
admin.site.site_title = "pimsync admin"
admin.site.index_title = "Catalog, stock and channels"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
