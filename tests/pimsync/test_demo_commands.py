"""`make run PORT=…`: seed_demo and run_stack print the address the stack really uses."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from pimsync.management.commands.run_stack import running_banner


@pytest.mark.django_db
def test_seed_demo_prints_the_port_it_is_given(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path
    out = StringIO()

    call_command("seed_demo", "--port", "8123", stdout=out)

    text = out.getvalue()
    assert "Admin: http://127.0.0.1:8123/admin/  user: admin  password: " in text
    assert "API: http://127.0.0.1:8123/api/docs/" in text
    assert ":8000" not in text
    password = (tmp_path / "demo-login.txt").read_text().split(":", 1)[1]
    assert running_banner("localhost", 8123).splitlines() == [
        "pimsync is running: http://localhost:8123/admin/ — Ctrl-C stops everything.",
        f"Admin login: user admin  password {password}",
    ]


def test_run_stack_without_a_demo_login_prints_only_the_address(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path

    assert running_banner("127.0.0.1", 9000) == (
        "pimsync is running: http://127.0.0.1:9000/admin/ — Ctrl-C stops everything."
    )
