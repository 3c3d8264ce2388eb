""".env.example documents every environment variable the project reads (STYLE.md §7)."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)

# `env.int("NAME", ...)`, `env("NAME")`, `environ.Env().str("NAME", ...)` and plain
# `os.environ.get("NAME")` / `os.environ["NAME"]` and `verbatim_secret("NAME")` in the settings.
_ENV_READ = re.compile(
    r"\b(?:env(?:\.\w+)?\(|Env\(\)\.\w+\(|environ\.get\(|environ\[|verbatim_secret\()"
    r'\s*"([A-Z][A-Z0-9_]*)"'
)
# `${NAME}`, `${NAME:-default}`, `${NAME:?message}` in docker-compose.yml (`$${X}` is
# escaped for the container's shell, not compose's).
_COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)")
# `NAME=value` or the commented default `#NAME=value` at the start of a line.
_DOCUMENTED = re.compile(r"^#?([A-Z][A-Z0-9_]*)=", re.MULTILINE)
# Read by the process launcher rather than by pimsync's settings.
_READ_ELSEWHERE = {"DJANGO_SETTINGS_MODULE", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS"}


def _settings_reads() -> set[str]:
    names: set[str] = set()
    for path in (BASE_DIR / "pimsync" / "settings").glob("*.py"):
        for match in _ENV_READ.finditer(path.read_text()):
            names.add(match.group(1))
    return names


def _compose_vars() -> set[str]:
    return set(_COMPOSE_VAR.findall((BASE_DIR / "docker-compose.yml").read_text()))


def _documented() -> list[str]:
    return _DOCUMENTED.findall((BASE_DIR / ".env.example").read_text())


def test_the_scan_finds_the_settings_reads() -> None:
    reads = _settings_reads()

    assert {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "PIMSYNC_VAR_DIR"} <= reads
    assert {"POSTGRES_PASSWORD", "SECRET_KEY"} <= _compose_vars()


def test_every_variable_read_is_documented() -> None:
    missing = (_settings_reads() | _compose_vars()) - set(_documented())

    assert missing == set(), f"add these to .env.example with default and meaning: {missing}"


def test_every_documented_variable_is_read_somewhere() -> None:
    stale = set(_documented()) - _settings_reads() - _compose_vars() - _READ_ELSEWHERE

    assert stale == set(), f".env.example documents variables nothing reads: {stale}"


def test_each_variable_is_documented_once() -> None:
    names = _documented()

    assert sorted(n for n in set(names) if names.count(n) > 1) == []
