"""Fixtures that stand in for the broker: what the dispatchers asked for.

Every task request goes through ``pimsync.tasking.task_send`` ->
``celery.current_app.send_task``; these fixtures replace that one call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class SentTask:
    name: str
    args: list[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    countdown: float | None = None


class TaskSends(list[SentTask]):
    """The task requests made while the fixture was active, in order."""

    def named(self, name: str) -> list[SentTask]:
        return [sent for sent in self if sent.name == name]

    def args_of(self, name: str) -> list[list[Any]]:
        return [sent.args for sent in self.named(name)]


def _recorder(sends: TaskSends) -> Callable[..., None]:
    def send_task(
        name: str,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        countdown: float | None = None,
        **options: Any,
    ) -> None:
        sends.append(SentTask(name, list(args or []), dict(kwargs or {}), countdown))

    return send_task


@pytest.fixture
def task_sends(monkeypatch: pytest.MonkeyPatch) -> TaskSends:
    """Records every task request instead of publishing it."""
    sends = TaskSends()
    monkeypatch.setattr("celery.current_app.send_task", _recorder(sends))
    return sends


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> Callable[[], TaskSends]:
    """The broker refuses every publish; call the returned function to bring it
    back (it then records, like ``task_sends``)."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionRefusedError("the broker is down")

    monkeypatch.setattr("celery.current_app.send_task", refuse)

    def back_up() -> TaskSends:
        sends = TaskSends()
        monkeypatch.setattr("celery.current_app.send_task", _recorder(sends))
        return sends

    return back_up
