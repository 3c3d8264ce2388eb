"""One JSON shape for every API error: {"error": {"code", "message", "details"}}.

DRF's own exceptions, the domain errors of inventory (InventoryError and its
subclasses), Django's ValidationError / ProtectedError and Http404 all land
here; anything else is logged and answered 500 in the same shape, so a client
never has to parse HTML.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from inventory import errors as inventory_errors

log = logging.getLogger(__name__)

# Domain errors that mean "the request conflicts with the current state".
_CONFLICTS = (
    inventory_errors.IdempotencyConflict,
    inventory_errors.InsufficientStock,
    inventory_errors.InvalidTransition,
)


class ApiError(exceptions.APIException):
    """An error a view raises with its own code and details."""

    def __init__(self, message: str, *, code: str, status_code: int = 400, details: Any = None):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.details = details if details is not None else {}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def row_errors(errors: dict[int, Any]) -> list[dict[str, Any]]:
    """Per-row errors of a bulk request in row order: [{"row": 0, "errors": {field: [...]}}]."""
    return [{"row": row, "errors": errors[row]} for row in sorted(errors)]


def _first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        inner = _first_message(value)
        return inner if key == "non_field_errors" else f"{key}: {inner}"
    return str(detail)


def _plain(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {k: _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)


_DRF_CODES = {
    exceptions.ParseError: "parse_error",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "invalid",
}


def _from_drf(exc: exceptions.APIException) -> Response:
    if isinstance(exc, ApiError):
        body = error_body(exc.error_code, str(exc.detail), exc.details)
    elif isinstance(exc, exceptions.ValidationError):
        body = error_body("invalid", _first_message(exc.detail), {"fields": _plain(exc.detail)})
    else:
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
        body = error_body(code or str(exc.default_code), str(exc.detail))
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait) + 1)
        body["error"]["details"] = {"retry_after_seconds": int(exc.wait) + 1}
    return Response(body, status=exc.status_code, headers=headers)


def _translate(exc: Exception) -> exceptions.APIException | None:
    """Domain and Django errors as the API error they mean; None when unknown."""
    if isinstance(exc, Http404):
        return ApiError("Not found.", code="not_found", status_code=404)
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, inventory_errors.InventoryError):
        details: dict[str, Any] = {}
        if isinstance(exc, inventory_errors.InsufficientStock):
            details = {"shortfalls": exc.shortfalls}
        elif isinstance(exc, inventory_errors.BulkMovementRejected):
            details = {"rows": row_errors({r: {"movement": m} for r, m in exc.row_errors.items()})}
        status_code = 409 if isinstance(exc, _CONFLICTS) else 400
        return ApiError(exc.message, code=exc.code, status_code=status_code, details=details)
    if isinstance(exc, DjangoValidationError):
        fields = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return exceptions.ValidationError(fields)
    if isinstance(exc, ProtectedError | RestrictedError):
        return ApiError(
            "It is still referenced (stock history, orders or listings); deactivate it instead.",
            code="protected",
            status_code=409,
        )
    if isinstance(exc, IntegrityError):
        return ApiError(
            "The change conflicts with existing data (a unique value is taken or a "
            "constraint would be broken).",
            code="conflict",
            status_code=409,
        )
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    translated = exc if isinstance(exc, exceptions.APIException) else _translate(exc)
    set_rollback()
    if translated is None:
        view = context.get("view")
        log.exception("API error in %s", type(view).__name__ if view else "?", exc_info=exc)
        return Response(
            error_body("server_error", "An unexpected error occurred; it has been logged."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return _from_drf(translated)


@csrf_exempt  # nothing is done here: a POST must get the JSON 404, not a CSRF page
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    """Any path under /api/ that matches no endpoint, for every method."""
    return JsonResponse(error_body("not_found", f"No API endpoint at {request.path}."), status=404)
