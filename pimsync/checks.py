"""System checks for settings that would otherwise fail silently.

Registered when the app registry is ready (``pimsync.apps.PimsyncConfig.ready``);
run with ``manage.py check`` (tag ``celery``) and before every management command.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from celery.app.defaults import SETTING_KEYS
from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from pimsync.celery import app as celery_app

UNKNOWN_CELERY_SETTING_ID = "pimsync.E001"
CELERY_DOCS = "https://docs.celeryq.dev/en/stable/userguide/configuration.html"


def celery_setting_names(namespace: str) -> frozenset[str]:
    """Every Django setting name Celery reads when configured with ``namespace``.

    ``config_from_object("django.conf:settings", namespace="CELERY")`` makes Celery
    look its lowercase key ``worker_prefetch_multiplier`` up as
    ``CELERY_WORKER_PREFETCH_MULTIPLIER``; in that mode it never reads old-style
    names such as ``CELERY_ALWAYS_EAGER`` or ``CELERYD_CONCURRENCY``.
    """
    return frozenset(f"{namespace}_{key}".upper() for key in SETTING_KEYS)


def _unknown_celery_setting(name: str, known: frozenset[str]) -> Error:
    matches = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    hint = (
        f"Did you mean {matches[0]}?"
        if matches
        else f"Celery's settings are listed at {CELERY_DOCS} (as CELERY_ + the name upper-cased)."
    )
    return Error(
        f"{name} is not a Celery setting, so Celery silently ignores it.",
        hint=hint,
        id=UNKNOWN_CELERY_SETTING_ID,
    )


@register("celery")
def celery_settings_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report each setting in Celery's namespace that Celery does not know.

    Any name starting with the namespace counts (``CELERY_…`` but also the old
    ``CELERYD_…``/``CELERYBEAT_…`` forms), since a typo there changes nothing at
    run time and would otherwise go unnoticed.
    """
    namespace = str(celery_app.namespace).upper()
    known = celery_setting_names(namespace)
    return [
        _unknown_celery_setting(name, known)
        for name in sorted(dir(settings))
        if name.startswith(namespace) and name.isupper() and name not in known
    ]
