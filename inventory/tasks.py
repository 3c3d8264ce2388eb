from celery import shared_task

from . import services


@shared_task(time_limit=120, soft_time_limit=100, ignore_result=True)
def reservation_expire_due_task() -> int:
    """Release reservations past their expiry (scheduled every minute by beat)."""
    return services.reservation_expire_due()
