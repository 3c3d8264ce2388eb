import os

from celery import Celery

from .broker import register as register_filesystem_broker

register_filesystem_broker()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pimsync.settings.base")

app = Celery("pimsync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
