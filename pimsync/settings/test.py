"""Test settings: the same code paths, faster hashing, local-memory mail."""

import os as _os

from .base import *  # noqa: F403
from .base import DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # In memory, except for end-to-end runs whose worker processes must share it.
    DATABASES["default"]["TEST"] = {"NAME": _os.environ.get("PIMSYNC_TEST_DB_FILE", "")}


# Tests never touch var/broker: an in-memory broker unless a lane provides one.
if "CELERY_BROKER_URL" not in _os.environ:
    CELERY_BROKER_URL = "memory://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
PIMSYNC_RATE_LIMIT_REDIS_URL = _os.environ.get("PIMSYNC_RATE_LIMIT_REDIS_URL", "")
# Tests see each delivery's own enqueue and every channel change at once.
PIMSYNC_INBOUND_ENQUEUE_WINDOW_MS = 0
PIMSYNC_WEBHOOK_CHANNEL_CACHE_SECONDS = 0.0
