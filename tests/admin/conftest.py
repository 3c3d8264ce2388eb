import pytest
from django.apps import apps

from pimsync.demo import demo_seed

DEMO_APPS = ("inventory", "channels_app", "synclog")


def _wipe_demo() -> None:
    from django.contrib.auth import get_user_model

    # Children before parents; StockMovement is append-only per row, not per table.
    for label in ("synclog", "channels_app", "inventory"):
        for model in reversed(list(apps.get_app_config(label).get_models())):
            model._base_manager.all().delete()
    get_user_model().objects.filter(username="admin").delete()
    # The demo's beat schedules (one reconcile task per channel) go with its channels.
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(task__startswith="channels_app.").delete()


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The `make run` demo, seeded once per module and removed afterwards."""
    with django_db_blocker.unblock():
        info = demo_seed()
    yield info
    with django_db_blocker.unblock():
        _wipe_demo()
