"""A real headless browser: Debian's chromium driven by Playwright (never a browser
downloaded by Playwright). `scripts/ensure-chromium.sh` installs it; `make test`
runs that first. A missing browser fails the test, it is never skipped."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = os.environ.get("PIMSYNC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_a_shareable_database() -> None:
    """An in-memory SQLite database is one connection shared by the live server's
    request threads and the test: concurrent queries on it can hang. `make test`
    runs these tests with a file database (PIMSYNC_TEST_DB_FILE); PostgreSQL is fine."""
    from django.db import connection

    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.fail(
            "browser tests need a file or PostgreSQL test database: run them as `make test` "
            "does (PIMSYNC_TEST_DB_FILE=var/e2e/test.sqlite3 pytest -m e2e) or on PostgreSQL"
        )


@pytest.fixture
def browser_page(monkeypatch, tmp_path, live_server) -> Iterator[object]:
    _require_a_shareable_database()
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.fail(
            f"{CHROMIUM} is missing: run `bash scripts/ensure-chromium.sh` (make test does)"
        )
    # Playwright's sync API runs an event loop in this thread; the test's own ORM
    # calls are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user data dir per test
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1440, "height": 900},
            device_scale_factor=1,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            context.close()
