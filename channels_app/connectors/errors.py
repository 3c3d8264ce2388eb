"""Failure classes shared by every connector.

Connectors never raise for a single SKU's failure: they report it per SKU in an
ItemResult. They raise these only when a whole call cannot be attempted or its
outcome is unknown for every SKU in it (the caller then treats every SKU of the
call the same way).
"""

from __future__ import annotations

from enum import StrEnum

# Code of the permanent error a connector raises when a poll would start further
# back than the platform serves orders (the poll raises a poll_gap alert).
POLL_WINDOW_EXCEEDED = "poll_window_exceeded"


class FailureKind(StrEnum):
    OK = "ok"
    RETRYABLE = "retryable"  # 429, THROTTLED, 5xx, timeouts, connection errors
    PERMANENT = "permanent"  # other 4xx, malformed or unexpected responses
    AUTH = "auth"  # 401 / 403


class ConnectorError(Exception):
    kind: FailureKind = FailureKind.PERMANENT

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after


class RetryableError(ConnectorError):
    kind = FailureKind.RETRYABLE


class PermanentError(ConnectorError):
    kind = FailureKind.PERMANENT


class AuthError(ConnectorError):
    kind = FailureKind.AUTH
