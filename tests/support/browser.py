"""Helpers for the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@contextmanager
def own_db_connections_closed() -> Iterator[None]:
    """While Playwright's event loop runs in this thread, Django keeps the test's
    database connections per context (asgiref), apart from the ones pytest-django
    closes: close the test body's own at its end so none outlives the test."""
    try:
        yield
    finally:
        from django.db import connections

        connections.close_all()
