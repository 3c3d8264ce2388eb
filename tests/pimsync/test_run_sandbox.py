"""``manage.py run_sandbox``: the options reach the sandbox server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from pimsync.management.commands import run_sandbox as run_sandbox_command


def test_run_sandbox_command_serves_with_the_given_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_serve(**kwargs: Any) -> None:
        calls.append(kwargs)
        kwargs["on_ready"]("http://127.0.0.1:8700")

    monkeypatch.setattr(run_sandbox_command, "serve_forever", fake_serve)
    state = str(tmp_path / "s.json")

    call_command("run_sandbox", "--port", "8799", "--state", state)

    assert calls[0]["port"] == 8799
    assert calls[0]["host"] == "127.0.0.1"
    assert calls[0]["state_file"] == state
    assert calls[0]["seed_file"] is None
    assert calls[0]["token_ttl"] is None  # the platforms' own lifetimes


def test_run_sandbox_passes_the_token_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(run_sandbox_command, "serve_forever", lambda **kwargs: calls.append(kwargs))

    call_command("run_sandbox", "--token-ttl", "60")

    assert calls[0]["token_ttl"] == 60.0
