"""The pimsync.E001 system check: settings in Celery's namespace that Celery ignores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, registry, run_checks
from django.test import override_settings

from pimsync.apps import PimsyncConfig
from pimsync.checks import (
    UNKNOWN_CELERY_SETTING_ID,
    celery_setting_names,
    celery_settings_check,
)


def _errors_for(name: str) -> list[Error]:
    return [
        e for e in celery_settings_check() if e.id == UNKNOWN_CELERY_SETTING_ID and name in e.msg
    ]


def test_namespaced_names_are_celery_keys_prefixed_and_upper_cased() -> None:
    names = celery_setting_names("CELERY")

    assert "CELERY_WORKER_PREFETCH_MULTIPLIER" in names
    assert "CELERY_BROKER_TRANSPORT_OPTIONS" in names
    assert "CELERY_BEAT_SCHEDULE" in names
    assert "CELERY_TIMEZONE" in names
    assert "CELERY_ALWAYS_EAGER" not in names  # old-style name, not read with a namespace
    assert all(name.startswith("CELERY_") and name.isupper() for name in names)


def test_project_settings_use_only_known_celery_names() -> None:
    assert celery_settings_check() == []


def test_misspelled_setting_is_an_error_naming_the_close_match() -> None:
    with override_settings(CELERY_BROKER_URLL="redis://127.0.0.1:6379/0"):
        errors = celery_settings_check()

    assert errors == [
        Error(
            "CELERY_BROKER_URLL is not a Celery setting, so Celery silently ignores it.",
            hint="Did you mean CELERY_BROKER_URL?",
            id="pimsync.E001",
        )
    ]


def test_old_style_names_are_reported_with_their_new_name() -> None:
    with override_settings(CELERY_ALWAYS_EAGER=True, CELERYD_CONCURRENCY=4):
        always_eager = _errors_for("CELERY_ALWAYS_EAGER")
        concurrency = _errors_for("CELERYD_CONCURRENCY")

    assert [e.hint for e in always_eager] == ["Did you mean CELERY_TASK_ALWAYS_EAGER?"]
    assert [e.hint for e in concurrency] == ["Did you mean CELERY_WORKER_CONCURRENCY?"]


def test_unknown_name_without_a_close_match_points_at_the_docs() -> None:
    with override_settings(CELERY_QQQ_ZZZ=1):
        errors = _errors_for("CELERY_QQQ_ZZZ")

    assert len(errors) == 1
    assert errors[0].hint.startswith("Celery's settings are listed at https://docs.celeryq.dev/")


def test_known_celery_setting_added_later_passes() -> None:
    with override_settings(CELERY_TASK_DEFAULT_QUEUE="pimsync", CELERY_TASK_ACKS_LATE=True):
        assert celery_settings_check() == []


def test_settings_outside_the_namespace_are_not_checked() -> None:
    with override_settings(PIMSYNC_CELERY_THING=1, DJANGO_CELERY_BEAT_TZ_AWARE=True):
        assert celery_settings_check() == []


def test_check_is_registered_by_the_app_config() -> None:
    assert isinstance(apps.get_app_config("pimsync"), PimsyncConfig)
    assert "celery" in registry.registry.tags_available()

    with override_settings(CELERY_TASK_ACK_LATE=True):
        errors = run_checks(tags=["celery"])

    assert [(e.id, e.hint) for e in errors] == [
        ("pimsync.E001", "Did you mean CELERY_TASK_ACKS_LATE?")
    ]


def test_manage_py_check_fails_on_a_misspelled_celery_setting(tmp_path: Path) -> None:
    # Given a settings module that differs from the test settings by one typo
    (tmp_path / "typo_settings.py").write_text(
        "from pimsync.settings.test import *  # noqa: F403\nCELERY_TASK_ACK_LATE = True\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "typo_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(settings.BASE_DIR)]),
        "PIMSYNC_VAR_DIR": str(tmp_path / "var"),
    }

    # When the stock `manage.py check` runs (a fresh process: the app config wires the check)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then it fails, naming the setting and the fix
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "(pimsync.E001) CELERY_TASK_ACK_LATE is not a Celery setting" in output
    assert "HINT: Did you mean CELERY_TASK_ACKS_LATE?" in output
