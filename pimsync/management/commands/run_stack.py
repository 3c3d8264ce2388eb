"""Run web + Celery workers (default and push queues) + beat + channel sandbox (`make run`).

Output of each process is prefixed with its name; Ctrl-C (or any process dying)
stops them all. With the sandbox, the demo channels' webhooks are registered on it
once it answers (a one-shot ``hooks`` process), at PIMSYNC_PUBLIC_URL, which
defaults to the web address started here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from pimsync.demo import DEMO_LOGIN_FILE

COLOURS = {
    "web": "36",
    "worker": "33",
    "pusher": "93",
    "urgent": "91",
    "beat": "35",
    "sandbox": "32",
    "orders": "34",
    "hooks": "34",
}
# Processes that finish their job and exit: their ending (status 0) stops nothing.
ONE_SHOT = frozenset({"hooks"})


DEMO_TOKEN_TTL_SECONDS = 600


def _celery_worker(name: str, queue: str, python: str) -> list[str]:
    return [
        python, "-m", "celery", "-A", "pimsync", "worker", "-l", "info", "-Q", queue,
        "--concurrency", "2", "--without-gossip", "--without-mingle", "-n", f"{name}@%h",
    ]  # fmt: skip


def _commands(host: str, port: int, sandbox_port: int) -> dict[str, list[str]]:
    python = sys.executable
    var = Path(settings.VAR_DIR)
    return {
        "web": [python, "manage.py", "runserver", f"{host}:{port}", "--noreload"],
        "orders": [python, "manage.py", "demo_orders"],
        "hooks": [python, "manage.py", "webhooks_register", "--wait", "60"],
        "worker": _celery_worker("worker", "celery", python),
        # Pushes have worker processes of their own: never behind inbound work.
        "pusher": _celery_worker("pusher", settings.PIMSYNC_PUSH_QUEUE, python),
        # Zeros: a lane of their own, never behind routine pushes.
        "urgent": _celery_worker("urgent", settings.PIMSYNC_URGENT_QUEUE, python),
        "beat": [
            python,
            "-m",
            "celery",
            "-A",
            "pimsync",
            "beat",
            "-l",
            "info",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--pidfile",
            str(var / "celerybeat.pid"),
        ],
        "sandbox": [
            python,
            "manage.py",
            "run_sandbox",
            "--port",
            str(sandbox_port),
            "--state",
            str(var / "sandbox_state.json"),
            "--seed-file",
            str(var / "sandbox_seed.json"),
            # Ten-minute tokens: the demo's eBay and Amazon channels refresh theirs
            # every few minutes (the platforms' own last one and two hours).
            "--token-ttl",
            str(DEMO_TOKEN_TTL_SECONDS),
        ],
    }


def running_banner(host: str, port: int) -> str:
    """What run_stack prints once started: the real address, and the demo's login."""
    banner = f"pimsync is running: http://{host}:{port}/admin/ — Ctrl-C stops everything."
    login = Path(settings.VAR_DIR) / DEMO_LOGIN_FILE
    if login.exists():
        username, _, password = login.read_text().strip().partition(":")
        banner += f"\nAdmin login: user {username}  password {password}"
    return banner


def _pump(name: str, stream: object) -> None:
    colour = COLOURS.get(name, "0")
    tty = sys.stdout.isatty()
    for line in iter(stream.readline, ""):
        prefix = f"\033[{colour}m{name:>7}\033[0m | " if tty else f"{name:>7} | "
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


class Command(BaseCommand):
    help = "Run web, worker, beat and the channel sandbox together; Ctrl-C stops all."

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8700)
        parser.add_argument("--no-sandbox", action="store_true")

    def handle(self, *args: object, **opts: object) -> None:
        commands = _commands(str(opts["host"]), int(opts["port"]), int(opts["sandbox_port"]))
        if opts["no_sandbox"]:
            commands.pop("sandbox")
            commands.pop("orders")
            commands.pop("hooks")
        if not settings.PIMSYNC_DEMO_ORDERS:
            commands.pop("orders", None)
        stale_pid = Path(settings.VAR_DIR) / "celerybeat.pid"
        stale_pid.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Where the channels (the sandbox here) deliver webhooks: this web server.
        env.setdefault("PIMSYNC_PUBLIC_URL", f"http://{opts['host']}:{opts['port']}")
        procs: dict[str, subprocess.Popen] = {}
        for name, cmd in commands.items():
            procs[name] = subprocess.Popen(  # noqa: S603 - our own fixed commands
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                start_new_session=True,
            )
            threading.Thread(target=_pump, args=(name, procs[name].stdout), daemon=True).start()
        self.stdout.write(running_banner(str(opts["host"]), int(opts["port"])))
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, proc in list(procs.items()):
                if proc.poll() is None:
                    continue
                if name in ONE_SHOT and proc.returncode == 0:
                    del procs[name]
                    continue
                self.stderr.write(f"{name} exited with {proc.returncode}; stopping the rest.")
                exit_code = proc.returncode or 1
                stopping = True
                break
            time.sleep(0.3)
        _terminate(procs)
        if exit_code:
            sys.exit(exit_code)


def _terminate(procs: dict[str, subprocess.Popen]) -> None:
    # The leader only: Celery's main process shuts its pool down itself.
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 10
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
