from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        db_ok = True
    except Exception:  # any database failure means unhealthy, whatever its class
        db_ok = False
    return JsonResponse({"database": "ok" if db_ok else "down"}, status=200 if db_ok else 503)
