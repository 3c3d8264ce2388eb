"""Settings read from the environment (django-environ).

The embedded default needs no server: SQLite under var/ and a Celery broker on
the filesystem. Production sets DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL
(Redis); see .env.example for every variable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("PIMSYNC_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def verbatim_secret(name: str, default: str | None = None) -> str:
    """A secret exactly as the environment holds it. django-environ reads a value that
    starts with `$` as the name of another variable, and Django's own key generator
    draws from an alphabet with `$` in it: about one generated key in fifty would
    stop the web process with a KeyError naming the key itself."""
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the {name} environment variable")
    return value


def _local_secret(name: str, make: Callable[[], str]) -> str:
    """A per-checkout secret kept in var/ (never in the repo) for the embedded default."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = verbatim_secret("SECRET_KEY", default="") or _local_secret(
    "secret_key", lambda: secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Comma-separated Fernet keys; the first encrypts, all decrypt (rotation: prepend
# the new key, run `manage.py rotate_credentials_key`, then drop the old one).
PIMSYNC_FERNET_KEYS = env.list("PIMSYNC_FERNET_KEYS", default=[]) or [
    _local_secret("fernet.key", lambda: Fernet.generate_key().decode())
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "django_celery_beat",
    "pimsync",
    "inventory",
    "synclog",
    "channels_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pimsync.urls"
WSGI_APPLICATION = "pimsync.wsgi.application"
ASGI_APPLICATION = "pimsync.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'pimsync.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets web, worker and beat read while one writes; IMMEDIATE takes the
    # write lock at BEGIN so read-then-write transactions serialise instead of
    # failing with "database is locked" on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    # A health check is one more round trip (SELECT 1) per request: at webhook rates it
    # doubled the database waits of every request. Without it, a connection broken by a
    # database restart fails one request and is then replaced (Django closes it after the
    # error). Turn it on where connections are often cut (some proxies, failovers).
    DATABASES["default"].setdefault(
        "CONN_HEALTH_CHECKS", env.bool("DB_CONN_HEALTH_CHECKS", default=False)
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `manage.py collectstatic` puts the static files the web server serves (WhiteNoise
# with the production settings, which refuse to start until they are collected there).
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Celery --------------------------------------------------------------------------
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith(("filesystem://", "pimsyncfs://"))
if EMBEDDED_BROKER:
    # pimsync.broker: the filesystem transport with atomic writes and claims.
    CELERY_BROKER_URL = "pimsyncfs://"
    for sub in ("queue", "processed", "control"):
        (_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        # kombu's default is ./control, i.e. wherever the process was started.
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
        # The filesystem transport polls; 1 s (its default) would be most of
        # the propagation budget.
        "polling_interval": 0.05,
    }
else:
    # A publish must never hang a request when the broker is down: bounded
    # connection attempts, the sweeper re-enqueues what was missed.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
        "socket_connect_timeout": 1,
        "socket_timeout": 2,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Pushes have a queue and worker processes of their own, so a backlog of inbound
# events, polls or reconciliation never delays a push: run one worker with
# `-Q celery` and one with `-Q <PIMSYNC_PUSH_QUEUE>` (make run and docker-compose do).
PIMSYNC_PUSH_QUEUE = env.str("PIMSYNC_PUSH_QUEUE", default="push")
# Zeros and low stock have a lane of their own too (`-Q <PIMSYNC_URGENT_QUEUE>`): the
# push workers may all be busy with long routine runs of congested channels, and a
# sold-out SKU must not wait for one of them to finish. Without a worker on it the
# routine pushes still carry urgent work first, only later.
PIMSYNC_URGENT_QUEUE = env.str("PIMSYNC_URGENT_QUEUE", default="urgent")
CELERY_TASK_ROUTES = {
    "channels_app.tasks.channel_push_task": {"queue": PIMSYNC_PUSH_QUEUE},
    "channels_app.tasks.channel_push_urgent_task": {"queue": PIMSYNC_URGENT_QUEUE},
    "channels_app.tasks.channel_batch_watch_task": {"queue": PIMSYNC_PUSH_QUEUE},
}
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=270)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_ENABLE_REMOTE_CONTROL = not EMBEDDED_BROKER
CELERY_BEAT_SCHEDULE = {
    "reservations-expire": {
        "task": "inventory.tasks.reservation_expire_due_task",
        "schedule": 60.0,
    },
}

# --- REST framework --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}

# --- Logging -----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Mail / ops ----------------------------------------------------------------------------
# One URL for the mail server: smtp+tls://user:pass@host:587, or consolemail:// (default).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="pimsync@localhost")

# --- pimsync --------------------------------------------------------------------------------
PIMSYNC_RESERVATION_DEFAULT_MINUTES = env.int("PIMSYNC_RESERVATION_DEFAULT_MINUTES", default=60)
PIMSYNC_DEMO_SANDBOX_URL = env.str("PIMSYNC_DEMO_SANDBOX_URL", default="http://127.0.0.1:8700")
# `make run` places a sandbox order every few seconds so sales can be watched arriving.
PIMSYNC_DEMO_ORDERS = env.bool("PIMSYNC_DEMO_ORDERS", default=True)
PIMSYNC_DEMO_ORDER_SECONDS = env.float("PIMSYNC_DEMO_ORDER_SECONDS", default=20.0)

# --- outbound sync -------------------------------------------------------------------------
PIMSYNC_RETRY_BASE_SECONDS = env.float("PIMSYNC_RETRY_BASE_SECONDS", default=1.0)
PIMSYNC_RETRY_CAP_SECONDS = env.float("PIMSYNC_RETRY_CAP_SECONDS", default=300.0)
PIMSYNC_BREAKER_FAILURES = env.int("PIMSYNC_BREAKER_FAILURES", default=5)
PIMSYNC_BREAKER_OPEN_SECONDS = env.float("PIMSYNC_BREAKER_OPEN_SECONDS", default=30.0)
PIMSYNC_PUSH_CLAIM_SIZE = env.int("PIMSYNC_PUSH_CLAIM_SIZE", default=1000)
# The urgent lane claims a few markers at a time, so a zero marked meanwhile is
# claimed (zeros first) after at most this many.
PIMSYNC_URGENT_CLAIM_SIZE = env.int("PIMSYNC_URGENT_CLAIM_SIZE", default=20)
# An urgent-lane request not started within this many seconds is asked again (lost
# message, or every urgent process busy); until then further urgent changes of the
# channel ride on it.
PIMSYNC_URGENT_STALE_SECONDS = env.float("PIMSYNC_URGENT_STALE_SECONDS", default=2.0)
# Short: a live run renews its leases every quarter lease (a heartbeat), so a killed
# worker's markers are taken over within one lease plus a sweep.
PIMSYNC_PUSH_LEASE_SECONDS = env.int("PIMSYNC_PUSH_LEASE_SECONDS", default=20)
# A quantity push held for an orders poll longer than this raises a "push held"
# alert naming why the polls do not get through.
PIMSYNC_PUSH_HELD_ALERT_SECONDS = env.int("PIMSYNC_PUSH_HELD_ALERT_SECONDS", default=120)
# At most one orders poll per this many seconds is asked for on behalf of held pushes.
PIMSYNC_HELD_POLL_SECONDS = env.float("PIMSYNC_HELD_POLL_SECONDS", default=5.0)
# Seconds between two status reads of a batch a channel is processing (an Amazon feed:
# getFeed allows 2 calls/s, so this costs nothing and reports within seconds).
PIMSYNC_BATCH_CHECK_SECONDS = env.float("PIMSYNC_BATCH_CHECK_SECONDS", default=5.0)
# A publish of one product on one channel that started less than this long ago refuses
# a second one (a crashed request's claim lapses after it).
PIMSYNC_PUBLISH_LEASE_SECONDS = env.int("PIMSYNC_PUBLISH_LEASE_SECONDS", default=600)
PIMSYNC_PUSH_TIME_BUDGET_SECONDS = env.float("PIMSYNC_PUSH_TIME_BUDGET_SECONDS", default=40.0)
PIMSYNC_SWEEP_SECONDS = env.float("PIMSYNC_SWEEP_SECONDS", default=2.0)
PIMSYNC_PUSH_STALE_SECONDS = env.float("PIMSYNC_PUSH_STALE_SECONDS", default=15.0)
# Where the shared rate limiter keeps its buckets: a redis:// URL, or empty for
# the database (embedded default).
PIMSYNC_RATE_LIMIT_REDIS_URL = env.str("PIMSYNC_RATE_LIMIT_REDIS_URL", default="")
# A routine call (not a zero, low stock or "push now") waits outside a channel's
# shared bucket while more than this many seconds of calls are queued in it, so urgent
# calls never queue behind other runs' batches.
PIMSYNC_RATE_LIMIT_QUEUE_SECONDS = env.float("PIMSYNC_RATE_LIMIT_QUEUE_SECONDS", default=0.25)
# OAuth channels (eBay, Amazon): the access token is refreshed this long before it
# expires (at most a quarter of its lifetime ahead), by one worker for all.
PIMSYNC_TOKEN_REFRESH_AHEAD_SECONDS = env.int("PIMSYNC_TOKEN_REFRESH_AHEAD_SECONDS", default=300)
CELERY_BEAT_SCHEDULE["sync-sweep"] = {
    "task": "channels_app.tasks.sync_sweep_task",
    "schedule": PIMSYNC_SWEEP_SECONDS,
}

# --- inbound orders: webhooks and polling ------------------------------------------------
# Webhook bodies above this are answered 413 before being read (orders are a few kB).
PIMSYNC_WEBHOOK_MAX_BYTES = env.int("PIMSYNC_WEBHOOK_MAX_BYTES", default=1024 * 1024)
# A delivery whose platform timestamp (Shopify X-Shopify-Triggered-At) is older is refused.
# Shopify retries for up to 4 h with the original timestamp, so 6 h keeps every honest
# retry plus slack for clock skew; anything refused by mistake is still read by polling.
PIMSYNC_WEBHOOK_REPLAY_SECONDS = env.int("PIMSYNC_WEBHOOK_REPLAY_SECONDS", default=6 * 3600)
# Processing of stored events (webhook and poll alike): attempts before an event fails
# for good, and the retry backoff (retry n is due BASE * (2^n - 1) s after receipt).
PIMSYNC_WEBHOOK_MAX_ATTEMPTS = env.int("PIMSYNC_WEBHOOK_MAX_ATTEMPTS", default=5)
PIMSYNC_WEBHOOK_RETRY_BASE_SECONDS = env.float("PIMSYNC_WEBHOOK_RETRY_BASE_SECONDS", default=10.0)
# The sweeper's beat interval, and how old a never-tried pending event must be before the
# sweeper (rather than its own task) processes it.
PIMSYNC_WEBHOOK_SWEEP_SECONDS = env.float("PIMSYNC_WEBHOOK_SWEEP_SECONDS", default=5.0)
PIMSYNC_WEBHOOK_SWEEP_GRACE_SECONDS = env.float("PIMSYNC_WEBHOOK_SWEEP_GRACE_SECONDS", default=5.0)
# A web process sends the ids of the events it stored as one task per window instead of
# one task each (0 = one task per event, at once).
PIMSYNC_INBOUND_ENQUEUE_WINDOW_MS = env.int("PIMSYNC_INBOUND_ENQUEUE_WINDOW_MS", default=20)
# Stored events applied per transaction (each stock row a batch touches is locked once).
PIMSYNC_INBOUND_BATCH_SIZE = env.int("PIMSYNC_INBOUND_BATCH_SIZE", default=200)
# How long a web process reuses a channel's settings and webhook secret (a change saved in
# the same process applies at once; other processes see it within this many seconds).
PIMSYNC_WEBHOOK_CHANNEL_CACHE_SECONDS = env.float(
    "PIMSYNC_WEBHOOK_CHANNEL_CACHE_SECONDS", default=5.0
)
# Order polling: each poll re-reads this many seconds before the stored cursor (late-visible
# changes, clock skew, whole-second timestamps); duplicates are dropped.
PIMSYNC_POLL_OVERLAP_SECONDS = env.int("PIMSYNC_POLL_OVERLAP_SECONDS", default=300)
# Orders per page asked of the channel (capped by each platform's maximum), pages per poll
# run (a longer poll continues in a follow-up task), and the beat interval that checks
# which channels are due (each channel's own interval is Channel.poll_interval_seconds).
PIMSYNC_POLL_PAGE_SIZE = env.int("PIMSYNC_POLL_PAGE_SIZE", default=100)
PIMSYNC_POLL_MAX_PAGES = env.int("PIMSYNC_POLL_MAX_PAGES", default=20)
PIMSYNC_POLL_DUE_SECONDS = env.float("PIMSYNC_POLL_DUE_SECONDS", default=30.0)
# Calls to an order's channel (report a shipment, cancel an oversold order): attempts before
# a call is dead-lettered (alerted, re-drivable from the admin or the API), the backoff
# between attempts, how long a call being sent is leased to its worker, and the beat sweep
# that sends due retries and calls whose task was lost.
PIMSYNC_ORDER_CALL_MAX_ATTEMPTS = env.int("PIMSYNC_ORDER_CALL_MAX_ATTEMPTS", default=8)
PIMSYNC_ORDER_CALL_RETRY_BASE_SECONDS = env.float(
    "PIMSYNC_ORDER_CALL_RETRY_BASE_SECONDS", default=30.0
)
PIMSYNC_ORDER_CALL_RETRY_CAP_SECONDS = env.float(
    "PIMSYNC_ORDER_CALL_RETRY_CAP_SECONDS", default=3600.0
)
PIMSYNC_ORDER_CALL_LEASE_SECONDS = env.int("PIMSYNC_ORDER_CALL_LEASE_SECONDS", default=120)
PIMSYNC_ORDER_CALL_SWEEP_SECONDS = env.float("PIMSYNC_ORDER_CALL_SWEEP_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE["order-calls-sweep"] = {
    "task": "channels_app.tasks.order_channel_calls_sweep_task",
    "schedule": PIMSYNC_ORDER_CALL_SWEEP_SECONDS,
}
CELERY_BEAT_SCHEDULE["inbound-sweep"] = {
    "task": "channels_app.tasks.inbound_sweep_task",
    "schedule": PIMSYNC_WEBHOOK_SWEEP_SECONDS,
}
CELERY_BEAT_SCHEDULE["channel-poll-due"] = {
    "task": "channels_app.tasks.channel_poll_due_task",
    "schedule": PIMSYNC_POLL_DUE_SECONDS,
}

# --- channel-side edits and the webhooks registered on channels ---------------------------
# pimsync's address as the channels reach it (scheme and host, no path), for the webhooks it
# registers on Shopify and WooCommerce: <PIMSYNC_PUBLIC_URL>/webhooks/<channel slug>/. A
# channel's own "public URL" overrides it. Empty: nothing is registered (the channel page
# says so). Shopify only delivers to HTTPS addresses.
PIMSYNC_PUBLIC_URL = env.str("PIMSYNC_PUBLIC_URL", default="")
# A reported value whose field had a push on its way is compared again this much later.
PIMSYNC_EDIT_RECHECK_SECONDS = env.float("PIMSYNC_EDIT_RECHECK_SECONDS", default=1.0)

# --- reconciliation and drift ---------------------------------------------------------------
from celery.schedules import crontab  # noqa: E402 - kept in this section

# Listings read and compared per step; the run's progress (checked / total) is saved after each.
PIMSYNC_RECONCILE_PAGE_SIZE = env.int("PIMSYNC_RECONCILE_PAGE_SIZE", default=500)
# Reads failing with a retryable error (429, THROTTLED, 5xx) are read again after the wait the
# channel asked for (at most the cap); the run gives up on them after this many rounds in a row
# without a single success.
PIMSYNC_RECONCILE_READ_ATTEMPTS = env.int("PIMSYNC_RECONCILE_READ_ATTEMPTS", default=5)
PIMSYNC_RECONCILE_MAX_RETRY_WAIT_SECONDS = env.float(
    "PIMSYNC_RECONCILE_MAX_RETRY_WAIT_SECONDS", default=60.0
)
# After the forced resync of drifted listings, their read-back waits for the pushes at most this
# long (seconds from the run's start), re-checking every VERIFY_SECONDS.
PIMSYNC_RECONCILE_VERIFY_TIMEOUT_SECONDS = env.int(
    "PIMSYNC_RECONCILE_VERIFY_TIMEOUT_SECONDS", default=1800
)
PIMSYNC_RECONCILE_VERIFY_SECONDS = env.float("PIMSYNC_RECONCILE_VERIFY_SECONDS", default=10.0)
# A running reconciliation older than this is taken as abandoned (worker lost) and failed, so a
# new one can start.
PIMSYNC_RECONCILE_STALE_SECONDS = env.int("PIMSYNC_RECONCILE_STALE_SECONDS", default=4 * 3600)
# --- catalog import (bringing a store in, docs/onboarding.md) --------------------------------
# Items asked for per catalog page (each platform caps it: Shopify 249, WooCommerce 100,
# eBay 200, Amazon 20, Magento 300); the cursor and the page's items are stored after each.
PIMSYNC_CATALOG_IMPORT_PAGE_SIZE = env.int("PIMSYNC_CATALOG_IMPORT_PAGE_SIZE", default=250)
# A worker holds an import for this long and renews it with every page; the sweeper gives an
# import whose lease ran out (worker killed) to another worker, which resumes at the stored page.
PIMSYNC_CATALOG_IMPORT_LEASE_SECONDS = env.int("PIMSYNC_CATALOG_IMPORT_LEASE_SECONDS", default=300)
# One task reads for at most this long, then queues its own continuation.
PIMSYNC_CATALOG_IMPORT_TASK_SECONDS = env.int("PIMSYNC_CATALOG_IMPORT_TASK_SECONDS", default=1500)
# A page failing with a retryable error (429, THROTTLED, 5xx) is read again after the channel's
# wait (at most the cap, seconds); after this many failures in a row the import stops (resumable).
PIMSYNC_CATALOG_IMPORT_READ_ATTEMPTS = env.int("PIMSYNC_CATALOG_IMPORT_READ_ATTEMPTS", default=8)
PIMSYNC_CATALOG_IMPORT_MAX_RETRY_WAIT_SECONDS = env.float(
    "PIMSYNC_CATALOG_IMPORT_MAX_RETRY_WAIT_SECONDS", default=60.0
)
# A title (+ options) similarity at least this high is proposed as a match (0-1).
PIMSYNC_MATCH_TITLE_THRESHOLD = env.float("PIMSYNC_MATCH_TITLE_THRESHOLD", default=0.75)
# Sync log entries, inbound events, resolved drift findings, delivered notifications and
# channel health snapshots older than this many days are deleted daily, in batches of
# RETENTION_BATCH_SIZE rows (short transactions, no long locks).
PIMSYNC_RETENTION_DAYS = env.int("PIMSYNC_RETENTION_DAYS", default=30)
PIMSYNC_RETENTION_BATCH_SIZE = env.int("PIMSYNC_RETENTION_BATCH_SIZE", default=1000)
CELERY_BEAT_SCHEDULE["retention-purge"] = {
    "task": "channels_app.tasks.retention_purge_task",
    "schedule": crontab(hour=3, minute=17),
}

# --- health, alerts, notifications, incidents ------------------------------------------------
# Defaults of each channel's alert thresholds (a channel overrides them on its admin page).
# Dead: no successful push for this long while work is stuck (failed, or due and untaken).
PIMSYNC_HEALTH_DEAD_AFTER_SECONDS = env.int("PIMSYNC_HEALTH_DEAD_AFTER_SECONDS", default=300)
# Degraded: at least this share of SKU attempts failed in the window, counted only once
# the window holds the minimum number of attempts (1 failure of 1 is not 100 %).
PIMSYNC_HEALTH_DEGRADED_ERROR_PERCENT = env.int("PIMSYNC_HEALTH_DEGRADED_ERROR_PERCENT", default=20)
PIMSYNC_HEALTH_DEGRADED_WINDOW_SECONDS = env.int(
    "PIMSYNC_HEALTH_DEGRADED_WINDOW_SECONDS", default=900
)
PIMSYNC_HEALTH_DEGRADED_MIN_ATTEMPTS = env.int("PIMSYNC_HEALTH_DEGRADED_MIN_ATTEMPTS", default=20)
# Consecutive failed attempts of one SKU's push before it is alerted on its own.
PIMSYNC_HEALTH_REPEATED_FAILURES = env.int("PIMSYNC_HEALTH_REPEATED_FAILURES", default=2)
# Pending pushes of one channel above which ops are told.
PIMSYNC_HEALTH_QUEUE_DEPTH_LIMIT = env.int("PIMSYNC_HEALTH_QUEUE_DEPTH_LIMIT", default=5000)
# Top sellers: the K variants with the most units sold on the channel in the last D days;
# their ATP on the channel below the safety stock is alerted.
PIMSYNC_HEALTH_TOP_SELLERS = env.int("PIMSYNC_HEALTH_TOP_SELLERS", default=20)
PIMSYNC_HEALTH_TOP_SELLER_DAYS = env.int("PIMSYNC_HEALTH_TOP_SELLER_DAYS", default=30)
PIMSYNC_HEALTH_TOP_SELLER_SAFETY_STOCK = env.int(
    "PIMSYNC_HEALTH_TOP_SELLER_SAFETY_STOCK", default=5
)
# Webhook deliveries refused for their signature: this many within the window alert.
PIMSYNC_HEALTH_BAD_SIGNATURE_THRESHOLD = env.int(
    "PIMSYNC_HEALTH_BAD_SIGNATURE_THRESHOLD", default=3
)
PIMSYNC_HEALTH_BAD_SIGNATURE_WINDOW_SECONDS = env.int(
    "PIMSYNC_HEALTH_BAD_SIGNATURE_WINDOW_SECONDS", default=900
)
# How often every channel is evaluated and a ChannelHealthSnapshot recorded (beat), and
# how many days of snapshots are kept (older ones are deleted by the evaluation).
PIMSYNC_HEALTH_EVALUATE_SECONDS = env.float("PIMSYNC_HEALTH_EVALUATE_SECONDS", default=60.0)
PIMSYNC_HEALTH_SNAPSHOT_DAYS = env.int("PIMSYNC_HEALTH_SNAPSHOT_DAYS", default=30)
# Notifications: e-mail to the ops group (and staff with the ops dashboard permission)
# through the Django mail settings above, plus these extra addresses.
PIMSYNC_ALERT_EMAIL_ENABLED = env.bool("PIMSYNC_ALERT_EMAIL_ENABLED", default=True)
PIMSYNC_ALERT_OPS_GROUP = env.str("PIMSYNC_ALERT_OPS_GROUP", default="ops")
PIMSYNC_ALERT_EMAIL_EXTRA = env.list("PIMSYNC_ALERT_EMAIL_EXTRA", default=[])
# JSON POST per alert change (Slack-compatible "text" field); empty = no webhook.
PIMSYNC_ALERT_WEBHOOK_URL = env.str("PIMSYNC_ALERT_WEBHOOK_URL", default="")
PIMSYNC_ALERT_WEBHOOK_CONNECT_TIMEOUT = env.float(
    "PIMSYNC_ALERT_WEBHOOK_CONNECT_TIMEOUT", default=3.0
)
PIMSYNC_ALERT_WEBHOOK_READ_TIMEOUT = env.float("PIMSYNC_ALERT_WEBHOOK_READ_TIMEOUT", default=10.0)
# Alerts below this severity (info, warning, critical) notify nobody.
PIMSYNC_ALERT_NOTIFY_MIN_SEVERITY = env.str("PIMSYNC_ALERT_NOTIFY_MIN_SEVERITY", default="warning")
# Delivery retries: attempts, exponential backoff base and cap, the claim lease of a
# send in progress, and the beat sweep that sends retries and anything not enqueued.
PIMSYNC_ALERT_NOTIFY_MAX_ATTEMPTS = env.int("PIMSYNC_ALERT_NOTIFY_MAX_ATTEMPTS", default=8)
PIMSYNC_ALERT_NOTIFY_RETRY_BASE_SECONDS = env.float(
    "PIMSYNC_ALERT_NOTIFY_RETRY_BASE_SECONDS", default=30.0
)
PIMSYNC_ALERT_NOTIFY_RETRY_CAP_SECONDS = env.float(
    "PIMSYNC_ALERT_NOTIFY_RETRY_CAP_SECONDS", default=3600.0
)
PIMSYNC_ALERT_NOTIFY_LEASE_SECONDS = env.int("PIMSYNC_ALERT_NOTIFY_LEASE_SECONDS", default=300)
PIMSYNC_ALERT_NOTIFY_SWEEP_SECONDS = env.float("PIMSYNC_ALERT_NOTIFY_SWEEP_SECONDS", default=30.0)
# Prefix of the admin links in notifications, e.g. https://pimsync.example.com (empty: paths).
PIMSYNC_ALERT_LINK_BASE_URL = env.str("PIMSYNC_ALERT_LINK_BASE_URL", default="")
# An alert whose condition returns within this many seconds of resolving reopens (one
# story, one row) instead of opening a new alert.
PIMSYNC_ALERT_REOPEN_SECONDS = env.int("PIMSYNC_ALERT_REOPEN_SECONDS", default=1800)
# Incidents: a channel outage within this many seconds of an open incident joins it
# (one cause, several channels); failed SKUs this long before detection count as affected.
PIMSYNC_INCIDENT_CORRELATION_SECONDS = env.int("PIMSYNC_INCIDENT_CORRELATION_SECONDS", default=300)
PIMSYNC_INCIDENT_SKU_LOOKBACK_SECONDS = env.int(
    "PIMSYNC_INCIDENT_SKU_LOOKBACK_SECONDS", default=600
)
# The incident list's recovery-time report covers incidents detected in this many days.
PIMSYNC_INCIDENT_REPORT_DAYS = env.int("PIMSYNC_INCIDENT_REPORT_DAYS", default=30)
CELERY_BEAT_SCHEDULE["health-evaluate"] = {
    "task": "channels_app.tasks.channel_health_evaluate_task",
    "schedule": PIMSYNC_HEALTH_EVALUATE_SECONDS,
}
CELERY_BEAT_SCHEDULE["notifications-deliver"] = {
    "task": "synclog.tasks.notifications_deliver_task",
    "schedule": PIMSYNC_ALERT_NOTIFY_SWEEP_SECONDS,
}

# --- ops dashboard and /healthz ----------------------------------------------------------------
# Seconds between the dashboard's self-refreshes; a channel whose newest health snapshot
# is older than STALE seconds is flagged stale (the per-minute evaluation is not running).
PIMSYNC_DASHBOARD_REFRESH_SECONDS = env.int("PIMSYNC_DASHBOARD_REFRESH_SECONDS", default=15)
PIMSYNC_DASHBOARD_STALE_SECONDS = env.int("PIMSYNC_DASHBOARD_STALE_SECONDS", default=300)
# Rows shown in the dashboard's open-alert and recent-failure tables.
PIMSYNC_DASHBOARD_ALERT_LIMIT = env.int("PIMSYNC_DASHBOARD_ALERT_LIMIT", default=50)
PIMSYNC_DASHBOARD_FAILURE_LIMIT = env.int("PIMSYNC_DASHBOARD_FAILURE_LIMIT", default=15)
# /healthz answers load balancers within about this: it bounds the broker check (Redis
# PING, other brokers' connect) and, on PostgreSQL, the time to open a connection.
PIMSYNC_HEALTHZ_TIMEOUT_SECONDS = env.float("PIMSYNC_HEALTHZ_TIMEOUT_SECONDS", default=1.0)
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # An unreachable database host must fail fast (libpq's default is to wait forever).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5)
    )

# --- REST API ---------------------------------------------------------------------------------
INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar"]
REST_FRAMEWORK.update(
    {
        "DEFAULT_SCHEMA_CLASS": "pimsync.api.schema.ApiAutoSchema",
        "DEFAULT_PAGINATION_CLASS": "pimsync.api.pagination.ApiCursorPagination",
        "DEFAULT_THROTTLE_CLASSES": ["pimsync.api.throttling.ApiUserThrottle"],
        "DEFAULT_RENDERER_CLASSES": [
            "rest_framework.renderers.JSONRenderer",
            "rest_framework.renderers.BrowsableAPIRenderer",
        ],
        "DEFAULT_PARSER_CLASSES": ["pimsync.api.parsers.StrictJSONParser"],
        "EXCEPTION_HANDLER": "pimsync.api.errors.api_exception_handler",
        "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
        "COERCE_DECIMAL_TO_STRING": True,
        "PAGE_SIZE": 50,
    }
)
# Requests per user (token or session): every API call counts against PIMSYNC_API_RATE;
# the bulk endpoints (up to PIMSYNC_API_BULK_MAX_ROWS rows each) also against
# PIMSYNC_API_BULK_RATE. DRF rate syntax: "<n>/<second|minute|hour|day>".
PIMSYNC_API_RATE = env.str("PIMSYNC_API_RATE", default="6000/minute")
PIMSYNC_API_BULK_RATE = env.str("PIMSYNC_API_BULK_RATE", default="60/minute")
PIMSYNC_API_BULK_MAX_ROWS = env.int("PIMSYNC_API_BULK_MAX_ROWS", default=10_000)
# Where throttle counters live: empty = this process's memory (one web process, the
# embedded default); a redis:// URL shares them across gunicorn workers and hosts.
PIMSYNC_API_THROTTLE_REDIS_URL = env.str("PIMSYNC_API_THROTTLE_REDIS_URL", default="")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api-throttle": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": PIMSYNC_API_THROTTLE_REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
        if PIMSYNC_API_THROTTLE_REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api"}
    ),
}
# Largest page a client may ask for with ?page_size= (default page: 50).
PIMSYNC_API_MAX_PAGE_SIZE = env.int("PIMSYNC_API_MAX_PAGE_SIZE", default=1000)
# Stock levels at or below this many available units match ?low_stock=true.
PIMSYNC_API_LOW_STOCK_LEVEL = env.int("PIMSYNC_API_LOW_STOCK_LEVEL", default=5)
# Stored Idempotency-Key responses are kept this many days, then purged daily.
PIMSYNC_API_IDEMPOTENCY_DAYS = env.int("PIMSYNC_API_IDEMPOTENCY_DAYS", default=7)
CELERY_BEAT_SCHEDULE["api-idempotency-purge"] = {
    "task": "pimsync.tasks.api_idempotency_purge_task",
    "schedule": 24 * 3600.0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "pimsync API",
    "DESCRIPTION": (
        "Catalog, stock, channels, orders and sync state of pimsync. Authenticate with "
        "`Authorization: Token <key>` (`manage.py api_token <user>`). Roles: merchandiser, "
        "integrator, ops; staff may do everything. Errors always have the shape "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "MovementReasonEnum": "inventory.models.MovementReason",
        "ApiMovementReasonEnum": "inventory.api.serializers.API_MOVEMENT_REASONS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pimsync.api.schema.add_error_responses",
    ],
}

