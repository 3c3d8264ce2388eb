"""The processes a bench starts, and how it stops them again.

Everything here is loopback-only and owned by the caller: each process runs in
its own session (process group), so stopping it also stops its children (a
Celery worker's pool). ``Stack`` is a context manager; whatever it started is
stopped on exit, also after an error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PG_REDIS = ROOT / "scripts" / "pg-redis.sh"


def emit(line: dict[str, Any]) -> None:
    """One JSON line on stdout: what every bench prints."""
    print(json.dumps(line), flush=True)


def bench_main(prefix: str, body: Callable[[Path, Path], None], *, keep: bool) -> int:
    """Run ``body(tmp, pg_dir)`` between machine_noise lines: ``tmp`` a fresh folder
    (logs, var), ``pg_dir`` an empty one for scripts/pg-redis.sh. Both are removed
    afterwards (``keep``: tmp stays), the servers stopped, also after an error, which
    is printed as an ``error`` line (exit code 1)."""
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    emit(noise_line("before"))
    tmp = Path(tempfile.mkdtemp(prefix=f"pimsync-{prefix}-"))
    pg_dir = Path(tempfile.mkdtemp(prefix=f"pimsync-{prefix}-pg-"))
    code = 0
    try:
        body(tmp, pg_dir)
    except Exception as exc:  # one JSON line saying why the bench stopped
        emit({"metric": "error", "error": f"{type(exc).__name__}: {exc}"})
        traceback.print_exc()  # where it stopped, on stderr beside the JSON lines
        code = 1
    finally:
        if "django" in sys.modules:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
        pg_redis_stop(pg_dir)
        shutil.rmtree(pg_dir, ignore_errors=True)
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    emit(noise_line("after"))
    emit({"metric": "total_seconds", "value": round(time.monotonic() - started, 1)})
    return code


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: processes are stopped


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Started:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Stack:
    """Processes started for one bench run; ``stop()`` ends them all (reverse order)."""

    log_dir: Path
    started: list[Started] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: Mapping[str, str]) -> Started:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        proc = subprocess.Popen(  # noqa: S603 - our own fixed commands
            command,
            cwd=ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        item = Started(name, proc, log_path, log)
        self.started.append(item)
        return item

    def stop(self) -> None:
        # SIGTERM first: a Celery worker then stops its pool children itself.
        for item in reversed(self.started):
            _signal_group(item.proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for item in reversed(self.started):
            with contextlib.suppress(subprocess.TimeoutExpired):
                item.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Also children that outlived their leader (same process group).
            _signal_group(item.proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                item.proc.wait(timeout=5)
            item.log.close()
        self.started.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # The group id is the leader's pid (start_new_session); ours alone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


# --------------------------------------------------------------------------- services


def start_sandbox(stack: Stack, env: Mapping[str, str], timeout: float = 30.0) -> str:
    """``manage.py run_sandbox`` on a free loopback port (documented limits); its URL."""
    for _ in range(5):
        port = free_port()
        item = stack.start(
            f"sandbox-{port}",
            [sys.executable, "manage.py", "run_sandbox", "--port", str(port)],
            env,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and item.proc.poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/_control/health", timeout=1).ok:
                    return url
            time.sleep(0.1)
        if item.proc.poll() is None:
            raise RuntimeError(f"sandbox did not answer in {timeout} s:\n{item.log_tail()}")
        # It exited (most likely the port was taken meanwhile): try another port.
    raise RuntimeError(f"sandbox did not start:\n{stack.started[-1].log_tail()}")


def start_workers(
    stack: Stack,
    env: Mapping[str, str],
    *,
    count: int,
    concurrency: int,
    timeout: float = 60.0,
    nice: int = 0,
    queues: str | None = "celery,push",
    name: str = "worker",
) -> list[Started]:
    """``count`` Celery worker processes (prefork, ``concurrency`` children each),
    returned once every one logged that it is ready. ``nice`` > 0 runs them at a
    lower CPU priority than the web server, as on machines of their own.
    ``queues`` is passed as ``-Q`` (default: the default queue and the pushes'
    own); None: Celery's default queue only."""
    workers = [
        stack.start(
            f"{name}-{n}-{len(stack.started)}",
            worker_command(concurrency=concurrency, nice=nice, queues=queues, node=f"{name}{n}"),
            env,
        )
        for n in range(count)
    ]
    wait_ready(workers, timeout)
    return workers


