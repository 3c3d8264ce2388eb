from rest_framework.routers import BaseRouter

from . import views


def register(router: BaseRouter) -> None:
    router.register("sync-log", views.SyncLogViewSet, basename="sync-log")
    router.register("alerts", views.AlertViewSet, basename="alert")