# --- admin CSV import/export -------------------------------------------------------------------
# Variant prices and stock counts imported from spreadsheets in the admin (inventory.csv_imports).
# An upload larger than this is refused before it is parsed (the web server in front should
# cap request bodies too); at most this many price rows are imported at once — every id
# list of the import and of the listing markers it triggers then stays below SQLite's
# 32,766 query parameters.
PIMSYNC_CSV_IMPORT_MAX_BYTES = env.int("PIMSYNC_CSV_IMPORT_MAX_BYTES", default=5 * 1024 * 1024)
PIMSYNC_CSV_IMPORT_MAX_ROWS = env.int("PIMSYNC_CSV_IMPORT_MAX_ROWS", default=20_000)
# Stock count files are applied in one transaction inside the confirming request
# (20,000 rows in 5.8 s on PostgreSQL, 5.4 s on SQLite, bench/csv_import.py on a quiet
# 2-core machine): this cap keeps one file well within the web server's 60 s timeout.
PIMSYNC_CSV_IMPORT_MAX_COUNT_ROWS = env.int("PIMSYNC_CSV_IMPORT_MAX_COUNT_ROWS", default=20_000)
# A preview not confirmed within this many hours must be uploaded again; older unconfirmed
# previews are deleted when the next file is uploaded.
PIMSYNC_CSV_IMPORT_PREVIEW_HOURS = env.int("PIMSYNC_CSV_IMPORT_PREVIEW_HOURS", default=24)
