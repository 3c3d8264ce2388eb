"""The dispatchers name their tasks: every name they can send must be a task
the workers know, and every send goes through a named constant."""

from __future__ import annotations

import ast
import inspect

import pytest
from celery import current_app
from django.conf import settings

from channels_app import dispatch
from synclog import dispatch as synclog_dispatch

DISPATCHERS = [dispatch, synclog_dispatch]


def _registered() -> set[str]:
    current_app.loader.import_default_modules()  # what a worker imports at start
    return set(current_app.tasks)


@pytest.mark.parametrize("module", DISPATCHERS, ids=lambda m: m.__name__)
def test_every_task_name_a_dispatcher_sends_is_a_registered_task(module):
    assert set(module.TASK_NAMES) <= _registered()


@pytest.mark.parametrize("module", DISPATCHERS, ids=lambda m: m.__name__)
def test_every_send_names_its_task_by_a_declared_constant(module):
    declared = {
        name
        for name, value in vars(module).items()
        if isinstance(value, str) and value in module.TASK_NAMES
    }
    sends = [
        node
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "task_send"
    ] + [
        node.args[1]  # partial(task_send, NAME, ...)
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "partial"
        and getattr(node.args[0], "id", None) == "task_send"
    ]
    names = [send.args[0].id if isinstance(send, ast.Call) else send.id for send in sends]
    assert names, "the dispatcher sends nothing?"
    assert set(names) <= declared
    assert declared == set(names), "a declared task name is never sent"


def test_every_beat_schedule_names_a_registered_task():
    registered = _registered()
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= registered
