"""Sending a Celery task by name: the one place that talks to the broker.

The apps' dispatchers (channels_app.dispatch, synclog.dispatch) name their
tasks instead of importing them, so the modules that ask for work never import
the task modules (which sit on top and import everything). A send never raises
and never waits long: the callers are request handlers and after-commit hooks,
and every piece of work also lives in the database, where a sweeper finds it
when the message was lost (broker down, worker killed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from celery import current_app

log = logging.getLogger(__name__)


def task_send(
    name: str,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    countdown: float | None = None,
    what: str = "",
    fallback: str = "its sweeper will catch up",
) -> bool:
    """Publish the task ``name``; returns False when the broker refused, logging
    ``<what> not enqueued (<error>); <fallback>`` so the log says what waits for what."""
    try:
        current_app.send_task(
            name, args=list(args), kwargs=dict(kwargs or {}), countdown=countdown, retry=False
        )
    except Exception as exc:  # any broker failure: the database still holds the work
        log.warning("%s not enqueued (%s); %s", what or f"task {name}", exc, fallback)
        return False
    return True
