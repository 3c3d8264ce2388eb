"""The ``Idempotency-Key`` header: a retried write is answered, not applied again.

The key is scoped to the user. Its record is written in the same transaction as
the work (inventory.services.api_idempotency_begin), so a failed request leaves
the key free for a corrected retry and a successful one is replayed — status
and body — to every repeat with the same method, path and body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from django.db import transaction
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from inventory import services

from .errors import ApiError

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"


def idempotency_key(request: Request, *, required: bool) -> str | None:
    key = request.headers.get(HEADER, "")
    if not key:
        if required:
            raise ApiError(
                f"This request needs an {HEADER} header (a unique string per change, "
                "reused only to retry the same change).",
                code="idempotency_key_required",
            )
        return None
    if len(key) > 200 or not key.isascii() or not key.isprintable():
        raise ApiError(
            f"{HEADER} must be 1 to 200 printable ASCII characters.", code="invalid_idempotency_key"
        )
    return key


def request_fingerprint(request: Request) -> str:
    """SHA-256 over method, path and the parsed body in a canonical form (key order
    and whitespace do not matter)."""
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), cls=JSONEncoder)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def ledger_key(request: Request, key: str) -> str:
    """The stock ledger's idempotency key for an API key: unique per user."""
    return f"api:{request.user.pk}:{key}"


def _as_json(data: object) -> object:
    return json.loads(json.dumps(data, cls=JSONEncoder))


def idempotent(
    request: Request, perform: Callable[[str | None], Response], *, required: bool = True
) -> Response:
    """Run ``perform(key)`` once per (user, Idempotency-Key); replay its response after."""
    key = idempotency_key(request, required=required)
    if key is None:
        return perform(None)
    fingerprint = request_fingerprint(request)
    with transaction.atomic():
        record, stored = services.api_idempotency_begin(
            user=request.user, key=key, request_hash=fingerprint
        )
        if stored is not None:
            return Response(stored.body, status=stored.status, headers={REPLAY_HEADER: "true"})
        response = perform(key)
        body = _as_json(response.data)
        services.api_idempotency_finish(record=record, status=response.status_code, body=body)
    return response
