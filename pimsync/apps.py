from django.apps import AppConfig


class PimsyncConfig(AppConfig):
    name = "pimsync"
    verbose_name = "pimsync"

    def ready(self) -> None:
        # Importing the module registers its system checks with Django.
        import pimsync.checks  # noqa: F401
