"""The ``Idempotency-Key`` header: a retried write is answered, not applied again.

The key is scoped to the user. Its record (pimsync.models.ApiIdempotencyKey) is
written in the same transaction as the work (api_idempotency_begin), so a failed
request leaves the key free for a corrected retry and a successful one is
replayed — status and body — to every repeat with the same method, path and body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from inventory.errors import IdempotencyConflict
from pimsync.models import ApiIdempotencyKey

from .errors import ApiError

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any


def api_idempotency_begin(
    *, user: User, key: str, request_hash: str
) -> tuple[ApiIdempotencyKey, StoredResponse | None]:
    """Take an Idempotency-Key for a request, inside the transaction that does its work.

    Returns (record, None) when this request now owns the key (call
    api_idempotency_finish before the transaction commits), or (record, stored)
    when the same request was answered before: replay ``stored``. A concurrent
    request with the key waits on the unique index until the first one commits
    (then it gets the replay) or rolls back (then it owns the key). Raises
    IdempotencyConflict when the key was used for a different request.
    """
    for _ in range(3):
        try:
            with transaction.atomic():
                record = ApiIdempotencyKey.objects.create(
                    user=user, key=key, request_hash=request_hash
                )
            return record, None
        except IntegrityError:
            existing = ApiIdempotencyKey.objects.filter(user=user, key=key).first()
        if existing is None:
            continue  # purged between our insert and our read: try again
        if existing.request_hash != request_hash:
            raise IdempotencyConflict(
                f"Idempotency-Key {key!r} was already used for a different request"
            )
        if existing.response_status is None:
            raise IdempotencyConflict(f"A request with Idempotency-Key {key!r} is in progress")
        return existing, StoredResponse(existing.response_status, existing.response_body)
    raise IdempotencyConflict(f"Idempotency-Key {key!r} is contended; retry the request")


def api_idempotency_finish(*, record: ApiIdempotencyKey, status: int, body: Any) -> None:
    record.response_status = status
    record.response_body = body
    record.save(update_fields=["response_status", "response_body"])


def api_idempotency_purge(*, older_than_days: int, now: datetime | None = None) -> int:
    """Forget stored responses older than the retention; the ledger's own keys
    still keep a late repeat from applying twice. Returns how many were purged."""
    cutoff = (now or timezone.now()) - timedelta(days=older_than_days)
    purged = 0
    while True:
        ids = list(
            ApiIdempotencyKey.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[
                :1000
            ]
        )
        if not ids:
            return purged
        purged += ApiIdempotencyKey.objects.filter(pk__in=ids).delete()[0]


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
    user = request.user
    if not isinstance(user, User):  # the views' permissions admit signed-in users only
        raise NotAuthenticated
    with transaction.atomic():
        record, stored = api_idempotency_begin(user=user, key=key, request_hash=fingerprint)
        if stored is not None:
            return Response(stored.body, status=stored.status, headers={REPLAY_HEADER: "true"})
        response = perform(key)
        body = _as_json(response.data)
        api_idempotency_finish(record=record, status=response.status_code, body=body)
    return response
