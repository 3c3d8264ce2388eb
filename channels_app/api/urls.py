from django.urls import path
from rest_framework.routers import BaseRouter

from . import catalog, publications, reconciliation, views


def register(router: BaseRouter) -> None:
    # Variants are served with what each channel is told, like the admin's variant page.
    router.registry[:] = [entry for entry in router.registry if entry[0] != "variants"]
    router.register("variants", views.VariantWithChannelsViewSet, basename="variant")
    router.register("channels", views.ChannelViewSet, basename="channel")
    router.register("listings", views.ListingViewSet, basename="listing")
    router.register("publications", publications.PublicationViewSet, basename="publication")
    router.register("buffer-rules", views.BufferRuleViewSet, basename="buffer-rule")
    router.register("price-rules", views.PriceRuleViewSet, basename="price-rule")
    router.register("orders", views.OrderViewSet, basename="order")
    router.register("customers", views.CustomerViewSet, basename="customer")
    router.register(
        "reconciliation-runs",
        reconciliation.ReconciliationRunViewSet,
        basename="reconciliation-run",
    )
    router.register("catalog-imports", catalog.CatalogImportViewSet, basename="catalog-import")


urlpatterns = [
    path("bulk/listings/", catalog.BulkListingsApi.as_view(), name="bulk-listings"),
]
