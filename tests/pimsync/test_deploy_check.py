"""`manage.py check --deploy` passes with the production settings and a realistic env."""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings

# Variables that would make the child process read something other than what this
# test sets up (a developer's shell or the pg lane may export them).
_INHERITED_CONFIG = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "DJANGO_DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_PRELOAD",
    "CSRF_TRUSTED_ORIGINS",
)


def _production_env(tmp_path: Path) -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits + string.punctuation
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_CONFIG}
    env.update(
        DJANGO_SETTINGS_MODULE="pimsync.settings.production",
        SECRET_KEY="".join(secrets.choice(alphabet) for _ in range(60)),
        ALLOWED_HOSTS="pimsync.example.com",
        CSRF_TRUSTED_ORIGINS="https://pimsync.example.com",
        PIMSYNC_FERNET_KEYS=Fernet.generate_key().decode(),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        PIMSYNC_VAR_DIR=str(tmp_path / "var"),
    )
    return env


def test_production_settings_pass_the_deploy_checks(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in result.stdout, output
    assert "WARNING" not in output


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = _production_env(tmp_path)
    del env["SECRET_KEY"]

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # The embedded default's generated per-checkout key must never stand in for it.
    assert result.returncode == 1
    assert "ImproperlyConfigured: Set the SECRET_KEY environment variable" in result.stderr
