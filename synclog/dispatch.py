"""Every task request synclog makes (see channels_app.dispatch for the rules:
by name, never raising, the beat sweep as the backstop)."""

from __future__ import annotations

from pimsync.tasking import task_send

NOTIFICATIONS_DELIVER = "synclog.tasks.notifications_deliver_task"
TASK_NAMES = (NOTIFICATIONS_DELIVER,)


def notifications_deliver_request() -> bool:
    """Ask a worker to deliver due notifications now (beat sends them anyway)."""
    return task_send(NOTIFICATIONS_DELIVER)
