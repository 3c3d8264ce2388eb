"""System checks for settings that would otherwise fail silently.

Registered when the app registry is ready (``pimsync.apps.PimsyncConfig.ready``);
run with ``manage.py check`` (tag ``celery``) and before every management command.
The static files check is a deployment check (``manage.py check --deploy``) that the
web process also runs when it starts (pimsync/wsgi.py): gunicorn runs no system checks.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from celery.app.defaults import SETTING_KEYS
from django.apps import AppConfig
from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core.checks import CheckMessage, Error, register

from pimsync.celery import app as celery_app

UNKNOWN_CELERY_SETTING_ID = "pimsync.E001"
STATIC_NOT_COLLECTED_ID = "pimsync.E002"
STATIC_TAG = "static_collected"
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


@register(STATIC_TAG, deploy=True)
def static_files_collected_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """With a manifest storage (the production settings), the collected files' manifest
    must exist: without it every page that links a static file - the admin, Swagger UI
    at /api/docs/ - answers 500 ("Missing staticfiles manifest entry")."""
    if not isinstance(staticfiles_storage, ManifestFilesMixin):
        return []
    if staticfiles_storage.exists(staticfiles_storage.manifest_name):
        return []
    return [
        Error(
            f"The static files are not collected: {settings.STATIC_ROOT} has no "
            f"{staticfiles_storage.manifest_name}, so the admin and /api/docs/ would answer "
            "500 (Missing staticfiles manifest entry).",
            hint="Run `python manage.py collectstatic --noinput` with the same settings and "
            "STATIC_ROOT (again after every upgrade), then start the web server.",
            id=STATIC_NOT_COLLECTED_ID,
        )
    ]
