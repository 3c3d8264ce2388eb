from django.urls import path
from rest_framework.routers import BaseRouter

from . import views


def register(router: BaseRouter) -> None:
    router.register("products", views.ProductViewSet, basename="product")
    router.register("variants", views.VariantViewSet, basename="variant")
    router.register("locations", views.LocationViewSet, basename="location")
    router.register("stock-levels", views.StockLevelViewSet, basename="stock-level")
    router.register("stock-movements", views.StockMovementViewSet, basename="stock-movement")
    router.register("reservations", views.ReservationViewSet, basename="reservation")


urlpatterns = [
    path("transfers/", views.StockTransferApi.as_view(), name="transfer"),
    path("cycle-counts/", views.CycleCountApi.as_view(), name="cycle-count"),
    path("bulk/stock-movements/", views.BulkStockMovementsApi.as_view(), name="bulk-movements"),
    path("bulk/prices/", views.BulkPricesApi.as_view(), name="bulk-prices"),
]
