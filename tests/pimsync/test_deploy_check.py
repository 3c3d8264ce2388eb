"""The production path outside Docker: `manage.py check --deploy` with the production
settings, static files collected (or the clear refusal when they are not), and gunicorn
started directly serving the admin and /api/docs/ with their static files."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
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
    "STATIC_ROOT",
)
NOT_COLLECTED = "The static files are not collected"


def _production_env(root: Path) -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits + string.punctuation
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_CONFIG}
    env.update(
        DJANGO_SETTINGS_MODULE="pimsync.settings.production",
        SECRET_KEY="".join(secrets.choice(alphabet) for _ in range(60)),
        ALLOWED_HOSTS="pimsync.example.com,127.0.0.1",
        CSRF_TRUSTED_ORIGINS="https://pimsync.example.com",
        PIMSYNC_FERNET_KEYS=Fernet.generate_key().decode(),
        DATABASE_URL=f"sqlite:///{root / 'db.sqlite3'}",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        PIMSYNC_VAR_DIR=str(root / "var"),
        STATIC_ROOT=str(root / "static"),
    )
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A production installation as README's non-Docker steps make it: migrated,
    static files collected, an API token for the staff user."""
    root = tmp_path_factory.mktemp("deployed")
    env = _production_env(root)
    for args in (("migrate", "--noinput"), ("collectstatic", "--noinput")):
        done = _manage(env, *args)
        assert done.returncode == 0, done.stdout + done.stderr
    token = _manage(env, "api_token", "ops-admin", "--create", "--staff")
    assert token.returncode == 0, token.stderr
    return {**env, "TEST_TOKEN": token.stdout.strip()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _gunicorn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - gunicorn as README starts it
        [
            sys.executable,
            "-m",
            "gunicorn",
            "pimsync.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture
def gunicorn(deployed: dict[str, str], tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    proc = _gunicorn(deployed, port, tmp_path / "gunicorn.log")
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.3)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


# Behind the TLS-terminating proxy the production settings expect.
PROXIED = {"X-Forwarded-Proto": "https"}


def _static_links(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_production_settings_pass_the_deploy_checks(deployed: dict[str, str]) -> None:
    result = _manage(deployed, "check", "--deploy", "--fail-level", "WARNING")

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues (0 silenced)." in result.stdout, output
    assert "WARNING" not in output


def test_the_deploy_checks_say_to_collect_static_files_when_they_are_not(tmp_path: Path) -> None:
    result = _manage(_production_env(tmp_path), "check", "--deploy")

    assert result.returncode == 1
    assert f"(pimsync.E002) {NOT_COLLECTED}: {tmp_path / 'static'} has no staticfiles.json" in (
        result.stderr
    )
    assert "HINT: Run `python manage.py collectstatic --noinput`" in result.stderr


def test_gunicorn_serves_the_admin_and_the_api_docs_with_their_static_files(
    deployed: dict[str, str], gunicorn: str
) -> None:
    login = requests.get(f"{gunicorn}/admin/login/", headers=PROXIED, timeout=10)
    auth = {**PROXIED, "Authorization": f"Token {deployed['TEST_TOKEN']}"}
    docs = requests.get(f"{gunicorn}/api/docs/", headers=auth, timeout=10)

    assert (login.status_code, docs.status_code) == (200, 200)
    links = _static_links(login.text) + _static_links(docs.text)
    assert any(link.endswith(".css") for link in links)
    assert any("swagger-ui" in link for link in links)
    for link in links:  # hashed names from the manifest, served by WhiteNoise
        assert requests.get(f"{gunicorn}{link}", headers=PROXIED, timeout=10).status_code == 200


def test_gunicorn_refuses_to_start_until_the_static_files_are_collected(tmp_path: Path) -> None:
    env = _production_env(tmp_path)
    log = tmp_path / "gunicorn.log"
    proc = _gunicorn(env, _free_port(), log)
    try:
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    assert code != 0
    text = log.read_text()
    assert f"ImproperlyConfigured: {NOT_COLLECTED}" in text
    assert "Run `python manage.py collectstatic --noinput`" in text


@pytest.mark.parametrize("key", ["$" + "k" * 59, "abc$HOME" + "k" * 52])
def test_a_secret_key_with_a_dollar_sign_is_taken_as_it_is(
    deployed: dict[str, str], key: str
) -> None:
    # Django's get_random_secret_key() draws `$`; django-environ would read a leading
    # `$` as the name of another variable and stop the process with a KeyError.
    env = {**deployed, "SECRET_KEY": key}
    shown = _manage(
        env, "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"
    )
    checked = _manage(env, "check", "--deploy")

    assert shown.stdout.strip().splitlines()[-1] == key, shown.stderr
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = _production_env(tmp_path)
    del env["SECRET_KEY"]

    result = _manage(env, "check", "--deploy")

    # The embedded default's generated per-checkout key must never stand in for it.
    assert result.returncode == 1
    assert "ImproperlyConfigured: Set the SECRET_KEY environment variable" in result.stderr
