from celery import shared_task

from . import services


@shared_task(time_limit=120, soft_time_limit=100, ignore_result=True)
def reservation_expire_due_task() -> int:
    """Release reservations past their expiry (scheduled every minute by beat)."""
    return services.reservation_expire_due()


@shared_task(time_limit=600, soft_time_limit=540, ignore_result=True)
def api_idempotency_purge_task() -> int:
    """Forget stored API idempotency responses past their retention (daily)."""
    from django.conf import settings

    return services.api_idempotency_purge(older_than_days=settings.PIMSYNC_API_IDEMPOTENCY_DAYS)
