"""What the in-process benches share (bench/reconcile.py, bench/catalog_import.py):
a throwaway SQLite database, the sandbox at its documented limits, one thread per
channel as separate workers would be, and the floor a rate bucket allows."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def bucket_floor(calls: float, *, burst: float, rate: float) -> float:
    """Seconds a bucket of ``burst`` refilled at ``rate`` per second needs for ``calls``."""
    return max(0.0, calls - burst) / rate


def embedded_django(tmp: Path) -> None:
    """This process on a fresh SQLite database in ``tmp``: Django set up, migrated."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "pimsync.settings.base",
            "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
            "CELERY_BROKER_URL": "memory://",
            "PIMSYNC_VAR_DIR": str(tmp),
            "PIMSYNC_RATE_LIMIT_REDIS_URL": "",
            "DJANGO_DEBUG": "false",
            "LOG_LEVEL": "ERROR",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def sandbox_at_documented_limits() -> Any:
    """The sandbox in this process; Magento, which documents no limit, gets a small host's."""
    from sandbox.magento import HOSTING_LIMITS
    from sandbox.server import start_sandbox

    sandbox = start_sandbox()
    sandbox.platform("magento").set_limits(HOSTING_LIMITS)
    return sandbox


def threads_wall(target: Callable[..., None], arguments: Iterable[tuple]) -> float:
    """Run ``target`` once per argument tuple, each in its own thread; wall seconds."""
    threads = [threading.Thread(target=target, args=args) for args in arguments]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def in_temporary_folder(
    run: Callable[[argparse.Namespace, Path], int], args: argparse.Namespace, prefix: str
) -> int:
    """``run(args, tmp)`` in a new temporary folder, removed afterwards unless ``--keep``."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return run(args, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
