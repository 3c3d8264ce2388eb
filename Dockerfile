# syntax=docker/dockerfile:1
# pimsync production image. One image for every process: gunicorn (the default command),
# the Celery worker and beat, the one-shot migrate (see docker-compose.yml). Configured only
# through environment variables (.env.example); no secret is baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=pimsync.settings.production \
    PIMSYNC_VAR_DIR=/app/var \
    PORT=8000 \
    WEB_CONCURRENCY=3

RUN groupadd --system --gid 10001 pimsync \
    && useradd --system --uid 10001 --gid pimsync --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin pimsync

WORKDIR /app

# Pinned dependencies first: this layer is reused until the lock file changes.
COPY requirements/base.lock requirements/base.lock
RUN pip install -r requirements/base.lock

COPY . .
# Editable like `make install`, so BASE_DIR stays /app (templates/, static/ and var/ live
# there). collectstatic needs importable production settings: the values below exist only
# for this build step and are not kept in the image.
RUN pip install --no-deps -e . \
    && SECRET_KEY=build-only-collectstatic-not-a-real-secret-key-0123456789abcdef \
        ALLOWED_HOSTS=build.invalid \
        PIMSYNC_FERNET_KEYS=MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA= \
        DATABASE_URL=sqlite:////tmp/collectstatic.sqlite3 \
        CELERY_BROKER_URL=redis://build.invalid:6379/0 \
        python manage.py collectstatic --noinput --verbosity 1 \
    && rm -f /tmp/collectstatic.sqlite3 \
    && rm -rf /app/var && install -d -o pimsync -g pimsync -m 0750 /app/var

# The code stays root-owned and read-only to the service user; only var/ is writable.
USER pimsync
EXPOSE 8000

# gunicorn binds 0.0.0.0:$PORT and runs $WEB_CONCURRENCY workers; add flags with
# GUNICORN_CMD_ARGS. Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
# gthread workers keep connections alive (webhook senders reuse them).
CMD ["gunicorn", "pimsync.wsgi:application", "--worker-class", "gthread", "--threads", "4", "--access-logfile", "-", "--timeout", "60"]
