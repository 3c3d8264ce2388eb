"""Per-user request rates from settings, counted in the "api-throttle" cache."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import UserRateThrottle

log = logging.getLogger(__name__)


class ApiUserThrottle(UserRateThrottle):
    """Every API request of a user (anonymous requests never get this far)."""

    scope = "user"
    setting = "PIMSYNC_API_RATE"

    def __init__(self) -> None:
        self.cache = caches["api-throttle"]
        super().__init__()

    def get_rate(self) -> str:
        return getattr(settings, self.setting)

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # a throttle store that is down must not take the API down
            log.warning("API throttle store unavailable, request let through: %s", exc)
            return True


class ApiBulkThrottle(ApiUserThrottle):
    """The bulk endpoints, which carry up to PIMSYNC_API_BULK_MAX_ROWS rows each."""

    scope = "bulk"
    setting = "PIMSYNC_API_BULK_RATE"
