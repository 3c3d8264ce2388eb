import os
from typing import Any

from celery import Celery
from celery.app.amqp import AMQP
from kombu import Connection

from .broker import register as register_filesystem_broker

register_filesystem_broker()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pimsync.settings.base")

# Seconds between attempts to reach the broker again, from the first to the most.
# kombu's defaults (2 s, +2 s, up to 30 s) leave a worker waiting up to half a minute
# after Redis is back; pushes made during an outage should go within seconds.
RECONNECT_START, RECONNECT_STEP, RECONNECT_MAX = 0.5, 0.5, 2.0


class QuickReconnectConnection(Connection):
    """A broker connection that retries every couple of seconds at most."""

    # kombu's parameter order: callers pass some positionally (the publisher's
    # retry passes all three intervals), and those choices are kept.
    _POSITIONAL = ("errback", "max_retries", "interval_start", "interval_step", "interval_max")
    _QUICK = {
        "interval_start": RECONNECT_START,
        "interval_step": RECONNECT_STEP,
        "interval_max": RECONNECT_MAX,
    }

    def _ensure_connection(self, *args: Any, **kwargs: Any) -> Any:
        given = set(self._POSITIONAL[: len(args)]) | set(kwargs)
        kwargs.update({name: value for name, value in self._QUICK.items() if name not in given})
        return super()._ensure_connection(*args, **kwargs)


class QuickReconnectAMQP(AMQP):
    Connection = QuickReconnectConnection


app = Celery("pimsync", amqp=QuickReconnectAMQP)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
