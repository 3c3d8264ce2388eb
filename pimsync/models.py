"""Models of the API plumbing shared by the apps."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiIdempotencyKey(models.Model):
    """The first response to an API write sent with an ``Idempotency-Key`` header.

    A repeat of the key by the same user with the same request is answered with
    this stored response; the same key with a different request is refused. The
    row is inserted in the transaction that performs the write, so a concurrent
    repeat waits on the unique index and then sees either the committed response
    or (when the first one failed and rolled back) a free key.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_idempotency_keys"
    )
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of method, path and body")
    # Filled in before the writing transaction commits; other transactions never
    # see a row without its response.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        # The model moved here from inventory and kept its table (pimsync migration 0001).
        db_table = "inventory_apiidempotencykey"
        verbose_name = "API idempotency key"
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="api_idempotency_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.user_id})"
