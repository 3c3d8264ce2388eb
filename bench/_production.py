"""The production-like lane the benches of issue #12 share (and ingest/api reuse):
PostgreSQL + Redis, the production settings, gunicorn, a default-queue worker, a
push worker, celery beat and the channel sandbox at its documented limits, with
bench/propagation.py's catalog pushed once.

``production_stack`` starts the servers, migrates and sets Django up in this
process; ``production_up`` starts the processes and builds the catalog.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import propagation
from _stack import (
    ROOT,
    Stack,
    Started,
    pg_redis_start,
    production_env,
    push_queues,
    start_beat,
    start_gunicorn,
    start_sandbox,
    start_workers,
)
from django.conf import settings
from propagation import Sandbox, build_catalog, default_rates, initial_sync

PLATFORMS = ("shopify", "woocommerce", "ebay", "amazon")


def slug(platform: str) -> str:
    return f"bench-{platform}"  # bench/propagation.py's build_catalog


@contextlib.contextmanager
def production_stack(
    tmp: Path, pg_dir: Path, extra_env: Callable[[dict[str, str]], dict[str, str]] | None = None
) -> Iterator[tuple[Stack, dict[str, str]]]:
    """PostgreSQL + Redis started, migrated, Django set up in this process with the
    production settings (plus ``extra_env(what pg-redis.sh exported)``); a Stack for
    the processes to start, stopped on exit."""
    var_dir = tmp / "var"
    var_dir.mkdir()
    exported = pg_redis_start(pg_dir)
    env = production_env(exported, var_dir) | (extra_env(exported) if extra_env else {})
    os.environ.update(env)
    for command in (["migrate"], ["collectstatic"]):  # production serves collected files
        subprocess.run(  # noqa: S603 - our own manage.py
            [sys.executable, "manage.py", *command, "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
    import django

    django.setup()
    logs = tmp / "logs"
    logs.mkdir()
    with Stack(logs) as stack:
        yield stack, env


def api_user_token() -> str:
    """A staff user's REST API token (``Authorization: Token …``)."""
    from django.contrib.auth import get_user_model

    from pimsync.api.roles import user_api_token

    user = get_user_model().objects.create_user("bench-api", is_staff=True)
    return user_api_token(user=user)


@dataclass
class Production:
    """What production_up started: the sandbox, gunicorn, workers, beat, a token."""

    sandbox: Sandbox
    port: int
    token: str
    default_workers: list[Started]
    push_workers: list[Started]
    urgent_workers: list[Started]
    beat: Started
    gunicorn: Started
    queues: tuple[str, str]
    skus: list[str]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def processes(self) -> list[Started]:
        return [
            *self.default_workers,
            *self.push_workers,
            *self.urgent_workers,
            self.beat,
            self.gunicorn,
        ]

    def setup_line(self) -> dict[str, Any]:
        from django.db import connection

        return {
            "metric": "setup",
            "database": connection.vendor,
            "broker": "redis",
            "skus": len(self.skus),
            "default_worker_queues": self.queues[0],
            "push_worker_queues": self.queues[1],
            "urgent_worker_queues": settings.PIMSYNC_URGENT_QUEUE,
            "beat": "celery beat (DatabaseScheduler), PIMSYNC_SWEEP_SECONDS=1",
            "sandbox_limits": "documented defaults",
        }


def production_up(
    stack: Stack,
    env: dict[str, str],
    *,
    skus: int,
    stock: Callable[[int], int],
    default_concurrency: int,
    push_concurrency: int,
    gunicorn_workers: int,
    timeout: float,
    stall: float,
    woo: str = "simple",
) -> Production:
    """Sandbox, catalog (``stock(i)`` units of SKU i), default and push workers,
    beat, the initial sync (10x limits, not measured), gunicorn and an API token."""
    from inventory.models import StockLevel, Variant

    sandbox = Sandbox(start_sandbox(stack, env))
    rates = default_rates(sandbox.control("GET", "rate_limits"))
    build_catalog(sandbox, skus=skus, per_product=4, woo=woo, rates=rates)
    levels = list(StockLevel.objects.select_related("variant").order_by("variant_id"))
    for i, level in enumerate(levels):
        level.on_hand = stock(i)  # bench seeding, before anything was sold or pushed
    StockLevel.objects.bulk_update(levels, ["on_hand"], batch_size=1000)
    queues = push_queues()
    default_workers = start_workers(
        stack, env, count=1, concurrency=default_concurrency, queues=queues[0], name="default"
    )
    push_workers = start_workers(
        stack, env, count=1, concurrency=push_concurrency, queues=queues[1], name="push"
    )
    # The urgent lane (zeros, low stock) as production runs it: processes of its own.
    urgent_workers = start_workers(
        stack, env, count=1, concurrency=4, queues=settings.PIMSYNC_URGENT_QUEUE, name="urgent"
    )
    propagation.WORKERS[:] = [*default_workers, *push_workers, *urgent_workers]
    beat = start_beat(stack, env)
    sync = initial_sync(sandbox, rates, scale=10, timeout=timeout, stall=stall)
    if any(sync["mismatches"].values()):
        raise RuntimeError(f"initial sync left mismatches: {sync['mismatches']}")
    gunicorn, port = start_gunicorn(
        stack, env, workers=gunicorn_workers, worker_class="gthread", threads=8
    )
    return Production(
        sandbox=sandbox,
        port=port,
        token=api_user_token(),
        default_workers=default_workers,
        push_workers=push_workers,
        urgent_workers=urgent_workers,
        beat=beat,
        gunicorn=gunicorn,
        queues=queues,
        skus=list(Variant.objects.order_by("pk").values_list("sku", flat=True)),
    )
