import logging

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .health import health_report

logger = logging.getLogger(__name__)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Health for load balancers and monitoring (anonymous): database, broker and
    per-channel state; 200 when this node can serve, 503 otherwise, never a 500."""
    try:
        body, status = health_report()
    except Exception:  # the report must answer whatever broke underneath
        logger.exception("healthz: report failed")
        body, status = {"status": "down", "checked_at": timezone.now().isoformat()}, 503
    return JsonResponse(body, status=status)