def worker_command(*, concurrency: int, nice: int, queues: str | None, node: str) -> list[str]:
    prefix = ["nice", "-n", str(nice)] if nice > 0 else []
    command = [
        *prefix,
        sys.executable,
        "-m",
        "celery",
        "-A",
        "pimsync",
        "worker",
        "-l",
        "info",
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "-n",
        f"{node}@%h",
    ]
    return [*command, "-Q", queues] if queues else command


def wait_ready(workers: Iterable[Started], timeout: float = 60.0) -> None:
    """Return once every worker logged "ready."; raise if one exits or it takes too long."""
    deadline = time.monotonic() + timeout
    for worker in workers:
        while "ready." not in worker.log_tail(200):
            if worker.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{worker.name} did not become ready:\n{worker.log_tail()}")
            time.sleep(0.1)


def kill_group(item: Started) -> None:
    """SIGKILL to the process and all its children (its own process group): a crash,
    with no chance to hand work back."""
    _signal_group(item.proc, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        item.proc.wait(timeout=10)


PUSH_TASK = "channels_app.tasks.channel_push_task"


def push_queues() -> tuple[str, str]:
    """(default worker's queues, push worker's queues) for ``-Q``.

    When Celery routes the push task to a ``push`` queue, the push worker takes that
    queue alone and the default worker the rest. Without such a route (before the
    push queue exists), pushes travel on Celery's default queue, and the push worker
    also consumes it, so killing it still kills pushes in flight. Needs Django set up.
    """
    from pimsync.celery import app

    routed = app.amqp.router.route({}, PUSH_TASK)["queue"].name
    default = app.conf.task_default_queue
    if routed != default:
        return default, routed
    return default, f"push,{default}"


def start_beat(stack: Stack, env: Mapping[str, str]) -> Started:
    """celery beat (django-celery-beat's DatabaseScheduler, as in production)."""
    return stack.start(
        "beat", [sys.executable, "-m", "celery", "-A", "pimsync", "beat", "-l", "warning"], env
    )


def check_alive(items: Iterable[Started]) -> None:
    """Raise when one of these processes has exited (a crashed worker stops a bench)."""
    for item in items:
        if item.proc.poll() is not None:
            raise RuntimeError(
                f"{item.name} exited with {item.proc.returncode}:\n{item.log_tail(30)}"
            )


def pg_redis_start(state_dir: Path) -> dict[str, str]:
    """Throwaway PostgreSQL + Redis (scripts/pg-redis.sh); the variables it exports."""
    done = subprocess.run(  # noqa: S603 - our own script
        ["bash", str(PG_REDIS), "start", str(state_dir)],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/pg-redis.sh start failed:\n{done.stderr[-2000:]}")
    exported = {}
    for line in done.stdout.splitlines():
        name, sep, value = line.removeprefix("export ").partition("=")
        if line.startswith("export ") and sep:
            exported[name] = value
    return exported


def django_migrated(env: Mapping[str, str]) -> None:
    """This process on ``env``'s database: ``manage.py migrate`` run, Django set up."""
    os.environ.update(env)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=dict(env),
        check=True,
    )
    import django

    django.setup()


@contextlib.contextmanager
def bench_folders(prefix: str, *, keep: bool) -> Iterator[tuple[Path, Path]]:
    """(work folder, PostgreSQL + Redis state folder) for one bench run: on the way
    out the servers started there are stopped and both folders deleted (the work
    folder kept with ``keep``, for its logs)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    pg_dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-pg-"))
    try:
        yield tmp, pg_dir
    finally:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        pg_redis_stop(pg_dir)
        shutil.rmtree(pg_dir, ignore_errors=True)
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def pg_redis_stop(state_dir: Path) -> None:
    subprocess.run(  # noqa: S603 - our own script
        ["bash", str(PG_REDIS), "stop", str(state_dir)],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=False,
    )


def redis_stop(state_dir: Path) -> None:
    """Stop Redis alone (a broker outage); PostgreSQL keeps running."""
    _pg_redis("redis-stop", state_dir)


def redis_start(state_dir: Path) -> None:
    """Redis again on the port every client knows (empty: nothing survives an outage)."""
    _pg_redis("redis-start", state_dir)


def _pg_redis(command: str, state_dir: Path) -> None:
    done = subprocess.run(  # noqa: S603 - our own script
        ["bash", str(PG_REDIS), command, str(state_dir)],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/pg-redis.sh {command} failed:\n{done.stderr[-2000:]}")


def production_env(exported: dict[str, str], var_dir: Path) -> dict[str, str]:
    """The environment of gunicorn, workers and beat: production settings on the
    throwaway PostgreSQL + Redis, a fresh secret and encryption key per run."""
    from cryptography.fernet import Fernet

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pimsync.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PIMSYNC_FERNET_KEYS": Fernet.generate_key().decode(),
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": exported["DATABASE_URL"],
        "CELERY_BROKER_URL": exported["CELERY_BROKER_URL"],
        "PIMSYNC_RATE_LIMIT_REDIS_URL": exported["REDIS_URL"],
        "PIMSYNC_VAR_DIR": str(var_dir),
        "PIMSYNC_SWEEP_SECONDS": "1",
        "PIMSYNC_DEMO_ORDERS": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def start_gunicorn(
    stack: Stack, env: dict[str, str], *, workers: int, worker_class: str, threads: int
) -> tuple[Started, int]:
    """gunicorn serving pimsync.wsgi on a free loopback port; (process, port) once
    /healthz answers."""
    for _ in range(5):
        port = free_port()
        command = [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "pimsync.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
            "-k",
            worker_class,
        ]
        if worker_class == "gthread":
            command += ["--threads", str(threads)]
        item = stack.start(f"gunicorn-{port}", command, env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and item.proc.poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                    return item, port
            time.sleep(0.2)
        if item.proc.poll() is None:
            raise RuntimeError(f"gunicorn did not answer:\n{item.log_tail()}")
    raise RuntimeError(f"gunicorn did not start:\n{stack.started[-1].log_tail()}")


def pid_file(path: Path) -> list[int]:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return [int(path.read_text().split()[0])]
    return []


# --------------------------------------------------------------------------- memory


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(entry.path, "stat").read_text()
            # Field 4 (ppid) comes after the parenthesised command name.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(roots: Iterable[int]) -> list[int]:
    children = _children_of()
    seen: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Samples the RSS of some processes and all their descendants from /proc."""

    def __init__(self, roots: Iterable[int], interval: float = 0.25) -> None:
        self.roots = list(roots)
        self.interval = interval
        self.peak_total_kib = 0
        self.peak_process_kib = 0
        self.max_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        sizes = [rss_kib(pid) for pid in process_tree(self.roots)]
        sizes = [s for s in sizes if s]
        if sizes:
            self.peak_total_kib = max(self.peak_total_kib, sum(sizes))
            self.peak_process_kib = max(self.peak_process_kib, max(sizes))
            self.max_processes = max(self.max_processes, len(sizes))
            self.samples += 1

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def figures(self) -> dict[str, Any]:
        return {
            "peak_total_rss_mib": round(self.peak_total_kib / 1024, 1),
            "peak_process_rss_mib": round(self.peak_process_kib / 1024, 1),
            "processes": self.max_processes,
            "samples": self.samples,
            "interval_s": self.interval,
        }


# --------------------------------------------------------------------------- machine noise


def cpu_loop() -> float:
    """Milliseconds for a fixed piece of pure-Python work."""
    started = time.perf_counter()
    total = 0
    for number in range(300_000):
        total += number * number % 7
    return (time.perf_counter() - started) * 1000


def machine_noise(repeats: int = 9) -> dict[str, Any]:
    """How busy the machine is right now: a fixed CPU loop timed ``repeats`` times
    (the cores are shared, so every bench prints this before and after)."""
    timings = sorted(cpu_loop() for _ in range(repeats))
    median = statistics.median(timings)
    return {
        "metric": "machine_noise",
        "cpu_loop_ms_median": round(median, 2),
        "cpu_loop_ms_min": round(timings[0], 2),
        "cpu_loop_ms_max": round(timings[-1], 2),
        "spread_pct": round((timings[-1] - timings[0]) / median * 100, 1),
        "repeats": repeats,
    }


def noise_line(when: str) -> dict[str, Any]:
    """The machine_noise line with cores and load average, tagged before/after."""
    load1, load5, load15 = os.getloadavg()
    return machine_noise() | {
        "when": when,
        "cores": os.cpu_count(),
        "loadavg": [round(load1, 2), round(load5, 2), round(load15, 2)],
    }
