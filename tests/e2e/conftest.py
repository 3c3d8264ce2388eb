"""End-to-end harness: real Celery worker processes and the channel sandbox over HTTP.

Needs a broker and a database that other processes can reach: the SQLite lane
runs these tests in their own pytest call with a file database and the
filesystem broker (`make test`), the PostgreSQL lane with Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from sandbox.server import RunningSandbox, start_sandbox

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.fixture
def worker_env() -> dict[str, str]:
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("memory://"):
        pytest.fail(
            "End-to-end tests need a broker shared with worker processes: run them through "
            "`make test` or `make test-pg`."
        )
    if connection.vendor == "sqlite" and not str(connection.settings_dict["NAME"]).endswith(
        ".sqlite3"
    ):
        pytest.fail("End-to-end tests on SQLite need PIMSYNC_TEST_DB_FILE (a file database).")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pimsync.settings.base",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker,
        "PIMSYNC_PUSH_LEASE_SECONDS": os.environ.get("PIMSYNC_PUSH_LEASE_SECONDS", "5"),
        "PIMSYNC_RETRY_CAP_SECONDS": "4",
        "PIMSYNC_RETRY_BASE_SECONDS": "0.2",
        "PIMSYNC_BREAKER_OPEN_SECONDS": "2",
        "DJANGO_DEBUG": "false",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def start_worker(worker_env, tmp_path) -> Iterator[Callable[..., subprocess.Popen]]:
    procs: list[subprocess.Popen] = []

    def start(name: str = "e2e", concurrency: int = 2) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{name}-{len(procs)}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(  # noqa: S603 - our own worker command
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "pimsync",
                "worker",
                "-l",
                "warning",
                "-Q",
                "celery,push",  # the default queue and the pushes' own
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"{name}{len(procs)}@%h",
            ],
            cwd=ROOT,
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def sandbox_server() -> Iterator[RunningSandbox]:
    running = start_sandbox(scale_limits=10)
    yield running
    running.stop()
