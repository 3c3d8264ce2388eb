from django.apps import AppConfig


class SynclogConfig(AppConfig):
    name = "synclog"
    verbose_name = "Sync log & ops"
