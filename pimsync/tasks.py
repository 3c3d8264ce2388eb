from celery import shared_task
from django.conf import settings

from .api.idempotency import api_idempotency_purge


@shared_task(time_limit=600, soft_time_limit=540, ignore_result=True)
def api_idempotency_purge_task() -> int:
    """Forget stored API idempotency responses past their retention (daily)."""
    return api_idempotency_purge(older_than_days=settings.PIMSYNC_API_IDEMPOTENCY_DAYS)
